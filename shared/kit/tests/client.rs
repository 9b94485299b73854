//! The outbound client against a real gRPC server on loopback (the standard
//! health service, answering as each test scripts it): idempotent calls are
//! retried through a brief outage and others are not; the caller's deadline,
//! token and request id travel with the call.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use crm_kit::client::{Caller, Peer, Retry};
use tokio::time::Instant;
use tonic::{Request, Response, Status, metadata::MetadataMap, transport::Server};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};

/// A health service that fails the first `failures` checks with UNAVAILABLE,
/// sleeps `delay` before answering, and keeps the headers it was sent.
#[derive(Clone)]
struct Scripted {
    failures: usize,
    delay: Duration,
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<MetadataMap>>>,
}

#[tonic::async_trait]
impl Health for Scripted {
    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        self.seen.lock().unwrap().push(request.metadata().clone());
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if call < self.failures {
            return Err(Status::unavailable("briefly down"));
        }
        Ok(Response::new(HealthCheckResponse { status: 1 }))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(&self, _: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

/// Serves `service` on a free port; returns a peer for it with `timeout`.
async fn serve(service: Scripted, timeout: Duration) -> Peer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        Server::builder()
            .add_service(HealthServer::new(service))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    Peer::connect_lazy("grpc.health.v1.Health", &url, timeout).unwrap()
}

fn scripted(failures: usize, delay: Duration) -> Scripted {
    Scripted { failures, delay, calls: Arc::default(), seen: Arc::default() }
}

async fn check(peer: &Peer, caller: &Caller, retry: Retry) -> Result<HealthCheckResponse, Status> {
    peer.call("Check", caller, retry, HealthCheckRequest::default(), |channel, request| async move {
        HealthClient::new(channel).check(request).await
    })
    .await
}

#[tokio::test]
async fn an_idempotent_call_is_retried_through_a_brief_outage() {
    let service = scripted(2, Duration::ZERO);
    let peer = serve(service.clone(), Duration::from_secs(5)).await;

    let answer = check(&peer, &Caller::default(), Retry::Idempotent).await;

    assert_eq!(answer.unwrap().status, 1);
    assert_eq!(service.calls.load(Ordering::SeqCst), 3, "two failures, then the answer");
}

#[tokio::test]
async fn a_call_that_is_not_idempotent_is_sent_once() {
    let service = scripted(1, Duration::ZERO);
    let peer = serve(service.clone(), Duration::from_secs(5)).await;

    let answer = check(&peer, &Caller::default(), Retry::Once).await;

    assert_eq!(answer.unwrap_err().code(), tonic::Code::Unavailable);
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_callers_deadline_token_and_request_id_travel_with_the_call() {
    let service = scripted(0, Duration::from_secs(2));
    let peer = serve(service.clone(), Duration::from_secs(5)).await;
    let mut inbound = MetadataMap::new();
    inbound.insert("authorization", "Bearer the-callers-token".parse().unwrap());
    inbound.insert("x-request-id", "req-42".parse().unwrap());
    inbound.insert("cookie", "not-forwarded".parse().unwrap());
    let caller = Caller::from_metadata(&inbound, Some(Instant::now() + Duration::from_millis(300)));

    let started = Instant::now();
    let answer = check(&peer, &caller, Retry::Idempotent).await;

    assert_eq!(answer.unwrap_err().code(), tonic::Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(2), "the caller's 300 ms, not the peer's 5 s or the server's 2 s");
    assert_eq!(service.calls.load(Ordering::SeqCst), 1, "a deadline is not retried");
    let seen = service.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.get("authorization").unwrap(), "Bearer the-callers-token");
    assert_eq!(seen.get("x-request-id").unwrap(), "req-42");
    assert!(seen.get("cookie").is_none());
    let timeout = seen.get("grpc-timeout").expect("a deadline on the wire").to_str().unwrap().to_owned();
    let (value, unit) = timeout.split_at(timeout.len() - 1);
    let millis = match unit {
        "m" => value.parse::<u64>().unwrap(),
        "u" => value.parse::<u64>().unwrap() / 1000,
        "n" => value.parse::<u64>().unwrap() / 1_000_000,
        other => panic!("unexpected grpc-timeout unit {other}"),
    };
    assert!(millis <= 300, "grpc-timeout {timeout} is within the caller's deadline");
}

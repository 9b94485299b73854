//! Calls from one service of the suite to another, all made the same way: one
//! shared channel per peer (an HTTP/2 connection, lazily connected), and on
//! every call a deadline of min(what is left of the caller's deadline, the
//! peer's default), the caller's token and request id forwarded, the trace
//! context injected, a client span and an `rpc.client.duration` measurement.
//! Idempotent calls are retried on UNAVAILABLE (the peer is down, draining
//! or shedding load — the kit sheds with UNAVAILABLE `OVERLOADED`) with
//! jittered exponential backoff, within the deadline and a retry budget
//! (tower's `TpsBudget`: every first attempt deposits, every retry
//! withdraws), so retries cannot multiply an outage. Other codes, such as
//! RESOURCE_EXHAUSTED for an oversized message, would fail the same way again.

use std::{sync::Arc, time::Duration};

use opentelemetry::{KeyValue, global, metrics::Histogram};
use tokio::time::Instant;
use tonic::{Code, Status, metadata::MetadataMap, transport::Channel};
use tower::retry::budget::{Budget, TpsBudget};
use tracing::Instrument;

use crate::telemetry::{client_span, inject_context};

tokio::task_local! {
    /// When the inbound call being handled must be answered (set by the kit's middleware).
    pub(crate) static REQUEST_DEADLINE: Instant;
}

/// Request headers forwarded to peers.
const FORWARDED: [&str; 2] = ["authorization", "x-request-id"];
/// Attempts of an idempotent call, the first included.
const MAX_ATTEMPTS: u32 = 3;
/// Backoff before the first retry; doubled for each further one, with full jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(25);

/// Who an outbound call is made for: the inbound caller's forwarded headers
/// and the deadline the answer is due by.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    metadata: MetadataMap,
    deadline: Option<Instant>,
}

impl Caller {
    /// The caller of an inbound gRPC request handled by the kit's server:
    /// its token, its request id, and what is left of its deadline.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        Self::from_metadata(request.metadata(), REQUEST_DEADLINE.try_with(|d| *d).ok())
    }

    /// A service acting for itself with `token` (see
    /// [`ServiceTokens`](crate::auth::ServiceTokens)); the peer's default deadline applies.
    pub fn service(token: &str) -> Result<Self, crate::Error> {
        let mut metadata = MetadataMap::new();
        let value = format!("Bearer {token}").parse().map_err(crate::Error::internal)?;
        metadata.insert("authorization", value);
        Ok(Self { metadata, deadline: None })
    }

    /// A caller from forwarded headers and an explicit deadline (e.g. the gateway's HTTP requests).
    pub fn from_metadata(metadata: &MetadataMap, deadline: Option<Instant>) -> Self {
        let mut forwarded = MetadataMap::new();
        for key in FORWARDED {
            if let Some(value) = metadata.get(key) {
                forwarded.insert(key, value.clone());
            }
        }
        Self { metadata: forwarded, deadline }
    }
}

/// Whether a call may be sent twice without a second effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A read, or a write made idempotent by a request id: retried.
    Idempotent,
    /// Never retried.
    Once,
}

/// Another service of the suite.
#[derive(Clone)]
pub struct Peer {
    service: &'static str,
    url: String,
    channel: Channel,
    timeout: Duration,
    budget: Arc<TpsBudget>,
}

impl Peer {
    /// `service` (e.g. `crm.profiles.v1.CustomerService`) at `url`, with `timeout`
    /// as the longest any call may take; the channel connects on first use.
    pub fn connect_lazy(service: &'static str, url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())?.connect_timeout(timeout).connect_lazy();
        Ok(Self::with_channel(service, url, channel, timeout))
    }

    /// A peer over an existing channel (one the caller already shares per backend).
    pub fn with_channel(service: &'static str, url: &str, channel: Channel, timeout: Duration) -> Self {
        // Retries may add 20 % to the calls that succeed, plus 10 per second, over a 10 s window.
        let budget = Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2));
        Self { service, url: url.to_owned(), channel, timeout, budget }
    }

    /// This peer with `timeout` as the longest a call may take, sharing its
    /// channel and retry budget: for a caller whose deadlines are chosen per
    /// request (the gateway's `X-Request-Timeout`), which a peer built once
    /// with a fixed default would otherwise cut short.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self { timeout, ..self.clone() }
    }

    /// Calls `method` with `message` for `caller`: `send` is the generated
    /// client call, e.g. `|channel, request| async move { CustomerServiceClient::new(channel).get_customer(request).await }`.
    pub async fn call<M, R, F, Fut>(&self, method: &'static str, caller: &Caller, retry: Retry, message: M, send: F) -> Result<R, Status>
    where
        M: Clone,
        F: Fn(Channel, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let deadline = match caller.deadline {
            Some(caller_deadline) => caller_deadline.min(Instant::now() + self.timeout),
            None => Instant::now() + self.timeout,
        };
        let span = client_span(self.service, method, &self.url);
        async {
            // Every call earns retries for others, whatever its outcome (as tower's Retry layer does).
            self.budget.deposit();
            let mut attempt = 1;
            loop {
                let result = self.attempt(method, caller, deadline, message.clone(), &send).await;
                match result {
                    Ok(response) => {
                        tracing::Span::current().record("rpc.grpc.status_code", Code::Ok as i32);
                        return Ok(response.into_inner());
                    }
                    Err(status) => {
                        let backoff = backoff(attempt);
                        let retryable = retry == Retry::Idempotent && status.code() == Code::Unavailable;
                        if retryable && attempt < MAX_ATTEMPTS && Instant::now() + backoff < deadline && self.budget.withdraw() {
                            tracing::debug!(code = ?status.code(), attempt, "retrying an idempotent call");
                            tokio::time::sleep(backoff).await;
                            attempt += 1;
                            continue;
                        }
                        tracing::Span::current().record("rpc.grpc.status_code", status.code() as i32);
                        return Err(status);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn attempt<M, R, F, Fut>(
        &self,
        method: &'static str,
        caller: &Caller,
        deadline: Instant,
        message: M,
        send: &F,
    ) -> Result<tonic::Response<R>, Status>
    where
        F: Fn(Channel, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Status::deadline_exceeded(format!(
                "the deadline for calling {} passed before the call could be sent",
                self.service
            )));
        }
        let mut request = tonic::Request::new(message);
        for (key, value) in caller.metadata.iter().filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(key, value) => Some((key.clone(), value.clone())),
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        }) {
            request.metadata_mut().insert(key, value);
        }
        inject_context(request.metadata_mut());
        request.set_timeout(remaining);
        let started = std::time::Instant::now();
        // Enforced here too: a hung connection must not outlive the deadline.
        let result = match tokio::time::timeout(remaining, send(self.channel.clone(), request)).await {
            // tonic enforces the grpc-timeout it sends too, and reports that as CANCELLED.
            Ok(Err(status)) if status.code() == Code::Cancelled && Instant::now() >= deadline => Err(timed_out(self.service, remaining)),
            Ok(result) => result,
            Err(_) => Err(timed_out(self.service, remaining)),
        };
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        client_duration().record(
            started.elapsed().as_secs_f64() * 1000.0,
            &[
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", self.service),
                KeyValue::new("rpc.method", method),
                KeyValue::new("rpc.grpc.status_code", code as i64),
            ],
        );
        result
    }
}

fn timed_out(service: &str, after: Duration) -> Status {
    Status::deadline_exceeded(format!("{service} did not answer within {} ms", after.as_millis()))
}

/// Full jitter: uniformly up to BASE × 2^(attempt-1).
fn backoff(attempt: u32) -> Duration {
    let cap = BASE_BACKOFF * 2u32.pow(attempt.saturating_sub(1).min(8));
    cap.mul_f64(rand::random::<f64>())
}

/// `rpc.client.duration` (ms) by peer service, method and status code, one sample per attempt.
fn client_duration() -> &'static Histogram<f64> {
    static DURATION: std::sync::OnceLock<Histogram<f64>> = std::sync::OnceLock::new();
    DURATION.get_or_init(|| {
        global::meter("crm-kit")
            .f64_histogram("rpc.client.duration")
            .with_unit("ms")
            .with_description("Duration of outbound RPC attempts, by peer method and gRPC status code")
            .build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_below_a_doubling_cap() {
        for attempt in 1..=4 {
            let cap = BASE_BACKOFF * 2u32.pow(attempt - 1);
            assert!((0..100).all(|_| backoff(attempt) <= cap), "attempt {attempt}");
        }
    }

    #[tokio::test]
    async fn a_peer_with_another_timeout_keeps_its_retry_budget() {
        let peer = Peer::with_channel(
            "crm.test.v1.Service",
            "http://127.0.0.1:1",
            Channel::from_static("http://127.0.0.1:1").connect_lazy(),
            Duration::from_secs(1),
        );
        let longer = peer.with_timeout(Duration::from_secs(30));
        assert_eq!(longer.timeout, Duration::from_secs(30));
        assert!(Arc::ptr_eq(&peer.budget, &longer.budget), "retries of both count against one budget");
    }

    #[test]
    fn only_forwarded_headers_travel() {
        let mut inbound = MetadataMap::new();
        inbound.insert("authorization", "Bearer t".parse().unwrap());
        inbound.insert("x-request-id", "r-1".parse().unwrap());
        inbound.insert("cookie", "secret".parse().unwrap());
        let caller = Caller::from_metadata(&inbound, None);
        assert_eq!(caller.metadata.len(), 2);
        assert!(caller.metadata.get("cookie").is_none());
    }
}

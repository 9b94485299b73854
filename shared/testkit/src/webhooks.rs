//! A real HTTP receiver of webhooks on a free local port: keeps every request
//! (headers, body, when, what it answered) and answers as a test scripts it —
//! a status, a delay, or not at all (its port closed, then opened again).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
    /// The body as sent.
    pub body: Vec<u8>,
    /// The body as JSON.
    pub json: serde_json::Value,
    /// Every header, for checks of the rest.
    pub headers: HeaderMap,
    /// When it arrived.
    pub at: Instant,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    /// The event's position (proto3 JSON writes int64 as a string).
    pub fn position(&self) -> i64 {
        self.json["position"].as_str().and_then(|p| p.parse().ok()).unwrap_or_default()
    }

    /// Whether the receiver answered 2xx.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug)]
struct Script {
    status: u16,
    delay: Duration,
    received: Vec<Received>,
    /// How many of `received` were accepted (waiting on it clones nothing).
    accepted: usize,
}

/// The receiver; its port stays the same across [`go_down`](Self::go_down) and [`come_up`](Self::come_up).
pub struct WebhookReceiver {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl WebhookReceiver {
    /// A receiver answering 204 at once.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let script = Arc::new(Mutex::new(Script { status: 204, delay: Duration::ZERO, received: Vec::new(), accepted: 0 }));
        let mut receiver = Self { addr, script, server: None };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new().route("/hook", post(receive)).with_state(self.script.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the receiver serves");
        });
        self.server = Some((stop, task));
    }

    /// The URL to subscribe.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.script.lock().unwrap().status = status;
    }

    /// Waits `delay` before answering from now on.
    pub fn delay(&self, delay: Duration) {
        self.script.lock().unwrap().delay = delay;
    }

    /// Closes its port: connections are refused until [`come_up`](Self::come_up).
    pub async fn go_down(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens on the same port again.
    pub async fn come_up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("the same port again");
        self.serve(listener);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// The requests it accepted (2xx).
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(Received::accepted).collect()
    }

    /// Waits (at most `within`) until it has accepted `count` requests; those it accepted.
    pub async fn wait_for_accepted(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        while self.script.lock().unwrap().accepted < count && Instant::now() <= deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.accepted()
    }
}

async fn receive(State(script): State<Arc<Mutex<Script>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let (status, delay) = {
        let s = script.lock().unwrap();
        (s.status, s.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut script = script.lock().unwrap();
    script.accepted += usize::from((200..300).contains(&status));
    script.received.push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
        signature: header("webhook-signature"),
        json: serde_json::from_slice(&body).unwrap_or_default(),
        body: body.to_vec(),
        headers: headers.clone(),
        at,
        status,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

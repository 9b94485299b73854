//! What the HTTP peers (`providers`, `fcm`) share: a server on a free local
//! port, and the one-second window above which a peer throttles.

use std::time::{Duration, Instant};

use axum::Router;
use tokio::{net::TcpListener, task::JoinHandle};

/// A listener on a free port of 127.0.0.1, and its `http://` base URL.
pub(crate) async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    (listener, url)
}

/// Serves `app` on `listener` until the task is aborted.
pub(crate) fn serve(listener: TcpListener, app: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the peer serves");
    })
}

/// Requests counted per second, to throttle above a limit as providers do.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    window: Option<(Instant, u32)>,
    /// Requests refused for the rate so far.
    pub throttled: usize,
}

impl RateWindow {
    /// Counts one request: whether it is over `max` this second (and counted throttled); never with no `max`.
    pub(crate) fn over(&mut self, max: Option<u32>) -> bool {
        let Some(max) = max else { return false };
        let now = Instant::now();
        let (start, count) = match self.window {
            Some((start, count)) if now.duration_since(start) < Duration::from_secs(1) => (start, count + 1),
            _ => (now, 1),
        };
        self.window = Some((start, count));
        if count > max {
            self.throttled += 1;
        }
        count > max
    }
}

//! A real `nats-server` with JetStream on a free local port, its storage in a
//! temporary directory; killed (and its storage removed) when dropped. The
//! binary is Debian's `nats-server` package (`.ci/run` installs it), or
//! `CRM_TEST_NATS_SERVER`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

/// A running nats-server.
pub struct NatsServer {
    child: Child,
    dir: PathBuf,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
}

impl NatsServer {
    /// Starts a server with JetStream and waits until it accepts clients.
    pub async fn start() -> Self {
        Self::start_on(crate::process::free_port()).await
    }

    /// [`Self::start`] on `port`: for a client configured before the server runs.
    pub async fn start_on(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("crm-nats-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a storage directory");
        let binary = std::env::var("CRM_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned());
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{binary} starts (apt install nats-server, or set CRM_TEST_NATS_SERVER): {e}"));
        let url = format!("nats://127.0.0.1:{port}");
        for _ in 0..100 {
            if async_nats::connect(url.as_str()).await.is_ok() {
                return Self { child, dir, url };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not accept clients within 5 s");
    }

    /// A client of the server.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url.as_str()).await.expect("connects to nats-server")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Real service processes for tests: a binary of the workspace started on a
//! free port against its own fresh database.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{auth::jwt_secret, database::TestDb};

/// A running service process.
pub struct ServiceProcess {
    /// The process (killed if dropped).
    pub child: tokio::process::Child,
    /// Its address, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// A connected channel.
    pub channel: Channel,
}

/// Path of workspace binary `name` (built by `cargo test --workspace`), next to the running test binary.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("<target>/<profile>/deps");
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: build it with `cargo build --workspace --bins` (make test does)", path.display());
    path
}

/// A free port on 127.0.0.1 for a process to bind moments later, picked
/// below the kernel's ephemeral range (32768 and up on Linux). The tests' own
/// peers (SMTP, HTTP, OTLP fakes) bind port 0 and land in that range, so one
/// of them can no longer take the port between this check and the child's
/// bind — which once left a campaigns test talking to an HTTP fake instead of
/// its profiles process. (28051 and up is api-check's.)
pub fn free_port() -> u16 {
    use rand::Rng;
    loop {
        let port = rand::thread_rng().gen_range(20_000..28_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A command for a suite binary on a free port: the test JWT secret, quiet
/// logs, no telemetry export, killed on drop; `extra_env` on top. Returns it
/// with its port.
fn suite_command(binary: PathBuf, extra_env: &[(&str, String)]) -> (tokio::process::Command, u16) {
    suite_command_on(binary, free_port(), extra_env)
}

fn suite_command_on(binary: PathBuf, port: u16, extra_env: &[(&str, String)]) -> (tokio::process::Command, u16) {
    let mut command = tokio::process::Command::new(binary);
    command
        .env("CRM_JWT_SECRET", jwt_secret())
        .env("CRM_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("CRM_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in extra_env {
        command.env(key, value);
    }
    (command, port)
}

/// Starts `binary` against `db` with `extra_env`, waits until it answers health checks.
pub async fn spawn_service(binary: PathBuf, db: &TestDb, extra_env: &[(&str, String)]) -> ServiceProcess {
    spawn_service_on(binary, db, free_port(), extra_env).await
}

/// Starts `binary` against `db` on `port` (to restart a process where its
/// clients already point) with `extra_env`; waits until it answers health checks.
pub async fn spawn_service_on(binary: PathBuf, db: &TestDb, port: u16, extra_env: &[(&str, String)]) -> ServiceProcess {
    let mut env = vec![("CRM_DATABASE_URL", db.app_url.clone()), ("CRM_MIGRATION_DATABASE_URL", db.owner_url.clone())];
    env.extend(extra_env.iter().cloned());
    let (mut command, port) = suite_command_on(binary, port, &env);
    let mut child = command.spawn().expect("service starts");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if let Ok(channel) = Channel::from_shared(url.clone()).expect("valid URL").connect().await
            && answers_health_checks(&channel).await
        {
            return ServiceProcess { child, url, channel };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the service exited during start-up: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not accept connections within 30 s");
}

/// Whether a gRPC health service answers on `channel` (serving or not): the
/// port is our process's, not another listener's that took it meanwhile.
async fn answers_health_checks(channel: &Channel) -> bool {
    HealthClient::new(channel.clone()).check(HealthCheckRequest { service: String::new() }).await.is_ok()
}

impl ServiceProcess {
    /// Kills the process with SIGKILL — no shutdown, no flush — and reaps it.
    pub async fn kill_hard(mut self) {
        self.child.kill().await.expect("SIGKILL");
    }

    /// Sends SIGTERM and waits (at most 10 s) for a clean exit; returns how long it took.
    pub async fn terminate(self) -> Duration {
        terminate(self.child).await
    }
}

/// Starts crm-gateway in front of `backends` (`CRM_BACKENDS`) on a free port
/// and waits for `/readyz`, which answers 200 only once every backend serves,
/// so that a scenario never races the services' start-up. Returns the process
/// and its base URL.
pub async fn spawn_gateway(backends: &str, extra_env: &[(&str, String)]) -> (tokio::process::Child, String) {
    let mut env = vec![("CRM_BACKENDS", backends.to_owned())];
    env.extend(extra_env.iter().cloned());
    let (mut command, port) = suite_command(binary("crm-gateway"), &env);
    let mut child = command.spawn().expect("the gateway starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(ready) = http.get(format!("{base}/readyz")).send().await
            && ready.status() == reqwest::StatusCode::OK
        {
            return (child, base);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the gateway exited during start-up: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway was not ready within 30 s");
}

/// Sends SIGTERM to `child` and waits (at most 10 s) for a clean exit, which
/// also flushes its telemetry; returns how long it took.
pub async fn terminate(mut child: tokio::process::Child) -> Duration {
    let started = std::time::Instant::now();
    let pid = child.id().expect("running");
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits within 10 s").expect("exit status");
    assert!(exit.success(), "clean exit: {exit:?}");
    started.elapsed()
}

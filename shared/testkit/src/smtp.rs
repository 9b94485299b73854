//! A real SMTP server for tests: `scripts/smtp_sink.py` (aiosmtpd) on a free
//! port, keeping every message it accepts in a file the test reads — so an
//! assertion about what was delivered is the peer's own record, not the
//! sender's. Recipients named `reject…@`, `busy…@` and `flaky…@` get a 550,
//! a 451 every time, or a 451 once (see the script).
//!
//! Python comes from `CRM_TEST_PYTHON` (set by `scripts/test.sh`, a venv
//! with aiosmtpd), else `~/.cache/crm-tools/venv/bin/python`, else `python3`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde::Deserialize;

/// One message the sink accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedMail {
    /// Envelope sender.
    pub mail_from: String,
    /// Envelope recipients that were accepted.
    pub rcpt_tos: Vec<String>,
    /// The Message-ID header.
    pub message_id: String,
    /// The decoded Subject header.
    pub subject: String,
    /// The whole message as received.
    pub data: String,
}

impl ReceivedMail {
    /// The `text/html` part, its quoted-printable transfer encoding undone
    /// (what lettre uses for long lines); None when the message has none.
    pub fn html_part(&self) -> Option<String> {
        let part = &self.data[self.data.find("Content-Type: text/html")?..];
        let body = &part[part.find("\r\n\r\n")? + 4..];
        let body = &body[..body.find("\r\n--").unwrap_or(body.len())];
        let joined = body.replace("=\r\n", "");
        let (bytes, mut out, mut i) = (joined.as_bytes(), Vec::new(), 0);
        while i < bytes.len() {
            match joined.get(i + 1..i + 3).filter(|_| bytes[i] == b'=').and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).ok()
    }
}

/// A running SMTP sink (stopped when dropped).
pub struct SmtpSink {
    child: tokio::process::Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    out: PathBuf,
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("CRM_TEST_PYTHON") {
        return python.into();
    }
    let venv = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/crm-tools/venv/bin/python"));
    venv.filter(|p| p.exists()).unwrap_or_else(|| "python3".into())
}

impl SmtpSink {
    /// Starts the sink and waits until it accepts connections.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The sink without an fsync per message (benchmarks: the disk does not set the pace).
    pub async fn start_without_fsync() -> Self {
        Self::start_with(&["--no-fsync"]).await
    }

    async fn start_with(flags: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("address").port();
        let out = std::env::temp_dir().join(format!("crm-smtp-sink-{}.jsonl", uuid::Uuid::now_v7().simple()));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/smtp_sink.py");
        let mut child = tokio::process::Command::new(python())
            .arg(script)
            .args(["--port", &port.to_string(), "--out"])
            .arg(&out)
            .args(flags)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the SMTP sink starts (python3 with aiosmtpd: run the tests with `make test`)");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { child, port, out };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the SMTP sink exited during start-up ({status}); is aiosmtpd installed? `make test` installs it");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the SMTP sink did not accept connections within 10 s");
    }

    /// How many messages were accepted so far (cheaper than reading them).
    pub fn count(&self) -> usize {
        std::fs::read(&self.out).map_or(0, |bytes| bytes.iter().filter(|b| **b == b'\n').count())
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let Ok(text) = std::fs::read_to_string(&self.out) else { return Vec::new() };
        text.lines().map(|line| serde_json::from_str(line).expect("the sink writes JSON lines")).collect()
    }

    /// Waits (at most `timeout`) until at least `count` messages arrived; returns them all.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count || tokio::time::Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.out);
    }
}

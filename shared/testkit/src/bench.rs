//! Load for `make bench`: a workload run with N calls in flight for a while,
//! its throughput, p50/p99 and the service's CPU per call and peak RSS (from
//! /proc), and pgbench as the reference measured in the same run. Every
//! benchmark of the suite uses these, so their tables mean the same thing.

use std::{
    path::PathBuf,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Mutex;

/// Throughput and latency of one workload.
pub struct Figures {
    /// Calls per second with 8 in flight.
    pub per_second: f64,
    /// Latency with 1 in flight.
    pub p50_1: Duration,
    /// Latency with 1 in flight.
    pub p99_1: Duration,
    /// Latency with 8 in flight.
    pub p50_8: Duration,
    /// Latency with 8 in flight.
    pub p99_8: Duration,
    /// The service's CPU (user + system) per call with 8 in flight.
    pub cpu_per_call: Option<Duration>,
    /// The load generator's own CPU per call with 8 in flight (it shares the cores).
    pub client_cpu_per_call: Option<Duration>,
    /// How busy the machine's cores were with 8 in flight (0..=1): below 1,
    /// the calls wait on something other than CPU.
    pub machine_busy: Option<f64>,
}

/// Busy and total time of all cores so far (jiffies), from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let values: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = values.get(3)? + values.get(4)?;
    Some((total - idle, total))
}

/// The service's CPU time so far (user + system), from /proc.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
}

/// Peak resident set size, from /proc.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Whether the bench runs at full size (`cargo bench` passes `--bench`; under
/// `cargo test` it is a smoke test), and how many customers it seeds:
/// `CRM_BENCH_CUSTOMERS`, else 1 000 000 at full size and 2 000 in a smoke test.
pub fn customer_scale() -> (bool, i64) {
    let full = std::env::args().any(|a| a == "--bench");
    let customers = std::env::var("CRM_BENCH_CUSTOMERS").ok().and_then(|n| n.parse().ok()).unwrap_or(if full { 1_000_000 } else { 2_000 });
    (full, customers)
}

/// The `p`-th percentile of `times` (sorted in place; never empty).
pub fn percentile_of(times: &mut [Duration], p: usize) -> Duration {
    times.sort();
    percentile(times, p)
}

/// Runs `call` with `in_flight` callers for `duration`; every call must succeed.
async fn run<F, Fut>(call: Arc<F>, in_flight: usize, duration: Duration) -> (usize, Vec<Duration>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let samples = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + duration;
    let workers: Vec<_> = (0..in_flight)
        .map(|worker| {
            let (call, samples) = (call.clone(), samples.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut i = worker;
                while Instant::now() < until {
                    let started = Instant::now();
                    call(i).await;
                    mine.push(started.elapsed());
                    i += in_flight;
                }
                samples.lock().await.extend(mine);
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a worker");
    }
    let mut samples = std::mem::take(&mut *samples.lock().await);
    samples.sort();
    (samples.len(), samples)
}

/// Warms up, then runs `call(i)` with 1 and with 8 in flight for `duration`,
/// measuring the service process `pid`; every call must succeed (the call panics otherwise).
pub async fn measure<F, Fut>(pid: u32, call: F, duration: Duration) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    run(call.clone(), 8, duration / 4).await; // warm connections, caches and plans
    let (_, single) = run(call.clone(), 1, duration / 2).await;
    let (cpu_before, client_before, machine_before) = (cpu_time(pid), cpu_time(std::process::id()), machine_ticks());
    let started = Instant::now();
    let (calls, eight) = run(call, 8, duration).await;
    let elapsed = started.elapsed();
    let per_call = |before: Option<Duration>, pid: u32| before.zip(cpu_time(pid)).map(|(before, after)| (after - before) / calls as u32);
    let machine_busy = machine_before
        .zip(machine_ticks())
        .map(|((busy_before, total_before), (busy, total))| (busy - busy_before) as f64 / (total - total_before).max(1) as f64);
    Figures {
        per_second: calls as f64 / elapsed.as_secs_f64(),
        p50_1: percentile(&single, 50),
        p99_1: percentile(&single, 99),
        p50_8: percentile(&eight, 50),
        p99_8: percentile(&eight, 99),
        cpu_per_call: per_call(cpu_before, pid),
        client_cpu_per_call: per_call(client_before, std::process::id()),
        machine_busy,
    }
}

/// `pgbench` with `args` against `url` for `seconds`; its tps (excluding connection set-up).
pub fn pgbench(url: &str, args: &[&str], seconds: u64) -> f64 {
    let bin = pg_bin("pgbench");
    let output = Command::new(&bin)
        .args(args)
        .args(["-c", "8", "-j", "2", "-T", &seconds.to_string(), "-n", url])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "pgbench failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in {text}"))
}

/// A Postgres binary: on PATH, else under /usr/lib/postgresql/*/bin.
pub fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().map(|d| d.path().join("bin")).collect();
    dirs.sort();
    dirs.into_iter().rev().map(|d| d.join(name)).find(|p| p.exists()).unwrap_or_else(|| PathBuf::from(name))
}

/// A workload of one unary RPC for [`measure`]: the i-th call sends
/// `request(i)` through a clone of `client` with `send`, which checks the
/// response (a panic fails the benchmark).
pub fn unary<C, Req, Fut>(
    client: C,
    request: impl Fn(usize) -> tonic::Request<Req> + Send + Sync + 'static,
    send: impl Fn(C, tonic::Request<Req>) -> Fut + Send + Sync + 'static,
) -> impl Fn(usize) -> Fut + Send + Sync + 'static
where
    C: Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    move |i| send(client.clone(), request(i))
}

/// A connection URL whose sessions start with `tenant` set (`options` in the
/// URL), for a reference that runs a service's single prepared SELECT under
/// RLS the way the kit's one-round-trip `Table::get` does, minus its `SET LOCAL`.
pub fn with_session_tenant(url: &str, tenant: uuid::Uuid) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20crm.tenant_id%3D{tenant}")
}

/// A pgbench script file, removed when dropped.
pub struct ScriptFile(pub PathBuf);

impl ScriptFile {
    /// Writes `text` to a fresh file in the temporary directory.
    pub fn write(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("crm-bench-{}.sql", uuid::Uuid::now_v7()));
        std::fs::write(&path, text).expect("script written");
        Self(path)
    }
}

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A table row of `figures` under [`HEADER`]: calls/s, p50/p99 at 1 and 8 in
/// flight (ms), the service's and the client's CPU per call, the cores' use.
pub fn row(label: &str, f: &Figures) -> String {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    let micros = |c: Option<Duration>| c.map_or(String::from("-"), |c| format!("{} µs", c.as_micros()));
    let busy = f.machine_busy.map_or(String::from("-"), |b| format!("{:.0} %", b * 100.0));
    format!(
        "{label:<30} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>9} {:>11} {:>6}",
        f.per_second,
        ms(f.p50_1),
        ms(f.p99_1),
        ms(f.p50_8),
        ms(f.p99_8),
        micros(f.cpu_per_call),
        micros(f.client_cpu_per_call),
        busy
    )
}

/// The header of [`row`]'s table (CPU/call is the service's, client/call the
/// load generator's; busy is how much of the machine's cores were in use).
pub const HEADER: &str = "call                             calls/s   p50 @1   p99 @1   p50 @8   p99 @8  CPU/call client/call   busy";

/// What the build is, for a table's title: figures of a debug build are a smoke test only.
pub fn build_kind() -> &'static str {
    if cfg!(debug_assertions) { "debug build: smoke test only" } else { "release" }
}

//! `make bench`: profiles' hot calls against references measured in the same
//! run on the same Postgres.
//!
//! A real crm-profiles process (release build, telemetry off) on a fresh
//! database holding 1 000 customers of one tenant; a tonic client keeps 8
//! calls in flight (and 1, for latency) and checks every response's status.
//! References, also 8 clients:
//! - `pgbench -S -M prepared`: Postgres' own select-only benchmark on the same cluster;
//! - pgbench running GetCustomer's statements as the service's login role
//!   (RLS on): `BEGIN` + the local `set_config` in one query, the SELECT by
//!   id, `COMMIT` (simple protocol: pgbench cannot send a compound statement
//!   prepared, so its SELECT is parsed each time, which the service's is not).
//!
//! Also reported: p50/p99 at 1 and 8 in flight, the service's CPU per call
//! (utime + stime from /proc) and its peak RSS. `CRM_BENCH_BASELINE_BIN` names
//! a second crm-profiles binary (e.g. built from an earlier commit) measured
//! the same way in the same run, for before/after figures.
//! `cargo test --all-targets` runs it without `--bench` as a short smoke test.

use std::{
    path::PathBuf,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use crm_proto::crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    database::{TestDb, fresh_database},
    process::{ServiceProcess, binary, spawn_service},
};
use tokio::sync::Mutex;
use tonic::transport::Channel;

const CUSTOMERS: usize = 1000;

/// Throughput and latency of one workload.
struct Figures {
    per_second: f64,
    p50_1: Duration,
    p99_1: Duration,
    p50_8: Duration,
    p99_8: Duration,
    cpu_per_call: Option<Duration>,
}

/// The service's CPU time so far (user + system), from /proc.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
}

/// Peak resident set size, from /proc.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
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

async fn measure<F, Fut>(pid: u32, call: F, duration: Duration) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    run(call.clone(), 8, duration / 4).await; // warm connections, caches and plans
    let (_, single) = run(call.clone(), 1, duration / 2).await;
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let (calls, eight) = run(call, 8, duration).await;
    let elapsed = started.elapsed();
    let cpu_per_call = cpu_before.zip(cpu_time(pid)).map(|(before, after)| (after - before) / calls as u32);
    Figures {
        per_second: calls as f64 / elapsed.as_secs_f64(),
        p50_1: percentile(&single, 50),
        p99_1: percentile(&single, 99),
        p50_8: percentile(&eight, 50),
        p99_8: percentile(&eight, 99),
        cpu_per_call,
    }
}

/// `pgbench` with `args` against `url` for `seconds`; its tps (excluding connection set-up).
fn pgbench(url: &str, args: &[&str], seconds: u64) -> f64 {
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
fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().map(|d| d.path().join("bin")).collect();
    dirs.sort();
    dirs.into_iter().rev().map(|d| d.join(name)).find(|p| p.exists()).unwrap_or_else(|| PathBuf::from(name))
}

/// GetCustomer's statements for pgbench, on the customers the bench created.
fn same_statements_script(tenant: uuid::Uuid) -> tempfile_path::ScriptFile {
    let script = format!(
        "\\set n random(1, {CUSTOMERS})\n\
         BEGIN \\; SELECT set_config('crm.tenant_id', '{tenant}', true);\n\
         SELECT * FROM customers WHERE tenant_id = '{tenant}' AND id = (SELECT id FROM bench_ids WHERE n = :n);\n\
         COMMIT;\n"
    );
    tempfile_path::ScriptFile::write(&script)
}

/// A script file removed when dropped.
mod tempfile_path {
    pub struct ScriptFile(pub std::path::PathBuf);

    impl ScriptFile {
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
}

/// The ids of the bench's customers, numbered 1..=n, readable by the login role under RLS.
async fn number_ids(db: &TestDb, tenant: uuid::Uuid) {
    use sqlx::Connection;
    let mut owner = sqlx::PgConnection::connect(&db.owner_url).await.expect("owner connects");
    for statement in [
        "CREATE TABLE bench_ids (n int PRIMARY KEY, id uuid NOT NULL)".to_owned(),
        format!("INSERT INTO bench_ids SELECT row_number() OVER (ORDER BY id), id FROM customers WHERE tenant_id = '{tenant}'"),
        "GRANT SELECT ON bench_ids TO PUBLIC".to_owned(),
    ] {
        sqlx::query(&statement).execute(&mut owner).await.expect("bench ids");
    }
}

async fn spawn(binary: PathBuf) -> (ServiceProcess, TestDb) {
    let db = fresh_database("profiles").await.expect("a database");
    (spawn_service(binary, &db, &[]).await, db)
}

async fn create(client: &CustomerServiceClient<Channel>, bearer: &str, i: usize) -> String {
    let customer = pb::Customer {
        display_name: format!("Bench customer {i}"),
        emails: vec![crm_proto::crm::common::v1::EmailAddress {
            address: format!("c{i}-{}@example.com", uuid::Uuid::now_v7().simple()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let request = with_token(pb::CreateCustomerRequest { customer: Some(customer), request_id: String::new() }, bearer);
    client.clone().create_customer(request).await.expect("CreateCustomer").into_inner().customer.expect("a customer").name
}

/// Every workload against one service process.
async fn workloads(service: &ServiceProcess, names: Arc<Vec<String>>, bearer: &str, duration: Duration) -> Vec<(&'static str, Figures)> {
    let pid = service.child.id().expect("running");
    let client = CustomerServiceClient::new(service.channel.clone());
    let get = {
        let (client, names, bearer) = (client.clone(), names.clone(), bearer.to_owned());
        move |i: usize| {
            let request = with_token(pb::GetCustomerRequest { name: names[i % names.len()].clone() }, &bearer);
            let mut client = client.clone();
            async move {
                client.get_customer(request).await.expect("GetCustomer");
            }
        }
    };
    let list = {
        let (client, bearer) = (client.clone(), bearer.to_owned());
        move |_: usize| {
            let request = with_token(pb::ListCustomersRequest { page_size: 50, ..Default::default() }, &bearer);
            let mut client = client.clone();
            async move {
                let page = client.list_customers(request).await.expect("ListCustomers").into_inner();
                assert_eq!(page.customers.len(), 50);
            }
        }
    };
    let create_one = {
        let (client, bearer) = (client.clone(), bearer.to_owned());
        move |i: usize| {
            let (client, bearer) = (client.clone(), bearer.clone());
            async move {
                create(&client, &bearer, CUSTOMERS + i).await;
            }
        }
    };
    vec![
        ("GetCustomer", measure(pid, get, duration).await),
        ("ListCustomers, page 50", measure(pid, list, duration).await),
        ("CreateCustomer", measure(pid, create_one, duration).await),
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let duration = if full { Duration::from_secs(8) } else { Duration::from_millis(400) };
    let tenant = uuid::Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);

    let (service, db) = spawn(binary("crm-profiles")).await;
    let client = CustomerServiceClient::new(service.channel.clone());
    let mut names = Vec::with_capacity(CUSTOMERS);
    for i in 0..CUSTOMERS {
        names.push(create(&client, &bearer, i).await);
    }
    let names = Arc::new(names);
    let figures = workloads(&service, names.clone(), &bearer, duration).await;
    let rss = peak_rss_mb(service.child.id().expect("running"));

    let baseline = match std::env::var_os("CRM_BENCH_BASELINE_BIN") {
        Some(path) => {
            let (old, old_db) = spawn(PathBuf::from(path)).await;
            let old_client = CustomerServiceClient::new(old.channel.clone());
            let mut old_names = Vec::with_capacity(CUSTOMERS);
            for i in 0..CUSTOMERS {
                old_names.push(create(&old_client, &bearer, i).await);
            }
            let figures = workloads(&old, Arc::new(old_names), &bearer, duration).await;
            drop(old_db);
            Some(figures)
        }
        None => None,
    };

    // References on the same cluster, after the service runs so they do not share the cores with it.
    let seconds = if full { 8 } else { 1 };
    number_ids(&db, tenant).await;
    let script = same_statements_script(tenant);
    let same_statements = pgbench(&db.app_url, &["-M", "simple", "-f", &script.0.to_string_lossy()], seconds);
    let init = Command::new(pg_bin("pgbench")).args(["-i", "-s", "1", "-q", &db.owner_url]).output().expect("pgbench -i runs");
    assert!(init.status.success(), "pgbench -i: {}", String::from_utf8_lossy(&init.stderr));
    let select_only = pgbench(&db.owner_url, &["-S", "-M", "prepared"], seconds);

    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    let build = if cfg!(debug_assertions) { "debug build: smoke test only" } else { "release" };
    println!("profiles hot paths, 8 in flight for {duration:?} each ({CUSTOMERS} customers, {build}, telemetry off)");
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "call", "calls/s", "p50 @1", "p99 @1", "p50 @8", "p99 @8", "CPU/call", "vs baseline"
    );
    for (i, (label, f)) in figures.iter().enumerate() {
        let versus = baseline.as_ref().map_or(String::from("-"), |b| format!("{:.2}x", f.per_second / b[i].1.per_second));
        let cpu = f.cpu_per_call.map_or(String::from("-"), |c| format!("{} µs", c.as_micros()));
        println!(
            "{label:<26} {:>9.0} {:>9} {:>9} {:>9} {:>9} {:>9} {versus:>12}",
            f.per_second,
            ms(f.p50_1),
            ms(f.p99_1),
            ms(f.p50_8),
            ms(f.p99_8),
            cpu
        );
    }
    if let Some(baseline) = &baseline {
        for (label, f) in baseline {
            println!("{:<26} {:>9.0}   (baseline binary)", label, f.per_second);
        }
    }
    let get = figures[0].1.per_second;
    println!(
        "reference: pgbench, GetCustomer's statements as the login role: {same_statements:.0} tps → GetCustomer {:.2}x",
        get / same_statements
    );
    println!("reference: pgbench -S -M prepared: {select_only:.0} tps → GetCustomer {:.2}x", get / select_only);
    println!("service peak RSS: {}", rss.map_or(String::from("-"), |mb| format!("{mb:.1} MB")));
    Ok(())
}

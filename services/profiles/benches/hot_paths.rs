//! `make bench`: profiles' hot calls against references measured in the same
//! run on the same Postgres.
//!
//! A real crm-profiles process (release build, telemetry off) on a fresh
//! database holding 1 000 customers of one tenant; a tonic client keeps 8
//! calls in flight (and 1, for latency) and checks every response's status.
//! References, also 8 clients, on the same cluster after the service ran:
//! - for each call, pgbench running that call's own statements (the same
//!   transactions and round trips) as the service's login role with RLS on
//!   — `hot_paths/references.rs` has the scripts and where they differ;
//! - `pgbench -S -M prepared`: Postgres' own select-only benchmark.
//!
//! `CRM_BENCH_ONLY=get,list,create,update` runs some of the calls and
//! `CRM_BENCH_SECONDS` sets each run's length (default 8), e.g. to attach
//! `perf record -p <pid>` to one call.
//! Also reported: p50/p99 at 1 and 8 in flight, the service's CPU per call
//! (utime + stime from /proc) and its peak RSS. `CRM_BENCH_BASELINE_BIN` names
//! a second crm-profiles binary (e.g. built from an earlier commit) measured
//! the same way in the same run, for before/after figures;
//! `CRM_BENCH_SERVICE_LOG` sets the services' log filter (default `warn`).
//! `cargo test --all-targets` runs it without `--bench` as a short smoke test.

use std::{path::PathBuf, process::Command, sync::Arc, time::Duration};

use crm_proto::crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    bench::{Figures, HEADER, build_kind, measure, peak_rss_mb, pg_bin, pgbench, row, unary, with_session_tenant},
    database::{TestDb, fresh_database},
    process::{ServiceProcess, binary, spawn_service},
};
use tonic::transport::Channel;

#[path = "hot_paths/references.rs"]
mod references;

const CUSTOMERS: usize = 1000;
const GET: &str = "GetCustomer";
const LIST: &str = "ListCustomers, page 50";
const CREATE: &str = "CreateCustomer";
const UPDATE: &str = "UpdateCustomer";

/// The ids of the bench's customers, numbered 1..=n, readable by the login role under RLS.
async fn number_ids(db: &TestDb, tenant: uuid::Uuid) {
    use sqlx::Connection;
    let mut owner = sqlx::PgConnection::connect(&db.owner_url).await.expect("owner connects");
    // RLS is forced on customers, for their owner too: the ids are read as the tenant.
    for statement in [
        "CREATE TABLE bench_ids (n int PRIMARY KEY, id uuid NOT NULL)".to_owned(),
        format!("SELECT set_config('crm.tenant_id', '{tenant}', false)"),
        format!("INSERT INTO bench_ids SELECT row_number() OVER (ORDER BY id), id FROM customers WHERE tenant_id = '{tenant}'"),
        "GRANT SELECT ON bench_ids TO PUBLIC".to_owned(),
    ] {
        sqlx::query(&statement).execute(&mut owner).await.expect("bench ids");
    }
    let numbered: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_ids").fetch_one(&mut owner).await.expect("bench ids counted");
    // The references read and change these customers: an empty table would time statements that find nothing.
    assert!(numbered >= CUSTOMERS as i64, "only {numbered} customers numbered for the references");
}

/// Starts `binary` on a fresh database; its log filter is `CRM_BENCH_SERVICE_LOG`
/// (default `warn`; `info` is what a deployment runs with, spans and all).
async fn spawn(binary: PathBuf) -> (ServiceProcess, TestDb) {
    let db = fresh_database("profiles").await.expect("a database");
    let log = std::env::var("CRM_BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into());
    (spawn_service(binary, &db, &[("CRM_LOG", log)]).await, db)
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

/// A workload's figures, with its same-statements reference's tps when measured.
type Measured = (&'static str, Figures, Option<f64>);

/// Every workload against one service process, each followed at once by its
/// same-statements reference (when `references` is given), so that the pair
/// shares the machine's moment: between runs minutes apart these machines
/// drift by ±20 % and more.
async fn workloads(
    service: &ServiceProcess,
    names: Arc<Vec<String>>,
    bearer: &str,
    duration: Duration,
    references: Option<&References>,
) -> Vec<Measured> {
    let pid = service.child.id().expect("running");
    let client = CustomerServiceClient::new(service.channel.clone());
    let (names_get, bearer_get) = (names.clone(), bearer.to_owned());
    let get = unary(
        client.clone(),
        move |i| with_token(pb::GetCustomerRequest { name: names_get[i % names_get.len()].clone() }, &bearer_get),
        |mut client, request| async move {
            client.get_customer(request).await.expect("GetCustomer");
        },
    );
    let bearer_list = bearer.to_owned();
    let list = unary(
        client.clone(),
        move |_| with_token(pb::ListCustomersRequest { page_size: 50, ..Default::default() }, &bearer_list),
        |mut client, request| async move {
            assert_eq!(client.list_customers(request).await.expect("ListCustomers").into_inner().customers.len(), 50);
        },
    );
    let (names_update, bearer_update) = (names.clone(), bearer.to_owned());
    let update = unary(
        client.clone(),
        move |i| {
            // No etag: last writer wins, so that concurrent renames of one customer never conflict.
            let name = names_update[i % names_update.len()].clone();
            let customer = pb::Customer { name, display_name: format!("Renamed {i}"), ..Default::default() };
            let mask = prost_types::FieldMask { paths: vec!["display_name".into()] };
            with_token(pb::UpdateCustomerRequest { customer: Some(customer), update_mask: Some(mask) }, &bearer_update)
        },
        |mut client, request| async move {
            client.update_customer(request).await.expect("UpdateCustomer");
        },
    );
    let create_one = {
        let (client, bearer) = (client.clone(), bearer.to_owned());
        move |i: usize| {
            let (client, bearer) = (client.clone(), bearer.clone());
            async move {
                create(&client, &bearer, CUSTOMERS + i).await;
            }
        }
    };
    let reference = |label: &'static str| references.map(|r| r.same_statements(label));
    let mut figures = Vec::new();
    if selected("get") {
        figures.push((GET, measure(pid, get, duration).await, reference(GET)));
    }
    if selected("list") {
        figures.push((LIST, measure(pid, list, duration).await, reference(LIST)));
    }
    if selected("create") {
        figures.push((CREATE, measure(pid, create_one, duration).await, reference(CREATE)));
    }
    if selected("update") {
        figures.push((UPDATE, measure(pid, update, duration).await, reference(UPDATE)));
    }
    figures
}

/// pgbench on the bench's database, as the service's login role.
struct References {
    app_url: String,
    tenant: uuid::Uuid,
    seconds: u64,
}

impl References {
    /// The tps of pgbench running `label`'s own statements.
    fn same_statements(&self, label: &str) -> f64 {
        let script = match label {
            GET => references::get(self.tenant),
            LIST => references::list(self.tenant),
            CREATE => references::create(self.tenant),
            _ => references::update(self.tenant),
        };
        let path = script.0.to_string_lossy();
        match references::PREPARED.contains(&label) {
            true => pgbench(&with_session_tenant(&self.app_url, self.tenant), &["-M", "prepared", "-f", &path], self.seconds),
            false => pgbench(&self.app_url, &["-M", "simple", "-f", &path], self.seconds),
        }
    }
}

/// Whether workload `name` runs: `CRM_BENCH_ONLY` (e.g. `list,update`) picks
/// some, for profiling one call with `perf record -p <pid>`; default all.
fn selected(name: &str) -> bool {
    std::env::var("CRM_BENCH_ONLY").map_or(true, |only| only.split(',').any(|w| w.trim() == name))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds = std::env::var("CRM_BENCH_SECONDS").ok().and_then(|s| s.parse().ok());
    let duration = match (full, seconds) {
        (true, Some(seconds)) => Duration::from_secs(seconds),
        (true, None) => Duration::from_secs(8),
        (false, _) => Duration::from_millis(400),
    };
    let tenant = uuid::Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);

    let (service, db) = spawn(binary("crm-profiles")).await;
    let client = CustomerServiceClient::new(service.channel.clone());
    let mut names = Vec::with_capacity(CUSTOMERS);
    for i in 0..CUSTOMERS {
        names.push(create(&client, &bearer, i).await);
    }
    let names = Arc::new(names);
    number_ids(&db, tenant).await;
    let references = References { app_url: db.app_url.clone(), tenant, seconds: if full { 8 } else { 1 } };
    let figures = workloads(&service, names.clone(), &bearer, duration, Some(&references)).await;
    let rss = peak_rss_mb(service.child.id().expect("running"));

    let baseline = match std::env::var_os("CRM_BENCH_BASELINE_BIN") {
        Some(path) => {
            let (old, old_db) = spawn(PathBuf::from(path)).await;
            let old_client = CustomerServiceClient::new(old.channel.clone());
            let mut old_names = Vec::with_capacity(CUSTOMERS);
            for i in 0..CUSTOMERS {
                old_names.push(create(&old_client, &bearer, i).await);
            }
            let figures = workloads(&old, Arc::new(old_names), &bearer, duration, None).await;
            drop(old_db);
            Some(figures)
        }
        None => None,
    };

    // Postgres' own select-only benchmark on the same cluster, for scale.
    let init = Command::new(pg_bin("pgbench")).args(["-i", "-s", "1", "-q", &db.owner_url]).output().expect("pgbench -i runs");
    assert!(init.status.success(), "pgbench -i: {}", String::from_utf8_lossy(&init.stderr));
    let select_only = pgbench(&db.owner_url, &["-S", "-M", "prepared"], references.seconds);

    println!("profiles hot paths, 8 in flight for {duration:?} each ({CUSTOMERS} customers, {}, telemetry off)", build_kind());
    println!("{HEADER}  same-stmt tps  ÷ same-stmt  vs baseline");
    for (i, (label, f, reference)) in figures.iter().enumerate() {
        let versus = baseline.as_ref().map_or(String::from("-"), |b| format!("{:.2}x", f.per_second / b[i].1.per_second));
        let reference = reference.expect("measured with its reference");
        println!("{}  {reference:>13.0}  {:>10.2}x  {versus:>11}", row(label, f), f.per_second / reference);
    }
    if let Some(baseline) = &baseline {
        for (label, f, _) in baseline {
            println!("{}  (baseline binary)", row(label, f));
        }
    }
    println!(
        "same-stmt: pgbench (8 clients) running the call's own statements as the login role, RLS on (benches/hot_paths/references.rs),"
    );
    println!(
        "           right after the call's own run; CPU/call is the service's, client/call the load generator's, busy the machine's cores"
    );
    if let Some((_, get, _)) = figures.iter().find(|(label, _, _)| *label == GET) {
        println!("reference: pgbench -S -M prepared: {select_only:.0} tps → GetCustomer {:.2}x", get.per_second / select_only);
    }
    println!("service peak RSS: {}", rss.map_or(String::from("-"), |mb| format!("{mb:.1} MB")));
    Ok(())
}

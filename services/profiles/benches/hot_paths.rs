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
//! the same way in the same run, for before/after figures;
//! `CRM_BENCH_SERVICE_LOG` sets the services' log filter (default `warn`).
//! `cargo test --all-targets` runs it without `--bench` as a short smoke test.

use std::{path::PathBuf, process::Command, sync::Arc, time::Duration};

use crm_proto::crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    bench::{Figures, HEADER, ScriptFile, build_kind, measure, peak_rss_mb, pg_bin, pgbench, row, unary},
    database::{TestDb, fresh_database},
    process::{ServiceProcess, binary, spawn_service},
};
use tonic::transport::Channel;

const CUSTOMERS: usize = 1000;

/// GetCustomer's statements for pgbench, on the customers the bench created.
fn same_statements_script(tenant: uuid::Uuid) -> ScriptFile {
    let script = format!(
        "\\set n random(1, {CUSTOMERS})\n\
         BEGIN \\; SELECT set_config('crm.tenant_id', '{tenant}', true);\n\
         SELECT * FROM customers WHERE tenant_id = '{tenant}' AND id = (SELECT id FROM bench_ids WHERE n = :n);\n\
         COMMIT;\n"
    );
    ScriptFile::write(&script)
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

/// Every workload against one service process.
async fn workloads(service: &ServiceProcess, names: Arc<Vec<String>>, bearer: &str, duration: Duration) -> Vec<(&'static str, Figures)> {
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
    vec![
        ("GetCustomer", measure(pid, get, duration).await),
        ("ListCustomers, page 50", measure(pid, list, duration).await),
        ("CreateCustomer", measure(pid, create_one, duration).await),
        ("UpdateCustomer", measure(pid, update, duration).await),
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

    println!("profiles hot paths, 8 in flight for {duration:?} each ({CUSTOMERS} customers, {}, telemetry off)", build_kind());
    println!("{HEADER}  vs baseline");
    for (i, (label, f)) in figures.iter().enumerate() {
        let versus = baseline.as_ref().map_or(String::from("-"), |b| format!("{:.2}x", f.per_second / b[i].1.per_second));
        println!("{}  {versus:>11}", row(label, f));
    }
    if let Some(baseline) = &baseline {
        for (label, f) in baseline {
            println!("{}  (baseline binary)", row(label, f));
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

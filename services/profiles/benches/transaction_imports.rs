//! `make bench`: importing transactions from a CSV file at scale, beside a
//! raw `COPY` of the same rows into the same tables measured in the same run.
//!
//! A real crm-profiles process (release build, telemetry off) on a fresh
//! database holding 100 000 members (COPYed in, each with an external id).
//! The file: 1 000 000 orders of member number, order number, local time,
//! amount, store and one item (product, quantity, unit price), about 80 MB.
//! Measured:
//! - the upload (client-streamed in 256 KiB messages);
//! - the import run (CREATE_ONLY: every row read through its mapping and
//!   checked as BatchCreateTransactions checks one, its member found by
//!   external id, its order id checked against the file and the stored
//!   ones, written a batch of 2 000 per transaction with its line item and
//!   the members' spending, the members graded again and one event per
//!   batch), and the service's peak RSS;
//! - the reference: the same transactions and items, already typed as the
//!   tables store them, loaded with `COPY … FROM STDIN` by the owner into a
//!   second database with the same members and indexes (no spending, no
//!   grades: the floor of what any import can cost).
//!
//! `CRM_BENCH_CUSTOMERS=N` scales the file to N orders (members: N / 10);
//! `cargo test --all-targets` runs it with 2 000 orders as a smoke test.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone};
use crm_proto::crm::profiles::v1::{
    self as pb,
    import_job::{Kind, State},
    import_service_client::ImportServiceClient,
    import_settings as ps,
};
use crm_testkit::{
    auth::{token, with_token},
    bench::{build_kind, cpu_time, customer_scale, peak_rss_mb},
    database::{TestDb, fresh_database},
    process::{binary, spawn_service},
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The members' ids, by member number.
fn member_ids(members: i64) -> Vec<Uuid> {
    (0..members).map(|_| Uuid::now_v7()).collect()
}

/// Order `i`: (member number, local time, store, product, quantity, unit price in fen).
fn order(i: i64, members: i64) -> (i64, chrono::NaiveDateTime, String, String, i64, i64) {
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap().and_hms_opt(8, 0, 0).unwrap();
    let quantity = 1 + i % 3;
    (
        i % members,
        start + chrono::Duration::seconds(i * 25),
        format!("门店{}", i % 50),
        format!("商品{}", i % 800),
        quantity,
        990 + (i % 97) * 100,
    )
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

fn csv(rows: i64, members: i64) -> Vec<u8> {
    let mut out = String::with_capacity(rows as usize * 80);
    out.push_str("会员编号,订单号,交易时间,金额,门店,商品,数量,单价\n");
    for i in 1..=rows {
        let (member, time, store, product, quantity, price) = order(i, members);
        out.push_str(&format!(
            "M-{member},O-{i},{},{},{store},{product},{quantity},{}\n",
            time.format("%Y-%m-%d %H:%M:%S"),
            yuan(price * quantity),
            yuan(price)
        ));
    }
    out.into_bytes()
}

/// Copies `data` into `db` with `statement`, as the owner.
async fn copy_in(owner: &mut PgConnection, statement: &str, data: &[u8]) -> anyhow::Result<u64> {
    let mut copy = owner.copy_in_raw(statement).await?;
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    Ok(copy.finish().await?)
}

/// The members, each with an external id, COPYed into `db` by its owner.
async fn add_members(db: &TestDb, tenant: Uuid, ids: &[Uuid]) -> anyhow::Result<PgConnection> {
    let mut owner = PgConnection::connect(&db.owner_url).await?;
    for table in ["customers", "transactions", "transaction_items"] {
        sqlx::query(&format!("ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")).execute(&mut owner).await?;
    }
    let now = chrono::Utc::now().to_rfc3339();
    let mut data = String::new();
    for (n, id) in ids.iter().enumerate() {
        data.push_str(&format!("{tenant}\t{id}\tMember {n}\t{{\"external_id\": \"M-{n}\"}}\t{now}\t{now}\n"));
    }
    copy_in(&mut owner, "COPY customers (tenant_id, id, display_name, attributes, create_time, update_time) FROM STDIN", data.as_bytes())
        .await?;
    sqlx::query("ANALYZE customers").execute(&mut owner).await?;
    Ok(owner)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (_, rows) = customer_scale();
    let members = (rows / 10).max(1);
    let tenant = Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);
    let ids = member_ids(members);
    let env = [
        ("CRM_LOG", "warn".into()),
        ("CRM_IMPORT_POLL_MS", "100".into()),
        ("CRM_IMPORT_MAX_BYTES", (1u64 << 30).to_string()),
        ("CRM_DUPLICATE_SCAN_MS", "3600000".into()),
    ];
    let db = fresh_database("profiles").await.expect("a database");
    let service = spawn_service(binary("crm-profiles"), &db, &env).await;
    add_members(&db, tenant, &ids).await?;
    let pid = service.child.id().expect("running");
    let file = csv(rows, members);
    let mb = file.len() as f64 / 1e6;
    let rss_idle = peak_rss_mb(pid).unwrap_or(0.0);
    let cpu_before = cpu_time(pid).unwrap_or_default();
    let (upload, run) = import_orders(&service.channel, &bearer, &file, rows).await?;
    let run_cpu = cpu_time(pid).unwrap_or_default().saturating_sub(cpu_before);
    drop(file);
    let rss_peak = peak_rss_mb(pid).unwrap_or(0.0);
    service.kill_hard().await;

    // The reference: the same transactions and items COPYed into the same tables beside the same members.
    let reference_db = fresh_database("profiles").await.expect("a database");
    let reference = spawn_service(binary("crm-profiles"), &reference_db, &[("CRM_LOG", "warn".into())]).await;
    reference.kill_hard().await; // it only migrated the schema
    let mut owner = add_members(&reference_db, tenant, &ids).await?;
    let shanghai = chrono_tz::Asia::Shanghai;
    let now = chrono::Utc::now().to_rfc3339();
    let (mut transactions, mut items) = (String::with_capacity(rows as usize * 200), String::with_capacity(rows as usize * 120));
    for i in 1..=rows {
        let (member, time, store, product, quantity, price) = order(i, members);
        let (id, occur) = (Uuid::now_v7(), shanghai.from_local_datetime(&time).unwrap().to_rfc3339());
        transactions.push_str(&format!(
            "{tenant}\t{id}\t{}\tO-{i}\tPURCHASE\tCNY\t{}\t{occur}\t\t{store}\t{now}\n",
            ids[member as usize],
            price * quantity
        ));
        items.push_str(&format!("{tenant}\t{id}\t0\t{product}\t\t{quantity}\t{price}\n"));
    }
    let started = Instant::now();
    let copied = copy_in(
        &mut owner,
        "COPY transactions (tenant_id, id, customer_id, external_id, kind, currency_code, amount_minor, occur_time, channel, store, \
         create_time) FROM STDIN",
        transactions.as_bytes(),
    )
    .await?;
    copy_in(
        &mut owner,
        "COPY transaction_items (tenant_id, transaction_id, position, product, sku, quantity, unit_price_minor) FROM STDIN",
        items.as_bytes(),
    )
    .await?;
    let copy_time = started.elapsed();
    assert_eq!(copied, rows as u64);

    let per_second = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("profiles import, {rows} orders of {members} members from CSV ({mb:.1} MB, UTF-8), {}", build_kind());
    println!("upload (streamed, checked, stored): {:.2}s = {:.1} MB/s", upload.as_secs_f64(), mb / upload.as_secs_f64());
    println!(
        "import run (CREATE_ONLY, batches of 2 000, members by external id, spending, grades): {:.2}s = {:.0} rows/s",
        run.as_secs_f64(),
        per_second(run)
    );
    println!(
        "service CPU during the run: {:.2}s ({:.1} µs a row; the rest of the wall time is Postgres)",
        run_cpu.as_secs_f64(),
        run_cpu.as_secs_f64() * 1e6 / rows as f64
    );
    println!("end to end (upload + run): {:.2}s = {:.0} rows/s", (upload + run).as_secs_f64(), per_second(upload + run));
    println!("reference COPY of the same transactions and items: {:.2}s = {:.0} rows/s", copy_time.as_secs_f64(), per_second(copy_time));
    println!(
        "ratio: run {:.2}x COPY, end to end {:.2}x COPY",
        copy_time.as_secs_f64() / run.as_secs_f64(),
        copy_time.as_secs_f64() / (upload + run).as_secs_f64()
    );
    println!("service RSS: idle {rss_idle:.0} MB, peak {rss_peak:.0} MB");
    Ok(())
}

/// Uploads the orders (256 KiB messages) as a transactions job and runs it
/// to its end: how long the upload and the run took.
async fn import_orders(channel: &tonic::transport::Channel, bearer: &str, bytes: &[u8], rows: i64) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let messages: Vec<pb::UploadImportFileRequest> = bytes
        .chunks(256 * 1024)
        .enumerate()
        .map(|(i, data)| pb::UploadImportFileRequest {
            kind: if i == 0 { Kind::Transactions as i32 } else { 0 },
            file_name: if i == 0 { "orders.csv".into() } else { String::new() },
            file: Some(crm_proto::google::api::HttpBody { content_type: String::new(), data: data.to_vec(), extensions: vec![] }),
            ..Default::default()
        })
        .collect();
    let mut client = ImportServiceClient::new(channel.clone());
    let job = client.upload_import_file(with_token(tokio_stream::iter(messages), bearer)).await?.into_inner().import_job.unwrap();
    let upload = started.elapsed();
    assert_eq!(job.total_rows, rows, "every row counted");
    let settings = pb::ImportSettings {
        mode: ps::Mode::CreateOnly as i32,
        time_zone: "Asia/Shanghai".into(),
        currency_code: "CNY".into(),
        ..Default::default()
    };
    let started = Instant::now();
    client.start_import_job(with_token(pb::StartImportJobRequest { name: job.name.clone(), settings: Some(settings) }, bearer)).await?;
    let done = loop {
        let job = client.get_import_job(with_token(pb::GetImportJobRequest { name: job.name.clone() }, bearer)).await?.into_inner();
        let job = job.import_job.unwrap();
        if job.state != State::Running as i32 {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run = started.elapsed();
    let progress = done.progress.unwrap();
    assert_eq!((done.state, progress.rows_created), (State::Succeeded as i32, rows), "every order recorded: {progress:?}");
    Ok((upload, run))
}

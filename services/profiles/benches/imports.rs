//! `make bench`: importing customers from a CSV file at scale, beside a raw
//! `COPY` of the same rows into the same table measured in the same run.
//!
//! A real crm-profiles process (release build, telemetry off) on a fresh
//! database. The file: 1 000 000 rows of name, national mobile number,
//! email, company, city and tags (about 90 MB, UTF-8). Measured:
//! - the upload (client-streamed in 256 KiB messages: the file checked,
//!   hashed, decoded, split and stored as it arrives);
//! - the import run (CREATE_ONLY: every row read through its mapping,
//!   checked as CreateCustomer checks one, within-file and stored duplicate
//!   checks, written a batch of 2 000 per transaction (two batches written at once, committed in file order) with the email claims,
//!   match keys and segment upkeep), and the service's peak RSS;
//! - the reference: the same rows, already typed as the table stores them,
//!   loaded with `COPY customers (…) FROM STDIN` by the table's owner into a
//!   second fresh database with the same indexes (RLS not forced: COPY FROM
//!   refuses forced row security) — the floor of what any import can cost.
//!
//! - the same rows from an XLSX (numbers typed as numbers), on a service of
//!   its own: upload, run and peak RSS (an XLSX is held whole in memory).
//!
//! `CRM_BENCH_CUSTOMERS=N` scales the file down; `cargo test --all-targets`
//! runs it with 2 000 rows as a smoke test.

use std::time::{Duration, Instant};

use crm_proto::crm::profiles::v1::{self as pb, import_job::State, import_service_client::ImportServiceClient, import_settings as ps};
use crm_testkit::{
    auth::{token, with_token},
    bench::{build_kind, cpu_time, customer_scale, peak_rss_mb},
    database::fresh_database,
    process::{binary, spawn_service},
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// Row `i` of the file: name, phone, email, company, city, tags.
fn cells(i: i64) -> [String; 6] {
    [
        format!("客户{i}"),
        format!("138{i:08}"),
        format!("user{i}@example.com"),
        format!("公司{}", i % 5000),
        ["上海", "北京", "广州", "深圳"][(i % 4) as usize].to_owned(),
        if i % 3 == 0 { "vip、老客户".to_owned() } else { "新客户".to_owned() },
    ]
}

fn csv(rows: i64) -> Vec<u8> {
    let mut out = String::with_capacity(rows as usize * 90);
    out.push_str("客户名,手机,邮箱,公司,城市,标签\n");
    for i in 1..=rows {
        out.push_str(&cells(i).join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// The same rows in COPY text format, typed as `customers` stores them.
fn copy_rows(tenant: Uuid, rows: i64) -> Vec<u8> {
    let mut out = String::with_capacity(rows as usize * 400);
    let now = chrono::Utc::now().to_rfc3339();
    for i in 1..=rows {
        let [name, phone, email, company, city, tags] = cells(i);
        let tags: Vec<&str> = tags.split('、').collect();
        out.push_str(&format!(
            "{tenant}\t{}\t{name}\t[{{\"address\": \"{email}\", \"label\": \"\", \"primary\": true}}]\t\
             [{{\"number\": \"+86{phone}\", \"label\": \"\", \"primary\": true}}]\t{company}\t\
             [{{\"lines\": [], \"city\": \"{city}\", \"region\": \"\", \"postal_code\": \"\", \"country\": \"\", \"label\": \"\", \"primary\": true}}]\t\
             {{{}}}\t{now}\t{now}\n",
            Uuid::now_v7(),
            tags.join(",")
        ));
    }
    out.into_bytes()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (_, rows) = customer_scale();
    let tenant = Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);
    let db = fresh_database("profiles").await.expect("a database");
    // The duplicate scan (which keys and pairs the imported customers after the import) is measured by
    // the duplicates bench; here it would compete with the import for the same two cores.
    let env = [
        ("CRM_LOG", "warn".into()),
        ("CRM_IMPORT_POLL_MS", "100".into()),
        ("CRM_IMPORT_MAX_BYTES", (1u64 << 30).to_string()),
        ("CRM_IMPORT_MAX_XLSX_BYTES", (1u64 << 30).to_string()),
        ("CRM_DUPLICATE_SCAN_MS", "3600000".into()),
    ];
    let service = spawn_service(binary("crm-profiles"), &db, &env).await;
    let pid = service.child.id().expect("running");
    let file = csv(rows);
    let mb = file.len() as f64 / 1e6;
    let rss_idle = peak_rss_mb(pid).unwrap_or(0.0);

    let cpu_before = cpu_time(pid).unwrap_or_default();
    let (upload, run, _) = import_file(&service.channel, &bearer, &file, "bench.csv", rows).await?;
    let (csv_upload, csv_run) = (upload, run);
    let run_cpu = cpu_time(pid).unwrap_or_default().saturating_sub(cpu_before);
    drop(file);
    let rss_peak = peak_rss_mb(pid).unwrap_or(0.0);

    // The reference: the same rows COPYed into the same (empty, indexed) table.
    let reference_db = fresh_database("profiles").await.expect("a database");
    let reference = spawn_service(binary("crm-profiles"), &reference_db, &[("CRM_LOG", "warn".into())]).await;
    reference.kill_hard().await; // it only migrated the schema
    let mut owner = PgConnection::connect(&reference_db.owner_url).await?;
    sqlx::query("ALTER TABLE customers NO FORCE ROW LEVEL SECURITY").execute(&mut owner).await?;
    let data = copy_rows(tenant, rows);
    let started = Instant::now();
    let mut copy = owner
        .copy_in_raw(
            "COPY customers (tenant_id, id, display_name, emails, phones, company, addresses, tags, create_time, update_time) FROM STDIN",
        )
        .await?;
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    let copied = copy.finish().await?;
    let copy_time = started.elapsed();
    assert_eq!(copied, rows as u64);

    let per_second = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("profiles import, {rows} customer rows from CSV ({mb:.1} MB, UTF-8), {}", build_kind());
    println!("upload (streamed, checked, stored): {:.2}s = {:.1} MB/s", upload.as_secs_f64(), mb / upload.as_secs_f64());
    println!("import run (CREATE_ONLY, batches of 2 000, two at once): {:.2}s = {:.0} rows/s", run.as_secs_f64(), per_second(run));
    println!(
        "service CPU during the run: {:.2}s ({:.1} µs a row; the rest of the wall time is Postgres)",
        run_cpu.as_secs_f64(),
        run_cpu.as_secs_f64() * 1e6 / rows as f64
    );
    println!("end to end (upload + run): {:.2}s = {:.0} rows/s", (upload + run).as_secs_f64(), per_second(upload + run));
    println!("reference COPY of the same rows into customers: {:.2}s = {:.0} rows/s", copy_time.as_secs_f64(), per_second(copy_time));
    println!(
        "ratio: run {:.2}x COPY, end to end {:.2}x COPY (target >= 0.5x)",
        copy_time.as_secs_f64() / run.as_secs_f64(),
        copy_time.as_secs_f64() / (upload + run).as_secs_f64()
    );
    println!("service RSS: idle {rss_idle:.0} MB, peak {rss_peak:.0} MB (target <= 200 MB)");
    service.kill_hard().await;

    // The same rows from an XLSX, on a service of its own (its own peak RSS).
    let xlsx = workbook(rows)?;
    let xlsx_db = fresh_database("profiles").await.expect("a database");
    let service = spawn_service(binary("crm-profiles"), &xlsx_db, &env).await;
    let pid = service.child.id().expect("running");
    let (upload, run, _) = import_file(&service.channel, &bearer, &xlsx, "bench.xlsx", rows).await?;
    println!(
        "from XLSX ({:.1} MB): upload (whole sheet read to count its rows) {:.2}s, run {:.2}s, end to end {:.0} rows/s = {:.2}x the CSV import; service peak RSS {:.0} MB",
        xlsx.len() as f64 / 1e6,
        upload.as_secs_f64(),
        run.as_secs_f64(),
        per_second(upload + run),
        (csv_upload + csv_run).as_secs_f64() / (upload + run).as_secs_f64(),
        peak_rss_mb(pid).unwrap_or(0.0)
    );
    service.kill_hard().await;
    Ok(())
}

/// The same rows as an XLSX workbook of one sheet, the phone numbers typed as numbers.
fn workbook(rows: i64) -> anyhow::Result<Vec<u8>> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet_with_constant_memory();
    for (column, header) in ["客户名", "手机", "邮箱", "公司", "城市", "标签"].iter().enumerate() {
        sheet.write_string(0, column as u16, *header)?;
    }
    for i in 1..=rows {
        let row = u32::try_from(i)?;
        for (column, cell) in cells(i).iter().enumerate() {
            match column {
                1 => sheet.write_number(row, 1, cell.parse::<f64>()?)?,
                _ => sheet.write_string(row, column as u16, cell)?,
            };
        }
    }
    Ok(book.save_to_buffer()?)
}

/// Uploads `bytes` as `file_name` (256 KiB messages) and runs it as
/// CREATE_ONLY to its end: how long the upload and the run took, and the job.
async fn import_file(
    channel: &tonic::transport::Channel,
    bearer: &str,
    bytes: &[u8],
    file_name: &str,
    rows: i64,
) -> anyhow::Result<(Duration, Duration, pb::ImportJob)> {
    let started = Instant::now();
    let messages: Vec<pb::UploadImportFileRequest> = bytes
        .chunks(256 * 1024)
        .enumerate()
        .map(|(i, data)| pb::UploadImportFileRequest {
            file_name: if i == 0 { file_name.into() } else { String::new() },
            file: Some(crm_proto::google::api::HttpBody { content_type: String::new(), data: data.to_vec(), extensions: vec![] }),
            ..Default::default()
        })
        .collect();
    let mut client = ImportServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
    let job = client.upload_import_file(with_token(tokio_stream::iter(messages), bearer)).await?.into_inner().import_job.unwrap();
    let upload = started.elapsed();
    assert_eq!(job.total_rows, rows, "every row counted");
    let settings = pb::ImportSettings { mode: ps::Mode::CreateOnly as i32, calling_code: "86".into(), ..Default::default() };
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
    assert_eq!((done.state, progress.rows_created), (State::Succeeded as i32, rows), "every row imported: {progress:?}");
    Ok((upload, run, done))
}

//! An import killed with SIGKILL again and again while it writes: each
//! restart resumes the job from its last committed batch, and in the end
//! every valid row is one customer — none twice, none lost — and every
//! refused row is reported once, exactly as an uninterrupted run reports it.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use crm_proto::crm::profiles::v1::{self as pb, import_job::State, import_service_client::ImportServiceClient, import_settings as ps};
use crm_testkit::{
    auth::{token, with_token},
    database::fresh_database,
    process::{free_port, spawn_service_on},
};
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::imports::upload_messages;

const ROWS: usize = 40_000;

/// The sheet: a unique external id and email per row, except every 97th
/// row's email is malformed and every 101st repeats the email of 50 rows
/// before. Returns it with the external ids of the rows that must import and
/// the row numbers that must be refused.
fn sheet() -> (String, HashSet<String>, Vec<i64>) {
    let mut csv = String::from("customer id,name,email\n");
    let (mut valid, mut refused, mut accepted_emails) = (HashSet::new(), Vec::new(), HashSet::new());
    for i in 1..=ROWS {
        let email = match i {
            _ if i % 97 == 0 => format!("broken{i}@"),
            _ if i % 101 == 0 => format!("c{}@example.com", i - 50),
            _ => format!("c{i}@example.com"),
        };
        csv.push_str(&format!("X-{i},Customer {i},{email}\n"));
        let row = i as i64 + 1;
        if i % 97 == 0 || !accepted_emails.insert(email) {
            refused.push(row);
        } else {
            valid.insert(format!("X-{i}"));
        }
    }
    (csv, valid, refused)
}

/// The CustomersImported an outbox row holds (as an Any).
fn imported(data: &[u8]) -> pb::CustomersImported {
    let any = <prost_types::Any as prost::Message>::decode(data).unwrap();
    <pb::CustomersImported as prost::Message>::decode(any.value.as_slice()).unwrap()
}

async fn job_state(channel: &Channel, admin: &str, name: &str) -> Option<pb::ImportJob> {
    let request = with_token(pb::GetImportJobRequest { name: name.into() }, admin);
    ImportServiceClient::new(channel.clone()).get_import_job(request).await.ok()?.into_inner().import_job
}

#[tokio::test]
async fn an_import_killed_mid_way_resumes_without_a_duplicate_or_a_lost_row() {
    let db = fresh_database("profiles").await.unwrap();
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_crm-profiles"));
    let env = [("CRM_IMPORT_POLL_MS", "50".to_owned()), ("CRM_IMPORT_LEASE_MS", "1000".to_owned())];
    let port = free_port();
    let mut service = spawn_service_on(binary.clone(), &db, port, &env).await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
    let tenant = Uuid::now_v7();
    let admin = token(tenant, &["admin"]);
    let (csv, valid, refused) = sheet();
    let messages = upload_messages(csv.as_bytes(), 256 * 1024, "", "crash-test");
    let job = ImportServiceClient::new(channel.clone())
        .upload_import_file(with_token(tokio_stream::iter(messages), &admin))
        .await
        .unwrap()
        .into_inner()
        .import_job
        .unwrap();
    let settings = pb::ImportSettings { mode: ps::Mode::CreateOnly as i32, ..Default::default() };
    let start = with_token(pb::StartImportJobRequest { name: job.name.clone(), settings: Some(settings) }, &admin);
    ImportServiceClient::new(channel.clone()).start_import_job(start).await.unwrap();

    // Act: kill the service each time the job has committed more batches, and start it again.
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut read_at_kills = Vec::new();
    let mut last = 0;
    while read_at_kills.len() < 4 {
        let deadline = Instant::now() + Duration::from_secs(60);
        let read = loop {
            let progress = job_state(&channel, &admin, &job.name).await.and_then(|j| j.progress).map_or(0, |p| p.rows_read);
            if progress > last || progress == ROWS as i64 {
                break progress;
            }
            assert!(Instant::now() < deadline, "the import made no progress after a restart");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if read == ROWS as i64 {
            break;
        }
        // Somewhere inside the next batch.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
        service.kill_hard().await;
        read_at_kills.push(read);
        last = read;
        service = spawn_service_on(binary.clone(), &db, port, &env).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        if let Some(job) = job_state(&channel, &admin, &job.name).await.filter(|j| j.state != State::Running as i32) {
            break job;
        }
        assert!(Instant::now() < deadline, "the import did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(read_at_kills.len() >= 2, "the kills landed while it wrote: {read_at_kills:?}");

    // Assert: the counts, the customers (by external id, straight from the table) and the refused rows.
    assert_eq!(done.state, State::Succeeded as i32);
    let progress = done.progress.unwrap();
    assert_eq!(progress.rows_read, ROWS as i64);
    assert_eq!((progress.rows_created, progress.rows_failed), (valid.len() as i64, refused.len() as i64));
    let mut db_conn = PgConnection::connect(&db.app_url).await.unwrap();
    let mut tx = db_conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.unwrap();
    let ids: Vec<(String,)> = sqlx::query_as("SELECT attributes ->> 'external_id' FROM customers").fetch_all(&mut *tx).await.unwrap();
    let stored: HashSet<String> = ids.iter().map(|(id,)| id.clone()).collect();
    assert_eq!(ids.len(), stored.len(), "no row was written twice");
    assert_eq!(stored, valid, "no row was lost");
    let reported: Vec<(i64,)> =
        sqlx::query_as("SELECT row_number FROM import_errors ORDER BY row_number").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(reported.into_iter().map(|(n,)| n).collect::<Vec<_>>(), refused, "each refused row once");
    // The batches' events name each created customer once.
    let events: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT data FROM outbox WHERE type = 'crm.profiles.v1.CustomersImported'").fetch_all(&mut *tx).await.unwrap();
    let named: Vec<String> = events.iter().flat_map(|(data,)| imported(data).created).collect();
    assert_eq!(named.len(), valid.len());
    assert_eq!(named.iter().collect::<HashSet<_>>().len(), valid.len());
    tx.commit().await.unwrap();
    service.kill_hard().await;
}

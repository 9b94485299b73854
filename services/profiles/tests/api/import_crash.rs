//! Imports killed with SIGKILL again and again while they write (customers,
//! and transactions): each restart resumes the job from its last committed
//! batch, and in the end every valid row is written once — none twice, none
//! lost — with its event, and every refused row is reported once, exactly as
//! an uninterrupted run reports it.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use crm_proto::crm::profiles::v1::{
    self as pb,
    import_job::{Kind, State},
    import_service_client::ImportServiceClient,
    import_settings as ps,
};
use crm_testkit::{
    auth::{token, with_token},
    database::{TestDb, fresh_database},
    process::{ServiceProcess, free_port, spawn_service_on},
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

/// The event an outbox row holds (as an Any).
fn event<E: prost::Message + Default>(data: &[u8]) -> E {
    let any = <prost_types::Any as prost::Message>::decode(data).unwrap();
    E::decode(any.value.as_slice()).unwrap()
}

async fn job_state(channel: &Channel, admin: &str, name: &str) -> Option<pb::ImportJob> {
    let request = with_token(pb::GetImportJobRequest { name: name.into() }, admin);
    ImportServiceClient::new(channel.clone()).get_import_job(request).await.ok()?.into_inner().import_job
}

/// A profiles service that is killed and started again, on one database and port.
struct Crashing {
    /// Settings of the service beside the fast import worker's.
    env: Vec<(&'static str, String)>,
    db: TestDb,
    port: u16,
    service: Option<ServiceProcess>,
    channel: Channel,
    tenant: Uuid,
    admin: String,
}

impl Crashing {
    async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    async fn start_with(env: Vec<(&'static str, String)>) -> Self {
        let db = fresh_database("profiles").await.unwrap();
        let port = free_port();
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
        let tenant = Uuid::now_v7();
        let mut crashing = Self { env, db, port, service: None, channel, tenant, admin: token(tenant, &["admin"]) };
        crashing.service = Some(crashing.spawn().await);
        crashing
    }

    async fn spawn(&self) -> ServiceProcess {
        let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_crm-profiles"));
        let mut env = vec![("CRM_IMPORT_POLL_MS", "50".to_owned()), ("CRM_IMPORT_LEASE_MS", "1000".to_owned())];
        env.extend(self.env.iter().cloned());
        spawn_service_on(binary, &self.db, self.port, &env).await
    }

    /// Uploads `file` (CSV or XLSX) as a job of `kind` and starts it with `settings`; its name.
    async fn start_job(&self, file: &[u8], kind: Kind, settings: pb::ImportSettings) -> String {
        let mut messages = upload_messages(file, 256 * 1024, "", "");
        messages[0].kind = kind as i32;
        let job = ImportServiceClient::new(self.channel.clone())
            .upload_import_file(with_token(tokio_stream::iter(messages), &self.admin))
            .await
            .unwrap()
            .into_inner()
            .import_job
            .unwrap();
        let start = with_token(pb::StartImportJobRequest { name: job.name.clone(), settings: Some(settings) }, &self.admin);
        ImportServiceClient::new(self.channel.clone()).start_import_job(start).await.unwrap();
        job.name
    }

    /// Imports `count` customers, "M-0"… by external id, and waits until they are in.
    async fn import_members(&self, count: usize) {
        let mut members = String::from("customer id,name\n");
        for i in 0..count {
            members.push_str(&format!("M-{i},Member {i}\n"));
        }
        let settings = pb::ImportSettings { mode: ps::Mode::CreateOnly as i32, ..Default::default() };
        let name = self.start_job(members.as_bytes(), Kind::Customers, settings).await;
        assert_eq!(self.ended(&name).await.progress.unwrap().rows_created, count as i64);
    }

    /// Job `name` once it has ended.
    async fn ended(&self, name: &str) -> pb::ImportJob {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(job) = job_state(&self.channel, &self.admin, name).await.filter(|j| j.state != State::Running as i32) {
                return job;
            }
            assert!(Instant::now() < deadline, "the import did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the service each time job `name` (of `rows` rows) has committed more batches,
    /// somewhere inside the next one, and starts it again; the job once it has ended.
    async fn kill_while_importing(&mut self, name: &str, rows: usize) -> pb::ImportJob {
        let mut rng = rand::rngs::StdRng::from_entropy();
        let mut read_at_kills = Vec::new();
        let mut last = 0;
        while read_at_kills.len() < 4 {
            let deadline = Instant::now() + Duration::from_secs(120);
            let read = loop {
                let progress = job_state(&self.channel, &self.admin, name).await.and_then(|j| j.progress).map_or(0, |p| p.rows_read);
                if progress > last || progress == rows as i64 {
                    break progress;
                }
                assert!(Instant::now() < deadline, "the import made no progress after a restart");
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            if read == rows as i64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
            self.service.take().unwrap().kill_hard().await;
            read_at_kills.push(read);
            last = read;
            self.service = Some(self.spawn().await);
        }
        let done = self.ended(name).await;
        assert!(read_at_kills.len() >= 2, "the kills landed while it wrote: {read_at_kills:?}");
        done
    }

    async fn stop(mut self) {
        if let Some(service) = self.service.take() {
            service.kill_hard().await;
        }
    }
}

#[tokio::test]
async fn an_import_killed_mid_way_resumes_without_a_duplicate_or_a_lost_row() {
    let mut crashing = Crashing::start().await;
    let (csv, valid, refused) = sheet();
    let settings = pb::ImportSettings { mode: ps::Mode::CreateOnly as i32, ..Default::default() };
    let name = crashing.start_job(csv.as_bytes(), Kind::Customers, settings).await;
    let done = crashing.kill_while_importing(&name, ROWS).await;
    assert_every_customer_once(&crashing, done, &valid, &refused).await;
    crashing.stop().await;
}

#[tokio::test]
async fn an_xlsx_import_killed_mid_way_resumes_from_its_cursor_too() {
    let mut crashing = Crashing::start().await;
    let (csv, valid, refused) = sheet();
    // The same sheet as a workbook: a resumed run reads the stored file again and skips to its cursor.
    let mut book = rust_xlsxwriter::Workbook::new();
    let worksheet = book.add_worksheet();
    for (row, line) in csv.lines().enumerate() {
        for (column, cell) in line.split(',').enumerate() {
            worksheet.write_string(row as u32, column as u16, cell).unwrap();
        }
    }
    let xlsx = book.save_to_buffer().unwrap();
    let settings = pb::ImportSettings { mode: ps::Mode::CreateOnly as i32, ..Default::default() };
    let name = crashing.start_job(&xlsx, Kind::Customers, settings).await;
    let done = crashing.kill_while_importing(&name, ROWS).await;
    assert_every_customer_once(&crashing, done, &valid, &refused).await;
    crashing.stop().await;
}

/// The counts, the customers (by external id, straight from the table), the refused rows and the events of `done`.
async fn assert_every_customer_once(crashing: &Crashing, done: pb::ImportJob, valid: &HashSet<String>, refused: &[i64]) {
    assert_eq!(done.state, State::Succeeded as i32);
    let progress = done.progress.unwrap();
    assert_eq!(progress.rows_read, ROWS as i64);
    assert_eq!((progress.rows_created, progress.rows_failed), (valid.len() as i64, refused.len() as i64));
    let mut db_conn = PgConnection::connect(&crashing.db.app_url).await.unwrap();
    let mut tx = in_tenant(&mut db_conn, crashing.tenant).await;
    let ids: Vec<(String,)> = sqlx::query_as("SELECT attributes ->> 'external_id' FROM customers").fetch_all(&mut *tx).await.unwrap();
    let stored: HashSet<String> = ids.iter().map(|(id,)| id.clone()).collect();
    assert_eq!(ids.len(), stored.len(), "no row was written twice");
    assert_eq!(&stored, valid, "no row was lost");
    let reported: Vec<(i64,)> =
        sqlx::query_as("SELECT row_number FROM import_errors ORDER BY row_number").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(reported.into_iter().map(|(n,)| n).collect::<Vec<_>>(), refused, "each refused row once");
    // The batches' events name each created customer once.
    let events: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT data FROM outbox WHERE type = 'crm.profiles.v1.CustomersImported'").fetch_all(&mut *tx).await.unwrap();
    let named: Vec<String> = events.iter().flat_map(|(data,)| event::<pb::CustomersImported>(data).created).collect();
    assert_eq!(named.len(), valid.len());
    assert_eq!(named.iter().collect::<HashSet<_>>().len(), valid.len());
    tx.commit().await.unwrap();
}

/// A transaction of `conn` in `tenant`.
async fn in_tenant(conn: &mut PgConnection, tenant: Uuid) -> sqlx::Transaction<'_, sqlx::Postgres> {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.unwrap();
    tx
}

const TRANSACTION_ROWS: usize = 20_000;
const MEMBERS: usize = 500;

/// The transactions sheet: order O-{i} of member M-{i % 500} for i yuan, except every 97th
/// row's amount is unreadable and every 101st repeats the order id of 50 rows before.
/// Returns it with the order ids that must be recorded and the row numbers that must be refused.
fn orders() -> (String, HashSet<String>, Vec<i64>) {
    let mut csv = String::from("会员编号,订单号,交易时间,金额\n");
    let (mut valid, mut refused) = (HashSet::new(), Vec::new());
    for i in 1..=TRANSACTION_ROWS {
        let number = if i % 101 == 0 { i - 50 } else { i };
        let order = format!("O-{number}");
        let amount = if i % 97 == 0 { "n/a".to_owned() } else { number.to_string() };
        csv.push_str(&format!("M-{},{order},2026-11-01 10:00,{amount}\n", i % MEMBERS));
        let row = i as i64 + 1;
        if i % 97 == 0 || !valid.insert(order) {
            refused.push(row);
        }
    }
    (csv, valid, refused)
}

#[tokio::test]
async fn a_transactions_import_killed_mid_way_records_each_order_once() {
    let mut crashing = Crashing::start().await;
    // The members first (an import left to finish), then their orders, killed while they are written.
    crashing.import_members(MEMBERS).await;
    let (csv, valid, refused) = orders();
    let settings = pb::ImportSettings {
        mode: ps::Mode::CreateOnly as i32,
        currency_code: "CNY".into(),
        time_zone: "Asia/Shanghai".into(),
        ..Default::default()
    };
    let name = crashing.start_job(csv.as_bytes(), Kind::Transactions, settings).await;
    let done = crashing.kill_while_importing(&name, TRANSACTION_ROWS).await;

    assert_eq!(done.state, State::Succeeded as i32);
    let progress = done.progress.unwrap();
    assert_eq!(
        (progress.rows_read, progress.rows_created, progress.rows_failed),
        (TRANSACTION_ROWS as i64, valid.len() as i64, refused.len() as i64)
    );
    let mut db_conn = PgConnection::connect(&crashing.db.app_url).await.unwrap();
    let mut tx = in_tenant(&mut db_conn, crashing.tenant).await;
    let ids: Vec<(String,)> = sqlx::query_as("SELECT external_id FROM transactions").fetch_all(&mut *tx).await.unwrap();
    let stored: HashSet<String> = ids.iter().map(|(id,)| id.clone()).collect();
    assert_eq!(ids.len(), stored.len(), "no order was recorded twice");
    assert_eq!(stored, valid, "no order was lost");
    // The spending moved once per order: counts and sums match the orders recorded.
    let (count, sum): (i64, i64) = sqlx::query_as("SELECT sum(purchase_count)::bigint, sum(purchase_minor)::bigint FROM customer_spending")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let expected_sum: i64 = valid.iter().map(|o| o.trim_start_matches("O-").parse::<i64>().unwrap() * 100).sum();
    assert_eq!((count, sum), (valid.len() as i64, expected_sum));
    let reported: Vec<(i64,)> = sqlx::query_as(
        "SELECT row_number FROM import_errors WHERE job_id = (SELECT id FROM import_jobs WHERE kind = 'TRANSACTIONS') ORDER BY row_number",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(reported.into_iter().map(|(n,)| n).collect::<Vec<_>>(), refused, "each refused row once");
    let events: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT data FROM outbox WHERE type = 'crm.profiles.v1.TransactionsImported'").fetch_all(&mut *tx).await.unwrap();
    let named: Vec<String> = events.iter().flat_map(|(data,)| event::<pb::TransactionsImported>(data).transactions).collect();
    assert_eq!((named.len(), named.iter().collect::<HashSet<_>>().len()), (valid.len(), valid.len()), "each order announced once");
    tx.commit().await.unwrap();
    crashing.stop().await;
}

const UNITS: usize = 500;
const OWNERS_EACH: usize = 20;

#[tokio::test]
async fn an_occupancies_import_killed_mid_way_leaves_each_history_whole() {
    let mut crashing = Crashing::start().await;
    // 1 000 members, 500 flats, then 20 owners of each flat in turn, 30 days apart, killed while they move in.
    crashing.import_members(1_000).await;
    let settings = pb::ImportSettings { mode: ps::Mode::CreateOnly as i32, ..Default::default() };
    let premises = pb::premises_service_client::PremisesServiceClient::new(crashing.channel.clone());
    for unit in 0..UNITS {
        let p = pb::Premises { unit_code: format!("U-{unit}"), ..Default::default() };
        let request = with_token(pb::CreatePremisesRequest { premises: Some(p), request_id: String::new() }, &crashing.admin);
        premises.clone().create_premises(request).await.unwrap();
    }
    let owner = |unit: usize, turn: usize| format!("M-{}", (unit * 7 + turn) % 1_000);
    let mut moves = String::from("房号,客户编号,身份,迁入日期\n");
    let first = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    for turn in 0..OWNERS_EACH {
        for unit in 0..UNITS {
            let day = first + chrono::Duration::days(30 * turn as i64);
            moves.push_str(&format!("U-{unit},{},业主,{day}\n", owner(unit, turn)));
        }
    }
    let name = crashing.start_job(moves.as_bytes(), Kind::Occupancies, settings).await;
    let done = crashing.kill_while_importing(&name, UNITS * OWNERS_EACH).await;

    assert_eq!(done.state, State::Succeeded as i32);
    let progress = done.progress.unwrap();
    assert_eq!((progress.rows_created, progress.rows_updated, progress.rows_failed), ((UNITS * OWNERS_EACH) as i64, 0, 0));
    let mut db_conn = PgConnection::connect(&crashing.db.app_url).await.unwrap();
    let mut tx = in_tenant(&mut db_conn, crashing.tenant).await;
    let (stays, distinct, current): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (premises_id, customer_id, move_in_date)), count(*) FILTER (WHERE move_out_date IS NULL) FROM occupancies",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((stays, distinct, current), ((UNITS * OWNERS_EACH) as i64, (UNITS * OWNERS_EACH) as i64, UNITS as i64), "every stay once");
    // Each flat's owner now is its last, and every earlier stay ended the day the next began.
    let holders: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.unit_code, c.attributes ->> 'external_id' FROM occupancies o
         JOIN premises p ON p.tenant_id = o.tenant_id AND p.id = o.premises_id JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id
         WHERE o.move_out_date IS NULL",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    for (unit, holder) in holders {
        let unit: usize = unit.trim_start_matches("U-").parse().unwrap();
        assert_eq!(holder, owner(unit, OWNERS_EACH - 1));
    }
    let gaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM occupancies o WHERE o.move_out_date IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM occupancies n WHERE n.premises_id = o.premises_id AND n.move_in_date = o.move_out_date)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(gaps, 0, "each stay ended as the next began");
    let events: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT data FROM outbox WHERE type = 'crm.profiles.v1.OccupanciesImported'").fetch_all(&mut *tx).await.unwrap();
    let started: Vec<String> = events.iter().flat_map(|(data,)| event::<pb::OccupanciesImported>(data).started).collect();
    assert_eq!((started.len(), started.iter().collect::<HashSet<_>>().len()), (UNITS * OWNERS_EACH, UNITS * OWNERS_EACH));
    tx.commit().await.unwrap();
    crashing.stop().await;
}

/// The tenant's export audit, newest first.
async fn exports_audit(crashing: &Crashing) -> Vec<pb::Export> {
    let request = with_token(pb::ListExportsRequest::default(), &crashing.admin);
    pb::export_service_client::ExportServiceClient::new(crashing.channel.clone()).list_exports(request).await.unwrap().into_inner().exports
}

#[tokio::test]
async fn an_export_whose_service_is_killed_is_ended_failed_and_a_slow_one_is_not() {
    let mut crashing = Crashing::start_with(vec![("CRM_EXPORT_STALE_SECS", "2".to_owned())]).await;
    let mut sheet = String::from("name,email,address,company\n");
    for i in 0..20_000 {
        sheet.push_str(&format!("Customer {i},c{i}@example.com,{i} Long Road With A Long Name,Company {i} Holdings Limited\n"));
    }
    let settings = pb::ImportSettings { mode: ps::Mode::CreateOnly as i32, ..Default::default() };
    let name = crashing.start_job(sheet.as_bytes(), Kind::Customers, settings).await;
    assert_eq!(crashing.ended(&name).await.progress.unwrap().rows_created, 20_000);
    let exports = pb::export_service_client::ExportServiceClient::new(crashing.channel.clone());
    let export = || with_token(pb::ExportCustomersRequest::default(), &crashing.admin);

    // A slow reader (longer between chunks than the stale period) keeps its export alive: it beats.
    let mut slow = exports.clone().export_customers(export()).await.unwrap().into_inner();
    for _ in 0..2 {
        slow.message().await.unwrap().expect("a chunk");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    while slow.message().await.unwrap().is_some() {}
    assert_eq!(exports_audit(&crashing).await[0].state, pb::export::State::Succeeded as i32);

    // Killed mid-stream: the restarted service's sweep ends its entry FAILED.
    let mut cut = exports.clone().export_customers(export()).await.unwrap().into_inner();
    cut.message().await.unwrap().expect("a first chunk");
    crashing.service.take().unwrap().kill_hard().await;
    crashing.service = Some(crashing.spawn().await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let entry = exports_audit(&crashing).await.remove(0);
        if entry.state != pb::export::State::Running as i32 {
            break entry;
        }
        assert!(Instant::now() < deadline, "the killed export stayed RUNNING");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ended.state, pb::export::State::Failed as i32);
    assert!(ended.failure_message.contains("no heartbeat"), "{}", ended.failure_message);
    assert!(ended.finish_time.is_some());
    crashing.stop().await;
}

#[tokio::test]
async fn a_related_persons_import_killed_mid_way_adds_each_person_once() {
    let mut crashing = Crashing::start().await;
    crashing.import_members(1_000).await;
    let settings = pb::ImportSettings { mode: ps::Mode::CreateOnly as i32, ..Default::default() };
    // Ten children of each member, every 97th row without a name (refused).
    let rows = 10_000;
    let mut persons = String::from("客户编号,成员姓名,关系\n");
    for i in 0..rows {
        let person = if i % 97 == 0 { String::new() } else { format!("Child {}", i / 1_000) };
        persons.push_str(&format!("M-{},{person},子女\n", i % 1_000));
    }
    let refused = (0..rows).filter(|i| i % 97 == 0).count();
    let name = crashing.start_job(persons.as_bytes(), Kind::RelatedPersons, settings).await;
    let done = crashing.kill_while_importing(&name, rows).await;

    assert_eq!(done.state, State::Succeeded as i32);
    let progress = done.progress.unwrap();
    assert_eq!((progress.rows_created, progress.rows_failed), ((rows - refused) as i64, refused as i64));
    let mut db_conn = PgConnection::connect(&crashing.db.app_url).await.unwrap();
    let mut tx = in_tenant(&mut db_conn, crashing.tenant).await;
    let (stored, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (customer_id, display_name)) FROM related_persons")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!((stored, distinct), ((rows - refused) as i64, (rows - refused) as i64), "each person once, none lost");
    let events: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT data FROM outbox WHERE type = 'crm.profiles.v1.RelatedPersonsImported'").fetch_all(&mut *tx).await.unwrap();
    let named: Vec<String> = events.iter().flat_map(|(data,)| event::<pb::RelatedPersonsImported>(data).related_persons).collect();
    assert_eq!((named.len(), named.iter().collect::<HashSet<_>>().len()), (rows - refused, rows - refused));
    tx.commit().await.unwrap();
    crashing.stop().await;
}

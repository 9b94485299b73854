//! Import jobs: `import_jobs` (a job and its run's counts), its file in
//! `import_file_chunks`, the rows a run refused in `import_errors`, and the
//! running jobs' leases in `import_queue`; plus the bulk statements a batch
//! writes customers with.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span, scan_due},
    error::violated_constraint,
};
use sqlx::{FromRow, PgPool, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    domain::{
        customer::CustomerDraft,
        import::Settings,
        matching::{Person, match_keys},
    },
    resources::IMPORT_JOB,
};

/// A stored import job.
#[derive(Debug, Clone, FromRow)]
pub struct ImportJobRow {
    pub id: Uuid,
    pub kind: String,
    pub file_name: String,
    pub format: String,
    pub encoding: String,
    pub delimiter: String,
    pub sheet: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub total_rows: i64,
    pub headers: Vec<String>,
    /// (column, field name, confidence) per column.
    pub suggested: Json<Vec<(usize, String, f32)>>,
    pub state: String,
    pub settings: Option<Json<Settings>>,
    pub run: i32,
    pub cursor_row: i64,
    pub rows_read: i64,
    pub rows_valid: i64,
    pub rows_failed: i64,
    pub rows_created: i64,
    pub rows_updated: i64,
    pub failure_message: String,
    pub actor: String,
    pub request_id: String,
    pub create_time: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// When its file and refused rows were deleted.
    pub purge_time: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, file_name, format, encoding, delimiter, sheet, size_bytes, sha256, total_rows, headers, suggested, state, \
settings, run, cursor_row, rows_read, rows_valid, rows_failed, rows_created, rows_updated, failure_message, actor, request_id, \
create_time, start_time, end_time, purge_time";

/// What an upload stores of its file, besides the chunks.
pub struct NewJob<'a> {
    pub id: Uuid,
    pub kind: &'a str,
    pub file_name: &'a str,
    pub format: &'a str,
    pub encoding: &'a str,
    pub delimiter: &'a str,
    pub sheet: &'a str,
    pub size_bytes: i64,
    pub sha256: &'a str,
    pub total_rows: i64,
    pub headers: &'a [String],
    pub suggested: &'a [(usize, String, f32)],
    pub actor: &'a str,
    pub request_id: &'a str,
    pub now: DateTime<Utc>,
}

/// Stores an UPLOADED job.
pub async fn insert_job(tx: &mut TenantTx, tenant: Uuid, job: &NewJob<'_>) -> Result<ImportJobRow, Error> {
    let sql = format!(
        "INSERT INTO import_jobs (tenant_id, id, kind, file_name, format, encoding, delimiter, size_bytes, sha256, total_rows, headers, \
         suggested, state, actor, request_id, create_time, sheet)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'UPLOADED', $13, $14, $15, $16) RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(job.id)
        .bind(job.kind)
        .bind(job.file_name)
        .bind(job.format)
        .bind(job.encoding)
        .bind(job.delimiter)
        .bind(job.size_bytes)
        .bind(job.sha256)
        .bind(job.total_rows)
        .bind(job.headers)
        .bind(Json(job.suggested))
        .bind(job.actor)
        .bind(job.request_id)
        .bind(job.now)
        .bind(job.sheet)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "import_jobs"))
        .await
        .map_err(|err| match violated_constraint(&err) {
            Some("import_jobs_request_id") => Error::AlreadyExists {
                reason: "REQUEST_ID_REUSED",
                message: "another upload with this request id was stored meanwhile".to_owned(),
                resource_type: IMPORT_JOB.type_name,
                name: String::new(),
            },
            _ => err.into(),
        })
}

/// The job an upload with `request_id` made, if any.
pub async fn job_by_request(tx: &mut TenantTx, tenant: Uuid, request_id: &str) -> Result<Option<ImportJobRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM import_jobs WHERE tenant_id = $1 AND request_id = $2");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(request_id).fetch_optional(&mut **tx).instrument(db_span("SELECT", "import_jobs")).await?)
}

/// Job `id`; `lock`: held until the transaction ends — FOR NO KEY UPDATE,
/// which the key-share locks of a batch's refused rows (their foreign key to
/// the job) do not block: a batch waiting for the one before it holds such a
/// lock, and the one before must still be able to lock the job to commit.
pub async fn job(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Option<ImportJobRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM import_jobs WHERE tenant_id = $1 AND id = $2{}", if lock { " FOR NO KEY UPDATE" } else { "" });
    Ok(sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(&mut **tx).instrument(db_span("SELECT", "import_jobs")).await?)
}

/// A page of the tenant's jobs, newest first, after `after`.
pub async fn jobs(tx: &mut TenantTx, tenant: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<ImportJobRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM import_jobs WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(after).bind(limit).fetch_all(&mut **tx).instrument(db_span("SELECT", "import_jobs")).await?)
}

/// Stores chunk `seq` of job `job`'s file.
pub async fn put_chunk(tx: &mut TenantTx, tenant: Uuid, job: Uuid, seq: i32, data: &[u8]) -> Result<(), Error> {
    sqlx::query("INSERT INTO import_file_chunks (tenant_id, job_id, seq, data) VALUES ($1, $2, $3, $4)")
        .bind(tenant)
        .bind(job)
        .bind(seq)
        .bind(data)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "import_file_chunks"))
        .await?;
    Ok(())
}

/// Chunk `seq` of job `job`'s file; None past the last.
pub async fn chunk(tx: &mut TenantTx, tenant: Uuid, job: Uuid, seq: i32) -> Result<Option<Vec<u8>>, Error> {
    let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT data FROM import_file_chunks WHERE tenant_id = $1 AND job_id = $2 AND seq = $3")
        .bind(tenant)
        .bind(job)
        .bind(seq)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "import_file_chunks"))
        .await?;
    Ok(row.map(|(data,)| data))
}

/// Drops job `job`'s file (a real run is done with it).
pub async fn delete_chunks(tx: &mut TenantTx, tenant: Uuid, job: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM import_file_chunks WHERE tenant_id = $1 AND job_id = $2")
        .bind(tenant)
        .bind(job)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "import_file_chunks"))
        .await?;
    Ok(())
}

/// Starts a new run of job `id` with `settings`: RUNNING, counts from zero,
/// queued for a worker at once.
pub async fn start(tx: &mut TenantTx, tenant: Uuid, id: Uuid, settings: &Settings, now: DateTime<Utc>) -> Result<ImportJobRow, Error> {
    let sql = format!(
        "WITH queued AS (INSERT INTO import_queue (tenant_id, job_id, lease_until) VALUES ($1, $2, $4))
         UPDATE import_jobs SET state = 'RUNNING', settings = $3, run = run + 1, cursor_row = 1, rows_read = 0, rows_valid = 0, \
         rows_failed = 0, rows_created = 0, rows_updated = 0, failure_message = '', start_time = $4, end_time = NULL
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(Json(settings))
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "import_jobs"))
        .await?)
}

/// Ends job `id`'s run in `state` (SUCCEEDED, FAILED, CANCELLED) and takes it off the queue.
pub async fn end(tx: &mut TenantTx, tenant: Uuid, id: Uuid, state: &str, failure: &str, now: DateTime<Utc>) -> Result<ImportJobRow, Error> {
    let sql = format!(
        "WITH dequeued AS (DELETE FROM import_queue WHERE tenant_id = $1 AND job_id = $2)
         UPDATE import_jobs SET state = $3, failure_message = $4, end_time = $5 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(state)
        .bind(failure)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "import_jobs"))
        .await?)
}

/// What a batch adds to its run's counts, up to the row it ends at.
#[derive(Debug, Default, Clone, Copy)]
pub struct BatchCounts {
    pub last_row: i64,
    pub read: i64,
    pub valid: i64,
    pub failed: i64,
    pub created: i64,
    pub updated: i64,
}

/// Moves job `id`'s cursor and counts past a batch.
pub async fn advance(tx: &mut TenantTx, tenant: Uuid, id: Uuid, counts: &BatchCounts) -> Result<(), Error> {
    sqlx::query(
        "UPDATE import_jobs SET cursor_row = $3, rows_read = rows_read + $4, rows_valid = rows_valid + $5, rows_failed = rows_failed + $6, \
         rows_created = rows_created + $7, rows_updated = rows_updated + $8 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(counts.last_row)
    .bind(counts.read)
    .bind(counts.valid)
    .bind(counts.failed)
    .bind(counts.created)
    .bind(counts.updated)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "import_jobs"))
    .await?;
    Ok(())
}

/// A refused row as stored: its cells and its problems.
#[derive(Debug, Clone, FromRow)]
pub struct ErrorRow {
    pub row_number: i64,
    pub cells: Json<Vec<String>>,
    pub problems: Json<Vec<StoredProblem>>,
}

/// One problem of a refused row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredProblem {
    pub column: Option<usize>,
    pub field: String,
    pub reason: String,
    pub message: String,
}

/// Drops the refused rows of the job's earlier runs (a new run starts).
pub async fn delete_errors(tx: &mut TenantTx, tenant: Uuid, job: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM import_errors WHERE tenant_id = $1 AND job_id = $2")
        .bind(tenant)
        .bind(job)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "import_errors"))
        .await?;
    Ok(())
}

/// Stores run `run`'s refused rows (row number, cells, problems).
pub async fn insert_errors(tx: &mut TenantTx, tenant: Uuid, job: Uuid, run: i32, rows: &[ErrorRow]) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let numbers: Vec<i64> = rows.iter().map(|r| r.row_number).collect();
    let cells: Vec<&Json<Vec<String>>> = rows.iter().map(|r| &r.cells).collect();
    let problems: Vec<&Json<Vec<StoredProblem>>> = rows.iter().map(|r| &r.problems).collect();
    sqlx::query(
        "INSERT INTO import_errors (tenant_id, job_id, run, row_number, cells, problems)
         SELECT $1, $2, $3, * FROM unnest($4::bigint[], $5::jsonb[], $6::jsonb[])",
    )
    .bind(tenant)
    .bind(job)
    .bind(run)
    .bind(numbers)
    .bind(cells)
    .bind(problems)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "import_errors"))
    .await?;
    Ok(())
}

/// Run `run`'s refused rows after row `after`, in row order.
pub async fn errors(tx: &mut TenantTx, tenant: Uuid, job: Uuid, run: i32, after: i64, limit: i64) -> Result<Vec<ErrorRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT row_number, cells, problems FROM import_errors WHERE tenant_id = $1 AND job_id = $2 AND run = $3 AND row_number > $4 \
         ORDER BY row_number LIMIT $5",
    )
    .bind(tenant)
    .bind(job)
    .bind(run)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "import_errors"))
    .await?)
}

/// The numbers of run `run`'s refused rows up to `through` (a resumed run
/// re-reads the rows before its cursor and must know which it refused).
pub async fn refused_rows(tx: &mut TenantTx, tenant: Uuid, job: Uuid, run: i32, through: i64) -> Result<Vec<i64>, Error> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT row_number FROM import_errors WHERE tenant_id = $1 AND job_id = $2 AND run = $3 AND row_number <= $4")
            .bind(tenant)
            .bind(job)
            .bind(run)
            .bind(through)
            .fetch_all(&mut **tx)
            .instrument(db_span("SELECT", "import_errors"))
            .await?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

/// The running jobs of every tenant whose lease has run out by `now`: (tenant, job).
pub async fn due(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, Error> {
    scan_due(
        pool,
        "import-scan",
        "import_queue",
        "SELECT tenant_id, job_id FROM import_queue WHERE lease_until <= $1 ORDER BY lease_until LIMIT $2",
        now,
        limit,
    )
    .await
}

/// Jobs across tenants whose file and refused rows are due for deletion:
/// not running, ended (or uploaded and never started) at or before `before`.
pub async fn purge_due(pool: &PgPool, before: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, Error> {
    scan_due(
        pool,
        "import-sweep",
        "import_jobs",
        "SELECT tenant_id, id FROM import_jobs WHERE purge_time IS NULL AND state <> 'RUNNING' AND coalesce(end_time, create_time) <= $1
         ORDER BY coalesce(end_time, create_time) LIMIT $2",
        before,
        limit,
    )
    .await
}

/// Deletes job `id`'s stored file and refused rows if it is still due
/// (checked again under the row's lock: a job started meanwhile is not);
/// whether it was.
pub async fn purge(tx: &mut TenantTx, tenant: Uuid, id: Uuid, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, Error> {
    let marked = sqlx::query(
        "UPDATE import_jobs SET purge_time = $4 WHERE tenant_id = $1 AND id = $2 AND purge_time IS NULL AND state <> 'RUNNING'
           AND coalesce(end_time, create_time) <= $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(before)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "import_jobs"))
    .await?
    .rows_affected();
    if marked == 0 {
        return Ok(false);
    }
    delete_chunks(tx, tenant, id).await?;
    delete_errors(tx, tenant, id).await?;
    Ok(true)
}

/// Takes job `job`'s lease until `until` under `token`, if it is free at
/// `now` (or already `token`'s); false when another worker holds it or the
/// job is no longer queued.
pub async fn lease(
    tx: &mut TenantTx,
    tenant: Uuid,
    job: Uuid,
    token: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, Error> {
    let taken = sqlx::query(
        "UPDATE import_queue SET lease_until = $5, lease_token = $3
         WHERE tenant_id = $1 AND job_id = $2 AND (lease_until <= $4 OR lease_token = $3)",
    )
    .bind(tenant)
    .bind(job)
    .bind(token)
    .bind(now)
    .bind(until)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "import_queue"))
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Lets another worker take job `job` at `at` (a failed batch is retried then).
pub async fn release(tx: &mut TenantTx, tenant: Uuid, job: Uuid, token: Uuid, at: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query("UPDATE import_queue SET lease_until = $4, lease_token = NULL WHERE tenant_id = $1 AND job_id = $2 AND lease_token = $3")
        .bind(tenant)
        .bind(job)
        .bind(token)
        .bind(at)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "import_queue"))
        .await?;
    Ok(())
}

/// The live customers whose claimed emails are among `addresses`: (address, customer).
pub async fn email_owners(tx: &mut TenantTx, tenant: Uuid, addresses: &[String]) -> Result<Vec<(String, Uuid)>, Error> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT address, customer_id FROM customer_emails WHERE tenant_id = $1 AND address = ANY($2)")
        .bind(tenant)
        .bind(addresses)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "customer_emails"))
        .await?)
}

/// The live customers with one of the E.164 `phones`: (phone, customer).
pub async fn phone_owners(tx: &mut TenantTx, tenant: Uuid, phones: &[String]) -> Result<Vec<(String, Uuid)>, Error> {
    if phones.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = phones.iter().map(|p| format!("p:{p}")).collect();
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT k.key, k.customer_id FROM customer_match_keys k JOIN customers c ON c.tenant_id = k.tenant_id AND c.id = k.customer_id
         WHERE k.tenant_id = $1 AND k.key = ANY($2) AND c.delete_time IS NULL",
    )
    .bind(tenant)
    .bind(keys)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "customer_match_keys"))
    .await?;
    Ok(rows.into_iter().map(|(key, id)| (key.trim_start_matches("p:").to_owned(), id)).collect())
}

/// The live customers with one of the external `ids`: (external id, customer).
pub async fn external_id_owners(tx: &mut TenantTx, tenant: Uuid, ids: &[String]) -> Result<Vec<(String, Uuid)>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT external_id, id FROM customers WHERE tenant_id = $1 AND external_id = ANY($2) AND delete_time IS NULL")
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "customers"))
        .await?)
}

/// Separates the items of a list bound as one text (a control character no tag or key holds).
const SEPARATOR: &str = "\u{1f}";

/// Creates customers `ids[i]` from `drafts[i]` in a few statements (the
/// rows, their match keys, their email claims), each created at `now`.
/// A claim another transaction took meanwhile fails the whole batch
/// (ALREADY_EXISTS), which the worker retries.
pub async fn insert_customers(
    tx: &mut TenantTx,
    tenant: Uuid,
    ids: &[Uuid],
    drafts: &[CustomerDraft],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if drafts.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&CustomerDraft) -> &str| drafts.iter().map(f).collect::<Vec<&str>>();
    // JSON travels as text (cast in SQL): no value tree is built per cell on the way.
    let json = |f: fn(&CustomerDraft) -> String| drafts.iter().map(f).collect::<Vec<String>>();
    // Lists travel as one text each, split in SQL: far cheaper to bind than a JSON value per row.
    let joined = |items: &[String]| items.iter().map(|i| i.replace(SEPARATOR, "")).collect::<Vec<_>>().join(SEPARATOR);
    // Only the phone keys are indexed now, for the upserts that match by phone (emails are matched by
    // their claims); the duplicate scan, which pairs every new customer anyway, writes all of a
    // customer's keys shortly after (customers.match_keys stays NULL until it has).
    let keys: Vec<Vec<String>> =
        drafts.iter().map(|d| match_keys(&Person::of_draft(d)).into_iter().filter(|k| k.starts_with("p:")).collect()).collect();
    // An import's rows mostly share one consent: each distinct one is bound once.
    let mut consents: Vec<String> = Vec::new();
    let consent_of: Vec<i32> = drafts
        .iter()
        .map(|d| {
            let consent = serde_json::to_string(&d.consent).unwrap_or_default();
            let at = consents.iter().position(|c| *c == consent).unwrap_or_else(|| {
                consents.push(consent);
                consents.len() - 1
            });
            i32::try_from(at + 1).unwrap_or(i32::MAX)
        })
        .collect();
    sqlx::query(
        "INSERT INTO customers (tenant_id, id, create_time, update_time, display_name, given_name, family_name, kind, emails, phones, \
         addresses, company, job_title, industry, company_size, source_channel, birthday_year, birthday_month, birthday_day, time_zone, \
         locale, tags, attributes, owner, category, consent, verify_time)
         SELECT $1, u.id, $2, $2, u.display_name, u.given_name, u.family_name, u.kind, u.emails::jsonb, u.phones::jsonb, u.addresses::jsonb, \
         u.company, \
         u.job_title, u.industry, u.company_size, u.source_channel, u.birthday_year, u.birthday_month, u.birthday_day, u.time_zone, \
         u.locale, string_to_array(u.tags, E'\\x1f'), u.attributes::jsonb, u.owner, u.category, ($25::text[])[u.consent]::jsonb, NULL
         FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
         $12::text[], $13::text[], $14::text[], $15::text[], $16::int[], $17::int[], $18::int[], $19::text[], $20::text[], $21::text[], \
         $22::text[], $23::text[], $24::text[], $26::int[])
         AS u(id, display_name, given_name, family_name, kind, emails, phones, addresses, company, job_title, industry, company_size, \
         source_channel, birthday_year, birthday_month, birthday_day, time_zone, locale, tags, attributes, owner, category, consent)",
    )
    .bind(tenant)
    .bind(now)
    .bind(ids)
    .bind(col(|d| d.display_name.as_str()))
    .bind(col(|d| d.given_name.as_str()))
    .bind(col(|d| d.family_name.as_str()))
    .bind(col(|d| d.kind.as_str()))
    .bind(json(|d| serde_json::to_string(&d.emails).unwrap_or_default()))
    .bind(json(|d| serde_json::to_string(&d.phones).unwrap_or_default()))
    .bind(json(|d| serde_json::to_string(&d.addresses).unwrap_or_default()))
    .bind(col(|d| d.company.as_str()))
    .bind(col(|d| d.job_title.as_str()))
    .bind(col(|d| d.industry.as_str()))
    .bind(col(|d| d.company_size.as_str()))
    .bind(col(|d| d.source_channel.as_str()))
    .bind(drafts.iter().map(|d| d.birthday.and_then(|b| b.year)).collect::<Vec<_>>())
    .bind(drafts.iter().map(|d| d.birthday.map(|b| b.month as i32)).collect::<Vec<_>>())
    .bind(drafts.iter().map(|d| d.birthday.map(|b| b.day as i32)).collect::<Vec<_>>())
    .bind(col(|d| d.time_zone.as_str()))
    .bind(col(|d| d.locale.as_str()))
    .bind(drafts.iter().map(|d| joined(&d.tags)).collect::<Vec<_>>())
    .bind(json(|d| serde_json::to_string(&d.attributes).unwrap_or_default()))
    .bind(col(|d| d.owner.as_str()))
    .bind(col(|d| d.category.as_str()))
    .bind(consents)
    .bind(consent_of)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "customers"))
    .await?;
    let (mut key_ids, mut all_keys, mut email_ids, mut emails) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((id, draft), draft_keys) in ids.iter().zip(drafts).zip(keys) {
        for key in draft_keys {
            key_ids.push(*id);
            all_keys.push(key);
        }
        for address in draft.email_addresses() {
            email_ids.push(*id);
            emails.push(address);
        }
    }
    sqlx::query("INSERT INTO customer_match_keys (tenant_id, key, customer_id) SELECT $1, * FROM unnest($2::text[], $3::uuid[])")
        .bind(tenant)
        .bind(all_keys)
        .bind(key_ids)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "customer_match_keys"))
        .await?;
    sqlx::query("INSERT INTO customer_emails (tenant_id, address, customer_id) SELECT $1, * FROM unnest($2::text[], $3::uuid[])")
        .bind(tenant)
        .bind(emails)
        .bind(email_ids)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "customer_emails"))
        .await
        .map_err(super::customers::email_claim_error)?;
    Ok(())
}

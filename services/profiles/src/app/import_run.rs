//! Running an import job: its stored file is read again from the start,
//! chunk by chunk (constant memory), split into rows, and the rows after
//! the job's cursor are judged and written in batches. Each batch is ONE
//! transaction that writes its customers, its refused rows, its event and
//! the job's new cursor and counts together — so a replica killed mid-way
//! leaves the job at the end of its last committed batch, and whoever takes
//! the lease next carries on from there without writing a row twice.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::{DefaultHasher, Hash, Hasher},
};

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx, outbox};
use crm_proto::crm::profiles::v1 as pb;
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};
use uuid::Uuid;

use super::{App, history, segments};
use crate::{
    domain::{
        customer::CustomerDraft,
        import::{Encoding, Field, MAX_COLUMNS, MatchKey, Mode, Record, RecordSplitter, Settings, TextDecoder},
        rename::NAME_FIELDS,
        xlsx,
    },
    resources::{CUSTOMER, IMPORT_JOB},
    store::{
        self, CustomerRow,
        imports::{self as jobs, BatchCounts, ErrorRow, ImportJobRow, StoredProblem},
    },
    wire::{
        changed_paths, customer_to_proto,
        import::{ColumnMap, RowCustomer, RowProblem, read_row},
        mask_pii,
    },
};

/// Rows judged and written per transaction.
pub const BATCH_ROWS: usize = 2_000;

/// What the run has seen of the file so far: the rows each email address and
/// match key was first accepted in, by a 64-bit hash (8 bytes a key, so a
/// million-row file costs tens of MB, not the keys themselves).
#[derive(Default)]
struct Seen(HashMap<u64, i64>);

impl Seen {
    fn hash(kind: &str, key: &str) -> u64 {
        let mut hasher = DefaultHasher::new();
        (kind, key).hash(&mut hasher);
        hasher.finish()
    }

    /// The row that already had `key` of `kind`, if any.
    fn first(&self, kind: &str, key: &str) -> Option<i64> {
        self.0.get(&Self::hash(kind, key)).copied()
    }

    fn remember(&mut self, kind: &str, key: &str, row: i64) {
        self.0.entry(Self::hash(kind, key)).or_insert(row);
    }
}

/// The keys a row claims within the file: its email addresses and its match key.
fn row_keys(row: &RowCustomer, match_key: MatchKey) -> Vec<(&'static str, String)> {
    let mut keys: Vec<(&'static str, String)> = row.emails().into_iter().map(|e| ("email", e)).collect();
    if let Some(key) = row.key(match_key).filter(|_| match_key != MatchKey::Email) {
        keys.push(("key", key));
    }
    keys
}

/// A row read through the mapping ahead of its batch: its record, the row,
/// and the customer it makes alone (what a create writes), already checked.
struct Prepared {
    number: i64,
    record: Record,
    /// The keys it claims within the file, and its match key.
    claims: Vec<(&'static str, String)>,
    key: Option<String>,
    /// The row itself, kept only where an update may apply it to a stored customer.
    row: Option<RowCustomer>,
    alone: Result<CustomerDraft, Vec<RowProblem>>,
}

/// What the file's reader hands the batch writer.
enum Piece {
    /// Rows an earlier lease judged and accepted: their keys (kind, key, row), for the duplicate checks.
    Judged(Vec<(&'static str, String, i64)>),
    /// The next rows to judge and write.
    Batch(Vec<Prepared>),
    /// The file stopped being readable here (bytes that are not text in its encoding).
    Unreadable(String),
}

/// Reads a job's stored file from its first chunk: decodes it, splits it
/// into rows and reads each through the mapping, a batch ahead of the writer.
struct Reader {
    app: App,
    tenant: Uuid,
    job: ImportJobRow,
    mapping: Vec<ColumnMap>,
    settings: Settings,
    /// The rows before the cursor that the earlier leases refused.
    refused: HashSet<i64>,
}

impl Reader {
    /// Sends the file's pieces to `pieces` until the end, an error, or the writer stops listening.
    async fn read(self, pieces: mpsc::Sender<Result<Piece, Error>>) {
        if let Err(err) = self.read_pieces(&pieces).await {
            let _ = pieces.send(Err(err)).await;
        }
    }

    async fn read_pieces(&self, pieces: &mpsc::Sender<Result<Piece, Error>>) -> Result<(), Error> {
        let cursor = self.job.cursor_row;
        let mut rows = self.rows().await?;
        let (mut batch, mut judged) = (Vec::with_capacity(BATCH_ROWS), Vec::new());
        let mut header_seen = false;
        while let Some(group) = rows.recv().await {
            let group = match group {
                Ok(group) => group,
                Err(Unreadable::Now(err)) => return Err(err),
                Err(Unreadable::File(message)) => {
                    let _ = pieces.send(Ok(Piece::Unreadable(message))).await;
                    return Ok(());
                }
            };
            for record in group {
                // The first row is the header, wherever the sheet starts.
                if !std::mem::replace(&mut header_seen, true) {
                    continue;
                }
                let number = i64::try_from(record.number).unwrap_or(i64::MAX);
                let cells: Vec<&str> = record.cells.iter().map(String::as_str).collect();
                let row = read_row(&cells, &self.mapping, &self.settings.calling_code);
                if number <= cursor {
                    // Judged by an earlier lease: only what it accepted is remembered, for the duplicate checks.
                    if !self.refused.contains(&number) {
                        judged.extend(row_keys(&row, self.settings.match_key).into_iter().map(|(kind, key)| (kind, key, number)));
                    }
                    if judged.len() >= BATCH_ROWS && pieces.send(Ok(Piece::Judged(std::mem::take(&mut judged)))).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                if !judged.is_empty() && pieces.send(Ok(Piece::Judged(std::mem::take(&mut judged)))).await.is_err() {
                    return Ok(());
                }
                let (claims, key) = (row_keys(&row, self.settings.match_key), row.key(self.settings.match_key));
                let (row, alone) = match self.settings.mode {
                    Mode::Upsert => (Some(row.clone()), row.into_draft(None, Utc::now())),
                    Mode::CreateOnly => (None, row.into_draft(None, Utc::now())),
                };
                batch.push(Prepared { number, record, claims, key, row, alone });
                if batch.len() == BATCH_ROWS && pieces.send(Ok(Piece::Batch(std::mem::take(&mut batch)))).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !judged.is_empty() {
            let _ = pieces.send(Ok(Piece::Judged(judged))).await;
        }
        if !batch.is_empty() {
            let _ = pieces.send(Ok(Piece::Batch(batch))).await;
        }
        Ok(())
    }

    /// The file's rows in order, in groups, from a task of their own: a
    /// CSV decoded and split chunk by chunk, or an XLSX sheet read on a
    /// blocking thread from the whole file. Err: where the file stopped being readable.
    async fn rows(&self) -> Result<mpsc::Receiver<Result<Vec<Record>, Unreadable>>, Error> {
        let (sender, rows) = mpsc::channel(4);
        if self.job.format == "XLSX" {
            let bytes = self.whole_file().await?;
            let sheet = self.job.sheet.clone();
            tokio::task::spawn_blocking(move || {
                let mut group = Vec::with_capacity(ROWS_PER_GROUP);
                let read = xlsx::read_rows(&bytes, Some(&sheet), |record| {
                    group.push(record);
                    group.len() < ROWS_PER_GROUP || sender.blocking_send(Ok(std::mem::take(&mut group))).is_ok()
                });
                let _ = match read {
                    Ok(_) if group.is_empty() => Ok(()),
                    Ok(_) => sender.blocking_send(Ok(group)),
                    Err(e) => sender.blocking_send(Err(Unreadable::File(e.to_string()))),
                };
            });
            return Ok(rows);
        }
        let (app, tenant, id) = (self.app.clone(), self.tenant, self.job.id);
        let encoding = Encoding::parse(&self.job.encoding).unwrap_or(Encoding::Utf8);
        let delimiter = self.job.delimiter.bytes().next().unwrap_or(b',');
        tokio::spawn(async move {
            let mut decoder = TextDecoder::new(encoding);
            let mut splitter = RecordSplitter::new(delimiter);
            let mut text = String::new();
            for seq in 0.. {
                let chunk = match chunk(&app, tenant, id, seq).await {
                    Ok(chunk) => chunk,
                    Err(err) => {
                        // The database, not the file: the run is tried again from its cursor.
                        let _ = sender.send(Err(Unreadable::Now(err))).await;
                        return;
                    }
                };
                let last = chunk.is_none();
                text.clear();
                if let Err(e) = decoder.decode(chunk.as_deref().unwrap_or_default(), last, &mut text) {
                    let _ = sender.send(Err(Unreadable::File(format!("byte {} is not {} text", e.offset, e.encoding)))).await;
                    return;
                }
                let group = splitter.feed(&text, last);
                if (!group.is_empty() && sender.send(Ok(group)).await.is_err()) || last {
                    return;
                }
            }
        });
        Ok(rows)
    }

    /// The stored file, whole (an XLSX is read by seeking).
    async fn whole_file(&self) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::with_capacity(usize::try_from(self.job.size_bytes).unwrap_or(0));
        for seq in 0.. {
            match chunk(&self.app, self.tenant, self.job.id, seq).await? {
                Some(data) => bytes.extend_from_slice(&data),
                None => break,
            }
        }
        Ok(bytes)
    }
}

/// Why the file's rows stopped coming.
enum Unreadable {
    /// The file itself cannot be read on from here (the run fails, saying why).
    File(String),
    /// The database could not be read now (the run is tried again).
    Now(Error),
}

/// Chunk `seq` of job `id`'s stored file; None past the last.
async fn chunk(app: &App, tenant: Uuid, id: Uuid, seq: i32) -> Result<Option<Vec<u8>>, Error> {
    let mut tx = app.begin(tenant).await?;
    let chunk = jobs::chunk(&mut tx, tenant, id, seq).await?;
    tx.commit().await?;
    Ok(chunk)
}

/// The longest a batch waits for the one before it to commit.
const PREVIOUS_BATCH_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Rows handed from the file's reader to the row preparer at a time.
const ROWS_PER_GROUP: usize = 500;

/// A job's run as the worker holds it.
struct Run {
    tenant: Uuid,
    job: ImportJobRow,
    settings: Settings,
    mapping: Vec<ColumnMap>,
    token: Uuid,
    seen: Seen,
    /// How long the worker holds the job from each batch on before another may take it over.
    lease: Duration,
    /// Turns true when the service shuts down: the run stops between batches and lets another replica carry on at once.
    stop: watch::Receiver<bool>,
}

/// How a row ended in a batch.
enum Verdict {
    Refused(Vec<RowProblem>),
    Create(CustomerDraft),
    Update(Box<CustomerRow>, CustomerDraft),
    /// Matched a customer it would not change.
    Unchanged,
}

impl App {
    /// The running jobs whose lease has run out, across tenants.
    pub async fn imports_due(&self, now: DateTime<Utc>) -> Result<Vec<(Uuid, Uuid)>, Error> {
        jobs::due(&self.pool, now, 100).await
    }

    /// Takes job `id`'s lease and runs it to its end, a batch per
    /// transaction; returns quietly when another worker holds it, or when it
    /// is cancelled meanwhile. A batch that fails leaves the job to be tried
    /// again shortly (by any replica) from its last committed batch.
    pub async fn run_import(&self, tenant: Uuid, id: Uuid, lease: std::time::Duration, stop: watch::Receiver<bool>) -> Result<(), Error> {
        let lease = Duration::from_std(lease).unwrap_or(Duration::seconds(60));
        let token = Uuid::new_v4();
        let now = Utc::now();
        let mut tx = self.begin(tenant).await?;
        if !jobs::lease(&mut tx, tenant, id, token, now, now + lease).await? {
            return Ok(());
        }
        let job = jobs::job(&mut tx, tenant, id, false).await?.ok_or_else(|| IMPORT_JOB.not_found(id))?;
        tx.commit().await?;
        let Some(settings) = job.settings.as_ref().map(|s| s.0.clone()).filter(|_| job.state == "RUNNING") else {
            return Ok(());
        };
        let mapping = settings
            .mapping
            .iter()
            .filter_map(|(column, name)| Field::parse(name).map(|field| ColumnMap { column: *column, field }))
            .collect();
        // Sized for the file at once: growing a million-key table would hold the old and the new one together.
        let seen = Seen(HashMap::with_capacity(usize::try_from(job.total_rows).unwrap_or(0)));
        let mut run = Run { tenant, job, settings, mapping, token, seen, lease, stop };
        match self.read_through(&mut run).await {
            Ok(()) => Ok(()),
            Err(err) => {
                // Tried again soon from the last committed batch, by whichever replica comes first.
                let mut tx = self.begin(tenant).await?;
                jobs::release(&mut tx, tenant, id, token, Utc::now() + Duration::seconds(5)).await?;
                tx.commit().await?;
                Err(err)
            }
        }
    }

    /// Reads the job's file from its first chunk, skipping the rows before
    /// the cursor (remembering their keys), and writes the rest in batches.
    /// The file is read and its rows prepared one batch ahead, on a task of
    /// its own, while the previous batch is being written.
    async fn read_through(&self, run: &mut Run) -> Result<(), Error> {
        let (tenant, id) = (run.tenant, run.job.id);
        let refused: HashSet<i64> = {
            let mut tx = self.begin(tenant).await?;
            let rows = jobs::refused_rows(&mut tx, tenant, id, run.job.run, run.job.cursor_row).await?;
            tx.commit().await?;
            rows.into_iter().collect()
        };
        let (sender, mut pieces) = mpsc::channel(1);
        // The batches being written (at most two), and whether the last one committed.
        let mut writing: VecDeque<JoinHandle<Result<bool, Error>>> = VecDeque::new();
        let mut previous: Option<oneshot::Receiver<bool>> = None;
        let reader = Reader {
            app: self.clone(),
            tenant,
            job: run.job.clone(),
            mapping: run.mapping.clone(),
            settings: run.settings.clone(),
            refused,
        };
        tokio::spawn(reader.read(sender));
        while let Some(piece) = pieces.recv().await {
            match piece? {
                Piece::Judged(keys) => {
                    for (kind, key, number) in keys {
                        run.seen.remember(kind, &key, number);
                    }
                }
                Piece::Unreadable(message) => {
                    if !all_written(&mut writing).await? {
                        return Ok(());
                    }
                    return self.fail(run, &message).await;
                }
                Piece::Batch(batch) => {
                    if *run.stop.borrow() {
                        // What is being written commits; another replica carries on at once from there.
                        all_written(&mut writing).await?;
                        let mut tx = self.begin(tenant).await?;
                        jobs::release(&mut tx, tenant, id, run.token, Utc::now()).await?;
                        tx.commit().await?;
                        return Ok(());
                    }
                    let (task, committed) = self.start_batch(run, batch, previous.take()).await?;
                    previous = Some(committed);
                    writing.push_back(task);
                    if writing.len() > 1 && !written(writing.pop_front()).await? {
                        return Ok(());
                    }
                }
            }
        }
        if !all_written(&mut writing).await? {
            return Ok(());
        }
        let mut tx = self.begin(tenant).await?;
        if hold(&mut tx, &run.held()).await?.is_none() {
            return Ok(());
        }
        let ended = jobs::end(&mut tx, tenant, id, "SUCCEEDED", "", Utc::now()).await?;
        if !run.settings.dry_run {
            // A real run is done with the file: it is never imported again.
            jobs::delete_chunks(&mut tx, tenant, id).await?;
        }
        tx.commit().await?;
        tracing::info!(job = %id, rows = ended.rows_read, created = ended.rows_created, updated = ended.rows_updated, failed = ended.rows_failed,
            dry_run = run.settings.dry_run, "import finished");
        Ok(())
    }

    /// Ends the run FAILED with `message` (the file cannot be read through).
    async fn fail(&self, run: &Run, message: &str) -> Result<(), Error> {
        let mut tx = self.begin(run.tenant).await?;
        if hold(&mut tx, &run.held()).await?.is_some() {
            jobs::end(&mut tx, run.tenant, run.job.id, "FAILED", message, Utc::now()).await?;
            // A file that cannot be read through is never imported: its data is not kept.
            jobs::delete_chunks(&mut tx, run.tenant, run.job.id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Judges `rows` (in file order, after the batch before them was
    /// judged) and hands them to a task that writes them with their refused
    /// rows, event and the job's new cursor in one transaction — committed
    /// only once `previous` (the batch before) has committed, so that two
    /// batches are written at once but the cursor moves in file order. The
    /// task answers false (and sends false on the returned receiver) when
    /// the job is no longer this worker's to run or the batch before failed.
    async fn start_batch(
        &self,
        run: &mut Run,
        rows: Vec<Prepared>,
        previous: Option<oneshot::Receiver<bool>>,
    ) -> Result<(JoinHandle<Result<bool, Error>>, oneshot::Receiver<bool>), Error> {
        let now = Utc::now();
        let first = rows.first().map_or(0, |r| r.number);
        let mut tx = self.begin(run.tenant).await?;
        let (records, verdicts) = judge(&mut tx, run, rows, now).await?;
        let (done, committed) = oneshot::channel();
        let held = run.held();
        // The changes it writes are the starter's (field history names them), through this job.
        let origin = history_origin(&run.settings.started_by, held.job);
        let task = tokio::spawn(async move {
            let written = crm_kit::history::with_origin(origin, write(tx, &held, first, &records, verdicts, previous, now)).await;
            let _ = done.send(matches!(written, Ok(true)));
            written
        });
        Ok((task, committed))
    }
}

/// Whether the batch `task` writes committed (false: the job is no longer
/// this worker's to run, or the batch before it failed).
async fn written(task: Option<JoinHandle<Result<bool, Error>>>) -> Result<bool, Error> {
    match task {
        None => Ok(true),
        Some(task) => task.await.map_err(|e| Error::Internal(anyhow::anyhow!("an import batch's writer failed: {e}")))?,
    }
}

/// Whether every batch in `writing` committed, waiting for each in order.
async fn all_written(writing: &mut VecDeque<JoinHandle<Result<bool, Error>>>) -> Result<bool, Error> {
    let mut all = true;
    while let Some(task) = writing.pop_front() {
        all &= written(Some(task)).await?;
    }
    Ok(all)
}

/// The origin of an import's changes: who started it, and the job as the request.
fn history_origin(started_by: &str, job: Uuid) -> crm_kit::history::Origin {
    let actor = if started_by.is_empty() { format!("system:import/{job}") } else { started_by.to_owned() };
    crm_kit::history::Origin { actor, request_id: IMPORT_JOB.name(job) }
}

/// What a batch's writer needs of its run.
#[derive(Debug, Clone)]
struct Held {
    tenant: Uuid,
    job: Uuid,
    run: i32,
    token: Uuid,
    lease: Duration,
    dry_run: bool,
}

impl Run {
    fn held(&self) -> Held {
        Held {
            tenant: self.tenant,
            job: self.job.id,
            run: self.job.run,
            token: self.token,
            lease: self.lease,
            dry_run: self.settings.dry_run,
        }
    }
}

/// Locks the job and renews the lease: None when the job is no longer this
/// worker's to run (cancelled, or its lease taken over).
async fn hold(tx: &mut TenantTx, held: &Held) -> Result<Option<ImportJobRow>, Error> {
    let job = jobs::job(tx, held.tenant, held.job, true).await?;
    let Some(job) = job.filter(|j| j.state == "RUNNING" && j.run == held.run) else { return Ok(None) };
    let now = Utc::now();
    if !jobs::lease(tx, held.tenant, job.id, held.token, now, now + held.lease).await? {
        return Ok(None);
    }
    Ok(Some(job))
}

/// Writes a judged batch (unless a dry run) with its refused rows, its
/// event and the job's new cursor, committing after `previous` did.
async fn write(
    mut tx: TenantTx,
    held: &Held,
    first: i64,
    records: &[Record],
    verdicts: Vec<Verdict>,
    previous: Option<oneshot::Receiver<bool>>,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let tenant = held.tenant;
    let mut counts = BatchCounts {
        last_row: records.last().map_or(first, |r| i64::try_from(r.number).unwrap_or(i64::MAX)),
        read: records.len() as i64,
        ..BatchCounts::default()
    };
    let mut refused = Vec::new();
    let (mut creates, mut created_ids, mut updates) = (Vec::new(), Vec::new(), Vec::new());
    for (record, verdict) in records.iter().zip(verdicts) {
        match verdict {
            Verdict::Refused(problems) => {
                counts.failed += 1;
                refused.push(error_row(record, problems));
            }
            Verdict::Create(mut draft) => {
                counts.valid += 1;
                counts.created += 1;
                draft.consent.stamp(None, now);
                created_ids.push(Uuid::now_v7());
                creates.push(draft);
            }
            Verdict::Update(before, draft) => {
                counts.valid += 1;
                counts.updated += 1;
                updates.push((before, draft));
            }
            Verdict::Unchanged => counts.valid += 1,
        }
    }
    // First what no other batch's transaction can be waiting for: new rows only (and the stored
    // customers this batch alone matched, locked when it was judged).
    let mut updated_ids = Vec::with_capacity(updates.len());
    if !held.dry_run {
        store::imports::insert_customers(&mut tx, tenant, &created_ids, &creates, now).await?;
        for (before, draft) in updates {
            updated_ids.push(update(&mut tx, tenant, &before, &draft, now).await?);
        }
    }
    jobs::insert_errors(&mut tx, tenant, held.job, held.run, &refused).await?;
    // In file order: the batch before this one has committed (or this one is dropped, uncommitted).
    // Only then what two batches share — the tenant's scan mark, segment counts, the outbox — so that
    // no batch ever waits for a lock of the one after it, which waits for it to commit.
    if let Some(previous) = previous {
        // A wait that outlasts any batch means something holds both: give up this batch (the run is retried).
        match tokio::time::timeout(PREVIOUS_BATCH_WAIT, previous).await {
            Ok(Ok(true)) => {}
            Ok(_) => return Ok(false),
            Err(_) => {
                return Err(Error::Internal(anyhow::anyhow!("the batch before this one did not commit within {PREVIOUS_BATCH_WAIT:?}")));
            }
        }
    }
    if !held.dry_run {
        let touched: Vec<(Uuid, bool)> = created_ids.iter().chain(&updated_ids).map(|id| (*id, true)).collect();
        if !created_ids.is_empty() {
            // The duplicate scan keys and pairs the new customers, as it does every new customer.
            store::duplicates::start_scan(&mut tx, tenant).await?;
        }
        segments::refresh(&mut tx, tenant, &touched, now).await?;
        if !touched.is_empty() {
            let event = pb::CustomersImported {
                import_job: IMPORT_JOB.name(held.job),
                created: created_ids.iter().map(|id| CUSTOMER.name(*id)).collect(),
                updated: updated_ids.iter().map(|id| CUSTOMER.name(*id)).collect(),
            };
            outbox::append(&mut tx, tenant, &IMPORT_JOB.name(held.job), &event).await?;
        }
    }
    let Some(job) = hold(&mut tx, held).await? else { return Ok(false) };
    if job.cursor_row >= first {
        // Another lease wrote these rows already (this one was slow): leave the job to it.
        return Ok(false);
    }
    jobs::advance(&mut tx, tenant, held.job, &counts).await?;
    tx.commit().await?;
    Ok(true)
}

/// Writes one upserted customer (its claims, its columns, its field history) and returns its id.
async fn update(tx: &mut TenantTx, tenant: Uuid, before: &CustomerRow, draft: &CustomerDraft, now: DateTime<Utc>) -> Result<Uuid, Error> {
    let mut draft = draft.clone();
    draft.consent.stamp(Some(&before.consent.0), now);
    if changed_paths(before, &draft).iter().any(|p| p == "emails") {
        store::replace_emails(tx, tenant, before.id, &draft.email_addresses()).await?;
    }
    let after = store::update(tx, tenant, before.id, &draft, now).await?;
    let record = CUSTOMER.name(after.id);
    let change = history::Change { customer: after.id, record: &record, fields: super::customers::HISTORY_FIELDS, now };
    history::record(tx, tenant, change, Some(&customer_to_proto(before)), Some(&customer_to_proto(&after)), mask_pii).await?;
    Ok(after.id)
}

/// What becomes of each of `records`: checked alone and against the rows
/// before it in the file, then against the stored customers (matches,
/// email claims) in a few statements for the whole batch.
async fn judge(
    tx: &mut TenantTx,
    run: &mut Run,
    prepared: Vec<Prepared>,
    now: DateTime<Utc>,
) -> Result<(Vec<Record>, Vec<Verdict>), Error> {
    let settings = &run.settings;
    let mut records = Vec::with_capacity(prepared.len());
    let mut rows = Vec::with_capacity(prepared.len());
    let mut keys: Vec<Option<String>> = Vec::with_capacity(prepared.len());
    for p in prepared {
        records.push(p.record);
        rows.push((p.claims, p.row, p.alone));
        keys.push(p.key);
    }
    // The stored customers each row's key and emails name.
    let wanted: Vec<String> = keys.iter().flatten().cloned().collect();
    let owners: HashMap<String, Vec<Uuid>> = group(match settings.match_key {
        MatchKey::None => Vec::new(),
        MatchKey::Email => jobs::email_owners(tx, run.tenant, &wanted).await?,
        MatchKey::Phone => jobs::phone_owners(tx, run.tenant, &wanted).await?,
        MatchKey::ExternalId => jobs::external_id_owners(tx, run.tenant, &wanted).await?,
    });
    let matched: Vec<Uuid> = {
        let mut ids: Vec<Uuid> = keys.iter().flatten().filter_map(|k| owners.get(k)).filter(|o| o.len() == 1).map(|o| o[0]).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let stored: HashMap<Uuid, CustomerRow> = if settings.mode == Mode::Upsert && !matched.is_empty() {
        store::lock_many(tx, run.tenant, &matched).await?.into_iter().map(|c| (c.id, c)).collect()
    } else {
        HashMap::new()
    };
    let rename_needs_approval = settings.mode == Mode::Upsert && store::rename::approval_required(tx, run.tenant).await?;
    let mut verdicts = Vec::with_capacity(rows.len());
    // Email addresses are claimed by one live customer: the owners of every address the rows bring,
    // looked up first, so that a row is fully judged before its keys are remembered for the rows after it.
    let brought: Vec<String> =
        rows.iter().flat_map(|(claims, _, _)| claims.iter().filter(|(kind, _)| *kind == "email").map(|(_, e)| e.clone())).collect();
    let claimed: HashMap<String, Uuid> = jobs::email_owners(tx, run.tenant, &brought).await?.into_iter().collect();
    for ((record, (claims, row, alone)), key) in records.iter().zip(rows).zip(&keys) {
        let number = i64::try_from(record.number).unwrap_or(i64::MAX);
        if let Some((kind, first)) = claims.iter().find_map(|(kind, key)| run.seen.first(kind, key).map(|first| (*kind, first))) {
            let (field, what) =
                if kind == "email" { ("emails", "email address") } else { (key_field(settings.match_key), key_field(settings.match_key)) };
            verdicts.push(Verdict::Refused(vec![RowProblem {
                column: None,
                field: field.to_owned(),
                reason: "DUPLICATE_IN_FILE",
                message: format!("row {first} of the file has the same {what}; each customer once per file"),
            }]));
            continue;
        }
        let owners = key.as_ref().and_then(|k| owners.get(k)).cloned().unwrap_or_default();
        let verdict = match (settings.mode, owners.as_slice()) {
            (_, []) => match alone {
                Ok(draft) => Verdict::Create(draft),
                Err(problems) => Verdict::Refused(problems),
            },
            (Mode::CreateOnly, found) => Verdict::Refused(vec![RowProblem {
                column: None,
                field: key_field(settings.match_key).to_owned(),
                reason: "MATCHES_CUSTOMER",
                message: format!("{} has the same {}: use UPSERT to update it", CUSTOMER.name(found[0]), key_field(settings.match_key)),
            }]),
            (Mode::Upsert, [id]) => match stored.get(id) {
                None => Verdict::Refused(vec![RowProblem {
                    column: None,
                    field: key_field(settings.match_key).to_owned(),
                    reason: "MATCHES_CUSTOMER",
                    message: format!("{} was deleted meanwhile", CUSTOMER.name(*id)),
                }]),
                Some(before) => match row.map_or(alone, |row| row.into_draft(Some((customer_to_proto(before), settings)), now)) {
                    Err(problems) => Verdict::Refused(problems),
                    Ok(draft) => {
                        let changed = changed_paths(before, &draft);
                        if changed.is_empty() {
                            Verdict::Unchanged
                        } else if rename_needs_approval && changed.iter().any(|p| NAME_FIELDS.contains(&p.as_str())) {
                            Verdict::Refused(vec![RowProblem {
                                column: None,
                                field: "display_name".to_owned(),
                                reason: "RENAME_NEEDS_APPROVAL",
                                message: "renaming needs approval in this tenant: map no name column, or ask with a rename request"
                                    .to_owned(),
                            }])
                        } else {
                            Verdict::Update(Box::new(before.clone()), draft)
                        }
                    }
                },
            },
            (Mode::Upsert, found) => Verdict::Refused(vec![RowProblem {
                column: None,
                field: key_field(settings.match_key).to_owned(),
                reason: "AMBIGUOUS_MATCH",
                message: format!(
                    "{} customers have the same {} ({}, …): merge them first, or match by another key",
                    found.len(),
                    key_field(settings.match_key),
                    CUSTOMER.name(found[0])
                ),
            }]),
        };
        let verdict = refuse_taken_emails(verdict, &claimed);
        if !matches!(verdict, Verdict::Refused(_)) {
            for (kind, key) in &claims {
                run.seen.remember(kind, key, number);
            }
        }
        verdicts.push(verdict);
    }
    Ok((records, verdicts))
}

/// `verdict`, or a refusal when its customer would take an email address
/// another customer holds (`claimed`: address → owner).
fn refuse_taken_emails(verdict: Verdict, claimed: &HashMap<String, Uuid>) -> Verdict {
    let (draft, own) = match &verdict {
        Verdict::Create(draft) => (draft, None),
        Verdict::Update(before, draft) => (draft, Some(before.id)),
        _ => return verdict,
    };
    let taken = draft
        .emails
        .iter()
        .enumerate()
        .find_map(|(i, e)| claimed.get(&e.address).filter(|owner| Some(**owner) != own).map(|owner| (i, *owner)));
    match taken {
        None => verdict,
        Some((i, owner)) => Verdict::Refused(vec![RowProblem {
            column: None,
            field: format!("emails[{i}].address"),
            reason: "EMAIL_ALREADY_USED",
            message: format!("{} already uses this email address", CUSTOMER.name(owner)),
        }]),
    }
}

/// The customer field a match key reads.
fn key_field(key: MatchKey) -> &'static str {
    match key {
        MatchKey::Email | MatchKey::None => "email",
        MatchKey::Phone => "phone",
        MatchKey::ExternalId => "external_id",
    }
}

/// Pairs grouped by their first element.
fn group(pairs: Vec<(String, Uuid)>) -> HashMap<String, Vec<Uuid>> {
    let mut groups: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (key, id) in pairs {
        let ids = groups.entry(key).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    groups
}

/// A refused row as it is stored: its cells as the file had them and its problems.
fn error_row(record: &Record, problems: Vec<RowProblem>) -> ErrorRow {
    ErrorRow {
        row_number: i64::try_from(record.number).unwrap_or(i64::MAX),
        cells: sqlx::types::Json(record.cells.iter().take(MAX_COLUMNS).cloned().collect()),
        problems: sqlx::types::Json(
            problems
                .into_iter()
                .map(|p| StoredProblem { column: p.column, field: p.field, reason: p.reason.to_owned(), message: p.message })
                .collect(),
        ),
    }
}

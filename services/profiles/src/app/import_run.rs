//! Running an import job: its stored file is read again from the start,
//! chunk by chunk (constant memory), split into rows, and the rows after
//! the job's cursor are judged and written in batches. Each batch is ONE
//! transaction that writes its rows, its refused rows, its event and the
//! job's new cursor and counts together — so a replica killed mid-way
//! leaves the job at the end of its last committed batch, and whoever takes
//! the lease next carries on from there without writing a row twice.
//!
//! What a row is — how it reads, how a batch is judged against what is
//! stored and how it is written — is the job kind's ([`RowKind`]: customers
//! in `import_customers`, transactions in `import_transactions`, related
//! persons in `import_related_persons`, occupancies in
//! `import_occupancies`; whose a row is, for the last three, in
//! `import_whose`); the file,
//! the lease, the cursor, the refused rows and the batches' order are here.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
};

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};
use uuid::Uuid;

use super::{
    App,
    import_customers::CustomerRows,
    import_occupancies::OccupancyRows,
    import_related_persons::PersonRows,
    import_rows::{Claim, RowKind, Seen, Verdict},
    import_transactions::TransactionRows,
};
use crate::{
    domain::{
        import::{Encoding, Kind, MAX_COLUMNS, Record, RecordSplitter, Settings, TextDecoder},
        xlsx,
    },
    resources::IMPORT_JOB,
    store::imports::{self as jobs, BatchCounts, ErrorRow, ImportJobRow, StoredProblem},
    wire::import::RowProblem,
};

/// Rows judged and written per transaction.
pub const BATCH_ROWS: usize = 2_000;

/// A row read ahead of its batch: its record and the kind's reading of it.
struct Prepared<R> {
    number: i64,
    record: Record,
    claims: Vec<Claim>,
    row: R,
}

/// What the file's reader hands the batch writer.
enum Piece<R> {
    /// Rows an earlier lease judged and accepted: their claims (kind, key, row), for the duplicate checks.
    Judged(Vec<(&'static str, String, i64)>),
    /// The next rows to judge and write.
    Batch(Vec<Prepared<R>>),
    /// The file stopped being readable here (bytes that are not text in its encoding).
    Unreadable(String),
}

/// Reads a job's stored file from its first chunk: decodes it, splits it
/// into rows and reads each as its kind does, a batch ahead of the writer.
struct Reader<K> {
    app: App,
    tenant: Uuid,
    job: ImportJobRow,
    kind: Arc<K>,
    /// The rows before the cursor that the earlier leases refused.
    refused: HashSet<i64>,
}

impl<K: RowKind> Reader<K> {
    /// Sends the file's pieces to `pieces` until the end, an error, or the writer stops listening.
    async fn read(self, pieces: mpsc::Sender<Result<Piece<K::Row>, Error>>) {
        if let Err(err) = self.read_pieces(&pieces).await {
            let _ = pieces.send(Err(err)).await;
        }
    }

    async fn read_pieces(&self, pieces: &mpsc::Sender<Result<Piece<K::Row>, Error>>) -> Result<(), Error> {
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
                if number <= cursor {
                    // Judged by an earlier lease: only what it accepted is remembered, for the duplicate checks.
                    if !self.refused.contains(&number) {
                        judged.extend(self.kind.claims(&cells).into_iter().map(|(kind, key)| (kind, key, number)));
                    }
                    if judged.len() >= BATCH_ROWS && pieces.send(Ok(Piece::Judged(std::mem::take(&mut judged)))).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                if !judged.is_empty() && pieces.send(Ok(Piece::Judged(std::mem::take(&mut judged)))).await.is_err() {
                    return Ok(());
                }
                let (claims, row) = self.kind.read(&cells, Utc::now());
                batch.push(Prepared { number, record, claims, row });
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
struct Run<K> {
    tenant: Uuid,
    job: ImportJobRow,
    settings: Settings,
    kind: Arc<K>,
    token: Uuid,
    seen: Seen,
    /// How long the worker holds the job from each batch on before another may take it over.
    lease: Duration,
    /// Turns true when the service shuts down: the run stops between batches and lets another replica carry on at once.
    stop: watch::Receiver<bool>,
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
        // Sized for the file at once: growing a million-key table would hold the old and the new one together.
        let seen = Seen::with_capacity(usize::try_from(job.total_rows).unwrap_or(0));
        match Kind::parse(&job.kind) {
            Kind::Customers => {
                let kind = Arc::new(CustomerRows::new(&settings));
                self.run_kind(Run { tenant, job, settings, kind, token, seen, lease, stop }).await
            }
            Kind::Transactions => {
                let kind = Arc::new(TransactionRows::new(&settings));
                self.run_kind(Run { tenant, job, settings, kind, token, seen, lease, stop }).await
            }
            Kind::RelatedPersons => {
                let kind = Arc::new(PersonRows::new(&settings));
                self.run_kind(Run { tenant, job, settings, kind, token, seen, lease, stop }).await
            }
            Kind::Occupancies => {
                let kind = Arc::new(OccupancyRows::new(&settings));
                self.run_kind(Run { tenant, job, settings, kind, token, seen, lease, stop }).await
            }
        }
    }

    /// Runs `run` to its end; a failure leaves the job to be tried again soon.
    async fn run_kind<K: RowKind>(&self, mut run: Run<K>) -> Result<(), Error> {
        let (tenant, id, token) = (run.tenant, run.job.id, run.token);
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
    async fn read_through<K: RowKind>(&self, run: &mut Run<K>) -> Result<(), Error> {
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
        let reader = Reader { app: self.clone(), tenant, job: run.job.clone(), kind: run.kind.clone(), refused };
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
    async fn fail<K: RowKind>(&self, run: &Run<K>, message: &str) -> Result<(), Error> {
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
    async fn start_batch<K: RowKind>(
        &self,
        run: &mut Run<K>,
        rows: Vec<Prepared<K::Row>>,
        previous: Option<oneshot::Receiver<bool>>,
    ) -> Result<(JoinHandle<Result<bool, Error>>, oneshot::Receiver<bool>), Error> {
        let now = Utc::now();
        let first = rows.first().map_or(0, |r| r.number);
        let mut tx = self.begin(run.tenant).await?;
        let mut records = Vec::with_capacity(rows.len());
        let judged: Vec<(i64, Vec<Claim>, K::Row)> = rows
            .into_iter()
            .map(|p| {
                records.push(p.record);
                (p.number, p.claims, p.row)
            })
            .collect();
        let verdicts = run.kind.judge(&mut tx, run.tenant, &mut run.seen, judged, now).await?;
        let kind = run.kind.clone();
        let (done, committed) = oneshot::channel();
        let held = run.held();
        // The changes it writes are the starter's (field history names them), through this job.
        let origin = history_origin(&run.settings.started_by, held.job);
        let task = tokio::spawn(async move {
            let written = crm_kit::history::with_origin(origin, write(&*kind, tx, &held, first, &records, verdicts, previous, now)).await;
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

impl<K> Run<K> {
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
#[allow(clippy::too_many_arguments)]
async fn write<K: RowKind>(
    kind: &K,
    mut tx: TenantTx,
    held: &Held,
    first: i64,
    records: &[Record],
    verdicts: Vec<Verdict<K::Write>>,
    previous: Option<oneshot::Receiver<bool>>,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let tenant = held.tenant;
    let mut counts = BatchCounts {
        last_row: records.last().map_or(first, |r| i64::try_from(r.number).unwrap_or(i64::MAX)),
        read: records.len() as i64,
        ..BatchCounts::default()
    };
    let (mut refused, mut writes) = (Vec::new(), Vec::new());
    for (record, verdict) in records.iter().zip(verdicts) {
        match verdict {
            Verdict::Refused(problems) => {
                counts.failed += 1;
                refused.push(error_row(record, problems));
            }
            Verdict::Unchanged => counts.valid += 1,
            Verdict::Write(write) => {
                counts.valid += 1;
                if K::creates(&write) {
                    counts.created += 1;
                } else {
                    counts.updated += 1;
                }
                writes.push(write);
            }
        }
    }
    // First what no other batch's transaction can be waiting for (new rows, and the stored
    // records this batch alone holds, locked when it was judged).
    let written = if held.dry_run { None } else { Some(kind.write(&mut tx, tenant, writes, now).await?) };
    jobs::insert_errors(&mut tx, tenant, held.job, held.run, &refused).await?;
    // In file order: the batch before this one has committed (or this one is dropped, uncommitted).
    // Only then what two batches share — so that no batch ever waits for a lock of the one after
    // it, which waits for it to commit.
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
    if let Some(written) = written {
        kind.announce(&mut tx, tenant, held.job, written, now).await?;
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

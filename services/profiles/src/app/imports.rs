//! Import jobs: the upload (the file checked, stored and its header read as
//! it streams in), starting and cancelling runs, and the reads of jobs and
//! refused rows. The rows themselves are judged and written by
//! [`super::import_run`], batch by batch.

use chrono::{DateTime, Utc};
use crm_kit::Error;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::App;
use crate::{
    domain::{
        import::{
            Encoding, FileKind, Kind, MAX_RECORD_BYTES, RecordSplitter, Settings, TextDecoder, detect, detect_delimiter, sniff, suggest,
        },
        occupancy_import, related_person_import, transaction_import, xlsx,
    },
    resources::IMPORT_JOB,
    store::imports::{self as store, ErrorRow, ImportJobRow, NewJob},
};

/// Bytes of the file kept per stored chunk.
const CHUNK_BYTES: usize = 1 << 20;

/// What the first message of an upload says.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    pub kind: Kind,
    pub file_name: String,
    /// Declared; None: detected from the first chunk.
    pub encoding: Option<Encoding>,
    pub request_id: String,
    pub actor: String,
    /// The largest file accepted, in bytes.
    pub max_bytes: u64,
    /// The largest XLSX accepted (read whole, in memory).
    pub max_xlsx_bytes: u64,
    /// The size the client says the file has, if it does.
    pub declared_size: Option<u64>,
    /// XLSX: the sheet to import; empty: the first.
    pub sheet: String,
}

/// The file as it streamed in: counted, hashed, decoded and split into
/// records, so that it is refused as soon as something is wrong with it.
struct Reading {
    size: u64,
    max_bytes: u64,
    sha: Sha256,
    head: Vec<u8>,
    decoder: Option<(TextDecoder, Encoding)>,
    declared: Option<Encoding>,
    text: String,
    splitter: Option<(RecordSplitter, u8)>,
    headers: Option<Vec<String>>,
    records: u64,
    /// An XLSX, kept whole until the upload ends (a ZIP is read by seeking), and its size limit.
    xlsx: Option<Vec<u8>>,
    max_xlsx_bytes: u64,
}

impl Reading {
    fn new(declared: Option<Encoding>, (max_bytes, max_xlsx_bytes): (u64, u64)) -> Self {
        Self {
            xlsx: None,
            max_xlsx_bytes,
            size: 0,
            max_bytes,
            sha: Sha256::new(),
            head: Vec::new(),
            decoder: None,
            declared,
            text: String::new(),
            splitter: None,
            headers: None,
            records: 0,
        }
    }

    /// Takes the next bytes (`last`: the file ended), refusing the file at the first sign it is not a CSV we can read.
    fn take(&mut self, bytes: &[u8], last: bool) -> Result<(), Error> {
        self.size += bytes.len() as u64;
        if self.size > self.max_bytes {
            return Err(too_large(self.max_bytes));
        }
        self.sha.update(bytes);
        if let Some(xlsx) = self.xlsx.as_mut() {
            if self.size > self.max_xlsx_bytes {
                return Err(too_large_xlsx(self.max_xlsx_bytes));
            }
            xlsx.extend_from_slice(bytes);
            return Ok(());
        }
        if self.decoder.is_none() {
            // What the file is and its encoding are judged on its first 64 KiB (or all of it, if smaller).
            self.head.extend_from_slice(bytes);
            if self.head.len() < 64 * 1024 && !last {
                return Ok(());
            }
            let head = std::mem::take(&mut self.head);
            if check_kind(&head)? == FileKind::Xlsx {
                if self.size > self.max_xlsx_bytes {
                    return Err(too_large_xlsx(self.max_xlsx_bytes));
                }
                self.xlsx = Some(head);
                return Ok(());
            }
            let encoding = self.declared.unwrap_or_else(|| detect(&head, last));
            self.decoder = Some((TextDecoder::new(encoding), encoding));
            return self.decode(&head, last);
        }
        self.decode(bytes, last)
    }

    fn decode(&mut self, bytes: &[u8], last: bool) -> Result<(), Error> {
        let Some((decoder, encoding)) = self.decoder.as_mut() else { return Ok(()) };
        decoder.decode(bytes, last, &mut self.text).map_err(|e| {
            Error::invalid(
                "file",
                "NOT_TEXT",
                format!(
                    "byte {} is not {} text: declare the file's encoding (e.g. encoding=GBK for a Chinese Excel export) or save it as UTF-8 CSV",
                    e.offset,
                    encoding.as_str()
                ),
            )
        })?;
        if self.splitter.is_none() {
            // The delimiter is read from the whole first line.
            let Some(end) = self.text.find('\n').or(last.then_some(self.text.len())) else { return Ok(()) };
            let delimiter = detect_delimiter(&self.text[..end]);
            self.splitter = Some((RecordSplitter::new(delimiter), delimiter));
        }
        if self.text.contains('\0') {
            return Err(Error::invalid(
                "file",
                "NOT_TEXT",
                "the file holds a NUL character, which no spreadsheet text has: it is not a CSV file",
            ));
        }
        let Some((splitter, _)) = self.splitter.as_mut() else { return Ok(()) };
        for record in splitter.feed(&self.text, last) {
            self.records += 1;
            if self.headers.is_none() {
                self.headers = Some(record.cells.iter().map(|c| c.trim().to_owned()).collect());
            }
        }
        self.text.clear();
        if splitter.pending_bytes() > MAX_RECORD_BYTES {
            return Err(Error::invalid(
                "file",
                "ROW_TOO_LARGE",
                format!(
                    "row {} runs over {MAX_RECORD_BYTES} bytes — a quote opened and never closed? Fix the file and upload it again",
                    self.records + 1
                ),
            ));
        }
        Ok(())
    }
}

/// FILE_TOO_LARGE: over `max_bytes`.
fn too_large(max_bytes: u64) -> Error {
    Error::invalid("file", "FILE_TOO_LARGE", format!("the file is over the limit of {max_bytes} bytes; split it into smaller files"))
}

/// FILE_TOO_LARGE for an XLSX over `max_bytes`.
fn too_large_xlsx(max_bytes: u64) -> Error {
    Error::invalid(
        "file",
        "FILE_TOO_LARGE",
        format!(
            "an XLSX is read whole, in memory, and this one is over the limit of {max_bytes} bytes; save it as CSV (which streams) or split it"
        ),
    )
}

/// What a file is (CSV or XLSX) by its first bytes, or why it is refused.
fn check_kind(head: &[u8]) -> Result<FileKind, Error> {
    let (reason, message) = match sniff(head) {
        FileKind::Csv if head.is_empty() => ("EMPTY_FILE", "the file is empty"),
        kind @ (FileKind::Csv | FileKind::Xlsx) => return Ok(kind),
        FileKind::Encrypted => {
            ("ENCRYPTED_FILE", "the file is password-protected (or a legacy .xls): remove the password, save it as CSV and upload that")
        }
        FileKind::Binary => ("NOT_A_SPREADSHEET", "the file is neither CSV nor XLSX"),
    };
    Err(Error::invalid("file", reason, message))
}

impl App {
    /// Stores an uploaded file as an UPLOADED job with its header and the
    /// suggested mapping, all in one transaction (a broken upload leaves
    /// nothing). The same request id again answers the job it made, if the
    /// file is the same (ALREADY_EXISTS otherwise).
    pub async fn upload(
        &self,
        tenant: Uuid,
        upload: Upload,
        mut chunks: impl Stream<Item = Result<Vec<u8>, Error>> + Unpin,
        now: DateTime<Utc>,
    ) -> Result<ImportJobRow, Error> {
        let id = Uuid::now_v7();
        if upload.declared_size.is_some_and(|size| size > upload.max_bytes) {
            return Err(too_large(upload.max_bytes));
        }
        let mut reading = Reading::new(upload.encoding, (upload.max_bytes, upload.max_xlsx_bytes));
        let mut tx = self.begin(tenant).await?;
        let earlier = match upload.request_id.as_str() {
            "" => None,
            request_id => store::job_by_request(&mut tx, tenant, request_id).await?,
        };
        let mut pending: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
        let mut seq = 0;
        while let Some(bytes) = chunks.next().await {
            let bytes = bytes?;
            if earlier.is_some() {
                // Only its hash is wanted: is it the same file? (Still no larger than any file may be.)
                reading.size += bytes.len() as u64;
                if reading.size > upload.max_bytes {
                    return Err(too_large(upload.max_bytes));
                }
                reading.sha.update(&bytes);
                continue;
            }
            reading.take(&bytes, false)?;
            pending.extend_from_slice(&bytes);
            while pending.len() >= CHUNK_BYTES {
                let rest = pending.split_off(CHUNK_BYTES);
                store::put_chunk(&mut tx, tenant, id, seq, &pending).await?;
                seq += 1;
                pending = rest;
            }
        }
        if let Some(declared) = upload.declared_size.filter(|size| *size != reading.size) {
            return Err(Error::invalid(
                "size_bytes",
                "UPLOAD_INCOMPLETE",
                format!("the stream carried {} of the {declared} bytes declared; nothing was kept: upload the file again", reading.size),
            ));
        }
        if let Some(job) = earlier {
            return same_file(job, &hex::encode(reading.sha.clone().finalize()));
        }
        reading.take(&[], true)?;
        if !pending.is_empty() {
            store::put_chunk(&mut tx, tenant, id, seq, &pending).await?;
        }
        let mut sheet = String::new();
        if let Some(xlsx) = reading.xlsx.take() {
            let (name, headers, records) = read_sheet(xlsx, upload.sheet.clone()).await?;
            (sheet, reading.headers, reading.records) = (name, headers, records);
        }
        let Some(headers) = reading.headers.take() else {
            return Err(Error::invalid("file", "EMPTY_FILE", "the file has no header row"));
        };
        let sha256 = hex::encode(reading.sha.clone().finalize());
        let suggested: Vec<(usize, String, f32)> = match upload.kind {
            Kind::Customers => suggest(&headers)
                .into_iter()
                .map(|s| (s.column, s.field.map(|f| f.name().into_owned()).unwrap_or_default(), s.confidence))
                .collect(),
            Kind::Transactions => transaction_import::suggest(&headers)
                .into_iter()
                .map(|s| (s.column, s.field.map_or("", |f| f.name()).to_owned(), s.confidence))
                .collect(),
            Kind::RelatedPersons => related_person_import::suggest(&headers)
                .into_iter()
                .map(|s| (s.column, s.field.map_or("", |f| f.name()).to_owned(), s.confidence))
                .collect(),
            Kind::Occupancies => occupancy_import::suggest(&headers)
                .into_iter()
                .map(|s| (s.column, s.field.map_or("", |f| f.name()).to_owned(), s.confidence))
                .collect(),
        };
        let xlsx = !sheet.is_empty();
        let delimiter = if xlsx { String::new() } else { (reading.splitter.as_ref().map_or(b',', |(_, d)| *d) as char).to_string() };
        let encoding = if xlsx { "" } else { reading.decoder.as_ref().map_or("UTF-8", |(_, e)| e.as_str()) };
        let job = NewJob {
            id,
            kind: upload.kind.as_str(),
            file_name: &upload.file_name,
            format: if xlsx { "XLSX" } else { "CSV" },
            encoding,
            delimiter: &delimiter,
            sheet: &sheet,
            size_bytes: i64::try_from(reading.size).unwrap_or(i64::MAX),
            sha256: &sha256,
            total_rows: i64::try_from(reading.records.saturating_sub(1)).unwrap_or(i64::MAX),
            headers: &headers,
            suggested: &suggested,
            actor: &upload.actor,
            request_id: &upload.request_id,
            now,
        };
        let stored = match store::insert_job(&mut tx, tenant, &job).await {
            Ok(stored) => stored,
            // A concurrent upload with the same request id won: the same job, if the same file.
            Err(Error::AlreadyExists { .. }) if !upload.request_id.is_empty() => {
                drop(tx);
                let mut tx = self.begin(tenant).await?;
                let job = store::job_by_request(&mut tx, tenant, &upload.request_id).await?.ok_or_else(|| IMPORT_JOB.not_found(id))?;
                tx.commit().await?;
                return same_file(job, &sha256);
            }
            Err(err) => return Err(err),
        };
        tx.commit().await?;
        tracing::info!(job = %stored.id, bytes = stored.size_bytes, rows = stored.total_rows, "import file uploaded");
        Ok(stored)
    }

    /// Starts a run of job `id` with `settings` (checked against its columns
    /// by the caller): the job must be UPLOADED, or its last run a dry run
    /// that is not running.
    pub async fn start_import(&self, tenant: Uuid, id: Uuid, settings: &Settings, now: DateTime<Utc>) -> Result<ImportJobRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let job = store::job(&mut tx, tenant, id, true).await?.ok_or_else(|| IMPORT_JOB.not_found(id))?;
        let last_was_dry = job.settings.as_ref().is_some_and(|s| s.dry_run);
        let refusal = match job.state.as_str() {
            _ if job.purge_time.is_some() => Some(("FILE_EXPIRED", "the file was deleted after the retention period; upload it again")),
            "UPLOADED" => None,
            "RUNNING" => Some(("JOB_RUNNING", "the job is running; wait for it to end, or cancel it")),
            "SUCCEEDED" if last_was_dry => None,
            "SUCCEEDED" => Some(("ALREADY_IMPORTED", "the file was imported already; a file is imported once (upload a new one)")),
            "CANCELLED" => Some(("JOB_CANCELLED", "the job was cancelled; upload the file again to import it")),
            _ => Some(("JOB_FAILED", "the file could not be read through; fix it and upload it again")),
        };
        if let Some((reason, message)) = refusal {
            return Err(Error::FailedPrecondition { reason, message: message.to_owned(), subject: IMPORT_JOB.name(id) });
        }
        store::delete_errors(&mut tx, tenant, id).await?;
        let started = store::start(&mut tx, tenant, id, settings, now).await?;
        tx.commit().await?;
        tracing::info!(job = %id, run = started.run, dry_run = settings.dry_run, "import started");
        Ok(started)
    }

    /// Cancels job `id` (UPLOADED or RUNNING); cancelling a cancelled job answers it as it is.
    pub async fn cancel_import(&self, tenant: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<ImportJobRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let job = store::job(&mut tx, tenant, id, true).await?.ok_or_else(|| IMPORT_JOB.not_found(id))?;
        let job = match job.state.as_str() {
            "UPLOADED" | "RUNNING" => {
                let cancelled = store::end(&mut tx, tenant, id, "CANCELLED", "", now).await?;
                store::delete_chunks(&mut tx, tenant, id).await?;
                cancelled
            }
            "CANCELLED" => job,
            state => {
                return Err(Error::FailedPrecondition {
                    reason: "JOB_ENDED",
                    message: format!("the job has ended ({state}); there is nothing to cancel"),
                    subject: IMPORT_JOB.name(id),
                });
            }
        };
        tx.commit().await?;
        Ok(job)
    }

    /// Deletes the stored files and refused rows of up to `limit` jobs that
    /// ended (or were uploaded and never started) more than `retention` ago,
    /// across tenants; how many jobs were purged.
    pub async fn purge_imports(&self, retention: std::time::Duration, now: DateTime<Utc>, limit: i64) -> Result<usize, Error> {
        let before = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
        let mut purged = 0;
        for (tenant, id) in store::purge_due(&self.pool, before, limit).await? {
            let mut tx = self.begin(tenant).await?;
            if store::purge(&mut tx, tenant, id, before, now).await? {
                purged += 1;
            }
            tx.commit().await?;
        }
        if purged > 0 {
            tracing::info!(jobs = purged, "import files and refused rows past their retention deleted");
        }
        Ok(purged)
    }

    /// Job `id`, or NOT_FOUND.
    pub async fn import_job(&self, tenant: Uuid, id: Uuid) -> Result<ImportJobRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let job = store::job(&mut tx, tenant, id, false).await?.ok_or_else(|| IMPORT_JOB.not_found(id))?;
        tx.commit().await?;
        Ok(job)
    }

    /// A page of the tenant's jobs, newest first.
    pub async fn import_jobs(&self, tenant: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<ImportJobRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let jobs = store::jobs(&mut tx, tenant, after, limit).await?;
        tx.commit().await?;
        Ok(jobs)
    }

    /// Job `id` and a page of its current run's refused rows after row `after`.
    pub async fn import_errors(&self, tenant: Uuid, id: Uuid, after: i64, limit: i64) -> Result<(ImportJobRow, Vec<ErrorRow>), Error> {
        let mut tx = self.begin(tenant).await?;
        let job = store::job(&mut tx, tenant, id, false).await?.ok_or_else(|| IMPORT_JOB.not_found(id))?;
        let rows = store::errors(&mut tx, tenant, id, job.run, after, limit).await?;
        tx.commit().await?;
        Ok((job, rows))
    }
}

/// The sheet of an uploaded XLSX that will be imported (`sheet`, or the
/// first): its name, its header row and how many rows it has, read on a
/// blocking thread; INVALID_ARGUMENT when the workbook cannot be read or has no such sheet.
async fn read_sheet(bytes: Vec<u8>, sheet: String) -> Result<(String, Option<Vec<String>>, u64), Error> {
    let read = tokio::task::spawn_blocking(move || {
        xlsx::check_expansion(&bytes, xlsx::EXPANSION_LIMITS)?;
        let (mut headers, mut records) = (None, 0u64);
        let name = xlsx::read_rows(&bytes, Some(&sheet), |record| {
            records += 1;
            headers.get_or_insert_with(|| record.cells.iter().map(|c| c.trim().to_owned()).collect::<Vec<_>>());
            true
        });
        name.map(|name| (name, headers, records))
    })
    .await
    .map_err(|e| Error::Internal(anyhow::anyhow!("reading the sheet failed: {e}")))?;
    read.map_err(|e| match e {
        xlsx::SheetError::NoSuchSheet { .. } => Error::invalid("sheet", "SHEET_NOT_FOUND", e.to_string()),
        xlsx::SheetError::NoSheet => Error::invalid("file", "EMPTY_FILE", e.to_string()),
        xlsx::SheetError::Unreadable(_) => Error::invalid("file", "UNREADABLE_XLSX", e.to_string()),
        xlsx::SheetError::TooLarge { .. } => Error::invalid("file", "XLSX_TOO_LARGE", e.to_string()),
    })
}

/// `job` when the file just uploaded under its request id is the same (`sha256`); ALREADY_EXISTS otherwise.
fn same_file(job: ImportJobRow, sha256: &str) -> Result<ImportJobRow, Error> {
    if job.sha256 == sha256 {
        return Ok(job);
    }
    Err(Error::AlreadyExists {
        reason: "REQUEST_ID_REUSED",
        message: format!("request_id was used for another file ({}); use a new request id for a new file", IMPORT_JOB.name(job.id)),
        resource_type: IMPORT_JOB.type_name,
        name: IMPORT_JOB.name(job.id),
    })
}

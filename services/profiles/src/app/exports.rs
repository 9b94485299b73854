//! Exports: the audit entry written before the first byte (no entry, no
//! export); the rows read in keyset pages, each page its own short
//! transaction (a slow reader never holds a connection), the next page read
//! while the last is written; the rows written into the sheet on a blocking
//! thread (formatting a million rows is CPU work that must not stall the
//! runtime's workers) and sent in chunks as they fill; the entry finished
//! with what was sent. Memory stays at a page of rows and a chunk of bytes
//! or two, whatever the export's size.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_kit::{Error, filter::CheckedFilter};
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use super::App;
use crate::{
    domain::{
        export::{CustomerColumn, TransactionColumn},
        sheet::SheetWriter,
    },
    resources::{EXPORT, SEGMENT},
    store::{
        self, CustomerRow, KeyValue, ListQuery, SortKey,
        exports::{self as exports_store, EXPORTS, ExportRow},
        segments::SEGMENTS,
        transactions::TransactionRow,
    },
    wire::exports::{write_customer, write_transaction},
};

/// Rows read per page (per transaction).
pub const PAGE_ROWS: i64 = 5_000;
/// Bytes gathered before they are sent as one chunk.
pub const CHUNK_BYTES: usize = 256 << 10;
/// How long a caller may leave a chunk unread before the export is given up
/// (a client that stops reading but keeps its connection alive would hold
/// the export's thread and buffers for ever).
pub const STALL: Duration = Duration::from_secs(60);

/// Which customers an export takes, in which order.
pub struct CustomerSelection {
    pub filter: CheckedFilter,
    pub order: Vec<(SortKey, bool)>,
    pub segment: Option<Uuid>,
    pub show_deleted: bool,
    pub show_disabled: bool,
}

/// What an export reads and which columns it writes.
pub enum Selection {
    /// Customers; `pii`: personal cells unmasked.
    Customers { selection: CustomerSelection, columns: Vec<CustomerColumn>, pii: bool },
    /// Transactions that occurred in [start, end).
    Transactions { range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>), columns: Vec<TransactionColumn> },
}

/// A page of rows read, or the end of them.
enum Page {
    Customers(Vec<CustomerRow>),
    Transactions(Vec<TransactionRow>),
    /// Every row was read: a reader that stops without saying so has failed.
    End,
}

/// Why an export stopped short.
enum Stop {
    /// The caller went away or stopped reading.
    CallerGone,
    /// Reading or writing failed.
    Failed(Error),
}

/// What an export sent: rows (all of whose bytes were handed on) and bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    rows: i64,
    bytes: i64,
}

impl App {
    /// Writes the audit entry of an export about to begin (RUNNING); NOT_FOUND when its segment does not exist.
    pub async fn begin_export(&self, tenant: Uuid, entry: &ExportRow) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(segment) = entry.segment_id {
            SEGMENTS
                .find::<store::segments::SegmentRow>(&mut tx, tenant, segment, false)
                .await?
                .ok_or_else(|| SEGMENT.not_found(segment))?;
        }
        exports_store::insert(&mut tx, tenant, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Export `id`'s audit entry.
    pub async fn export_entry(&self, tenant: Uuid, id: Uuid) -> Result<ExportRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = EXPORTS.find(&mut tx, tenant, id, false).await?.ok_or_else(|| EXPORT.not_found(id))?;
        tx.commit().await?;
        Ok(row)
    }

    /// Records every `every` that export `id` is still running, until aborted
    /// (a beat that fails is tried at the next one).
    pub async fn beat_export(self, tenant: Uuid, id: Uuid, every: std::time::Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let beat = async {
                let mut tx = self.begin(tenant).await?;
                exports_store::beat(&mut tx, tenant, id, Utc::now()).await?;
                tx.commit().await?;
                Ok::<_, Error>(())
            };
            if let Err(error) = beat.await {
                tracing::warn!(export = %EXPORT.name(id), %error, "an export's heartbeat failed");
            }
        }
    }

    /// Ends FAILED the entries of running exports without a heartbeat for
    /// `stale` (their process died), at most `limit`; how many.
    pub async fn end_abandoned_exports(&self, stale: std::time::Duration, now: DateTime<Utc>, limit: i64) -> Result<usize, Error> {
        let before = now - chrono::Duration::from_std(stale).unwrap_or(chrono::Duration::minutes(5));
        let mut ended = 0;
        for (tenant, id) in exports_store::abandoned(&self.pool, before, limit).await? {
            let mut tx = self.begin(tenant).await?;
            let message = "the service streaming it stopped (no heartbeat); what was sent before is unknown — export again";
            if exports_store::end_abandoned(&mut tx, tenant, id, before, message, now).await? {
                ended += 1;
                tracing::warn!(export = %EXPORT.name(id), "an export abandoned by a stopped replica ended FAILED");
            }
            tx.commit().await?;
        }
        Ok(ended)
    }

    /// A page of audit entries, newest first.
    pub async fn export_entries(&self, tenant: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<ExportRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = exports_store::page(&mut tx, tenant, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Runs export `id` (its entry begun): reads what `selection` selects,
    /// writes it into `sheet`, sends the bytes down `out` (a read error is
    /// sent too, ending the stream), and finishes the entry with what was
    /// sent. Returns when the export is over.
    pub async fn run_export(
        &self,
        tenant: Uuid,
        id: Uuid,
        selection: Selection,
        sheet: SheetWriter,
        out: mpsc::Sender<Result<Vec<u8>, Error>>,
    ) {
        let (pages_in, pages) = mpsc::channel(1);
        let (columns, reading) = match selection {
            Selection::Customers { selection, columns, pii } => (
                Columns::Customers(columns, pii),
                tokio::spawn(read_customers(self.clone(), tenant, selection, pages_in).in_current_span()),
            ),
            Selection::Transactions { range, columns } => {
                (Columns::Transactions(columns), tokio::spawn(read_transactions(self.clone(), tenant, range, pages_in).in_current_span()))
            }
        };
        // The writer hands chunks to this task, which gives the caller STALL to take each; past that the
        // writer's next hand-over fails and the export ends as abandoned.
        let (chunks_in, mut chunks) = mpsc::channel::<Vec<u8>>(1);
        let forward_out = out.clone();
        let forwarding = tokio::spawn(async move {
            while let Some(chunk) = chunks.recv().await {
                if forward_out.send_timeout(Ok(chunk), STALL).await.is_err() {
                    return;
                }
            }
        });
        let writing = tokio::task::spawn_blocking(move || write_pages(pages, sheet, &columns, &chunks_in));
        let (sent, stop) = match writing.await {
            Ok(outcome) => outcome,
            Err(e) => (Sent::default(), Some(Stop::Failed(Error::internal(anyhow::anyhow!("the export's writer failed: {e}"))))),
        };
        // The reader stops by itself once the writer is gone; a reader blocked in a query is dropped here.
        reading.abort();
        let failure = match &stop {
            None => None,
            Some(Stop::CallerGone) => Some(format!("the caller went away or stopped reading after {} rows", sent.rows)),
            Some(Stop::Failed(error)) => Some(error.to_string()),
        };
        let _ = forwarding.await;
        if let Some(Stop::Failed(error)) = stop {
            // The caller learns why the file ends here, if it is still reading.
            let _ = out.send_timeout(Err(error), STALL).await;
        }
        tracing::info!(export = %EXPORT.name(id), rows = sent.rows, bytes = sent.bytes, failed = failure.is_some(), "export finished");
        let finished = async {
            let mut tx = self.begin(tenant).await?;
            exports_store::finish(&mut tx, tenant, id, (sent.rows, sent.bytes), failure.as_deref(), Utc::now()).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        if let Err(error) = finished.await {
            tracing::warn!(export = %EXPORT.name(id), %error, "the export's audit entry could not be finished; it stays RUNNING");
        }
    }
}

/// The columns a page's rows are written as.
enum Columns {
    Customers(Vec<CustomerColumn>, bool),
    Transactions(Vec<TransactionColumn>),
}

/// Writes pages as they arrive and hands the bytes on in chunks; what was
/// handed on, and why it stopped short if it did.
fn write_pages(
    mut pages: mpsc::Receiver<Result<Page, Error>>,
    mut sheet: SheetWriter,
    columns: &Columns,
    chunks: &mpsc::Sender<Vec<u8>>,
) -> (Sent, Option<Stop>) {
    let mut sent = Sent::default();
    // Rows written into the sheet so far; they count as sent once a chunk holding them is handed on.
    let mut written = 0_i64;
    let failed = |e: std::io::Error| Stop::Failed(Error::internal(anyhow::anyhow!("writing the file: {e}")));
    let hand_on = |chunk: Vec<u8>, written: i64, sent: &mut Sent| -> Result<(), Stop> {
        let bytes = chunk.len() as i64;
        chunks.blocking_send(chunk).map_err(|_| Stop::CallerGone)?;
        *sent = Sent { rows: written, bytes: sent.bytes + bytes };
        Ok(())
    };
    let result = (|| {
        loop {
            let page =
                pages.blocking_recv().ok_or_else(|| Stop::Failed(Error::internal(anyhow::anyhow!("the export's reader stopped"))))?;
            let mut write = |row_written: std::io::Result<()>, sheet: &mut SheetWriter| -> Result<(), Stop> {
                row_written.map_err(failed)?;
                written += 1;
                if sheet.pending() >= CHUNK_BYTES {
                    hand_on(sheet.take(), written, &mut sent)?;
                }
                Ok(())
            };
            match (page.map_err(Stop::Failed)?, columns) {
                (Page::Customers(page), Columns::Customers(columns, pii)) => {
                    for row in &page {
                        let row_written = write_customer(row, columns, *pii, &mut sheet);
                        write(row_written, &mut sheet)?;
                    }
                }
                (Page::Transactions(page), Columns::Transactions(columns)) => {
                    for row in &page {
                        let row_written = write_transaction(row, columns, &mut sheet);
                        write(row_written, &mut sheet)?;
                    }
                }
                (Page::End, _) => break,
                _ => return Err(Stop::Failed(Error::internal(anyhow::anyhow!("a page of the wrong kind")))),
            }
        }
        let last = sheet.finish().map_err(failed)?;
        hand_on(last, written, &mut sent)
    })();
    (sent, result.err())
}

/// Sends `page` to the writer, and the end marker after the last one;
/// whether the reader reads on (not after a failed read, the last page, or
/// once the writer is gone).
async fn send_page(pages: &mpsc::Sender<Result<Page, Error>>, page: Result<Page, Error>, more: bool) -> bool {
    let failed = page.is_err();
    if pages.send(page).await.is_err() || failed {
        return false;
    }
    if !more {
        let _ = pages.send(Ok(Page::End)).await;
    }
    more
}

/// Reads the selected customers page by page into `pages`, until the last page or until the writer is gone.
async fn read_customers(app: App, tenant: Uuid, s: CustomerSelection, pages: mpsc::Sender<Result<Page, Error>>) {
    let mut after: Option<Vec<KeyValue>> = None;
    loop {
        let query = ListQuery {
            filter: &s.filter,
            order: &s.order,
            after: after.take(),
            show_deleted: s.show_deleted,
            show_disabled: s.show_disabled,
            segment: s.segment,
            limit: PAGE_ROWS,
        };
        let page = app.customers(tenant, query).await;
        let last = match &page {
            Ok(rows) if rows.len() as i64 == PAGE_ROWS => rows.last(),
            _ => None,
        };
        after = last.map(|row| s.order.iter().map(|(k, _)| k.value_of(row)).chain([KeyValue::Id(row.id)]).collect());
        let more = after.is_some();
        if !send_page(&pages, page.map(Page::Customers), more).await {
            return;
        }
    }
}

/// Reads the transactions of `range` page by page into `pages`, until the last page or until the writer is gone.
async fn read_transactions(
    app: App,
    tenant: Uuid,
    range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pages: mpsc::Sender<Result<Page, Error>>,
) {
    let mut after = None;
    loop {
        let page = async {
            let mut tx = app.begin(tenant).await?;
            let rows = exports_store::transactions(&mut tx, tenant, range, after, PAGE_ROWS).await?;
            tx.commit().await?;
            Ok(rows)
        }
        .await;
        after = match &page {
            Ok(rows) if rows.len() as i64 == PAGE_ROWS => rows.last().map(|r| (r.occur_time, r.id)),
            _ => None,
        };
        let more = after.is_some();
        if !send_page(&pages, page.map(Page::Transactions), more).await {
            return;
        }
    }
}

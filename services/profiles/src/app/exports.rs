//! Exports: the audit entry written before the first byte (no entry, no
//! export); the rows read in keyset pages, each page its own short
//! transaction (a slow reader never holds a connection), the next page read
//! while the last is written; the rows written into the sheet on a blocking
//! thread (formatting a million rows is CPU work that must not stall the
//! runtime's workers) and sent in chunks as they fill; the entry finished
//! with what was sent. Memory stays at a page of rows and a chunk of bytes
//! or two, whatever the export's size.

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

/// A page of rows read.
enum Page {
    Customers(Vec<CustomerRow>),
    Transactions(Vec<TransactionRow>),
}

/// Why an export stopped short.
enum Stop {
    /// The caller stopped reading.
    CallerGone,
    /// Reading or writing failed.
    Failed(Error),
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
        let error_out = out.clone();
        let writing = tokio::task::spawn_blocking(move || write_pages(pages, sheet, &columns, &out));
        let (sent, stop) = match writing.await {
            Ok(outcome) => outcome,
            Err(e) => ((0, 0), Some(Stop::Failed(Error::internal(anyhow::anyhow!("the export's writer failed: {e}"))))),
        };
        // The reader stops by itself once the writer is gone; a reader blocked in a query is dropped here.
        reading.abort();
        let failure = match stop {
            None => None,
            Some(Stop::CallerGone) => Some(format!("the caller stopped reading after {} rows", sent.0)),
            Some(Stop::Failed(error)) => {
                let message = error.to_string();
                // Best effort: the caller may be gone too.
                let _ = error_out.send(Err(error)).await;
                Some(message)
            }
        };
        tracing::info!(export = %EXPORT.name(id), rows = sent.0, bytes = sent.1, failed = failure.is_some(), "export finished");
        let finished = async {
            let mut tx = self.begin(tenant).await?;
            exports_store::finish(&mut tx, tenant, id, sent, failure.as_deref(), Utc::now()).await?;
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

/// Writes pages as they arrive and sends the bytes in chunks; the rows and bytes sent, and why it stopped short if it did.
fn write_pages(
    mut pages: mpsc::Receiver<Result<Page, Error>>,
    mut sheet: SheetWriter,
    columns: &Columns,
    out: &mpsc::Sender<Result<Vec<u8>, Error>>,
) -> ((i64, i64), Option<Stop>) {
    let (mut rows, mut bytes) = (0_i64, 0_i64);
    let send = |chunk: Vec<u8>, bytes: &mut i64| -> Result<(), Stop> {
        *bytes += chunk.len() as i64;
        out.blocking_send(Ok(chunk)).map_err(|_| Stop::CallerGone)
    };
    let failed = |e: std::io::Error| Stop::Failed(Error::internal(anyhow::anyhow!("writing the file: {e}")));
    let result = (|| {
        while let Some(page) = pages.blocking_recv() {
            let page = page.map_err(Stop::Failed)?;
            let count = match (&page, columns) {
                (Page::Customers(page), Columns::Customers(columns, pii)) => {
                    for row in page {
                        write_customer(row, columns, *pii, &mut sheet).map_err(failed)?;
                        if sheet.pending() >= CHUNK_BYTES {
                            send(sheet.take(), &mut bytes)?;
                        }
                    }
                    page.len()
                }
                (Page::Transactions(page), Columns::Transactions(columns)) => {
                    for row in page {
                        write_transaction(row, columns, &mut sheet).map_err(failed)?;
                        if sheet.pending() >= CHUNK_BYTES {
                            send(sheet.take(), &mut bytes)?;
                        }
                    }
                    page.len()
                }
                _ => return Err(Stop::Failed(Error::internal(anyhow::anyhow!("a page of the wrong kind")))),
            };
            rows += count as i64;
        }
        let last = sheet.finish().map_err(failed)?;
        send(last, &mut bytes)
    })();
    ((rows, bytes), result.err())
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
        if pages.send(page.map(Page::Customers)).await.is_err() || !more {
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
        if pages.send(page.map(Page::Transactions)).await.is_err() || !more {
            return;
        }
    }
}

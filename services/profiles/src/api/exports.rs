//! `crm.profiles.v1.ExportService` (`customers.export`): customers by filter
//! or segment and transactions by time range as CSV or XLSX, streamed as
//! they are read; personal data unmasked only for callers holding `pii`;
//! every export audited (GetExport / ListExports, `audit.read`).

use std::{pin::Pin, sync::Arc};

use chrono::Utc;
use crm_kit::{Error, auth::caller, pagination::Pager, respond, time::from_timestamp};
use crm_proto::{
    crm::profiles::v1::{self as pb, export_service_server::ExportService},
    google::api::HttpBody,
};
use futures::{Stream, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use uuid::Uuid;

use super::{
    authorization::allow_filter,
    listing::{CUSTOMER_FILTER, parse_order_by},
};
use crate::{
    app::{
        App,
        exports::{CustomerSelection, Selection},
    },
    domain::{
        export::{CustomerColumn, TransactionColumn, columns},
        sheet::SheetWriter,
    },
    permissions,
    resources::{EXPORT, SEGMENT},
    store::exports::ExportRow,
    wire::exports::{export_to_proto, format_from_proto},
};

/// Handlers of ExportService.
#[derive(Clone)]
pub struct ExportApi {
    app: App,
    page_tokens: crm_kit::pagination::PageTokenCodec,
    /// A permit per export being streamed.
    running: Arc<Semaphore>,
    /// How often a running export records that it is alive.
    heartbeat: std::time::Duration,
}

impl ExportApi {
    /// Handlers over `app`, streaming at most `concurrency` exports at once, each beating every `heartbeat`.
    pub fn new(app: App, page_tokens: crm_kit::pagination::PageTokenCodec, concurrency: usize, heartbeat: std::time::Duration) -> Self {
        Self { app, page_tokens, running: Arc::new(Semaphore::new(concurrency.max(1))), heartbeat }
    }
}

/// A task aborted when this is dropped (also by a panic unwinding past it).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type FileStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

/// INVALID_ARGUMENT naming the column at `index` of the request's `columns`.
fn column_error((index, reason): (usize, &'static str)) -> Error {
    let message = match reason {
        "TOO_MANY_COLUMNS" => format!("at most {} columns", crate::domain::export::MAX_COLUMNS),
        "DUPLICATE_COLUMN" => "this column is asked for twice".to_owned(),
        _ => "not a column; see docs/api/export.md for the names".to_owned(),
    };
    Error::invalid(format!("columns[{index}]"), reason, message)
}

/// The writer of a file in `format` with `header`.
fn sheet_for(format: &str, header: Vec<String>) -> Result<SheetWriter, Error> {
    match format {
        "XLSX" => SheetWriter::xlsx(header).map_err(Error::internal),
        _ => {
            let mut csv = SheetWriter::csv();
            csv.row(header.iter().map(String::as_str)).map_err(Error::internal)?;
            Ok(csv)
        }
    }
}

impl ExportApi {
    /// Begins export `entry` (its audit entry written first) and answers its file as a stream of `wrap`ped chunks.
    async fn stream<M: Send + 'static>(
        &self,
        tenant: Uuid,
        entry: ExportRow,
        selection: Selection,
        wrap: fn(HttpBody) -> M,
    ) -> Result<Response<FileStream<M>>, Error> {
        let permit = self.running.clone().try_acquire_owned().map_err(|_| Error::Unavailable {
            reason: "TOO_MANY_EXPORTS",
            message: "as many exports as this server streams at once are running; retry shortly".to_owned(),
            retry_after: std::time::Duration::from_secs(5),
        })?;
        let sheet = sheet_for(&entry.format, entry.columns.clone())?;
        let (content_type, extension) = (sheet.content_type(), sheet.extension());
        self.app.begin_export(tenant, &entry).await?;
        let (out, chunks) = mpsc::channel(2);
        let (app, id, heartbeat) = (self.app.clone(), entry.id, self.heartbeat);
        // The export outlives this call's future; its page reads stay in the request's trace.
        tokio::spawn(
            async move {
                // Alive while it runs (stopped however the run ends): a sweep ends the entries of exports whose process died.
                let _beating = AbortOnDrop(tokio::spawn(app.clone().beat_export(tenant, id, heartbeat).in_current_span()));
                app.run_export(tenant, id, selection, sheet, out).await;
                drop(permit);
            }
            .in_current_span(),
        );
        let status = crm_kit::error::stream_status();
        let stream = ReceiverStream::new(chunks).map(move |chunk| match chunk {
            Ok(data) => Ok(wrap(HttpBody { content_type: content_type.to_owned(), data, extensions: Vec::new() })),
            Err(error) => Err(status(error)),
        });
        let mut response = Response::new(Box::pin(stream) as FileStream<M>);
        // A browser saving the download gets a name; the gateway passes the header on.
        let file_name = format!(
            "attachment; filename=\"{}-{}-{}.{extension}\"",
            entry.kind.to_lowercase(),
            entry.create_time.format("%Y%m%d"),
            entry.id.simple()
        );
        if let Ok(value) = file_name.parse() {
            response.metadata_mut().insert("content-disposition", value);
        }
        if let Ok(value) = EXPORT.name(entry.id).parse() {
            response.metadata_mut().insert("crm-export", value);
        }
        Ok(response)
    }
}

/// A new audit entry by `actor`.
fn entry(kind: &str, format: &str, actor: &str, columns: Vec<String>, personal_data: bool) -> ExportRow {
    ExportRow {
        id: Uuid::now_v7(),
        kind: kind.to_owned(),
        format: format.to_owned(),
        actor: actor.to_owned(),
        filter: String::new(),
        segment_id: None,
        order_by: String::new(),
        range_start_time: None,
        range_end_time: None,
        columns,
        personal_data,
        state: "RUNNING".to_owned(),
        row_count: 0,
        size_bytes: 0,
        failure_message: String::new(),
        create_time: Utc::now(),
        finish_time: None,
    }
}

#[tonic::async_trait]
impl ExportService for ExportApi {
    type ExportCustomersStream = FileStream<pb::ExportCustomersResponse>;
    type ExportTransactionsStream = FileStream<pb::ExportTransactionsResponse>;

    #[tracing::instrument(skip_all)]
    async fn export_customers(
        &self,
        request: Request<pb::ExportCustomersRequest>,
    ) -> Result<Response<Self::ExportCustomersStream>, Status> {
        let principal = caller(&request)?;
        principal.require(permissions::CUSTOMERS_EXPORT)?;
        let r = request.into_inner();
        let format = format_from_proto(r.format)?;
        let filter = CUSTOMER_FILTER.check(&r.filter)?;
        allow_filter(&principal, &filter)?;
        let order = parse_order_by(&r.order_by)?;
        let segment = match r.segment.trim() {
            "" => None,
            name => Some(SEGMENT.parse(name, "segment")?),
        };
        let columns = columns(&r.columns, CustomerColumn::parse, CustomerColumn::defaults).map_err(column_error)?;
        let pii = principal.can(permissions::PII);
        let names = columns.iter().map(|c| c.name().into_owned()).collect();
        // Personal data went out unmasked only if a personal column was written for a caller with `pii`.
        let personal_data = pii && columns.iter().any(CustomerColumn::personal);
        let entry = ExportRow {
            filter: r.filter.trim().to_owned(),
            segment_id: segment,
            order_by: r.order_by.trim().to_owned(),
            ..entry("CUSTOMERS", format, &principal.subject, names, personal_data)
        };
        let selection = CustomerSelection { filter, order, segment, show_deleted: r.show_deleted, show_disabled: r.show_disabled };
        let selection = Selection::Customers { selection, columns, pii };
        Ok(self.stream(principal.tenant, entry, selection, |chunk| pb::ExportCustomersResponse { chunk: Some(chunk) }).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn export_transactions(
        &self,
        request: Request<pb::ExportTransactionsRequest>,
    ) -> Result<Response<Self::ExportTransactionsStream>, Status> {
        let principal = caller(&request)?;
        principal.require(permissions::CUSTOMERS_EXPORT)?;
        principal.require(permissions::ARCHIVE_READ)?;
        let r = request.into_inner();
        let format = format_from_proto(r.format)?;
        let time = |t: &Option<prost_types::Timestamp>, field: &str| {
            t.as_ref().map(|t| from_timestamp(t).ok_or_else(|| Error::invalid(field, "INVALID_TIME", "not a valid timestamp"))).transpose()
        };
        let (start, end) = (time(&r.start_time, "start_time")?, time(&r.end_time, "end_time")?);
        if let (Some(start), Some(end)) = (start, end)
            && end <= start
        {
            return Err(Error::invalid("end_time", "EMPTY_RANGE", "end_time must be after start_time").into());
        }
        let columns = columns(&r.columns, TransactionColumn::parse, TransactionColumn::defaults).map_err(column_error)?;
        let names = columns.iter().map(|c| c.name().to_owned()).collect();
        let entry =
            ExportRow { range_start_time: start, range_end_time: end, ..entry("TRANSACTIONS", format, &principal.subject, names, false) };
        let selection = Selection::Transactions { range: (start, end), columns };
        Ok(self.stream(principal.tenant, entry, selection, |chunk| pb::ExportTransactionsResponse { chunk: Some(chunk) }).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn get_export(&self, request: Request<pb::GetExportRequest>) -> Result<Response<pb::GetExportResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::AUDIT_READ)?;
            let id = EXPORT.parse(&request.get_ref().name, "name")?;
            let row = self.app.export_entry(principal.tenant, id).await?;
            Ok(pb::GetExportResponse { export: Some(export_to_proto(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_exports(&self, request: Request<pb::ListExportsRequest>) -> Result<Response<pb::ListExportsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::AUDIT_READ)?;
            let r = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<Uuid>(r.page_size, &r.page_token, &["ListExports"])?;
            let rows = self.app.export_entries(principal.tenant, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |e: &ExportRow| e.id);
            Ok(pb::ListExportsResponse { exports: rows.iter().map(export_to_proto).collect(), next_page_token })
        })
        .await
    }
}

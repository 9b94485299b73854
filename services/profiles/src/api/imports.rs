//! `crm.profiles.v1.ImportService` (`customers.import`): uploading a
//! spreadsheet as a stream, starting, following and cancelling its import,
//! and the rows it refused, paged or as a CSV to fix and upload again.

use std::pin::Pin;

use chrono::Utc;
use crm_kit::{
    Error,
    auth::{Principal, caller},
    pagination::Pager,
    respond,
};
use crm_proto::crm::profiles::v1::{self as pb, import_service_server::ImportService};
use futures::{Stream, StreamExt, stream};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    app::{App, imports::Upload},
    domain::{
        access,
        import::{Encoding, Field, Kind, Mode, Settings},
    },
    permissions,
    resources::IMPORT_JOB,
    store::imports::ImportJobRow,
    wire::import_jobs::{errors_csv_header, errors_csv_lines, errors_to_proto, job_to_proto, settings_from_proto},
};

/// Refused rows per page of the CSV download.
const DOWNLOAD_PAGE: i64 = 1_000;

/// Handlers of ImportService.
#[derive(Clone)]
pub struct ImportApi {
    app: App,
    page_tokens: crm_kit::pagination::PageTokenCodec,
    /// The largest file accepted, and the largest XLSX (read whole, in memory).
    max_bytes: (u64, u64),
}

impl ImportApi {
    /// Handlers over `app`, accepting files up to `max_bytes` (any, XLSX).
    pub fn new(app: App, page_tokens: crm_kit::pagination::PageTokenCodec, max_bytes: (u64, u64)) -> Self {
        Self { app, page_tokens, max_bytes }
    }
}

type DownloadStream = Pin<Box<dyn Stream<Item = Result<pb::DownloadImportErrorsResponse, Status>> + Send>>;

/// The upload's settings from its first message.
fn upload_of(first: &pb::UploadImportFileRequest, actor: &str, (max_bytes, max_xlsx_bytes): (u64, u64)) -> Result<Upload, Error> {
    let kind = match pb::import_job::Kind::try_from(first.kind) {
        Ok(pb::import_job::Kind::Unspecified | pb::import_job::Kind::Customers) => Kind::Customers,
        Ok(pb::import_job::Kind::Transactions) => Kind::Transactions,
        Ok(pb::import_job::Kind::RelatedPersons) => Kind::RelatedPersons,
        Ok(pb::import_job::Kind::Occupancies) => Kind::Occupancies,
        Err(_) => {
            return Err(Error::invalid(
                "kind",
                "INVALID_VALUE",
                "KIND_CUSTOMERS, KIND_TRANSACTIONS, KIND_RELATED_PERSONS or KIND_OCCUPANCIES",
            ));
        }
    };
    let encoding = match first.encoding.trim() {
        "" => None,
        name => Some(Encoding::parse(name).ok_or_else(|| Error::invalid("encoding", "UNKNOWN_ENCODING", "UTF-8, GBK, GB18030 or GB2312"))?),
    };
    if first.request_id.chars().count() > 128 {
        return Err(Error::invalid("request_id", "TOO_LONG", "at most 128 characters"));
    }
    let file_name: String = first.file_name.chars().take(255).collect();
    let declared_size = match first.size_bytes {
        0 => None,
        size => Some(u64::try_from(size).map_err(|_| Error::invalid("size_bytes", "OUT_OF_RANGE", "the file's size in bytes, or 0"))?),
    };
    Ok(Upload {
        kind,
        file_name,
        encoding,
        request_id: first.request_id.clone(),
        actor: actor.to_owned(),
        max_bytes,
        max_xlsx_bytes,
        declared_size,
        sheet: first.sheet.trim().chars().take(255).collect(),
    })
}

/// PERMISSION_DENIED unless the caller may do what the run would: a dry run
/// writes nothing; a real run of transactions, related persons or
/// occupancies writes archive records (`archive.write`); a real run of customers creates them
/// (`customers.create`), and an upsert also changes them — `customers.update`
/// and each mapped field the caller may write (a marketer's upsert may fill
/// tags, attributes and consent, not names or contacts).
fn may_run(principal: &Principal, kind: Kind, settings: &Settings) -> Result<(), Error> {
    if settings.dry_run {
        return Ok(());
    }
    if kind != Kind::Customers {
        return principal.require(permissions::ARCHIVE_WRITE);
    }
    principal.require(permissions::CUSTOMERS_CREATE)?;
    if settings.mode == Mode::Upsert {
        principal.require(permissions::CUSTOMERS_UPDATE)?;
        for (_, name) in &settings.mapping {
            let path = Field::parse(name).map_or("attributes", |f| f.path());
            if !access::may_write(principal, path) {
                return Err(Error::PermissionDenied { permission: path.to_owned() });
            }
        }
    }
    Ok(())
}

/// INVALID_ARGUMENT for an upload whose stream broke (a malformed or oversized message); nothing of it is kept.
fn broken(status: Status) -> Error {
    Error::invalid(
        "file",
        "UPLOAD_BROKEN",
        format!("the upload stream broke ({}); nothing was kept: upload the file again", status.message()),
    )
}

#[tonic::async_trait]
impl ImportService for ImportApi {
    type DownloadImportErrorsStream = DownloadStream;

    #[tracing::instrument(skip_all)]
    async fn upload_import_file(
        &self,
        request: Request<Streaming<pb::UploadImportFileRequest>>,
    ) -> Result<Response<pb::UploadImportFileResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_IMPORT)?;
            let mut messages = request.into_inner();
            let Some(first) = messages.message().await.map_err(broken)? else {
                return Err(Error::invalid("file", "EMPTY_FILE", "the stream carried no message"));
            };
            let upload = upload_of(&first, &principal.subject, self.max_bytes)?;
            let head = first.file.map(|f| f.data).unwrap_or_default();
            let rest = messages.map(|m| m.map(|m| m.file.map(|f| f.data).unwrap_or_default()).map_err(broken));
            let chunks = stream::once(async move { Ok(head) }).chain(rest).boxed();
            let job = self.app.upload(principal.tenant, upload, chunks, Utc::now()).await?;
            Ok(pb::UploadImportFileResponse { import_job: Some(job_to_proto(&job)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_import_job(&self, request: Request<pb::GetImportJobRequest>) -> Result<Response<pb::GetImportJobResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_IMPORT)?;
            let id = IMPORT_JOB.parse(&request.get_ref().name, "name")?;
            let job = self.app.import_job(principal.tenant, id).await?;
            Ok(pb::GetImportJobResponse { import_job: Some(job_to_proto(&job)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_import_jobs(&self, request: Request<pb::ListImportJobsRequest>) -> Result<Response<pb::ListImportJobsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_IMPORT)?;
            let r = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<uuid::Uuid>(r.page_size, &r.page_token, &["ListImportJobs"])?;
            let rows = self.app.import_jobs(principal.tenant, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |j: &ImportJobRow| j.id);
            Ok(pb::ListImportJobsResponse { import_jobs: rows.iter().map(job_to_proto).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn start_import_job(&self, request: Request<pb::StartImportJobRequest>) -> Result<Response<pb::StartImportJobResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_IMPORT)?;
            let r = request.get_ref();
            let id = IMPORT_JOB.parse(&r.name, "name")?;
            let Some(settings) = r.settings.as_ref() else {
                return Err(Error::invalid("settings", "REQUIRED", "how to run the job: mode, mapping, match key"));
            };
            let job = self.app.import_job(principal.tenant, id).await?;
            let settings = Settings { started_by: principal.subject.clone(), ..settings_from_proto(settings, &job)? };
            may_run(&principal, Kind::parse(&job.kind), &settings)?;
            let job = self.app.start_import(principal.tenant, id, &settings, Utc::now()).await?;
            Ok(pb::StartImportJobResponse { import_job: Some(job_to_proto(&job)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn cancel_import_job(
        &self,
        request: Request<pb::CancelImportJobRequest>,
    ) -> Result<Response<pb::CancelImportJobResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_IMPORT)?;
            let id = IMPORT_JOB.parse(&request.get_ref().name, "name")?;
            let job = self.app.cancel_import(principal.tenant, id, Utc::now()).await?;
            Ok(pb::CancelImportJobResponse { import_job: Some(job_to_proto(&job)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_import_errors(
        &self,
        request: Request<pb::ListImportErrorsRequest>,
    ) -> Result<Response<pb::ListImportErrorsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_IMPORT)?;
            let r = request.get_ref();
            let id = IMPORT_JOB.parse(&r.parent, "parent")?;
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<i64>(r.page_size, &r.page_token, &["ListImportErrors", &r.parent])?;
            let (job, rows) = self.app.import_errors(principal.tenant, id, page.after.unwrap_or(0), page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |e| e.row_number);
            let import_errors = errors_to_proto(&job, &rows, principal.can(permissions::PII));
            Ok(pb::ListImportErrorsResponse { import_errors, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn download_import_errors(
        &self,
        request: Request<pb::DownloadImportErrorsRequest>,
    ) -> Result<Response<Self::DownloadImportErrorsStream>, Status> {
        let principal = caller(&request)?;
        principal.require(permissions::CUSTOMERS_IMPORT)?;
        let id = IMPORT_JOB.parse(&request.get_ref().parent, "parent")?;
        // The first page is read before answering, so that a missing job is NOT_FOUND rather than a broken stream.
        let (job, first) = self.app.import_errors(principal.tenant, id, 0, DOWNLOAD_PAGE).await?;
        let pii = principal.can(permissions::PII);
        let chunk = |data: Vec<u8>| pb::DownloadImportErrorsResponse {
            chunk: Some(crm_proto::google::api::HttpBody {
                content_type: "text/csv; charset=utf-8".to_owned(),
                data,
                extensions: Vec::new(),
            }),
        };
        let head = chunk([errors_csv_header(&job), errors_csv_lines(&job, &first, pii)].concat());
        let (app, tenant, status) = (self.app.clone(), principal.tenant, crm_kit::error::stream_status());
        let after = (first.len() as i64 == DOWNLOAD_PAGE).then(|| first.last().map_or(0, |r| r.row_number));
        let rest = stream::try_unfold(after, move |after| {
            let (app, status) = (app.clone(), status.clone());
            async move {
                let Some(after) = after else { return Ok(None) };
                let (job, rows) = app.import_errors(tenant, id, after, DOWNLOAD_PAGE).await.map_err(status)?;
                let next = (rows.len() as i64 == DOWNLOAD_PAGE).then(|| rows.last().map_or(after, |r| r.row_number));
                Ok(Some((chunk(errors_csv_lines(&job, &rows, pii)), next)))
            }
        });
        let mut response = Response::new(Box::pin(stream::once(async move { Ok(head) }).chain(rest)) as DownloadStream);
        // A browser saving the download gets a name; the gateway passes the header on.
        let file_name = format!("attachment; filename=\"import-{}-refused-rows.csv\"", id.simple());
        if let Ok(value) = file_name.parse() {
            response.metadata_mut().insert("content-disposition", value);
        }
        Ok(response)
    }
}

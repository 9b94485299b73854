//! `crm.profiles.v1.CommunicationService`: staff with `archive.write`
//! (agents, admins) record, change and remove contacts with a customer and
//! read the follow-ups due; `archive.read` reads the records, their text
//! masked for callers without `pii`; a customer reads their own.
//! Who may reach the customer is decided before anything is read.

use chrono::{NaiveDate, Utc};
use crm_kit::{
    Error,
    auth::{Principal, caller},
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    required, respond,
};
use crm_proto::crm::profiles::v1::{self as pb, communication_service_server::CommunicationService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::archive;
use crate::{
    app::{App, communications::Communications},
    domain::{access::sees_pii, communication::CommunicationDraft},
    permissions,
    resources::{COMMUNICATION, CUSTOMER},
    store::communications::CommunicationRow,
    wire::communications::{WRITABLE, copy_field, date_from, draft_from_proto, mask_pii, to_proto},
};

/// Handlers of CommunicationService.
#[derive(Clone)]
pub struct CommunicationApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl CommunicationApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

/// `row` as `principal` may see it.
fn shown(principal: &Principal, row: &CommunicationRow) -> pb::Communication {
    let mut communication = to_proto(row);
    if !sees_pii(principal, row.customer_id) {
        mask_pii(&mut communication);
    }
    communication
}

/// PERMISSION_DENIED unless the caller is staff with `archive.write` (customers do not write here).
fn require_writer(principal: &Principal) -> Result<(), Error> {
    principal.require(permissions::ARCHIVE_WRITE)
}

/// The validated draft of `communication`; `principal` is its agent when it names none.
fn to_draft(communication: &pb::Communication, principal: &Principal) -> Result<CommunicationDraft, Error> {
    draft_from_proto(communication, "communication", &principal.subject, Utc::now())
        .map_err(|violations| Error::InvalidArgument { violations })
}

#[tonic::async_trait]
impl CommunicationService for CommunicationApi {
    #[tracing::instrument(skip_all)]
    async fn create_communication(
        &self,
        request: Request<pb::CreateCommunicationRequest>,
    ) -> Result<Response<pb::CreateCommunicationResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            require_writer(&principal)?;
            let request = request.into_inner();
            let customer = CUSTOMER.parse(&request.parent, "parent")?;
            let key = IdempotencyKey::new(
                "CreateCommunication",
                &request.request_id,
                &pb::CreateCommunicationRequest { request_id: String::new(), ..request.clone() },
            )?;
            let draft = to_draft(&required(request.communication, "communication")?, &principal)?;
            self.app
                .create_record::<Communications, _>(principal.tenant, customer, draft, key.as_ref(), Utc::now(), |row| {
                    pb::CreateCommunicationResponse { communication: Some(shown(&principal, row)) }
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_communication(
        &self,
        request: Request<pb::GetCommunicationRequest>,
    ) -> Result<Response<pb::GetCommunicationResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let row = archive::get::<Communications>(&self.app, &principal, &request.get_ref().name).await?;
            Ok(pb::GetCommunicationResponse { communication: Some(shown(&principal, &row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_communications(
        &self,
        request: Request<pb::ListCommunicationsRequest>,
    ) -> Result<Response<pb::ListCommunicationsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let request = request.get_ref();
            let page = (request.parent.as_str(), request.page_size, request.page_token.as_str());
            let (rows, next_page_token) =
                archive::list::<Communications>(&self.app, &self.page_tokens, &principal, "ListCommunications", page).await?;
            Ok(pb::ListCommunicationsResponse { communications: rows.iter().map(|r| shown(&principal, r)).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_communication(
        &self,
        request: Request<pb::UpdateCommunicationRequest>,
    ) -> Result<Response<pb::UpdateCommunicationResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            require_writer(&principal)?;
            let pb::UpdateCommunicationRequest { communication, update_mask } = request.into_inner();
            let input = required(communication, "communication")?;
            let (customer, id) = COMMUNICATION.parse(&input.name, "communication.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            let row = self
                .app
                .update_record::<Communications>(
                    principal.tenant,
                    (customer, id),
                    &input.etag,
                    |stored| {
                        let mut merged = to_proto(stored);
                        for path in &paths {
                            copy_field(&mut merged, &input, path);
                        }
                        to_draft(&merged, &principal)
                    },
                    Utc::now(),
                )
                .await?;
            Ok(pb::UpdateCommunicationResponse { communication: Some(shown(&principal, &row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_due_reminders(
        &self,
        request: Request<pb::ListDueRemindersRequest>,
    ) -> Result<Response<pb::ListDueRemindersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            // Follow-ups are the agents' work list: staff who write the archive.
            principal.require(permissions::ARCHIVE_WRITE)?;
            let request = request.get_ref();
            let agent = match request.agent.as_str() {
                "" => Some(principal.subject.as_str()),
                "*" => None,
                name => Some(name),
            };
            let due_by = match &request.due_by {
                None => Utc::now().date_naive(),
                Some(date) => {
                    date_from(date).ok_or_else(|| Error::invalid("due_by", "INVALID_DATE", "a real date with year, month and day"))?
                }
            };
            let pager = Pager::new(&self.page_tokens);
            let query = ["ListDueReminders", agent.unwrap_or("*"), &due_by.to_string()];
            let page = pager.start::<(NaiveDate, Uuid)>(request.page_size, &request.page_token, &query)?;
            let rows = self.app.due_reminders(principal.tenant, agent, due_by, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |r| (r.next_contact_date.unwrap_or_default(), r.id));
            Ok(pb::ListDueRemindersResponse { communications: rows.iter().map(|r| shown(&principal, r)).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_communication(
        &self,
        request: Request<pb::DeleteCommunicationRequest>,
    ) -> Result<Response<pb::DeleteCommunicationResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            archive::delete::<Communications>(&self.app, &principal, &request.get_ref().name, &request.get_ref().etag).await?;
            Ok(pb::DeleteCommunicationResponse {})
        })
        .await
    }
}

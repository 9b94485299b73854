//! `crm.profiles.v1.SegmentService`: agents, marketers and admins
//! (`segments.write`) manage segments and static members; `customers.read`
//! reads segments, their members (masked without `pii`), previews and a
//! customer's segments.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::{Principal, caller},
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    required, respond,
};
use crm_proto::crm::profiles::v1::{self as pb, segment_service_server::SegmentService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    authorization::{allow_filter, authorize},
    customers::shown,
};
use crate::{
    app::App,
    domain::segment::MAX_MEMBERS_PER_CALL,
    permissions,
    resources::{CUSTOMER, SEGMENT},
    store::{
        customer_filter::{CUSTOMER_FILTER, PII_FILTER_FIELDS},
        segments::SegmentRow,
    },
    wire::segments::{WRITABLE, copy_field, draft_from_proto, to_proto},
};

/// Handlers of SegmentService.
#[derive(Clone)]
pub struct SegmentApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl SegmentApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }

    /// Adds or removes the customers `request` names to or from its static segment.
    async fn change_members(
        &self,
        principal: &Principal,
        (segment, customers): (&str, &[String]),
        add: bool,
    ) -> Result<(usize, pb::Segment), Error> {
        principal.require(permissions::SEGMENTS_WRITE)?;
        let id = SEGMENT.parse(segment, "segment")?;
        if customers.is_empty() || customers.len() > MAX_MEMBERS_PER_CALL {
            return Err(Error::invalid("customers", "INVALID_BATCH_SIZE", format!("1 to {MAX_MEMBERS_PER_CALL} customers")));
        }
        let ids = customers
            .iter()
            .enumerate()
            .map(|(i, name)| CUSTOMER.parse(name, &format!("customers[{i}]")))
            .collect::<Result<Vec<Uuid>, _>>()?;
        let (moved, row) = self.app.change_static_members(principal.tenant, id, &ids, add, Utc::now()).await?;
        Ok((moved, visible(principal, &row)))
    }
}

/// Segment `row` as `principal` may see it: a filter on emails or phones
/// names personal data, so callers without `pii` get it blanked.
fn visible(principal: &Principal, row: &SegmentRow) -> pb::Segment {
    let mut segment = to_proto(row);
    let personal = CUSTOMER_FILTER.check(&segment.filter).map_or(true, |f| PII_FILTER_FIELDS.iter().any(|field| f.mentions(field)));
    if personal && !segment.filter.is_empty() && !principal.can(permissions::PII) {
        segment.filter = String::new();
    }
    segment
}

#[tonic::async_trait]
impl SegmentService for SegmentApi {
    #[tracing::instrument(skip_all)]
    async fn create_segment(&self, request: Request<pb::CreateSegmentRequest>) -> Result<Response<pb::CreateSegmentResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::SEGMENTS_WRITE)?;
            let request = request.into_inner();
            let segment = required(request.segment.as_ref(), "segment")?;
            let (draft, filter) = draft_from_proto(segment, "segment").map_err(|violations| Error::InvalidArgument { violations })?;
            allow_filter(&principal, &filter)?;
            let key = IdempotencyKey::new(
                "CreateSegment",
                &request.request_id,
                &pb::CreateSegmentRequest { request_id: String::new(), ..request.clone() },
            )?;
            self.app
                .create_segment(principal.tenant, (draft, filter), key.as_ref(), Utc::now(), |row| pb::CreateSegmentResponse {
                    segment: Some(to_proto(row)),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_segment(&self, request: Request<pb::GetSegmentRequest>) -> Result<Response<pb::GetSegmentResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let id = SEGMENT.parse(&request.get_ref().name, "name")?;
            Ok(pb::GetSegmentResponse { segment: Some(visible(&principal, &self.app.segment(principal.tenant, id).await?)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_segments(&self, request: Request<pb::ListSegmentsRequest>) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let r = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<(String, Uuid)>(r.page_size, &r.page_token, &["ListSegments"])?;
            let rows = self.app.segments(principal.tenant, page.after.clone(), page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |s| (s.display_name.clone(), s.id));
            Ok(pb::ListSegmentsResponse { segments: rows.iter().map(|r| visible(&principal, r)).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_segment(&self, request: Request<pb::UpdateSegmentRequest>) -> Result<Response<pb::UpdateSegmentResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::SEGMENTS_WRITE)?;
            let pb::UpdateSegmentRequest { segment, update_mask } = request.into_inner();
            let input = required(segment, "segment")?;
            let id = SEGMENT.parse(&input.name, "segment.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            let edit = |stored: &SegmentRow| {
                let mut merged = to_proto(stored);
                for path in &paths {
                    copy_field(&mut merged, &input, path);
                }
                let (draft, filter) = draft_from_proto(&merged, "segment").map_err(|violations| Error::InvalidArgument { violations })?;
                allow_filter(&principal, &filter)?;
                Ok((draft, filter))
            };
            let row = self.app.update_segment(principal.tenant, id, &input.etag, edit, Utc::now()).await?;
            Ok(pb::UpdateSegmentResponse { segment: Some(visible(&principal, &row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_segment(&self, request: Request<pb::DeleteSegmentRequest>) -> Result<Response<pb::DeleteSegmentResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::SEGMENTS_WRITE)?;
            let id = SEGMENT.parse(&request.get_ref().name, "name")?;
            self.app.delete_segment(principal.tenant, id, &request.get_ref().etag).await?;
            Ok(pb::DeleteSegmentResponse {})
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_segment_members(
        &self,
        request: Request<pb::ListSegmentMembersRequest>,
    ) -> Result<Response<pb::ListSegmentMembersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let r = request.get_ref();
            let id = SEGMENT.parse(&r.segment, "segment")?;
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<Uuid>(r.page_size, &r.page_token, &["ListSegmentMembers", &r.segment])?;
            let rows = self.app.segment_members(principal.tenant, id, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |c| c.id);
            Ok(pb::ListSegmentMembersResponse { customers: rows.iter().filter_map(|c| shown(&principal, c)).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn add_segment_members(
        &self,
        request: Request<pb::AddSegmentMembersRequest>,
    ) -> Result<Response<pb::AddSegmentMembersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let r = request.get_ref();
            let (added, segment) = self.change_members(&principal, (&r.segment, &r.customers), true).await?;
            Ok(pb::AddSegmentMembersResponse { added_count: added as i64, segment: Some(segment) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn remove_segment_members(
        &self,
        request: Request<pb::RemoveSegmentMembersRequest>,
    ) -> Result<Response<pb::RemoveSegmentMembersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let r = request.get_ref();
            let (removed, segment) = self.change_members(&principal, (&r.segment, &r.customers), false).await?;
            Ok(pb::RemoveSegmentMembersResponse { removed_count: removed as i64, segment: Some(segment) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn preview_segment(&self, request: Request<pb::PreviewSegmentRequest>) -> Result<Response<pb::PreviewSegmentResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let r = request.get_ref();
            let filter = CUSTOMER_FILTER.check(&r.filter)?;
            allow_filter(&principal, &filter)?;
            let sample = match r.sample_size {
                0 => 10,
                n @ 1..=50 => i64::from(n),
                _ => return Err(Error::invalid("sample_size", "OUT_OF_RANGE", "0 (10) to 50")),
            };
            let (member_count, rows) = self.app.preview_segment(principal.tenant, &filter, sample).await?;
            Ok(pb::PreviewSegmentResponse { member_count, sample: rows.iter().filter_map(|c| shown(&principal, c)).collect() })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn check_membership(
        &self,
        request: Request<pb::CheckMembershipRequest>,
    ) -> Result<Response<pb::CheckMembershipResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let id = CUSTOMER.parse(&request.get_ref().customer, "customer")?;
            authorize(&principal, id, permissions::CUSTOMERS_READ)?;
            let segments = self.app.customer_segments(principal.tenant, id).await?;
            Ok(pb::CheckMembershipResponse { segments: segments.into_iter().map(|s| SEGMENT.name(s)).collect() })
        })
        .await
    }
}

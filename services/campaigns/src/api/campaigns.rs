//! `crm.campaigns.v1.CampaignService`.

use chrono::Utc;
use crm_kit::{
    auth::{ServiceTokens, caller},
    client::Caller,
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    required, respond,
};
use crm_proto::crm::campaigns::v1::{self as pb, campaign_service_server::CampaignService};
use tonic::{Request, Response, Status};

use crate::{
    app::{App, campaigns::CampaignWithCounts, reach::Reach},
    domain::campaign::Move,
    permissions,
    profiles::ProfilesClient,
    resources::CAMPAIGN,
    store::campaigns::CampaignFields,
    wire::{campaign_fields, campaign_to, skip_reason_to},
};

const WRITABLE: &[&str] = &[
    "display_name",
    "template",
    "audience",
    "variables",
    "schedule_time",
    "local_send_time",
    "ab_test",
    "attribution_window_days",
    "questionnaire",
];

crm_kit::mask_fields!(pb::Campaign;
    "display_name" => display_name,
    "template" => template,
    "audience" => audience,
    "variables" => variables,
    "schedule_time" => schedule_time,
    "local_send_time" => local_send_time,
    "ab_test" => ab_test,
    "attribution_window_days" => attribution_window_days,
    "questionnaire" => questionnaire,
);

/// Handlers of CampaignService.
#[derive(Clone)]
pub struct CampaignApi {
    app: App,
    page_tokens: PageTokenCodec,
    profiles: ProfilesClient,
    tokens: ServiceTokens,
}

impl CampaignApi {
    /// Handlers over `app`, checking audiences with `profiles` (estimates
    /// read them as the service, with `tokens`: whoever asks sees counts only).
    pub fn new(app: App, page_tokens: PageTokenCodec, profiles: ProfilesClient, tokens: ServiceTokens) -> Self {
        Self { app, page_tokens, profiles, tokens }
    }

    /// Profiles accepts the audience's filter (asked with the caller's own token).
    async fn check_audience(&self, from: &Caller, fields: &CampaignFields) -> Result<(), crm_kit::Error> {
        self.profiles.customers(from, &fields.audience_filter, "", 1, "campaign.audience.filter").await.map(drop)
    }
}

fn shown((row, counts): &CampaignWithCounts) -> pb::Campaign {
    campaign_to(row, Some(counts.clone()))
}

/// Audience members an estimate reads at most.
const ESTIMATE_LIMIT: i64 = 50_000;
/// Members read per page.
const ESTIMATE_PAGE: i32 = 1000;

#[tonic::async_trait]
impl CampaignService for CampaignApi {
    #[tracing::instrument(skip_all)]
    async fn estimate_campaign_reach(
        &self,
        request: Request<pb::EstimateCampaignReachRequest>,
    ) -> Result<Response<pb::EstimateCampaignReachResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_READ)?;
            let id = CAMPAIGN.parse(&request.get_ref().name, "name")?;
            let (campaign, template) = self.app.campaign_and_template(principal.tenant, id).await?;
            // Unmasked addresses are needed to judge them; only counts leave.
            let service = Caller::service(&self.tokens.mint(principal.tenant)?)?;
            let mut reach = Reach::default();
            let mut page_token = String::new();
            let complete = loop {
                let page = self
                    .profiles
                    .customers(&service, &campaign.audience_filter, &page_token, ESTIMATE_PAGE, "campaign.audience.filter")
                    .await?;
                self.app.judge_reach(principal.tenant, template.channel, template.purpose, &page.customers, &mut reach).await?;
                if page.next_page_token.is_empty() {
                    break true;
                }
                if reach.audience >= ESTIMATE_LIMIT {
                    break false;
                }
                page_token = page.next_page_token;
            };
            Ok(pb::EstimateCampaignReachResponse {
                audience: reach.audience,
                reachable: reach.reachable,
                skipped_by_reason: reach
                    .skipped
                    .iter()
                    .map(|(reason, count)| pb::SkipCount { reason: skip_reason_to(reason.as_str()) as i32, count: *count })
                    .collect(),
                complete,
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn create_campaign(&self, request: Request<pb::CreateCampaignRequest>) -> Result<Response<pb::CreateCampaignResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_RUN)?;
            let from = Caller::of(&request);
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateCampaign",
                &request.request_id,
                &pb::CreateCampaignRequest { request_id: String::new(), ..request.clone() },
            )?;
            let fields = campaign_fields(&required(request.campaign, "campaign")?)?;
            self.check_audience(&from, &fields).await?;
            self.app
                .create_campaign(principal.tenant, fields, key.as_ref(), Utc::now(), |c| pb::CreateCampaignResponse {
                    campaign: Some(shown(c)),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_campaign(&self, request: Request<pb::GetCampaignRequest>) -> Result<Response<pb::GetCampaignResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_READ)?;
            let id = CAMPAIGN.parse(&request.get_ref().name, "name")?;
            Ok(pb::GetCampaignResponse { campaign: Some(shown(&self.app.campaign(principal.tenant, id).await?)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_campaigns(&self, request: Request<pb::ListCampaignsRequest>) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_READ)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(request.page_size, &request.page_token, &["ListCampaigns", &principal.tenant.to_string()])?;
            let rows = self.app.campaigns(principal.tenant, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |(c, _)| c.id);
            Ok(pb::ListCampaignsResponse { campaigns: rows.iter().map(shown).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_campaign(&self, request: Request<pb::UpdateCampaignRequest>) -> Result<Response<pb::UpdateCampaignResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_RUN)?;
            let from = Caller::of(&request);
            let pb::UpdateCampaignRequest { campaign, update_mask } = request.into_inner();
            let input = required(campaign, "campaign")?;
            let id = CAMPAIGN.parse(&input.name, "campaign.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            // The audience check calls profiles, which must not happen inside the
            // transaction: merge and check first; the etag pins what was merged.
            let (stored, _) = self.app.campaign(principal.tenant, id).await?;
            let mut merged = campaign_to(&stored, None);
            for path in &paths {
                copy_field(&mut merged, &input, path);
            }
            let fields = campaign_fields(&merged)?;
            if fields.audience_filter != stored.audience_filter {
                self.check_audience(&from, &fields).await?;
            }
            let etag = if input.etag.is_empty() { crm_kit::etag::of_revision(stored.revision) } else { input.etag.clone() };
            let updated = self.app.update_campaign(principal.tenant, id, &etag, |_| Ok(fields), Utc::now()).await?;
            Ok(pb::UpdateCampaignResponse { campaign: Some(shown(&updated)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_campaign(&self, request: Request<pb::DeleteCampaignRequest>) -> Result<Response<pb::DeleteCampaignResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_RUN)?;
            let id = CAMPAIGN.parse(&request.get_ref().name, "name")?;
            self.app.delete_campaign(principal.tenant, id, &request.get_ref().etag).await?;
            Ok(pb::DeleteCampaignResponse {})
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn start_campaign(&self, request: Request<pb::StartCampaignRequest>) -> Result<Response<pb::StartCampaignResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_RUN)?;
            let id = CAMPAIGN.parse(&request.get_ref().name, "name")?;
            let now = Utc::now();
            let (stored, _) = self.app.campaign(principal.tenant, id).await?;
            let at = stored.schedule_time.unwrap_or(now);
            let moved = self.app.move_campaign(principal.tenant, id, &request.get_ref().etag, Move::Start { at }, now).await?;
            Ok(pb::StartCampaignResponse { campaign: Some(shown(&moved)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn pause_campaign(&self, request: Request<pb::PauseCampaignRequest>) -> Result<Response<pb::PauseCampaignResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_RUN)?;
            let id = CAMPAIGN.parse(&request.get_ref().name, "name")?;
            let moved = self.app.move_campaign(principal.tenant, id, "", Move::Pause, Utc::now()).await?;
            Ok(pb::PauseCampaignResponse { campaign: Some(shown(&moved)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn resume_campaign(&self, request: Request<pb::ResumeCampaignRequest>) -> Result<Response<pb::ResumeCampaignResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_RUN)?;
            let id = CAMPAIGN.parse(&request.get_ref().name, "name")?;
            let moved = self.app.move_campaign(principal.tenant, id, "", Move::Resume, Utc::now()).await?;
            Ok(pb::ResumeCampaignResponse { campaign: Some(shown(&moved)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn cancel_campaign(&self, request: Request<pb::CancelCampaignRequest>) -> Result<Response<pb::CancelCampaignResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_RUN)?;
            let id = CAMPAIGN.parse(&request.get_ref().name, "name")?;
            let moved = self.app.move_campaign(principal.tenant, id, "", Move::Cancel, Utc::now()).await?;
            Ok(pb::CancelCampaignResponse { campaign: Some(shown(&moved)) })
        })
        .await
    }
}

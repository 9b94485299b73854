//! `crm.campaigns.v1.AttributionService`: custom goals recorded
//! (`conversions.write`; the customer checked with the caller's token) and
//! what a campaign's or a journey's messages earned (`campaigns.read`).

use chrono::{SubsecRound, Utc};
use crm_kit::{
    Error, FieldViolation, auth::caller, client::Caller, idempotency::IdempotencyKey, money, required, respond, time::from_timestamp,
};
use crm_proto::crm::campaigns::v1::{self as pb, attribution_service_server::AttributionService};
use tonic::{Request, Response, Status};

use crate::{
    app::{App, attribution::WINDOW_DAYS},
    domain::is_slug,
    permissions,
    profiles::ProfilesClient,
    resources::{CAMPAIGN, CUSTOMER, JOURNEY},
    store::conversions::{Goal, Sender},
    wire::attribution::{attribution_to, conversion_to},
};

/// Handlers of AttributionService.
#[derive(Clone)]
pub struct AttributionApi {
    app: App,
    profiles: ProfilesClient,
}

impl AttributionApi {
    /// Handlers over `app`, checking customers with `profiles`.
    pub fn new(app: App, profiles: ProfilesClient) -> Self {
        Self { app, profiles }
    }
}

#[tonic::async_trait]
impl AttributionService for AttributionApi {
    #[tracing::instrument(skip_all)]
    async fn record_conversion(
        &self,
        request: Request<pb::RecordConversionRequest>,
    ) -> Result<Response<pb::RecordConversionResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CONVERSIONS_WRITE)?;
            let from = Caller::of(&request);
            let request = request.into_inner();
            let fingerprint = pb::RecordConversionRequest { request_id: String::new(), ..request.clone() };
            let key = IdempotencyKey::new("RecordConversion", &request.request_id, &fingerprint)?.ok_or_else(|| {
                Error::invalid("request_id", "REQUIRED", "a conversion needs a request_id, so that a retry never counts it twice")
            })?;
            let c = required(request.conversion, "conversion")?;
            let mut violations = Vec::new();
            let customer = CUSTOMER.parse(&c.customer, "conversion.customer").map_err(|e| violations.push(e)).ok();
            if !is_slug(&c.goal) {
                violations.push(Error::invalid(
                    "conversion.goal",
                    "INVALID_GOAL",
                    "a custom goal's name: 1-63 lowercase letters, digits and hyphens, starting with a letter",
                ));
            }
            let value = match c.value.as_ref().map(|m| money::to_minor(m, None)) {
                None => None,
                Some(Ok(v)) if v.minor >= 0 => Some(v),
                Some(Ok(_)) => {
                    violations.push(Error::invalid("conversion.value", "INVALID_AMOUNT", "a value is zero or more"));
                    None
                }
                Some(Err((reason, message))) => {
                    violations.push(Error::invalid("conversion.value", reason, message));
                    None
                }
            };
            let now = Utc::now().trunc_subsecs(6);
            let occur_time = c.occur_time.as_ref().and_then(from_timestamp).map_or(now, |t| t.trunc_subsecs(6));
            if occur_time > now + chrono::Duration::minutes(5) {
                violations.push(Error::invalid(
                    "conversion.occur_time",
                    "INVALID_OCCUR_TIME",
                    "a goal is reached in the past, not the future",
                ));
            }
            let (Some(customer), true) = (customer, violations.is_empty()) else {
                let violations: Vec<FieldViolation> = violations
                    .into_iter()
                    .flat_map(|e| match e {
                        Error::InvalidArgument { violations } => violations,
                        _ => Vec::new(),
                    })
                    .collect();
                return Err(Error::InvalidArgument { violations });
            };
            self.profiles.customer(&from, customer, "conversion.customer").await?;
            let source = format!("requests/{}", key.request_id());
            let (currency, minor) = value.map_or((String::new(), 0), |v| (v.currency, v.minor));
            let goal =
                Goal { customer_id: customer, goal: &c.goal, source: &source, currency_code: &currency, revenue_minor: minor, occur_time };
            self.app
                .record_conversion(principal.tenant, &goal, &key, Utc::now(), |row| pb::RecordConversionResponse {
                    conversion: Some(conversion_to(row)),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_attribution(&self, request: Request<pb::GetAttributionRequest>) -> Result<Response<pb::GetAttributionResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CAMPAIGNS_READ)?;
            let name = request.get_ref().name.as_str();
            let invalid = || Error::invalid("name", "INVALID_NAME", "campaigns/{id}/attribution or journeys/{id}/attribution");
            let parent = name.strip_suffix("/attribution").ok_or_else(invalid)?;
            let (sender, tests, window_days) = match (CAMPAIGN.id_of(parent), JOURNEY.id_of(parent)) {
                (Some(id), _) => {
                    let (campaign, _) = self.app.campaign(principal.tenant, id).await?;
                    let test = self.app.campaign_test_report(principal.tenant, &campaign).await?;
                    (Sender::Campaign(id), test.into_iter().collect(), i64::from(campaign.attribution_window_days))
                }
                (_, Some(id)) => {
                    self.app.journey(principal.tenant, id).await?;
                    (Sender::Journey(id), self.app.ab_test_reports(principal.tenant, id).await?, WINDOW_DAYS)
                }
                _ => return Err(invalid()),
            };
            let earned = self.app.attribution(principal.tenant, sender).await?;
            Ok(pb::GetAttributionResponse { attribution: Some(attribution_to(name, &earned, window_days, &tests)) })
        })
        .await
    }
}

//! `crm.webhooks.v1.WebhookService`: administrators subscribe URLs to the
//! service's events, rotate their secrets, replay and read the delivery log.
//! A target's host must resolve to public addresses (SSRF): checked here
//! before anything is stored, and again by every delivery run.

use chrono::{DateTime, Utc};
use crm_proto::crm::webhooks::v1::{self as pb, webhook::State, webhook_delivery::Outcome, webhook_service_server::WebhookService};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    WEBHOOK, WEBHOOK_DELIVERY, WEBHOOKS_MANAGE, policy, signing,
    store::{self, AttemptRow, WebhookFields, WebhookRow},
};
use crate::{
    Error,
    auth::caller,
    db::begin_tenant,
    fieldmask::UpdateMask,
    idempotency::{IdempotencyKey, remember, replay},
    pagination::{PageTokenCodec, Pager},
    required, respond,
    sealed::SecretCipher,
    time::{from_timestamp, to_timestamp},
};

const WRITABLE: &[&str] = &["target_uri", "event_types", "description", "state"];
/// Event-type filters a webhook may list.
const MAX_EVENT_TYPES: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_URI_CHARS: usize = 2000;
/// How long a replaced secret signs by default, and at most.
const DEFAULT_OVERLAP_SECS: i64 = 86_400;
const MAX_OVERLAP_SECS: i64 = 7 * 86_400;

/// Handlers of WebhookService.
#[derive(Clone)]
pub struct WebhookApi {
    pool: PgPool,
    page_tokens: PageTokenCodec,
    cipher: SecretCipher,
    allow_private: bool,
}

impl WebhookApi {
    /// Handlers over the service's database.
    pub fn new(pool: PgPool, page_tokens: PageTokenCodec, cipher: SecretCipher, allow_private: bool) -> Self {
        Self { pool, page_tokens, cipher, allow_private }
    }

    /// `input`'s fields checked, the target's host resolved (before any transaction).
    async fn fields(&self, input: &pb::Webhook, stored: Option<&WebhookRow>) -> Result<WebhookFields, Error> {
        let mut violations = Vec::new();
        let target_uri = input.target_uri.trim().to_owned();
        let stored_active = stored.map(|row| row.state == "ACTIVE");
        if stored.is_some_and(|row| row.target_uri == target_uri) {
            // Unchanged: checked when it was set, and again by every delivery run
            // (so a webhook whose host went bad can still be paused or described).
        } else if target_uri.is_empty() || target_uri.chars().count() > MAX_URI_CHARS {
            violations.push(crate::FieldViolation::new("webhook.target_uri", "INVALID_VALUE", "an https URL of at most 2000 characters"));
        } else {
            if let Err(refused) = crate::egress::check_target("webhook.target_uri", &target_uri, self.allow_private).await {
                violations.push(refused);
            }
        }
        if input.event_types.len() > MAX_EVENT_TYPES {
            violations.push(crate::FieldViolation::new("webhook.event_types", "TOO_MANY", "at most 100 event types"));
        }
        for (i, t) in input.event_types.iter().enumerate() {
            if !policy::valid_type_filter(t) {
                violations.push(crate::FieldViolation::new(
                    format!("webhook.event_types[{i}]"),
                    "INVALID_EVENT_TYPE",
                    format!("{t:?} is not an event type like \"crm.profiles.v1.CustomerCreated\" or a prefix ending in \"*\""),
                ));
            }
        }
        let description = input.description.trim().to_owned();
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            violations.push(crate::FieldViolation::new("webhook.description", "TOO_LONG", "at most 500 characters"));
        }
        let active = match State::try_from(input.state) {
            Ok(State::Active) => true,
            Ok(State::Disabled) => false,
            Ok(State::Unspecified) => stored_active.unwrap_or(true),
            Err(_) => {
                violations.push(crate::FieldViolation::new("webhook.state", "INVALID_VALUE", "ACTIVE or DISABLED"));
                true
            }
        };
        if !violations.is_empty() {
            return Err(Error::InvalidArgument { violations });
        }
        let mut event_types = input.event_types.clone();
        event_types.sort();
        event_types.dedup();
        Ok(WebhookFields { target_uri, event_types, description, active })
    }

    /// A new secret, sealed for webhook `id`.
    fn new_secret(&self, tenant: Uuid, id: Uuid) -> (String, Vec<u8>) {
        let secret = signing::new_secret();
        let sealed = self.cipher.seal(tenant, id, &secret);
        (secret, sealed)
    }
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    #[tracing::instrument(skip_all)]
    async fn create_webhook(&self, request: Request<pb::CreateWebhookRequest>) -> Result<Response<pb::CreateWebhookResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(WEBHOOKS_MANAGE)?;
            let tenant = principal.tenant;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateWebhook",
                &request.request_id,
                &pb::CreateWebhookRequest { request_id: String::new(), ..request.clone() },
            )?;
            if request.start_after_position < 0 {
                return Err(Error::invalid("start_after_position", "INVALID_POSITION", "must not be negative"));
            }
            let input = required(request.webhook, "webhook")?;
            let fields = self.fields(&input, None).await?;
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            if let Some(mut response) = replay::<pb::CreateWebhookResponse>(key.as_ref(), &mut tx, tenant).await? {
                // The secret is not kept with the stored answer: a retry gets the webhook's current one.
                let id = WEBHOOK.parse(response.webhook.as_ref().map(|w| w.name.as_str()).unwrap_or_default(), "name")?;
                let row = store::get(&mut tx, tenant, id, false).await?;
                response.secret = self.cipher.open(tenant, id, &row.secret).map_err(Error::internal)?;
                return Ok(response);
            }
            let id = Uuid::now_v7();
            let (secret, sealed) = self.new_secret(tenant, id);
            let latest = store::latest_position(&mut tx, tenant).await?;
            let start = match request.start_after_position {
                0 => latest,
                position if position > latest => {
                    return Err(Error::invalid(
                        "start_after_position",
                        "INVALID_POSITION",
                        format!("{position} is beyond the newest event's position ({latest})"),
                    ));
                }
                position => position,
            };
            let row = store::insert(&mut tx, tenant, id, &fields, &sealed, start, Utc::now()).await?;
            let mut response = pb::CreateWebhookResponse { webhook: Some(webhook_to(&row)), secret: String::new() };
            remember(key.as_ref(), &mut tx, tenant, &response).await?;
            tx.commit().await?;
            response.secret = secret;
            Ok(response)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_webhook(&self, request: Request<pb::GetWebhookRequest>) -> Result<Response<pb::GetWebhookResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(WEBHOOKS_MANAGE)?;
            let id = WEBHOOK.parse(&request.get_ref().name, "name")?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let row = store::get(&mut tx, principal.tenant, id, false).await?;
            tx.commit().await?;
            Ok(pb::GetWebhookResponse { webhook: Some(webhook_to(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_webhooks(&self, request: Request<pb::ListWebhooksRequest>) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(WEBHOOKS_MANAGE)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<Uuid>(request.page_size, &request.page_token, &["ListWebhooks", &principal.tenant.to_string()])?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let rows = store::page(&mut tx, principal.tenant, page.after, page.fetch_limit()).await?;
            tx.commit().await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |row| row.id);
            Ok(pb::ListWebhooksResponse { webhooks: rows.iter().map(webhook_to).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_webhook(&self, request: Request<pb::UpdateWebhookRequest>) -> Result<Response<pb::UpdateWebhookResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(WEBHOOKS_MANAGE)?;
            let tenant = principal.tenant;
            let pb::UpdateWebhookRequest { webhook, update_mask } = request.into_inner();
            let input = required(webhook, "webhook")?;
            let id = WEBHOOK.parse(&input.name, "webhook.name")?;
            let mask = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?;
            crate::etag::parse(&input.etag, "webhook.etag")?;
            // The target's host is resolved outside the transaction: merge onto what is stored, check, then write if the etag still holds.
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            let stored = store::get(&mut tx, tenant, id, false).await?;
            tx.commit().await?;
            let mut merged = webhook_to(&stored);
            for path in mask.resolve(WRITABLE) {
                match path {
                    "target_uri" => merged.target_uri.clone_from(&input.target_uri),
                    "event_types" => merged.event_types.clone_from(&input.event_types),
                    "description" => merged.description.clone_from(&input.description),
                    _ => merged.state = input.state,
                }
            }
            let fields = self.fields(&merged, Some(&stored)).await?;
            let retry_now = fields.target_uri != stored.target_uri || fields.event_types != stored.event_types;
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            let current = store::get(&mut tx, tenant, id, true).await?;
            WEBHOOK.check_etag(&input.etag, "webhook.etag", id, current.revision)?;
            if current.revision != stored.revision {
                // Changed between the merge and the lock: the caller retries (ABORTED with retry info).
                return Err(Error::Conflict);
            }
            store::update(&mut tx, tenant, id, &fields, retry_now, Utc::now()).await?;
            let row = store::get(&mut tx, tenant, id, false).await?;
            tx.commit().await?;
            Ok(pb::UpdateWebhookResponse { webhook: Some(webhook_to(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_webhook(&self, request: Request<pb::DeleteWebhookRequest>) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(WEBHOOKS_MANAGE)?;
            let request = request.get_ref();
            let id = WEBHOOK.parse(&request.name, "name")?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let row = store::get(&mut tx, principal.tenant, id, true).await?;
            WEBHOOK.check_etag(&request.etag, "etag", id, row.revision)?;
            store::delete(&mut tx, principal.tenant, id).await?;
            tx.commit().await?;
            Ok(pb::DeleteWebhookResponse {})
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_webhook_secret(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::RotateWebhookSecretResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(WEBHOOKS_MANAGE)?;
            let tenant = principal.tenant;
            let request = request.get_ref();
            let id = WEBHOOK.parse(&request.name, "name")?;
            let overlap = match request.overlap_seconds {
                0 => DEFAULT_OVERLAP_SECS,
                s if (1..=MAX_OVERLAP_SECS).contains(&s) => s,
                _ => return Err(Error::invalid("overlap_seconds", "OUT_OF_RANGE", "0 (24 hours) to 604800 (7 days)")),
            };
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            let row = store::get(&mut tx, tenant, id, true).await?;
            WEBHOOK.check_etag(&request.etag, "etag", id, row.revision)?;
            let (secret, sealed) = self.new_secret(tenant, id);
            let now = Utc::now();
            store::rotate_secret(&mut tx, tenant, id, &sealed, now + chrono::Duration::seconds(overlap), now).await?;
            let row = store::get(&mut tx, tenant, id, false).await?;
            tx.commit().await?;
            Ok(pb::RotateWebhookSecretResponse { webhook: Some(webhook_to(&row)), secret })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn replay_webhook(&self, request: Request<pb::ReplayWebhookRequest>) -> Result<Response<pb::ReplayWebhookResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(WEBHOOKS_MANAGE)?;
            let tenant = principal.tenant;
            let request = request.get_ref();
            let id = WEBHOOK.parse(&request.name, "name")?;
            use pb::replay_webhook_request::Start;
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            store::get(&mut tx, tenant, id, true).await?;
            let latest = store::latest_position(&mut tx, tenant).await?;
            let position = match &request.start {
                Some(Start::AfterPosition(p)) if *p < 0 => {
                    return Err(Error::invalid("after_position", "INVALID_POSITION", "must not be negative"));
                }
                Some(Start::AfterPosition(p)) if *p > latest => {
                    return Err(Error::invalid(
                        "after_position",
                        "INVALID_POSITION",
                        format!("{p} is beyond the newest event's position ({latest})"),
                    ));
                }
                Some(Start::AfterPosition(p)) => *p,
                Some(Start::FromTime(t)) => {
                    let time = from_timestamp(t).ok_or_else(|| Error::invalid("from_time", "INVALID_TIME", "not a valid timestamp"))?;
                    store::position_before(&mut tx, tenant, time).await?
                }
                None => return Err(Error::invalid("start", "REQUIRED", "set after_position or from_time")),
            };
            tx.commit().await?;
            if position > 0 {
                crate::outbox::check_not_pruned(&self.pool, tenant, position).await?;
            }
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            store::get(&mut tx, tenant, id, true).await?;
            // 0 is "the oldest event kept", not a gap to report.
            let position = position.max(crate::outbox::pruned_position(&mut tx, tenant).await?);
            store::rewind(&mut tx, tenant, id, position).await?;
            let row = store::get(&mut tx, tenant, id, false).await?;
            tx.commit().await?;
            tracing::info!(webhook = %WEBHOOK.name(id), after_position = position, "webhook replay requested");
            Ok(pb::ReplayWebhookResponse { webhook: Some(webhook_to(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_webhook_deliveries(
        &self,
        request: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(WEBHOOKS_MANAGE)?;
            let request = request.get_ref();
            let webhook = WEBHOOK.parse(&request.parent, "parent")?;
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<Uuid>(
                request.page_size,
                &request.page_token,
                &["ListWebhookDeliveries", &principal.tenant.to_string(), &request.parent],
            )?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            store::get(&mut tx, principal.tenant, webhook, false).await?;
            let rows = store::attempts(&mut tx, principal.tenant, webhook, page.after, page.fetch_limit()).await?;
            tx.commit().await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |row| row.id);
            Ok(pb::ListWebhookDeliveriesResponse {
                deliveries: rows.iter().map(|row| delivery_to(webhook, row)).collect(),
                next_page_token,
            })
        })
        .await
    }
}

fn timestamp(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(to_timestamp)
}

/// `row` as the API shows it (never its secrets).
fn webhook_to(row: &WebhookRow) -> pb::Webhook {
    pb::Webhook {
        name: WEBHOOK.name(row.id),
        target_uri: row.target_uri.clone(),
        event_types: row.event_types.clone(),
        description: row.description.clone(),
        state: if row.state == "ACTIVE" { State::Active } else { State::Disabled } as i32,
        disabled_reason: row.disabled_reason.clone(),
        delivered_position: row.position,
        failing_since: timestamp(row.failing_since),
        previous_secret_expire_time: timestamp(row.previous_secret_expire_time.filter(|t| *t > Utc::now())),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
        etag: crate::etag::of_revision(row.revision),
    }
}

fn delivery_to(webhook: Uuid, row: &AttemptRow) -> pb::WebhookDelivery {
    pb::WebhookDelivery {
        name: WEBHOOK_DELIVERY.name(webhook, row.id),
        event_id: row.event_id.to_string(),
        event_type: row.event_type.clone(),
        position: row.position,
        attempt: row.attempt,
        outcome: if row.succeeded { Outcome::Succeeded } else { Outcome::Failed } as i32,
        response_code: row.response_code,
        error: row.error.clone(),
        latency: Some(prost_types::Duration { seconds: row.latency_us / 1_000_000, nanos: (row.latency_us % 1_000_000) as i32 * 1000 }),
        attempt_time: Some(to_timestamp(row.attempt_time)),
        next_attempt_time: timestamp(row.next_attempt_time),
    }
}

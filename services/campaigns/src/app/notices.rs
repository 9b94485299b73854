//! Accepting a notice: render the template for the customer, apply the
//! contact policy, and record the delivery — QUEUED in the notice lane, or
//! SKIPPED with its reason — in one transaction with its request id, so a
//! retried request finds the first delivery and nothing is sent twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    idempotency::{self, IdempotencyKey},
};
use crm_proto::crm::campaigns::v1 as pb;
use prost::Message;
use sqlx::types::Json;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    domain::{channel::Purpose, customer::Customer, delivery::Status, policy, template},
    resources::DELIVERY,
    store::{
        deliveries::{self, DeliveryRow},
        providers,
        queue::{self, NOTICE_LANE},
        templates::{TEMPLATES, TemplateRow},
    },
    wire::{View, delivery_to, problems_to_violations},
};

/// A notice to accept.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    /// The template.
    pub template: Uuid,
    /// The recipient as profiles knows them now.
    pub customer: &'a Customer,
    /// The sender's values of `vars.*`.
    pub variables: &'a BTreeMap<String, String>,
    /// The sender's request id (the ledger's unique key for notices).
    pub request_id: &'a str,
}

impl App {
    /// The stored response of an earlier request with this key, if there was one.
    pub async fn notice_replay<R: Message + Default>(&self, tenant: Uuid, key: &IdempotencyKey) -> Result<Option<R>, Error> {
        let mut tx = self.begin(tenant).await?;
        let replay = key.completed::<R>(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(replay)
    }

    /// Accepts `notice` into the ledger and writes `DeliveryStatusChanged`.
    /// INVALID_ARGUMENT for an unknown template or every render problem (a
    /// missing locked variable, an unknown one, a text too long);
    /// FAILED_PRECONDITION when the tenant has no provider for the channel.
    pub async fn send_notice<R: Message + Default>(
        &self,
        tenant: Uuid,
        notice: Notice<'_>,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        respond: impl FnOnce(&DeliveryRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(Some(key), &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let row = self.accept_notice(&mut tx, tenant, notice, now).await?;
        let response = respond(&row);
        idempotency::remember(Some(key), &mut tx, tenant, &response).await?;
        tx.commit().await?;
        tracing::info!(delivery = %row.id, status = row.status.as_str(), channel = %row.channel, "notice accepted");
        Ok(response)
    }
}

impl App {
    /// Accepts `notice` into the ledger in `tx`: the delivery QUEUED (or
    /// SKIPPED with its reason) and its `DeliveryStatusChanged` event.
    /// INVALID_ARGUMENT for an unknown template or every render problem;
    /// FAILED_PRECONDITION when the tenant has no provider for the channel —
    /// both before anything is written, so `tx` stays usable.
    pub async fn accept_notice(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        notice: Notice<'_>,
        now: DateTime<Utc>,
    ) -> Result<DeliveryRow, Error> {
        let stored: TemplateRow = TEMPLATES.find(tx, tenant, notice.template, false).await?.ok_or_else(|| {
            Error::invalid("template", "UNKNOWN_TEMPLATE", format!("templates/{} is not a template of this tenant", notice.template))
        })?;
        let draft = stored.draft();
        if providers::for_channel(tx, tenant, draft.channel).await?.is_none() {
            return Err(Error::FailedPrecondition {
                reason: "NO_PROVIDER",
                message: format!("no {} provider is configured; an administrator creates one with CreateProvider", draft.channel),
                subject: format!("channels/{}", draft.channel),
            });
        }
        let id = Uuid::now_v7();
        let unsubscribe_url = match draft.purpose {
            Purpose::Marketing => self.links().unsubscribe_url(tenant, id),
            Purpose::Transactional => None,
        };
        let (rendered, problems) =
            template::render(&draft, "", Some(&notice.customer.fields), notice.variables, unsubscribe_url.as_deref());
        if !problems.is_empty() {
            return Err(problems_to_violations(problems));
        }
        let (status, recipient, skip_reason) = match policy::address(notice.customer, draft.channel, draft.purpose) {
            Ok(address) => (Status::Queued, address, String::new()),
            Err(reason) => (Status::Skipped, String::new(), reason.as_str().to_owned()),
        };
        let row = DeliveryRow {
            id,
            kind: "NOTICE".into(),
            campaign_id: None,
            request_id: notice.request_id.to_owned(),
            template_id: stored.id,
            customer_id: notice.customer.id,
            channel: draft.channel,
            purpose: draft.purpose,
            recipient,
            status,
            skip_reason,
            locale: rendered.locale,
            subject: rendered.subject,
            body: rendered.body,
            html_body: rendered.html_body,
            data: Json(rendered.data),
            variables: Json(template::slot_values(notice.variables, Some(&notice.customer.fields))),
            attempts: 0,
            provider_id: None,
            provider_message_id: String::new(),
            error: String::new(),
            create_time: now,
            update_time: now,
            send_time: None,
            next_attempt_time: (status == Status::Queued).then_some(now),
            receipt_status: String::new(),
            receipt_time: None,
            receipt_error: String::new(),
            traceparent: crm_kit::telemetry::current_traceparent(),
            open_time: None,
            click_time: None,
            variant: String::new(),
        };
        deliveries::insert(tx, tenant, &row).await?;
        if status == Status::Queued {
            queue::enqueue(tx, tenant, row.id, NOTICE_LANE, now).await?;
        }
        let event = pb::DeliveryStatusChanged { delivery: Some(delivery_to(&row, View::WithoutContent)), previous_status: 0 };
        emit(tx, tenant, &DELIVERY.name(row.id), &event).await?;
        Ok(row)
    }
}

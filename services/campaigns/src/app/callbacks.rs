//! Applying what a provider reported, verified by the handler, in one
//! transaction: each final receipt once (counted on its campaign as
//! delivered or undelivered, `DeliveryReceiptRecorded` emitted), each inbound
//! message once (stored, matched to the customer the tenant last texted at
//! that number, `InboundMessageReceived` emitted) — and an opt-out keyword
//! from a known customer unsubscribes them from SMS marketing like a link
//! does, and any other reply answers their open survey invitation when it
//! fits its first question. Replays find everything recorded and change nothing.

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx};
use crm_proto::crm::campaigns::v1 as pb;
use uuid::Uuid;

use super::{App, emit, unsubscribes::record_unsubscribe};
use crate::{
    domain::{
        inbound::{self, Inbound, Receipt, Report},
        questionnaire,
    },
    resources::{CUSTOMER, DELIVERY, PROVIDER},
    store::{
        campaigns, contact_policy, questionnaires,
        receipts::{self, InboundRow},
        unsubscribes::{self, UnsubscribeRow},
    },
    wire::{View, delivery_to, masked_recipient},
};

/// What a callback changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// Receipts recorded now.
    pub receipts: i32,
    /// Inbound messages stored now.
    pub inbound: i32,
    /// Opt-outs to carry to profiles.
    pub opt_outs: Vec<UnsubscribeRow>,
}

impl App {
    /// Applies `reports` from `provider` of `tenant`.
    pub async fn apply_reports(&self, tenant: Uuid, provider: Uuid, reports: &[Report], now: DateTime<Utc>) -> Result<Applied, Error> {
        let mut tx = self.begin(tenant).await?;
        let mut applied = Applied::default();
        for report in reports {
            match report {
                Report::Receipt(r) => applied.receipts += i32::from(apply_receipt(&mut tx, tenant, provider, r, now).await?),
                Report::Inbound(m) => {
                    if let Some(opt_out) = apply_inbound(&mut tx, tenant, provider, m, now).await? {
                        applied.inbound += 1;
                        applied.opt_outs.extend(opt_out);
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(applied)
    }
}

/// Records receipt `r`; whether it was new.
async fn apply_receipt(tx: &mut TenantTx, tenant: Uuid, provider: Uuid, r: &Receipt, now: DateTime<Utc>) -> Result<bool, Error> {
    let status = if r.delivered { "DELIVERED" } else { "UNDELIVERED" };
    let error: String = r.error.chars().take(500).collect();
    let Some(row) = receipts::record(tx, tenant, provider, &r.message, status, &error, now).await? else {
        return Ok(false);
    };
    if r.bounced && !r.delivered {
        // The address does not exist: nothing more goes to it, as for a refusal at submission.
        contact_policy::suppress(tx, tenant, row.channel, &row.recipient, row.id, &error, now).await?;
    }
    if let Some(campaign) = row.campaign_id {
        let reason = if r.bounced && !r.delivered { "BOUNCED" } else { "" };
        campaigns::add_counts(tx, tenant, campaign, &[((status, reason), 1)].into_iter().collect()).await?;
    }
    let event = pb::DeliveryReceiptRecorded { delivery: Some(delivery_to(&row, View::WithoutContent)) };
    emit(tx, tenant, &DELIVERY.name(row.id), &event).await?;
    Ok(true)
}

/// Stores inbound message `m`: None when it was stored before, else the
/// opt-out it makes (if it is one, from a customer the tenant texted).
async fn apply_inbound(
    tx: &mut TenantTx,
    tenant: Uuid,
    provider: Uuid,
    m: &Inbound,
    now: DateTime<Utc>,
) -> Result<Option<Option<UnsubscribeRow>>, Error> {
    let answered = receipts::last_sms_to(tx, tenant, &inbound::sender_addresses(&m.from)).await?;
    let opt_out = inbound::is_opt_out(&m.text);
    let row = InboundRow {
        id: Uuid::now_v7(),
        provider_id: provider,
        provider_message_id: m.id.chars().take(200).collect(),
        sender: m.from.chars().take(64).collect(),
        recipient: m.to.chars().take(64).collect(),
        body: m.text.chars().take(2000).collect(),
        customer_id: answered.as_ref().map(|d| d.customer_id),
        opt_out,
        receive_time: now,
    };
    if !receipts::insert_inbound(tx, tenant, &row).await? {
        return Ok(None);
    }
    // A reply to a survey invitation answers it (the customer's latest open one).
    if let (Some(customer), false) = (row.customer_id, opt_out)
        && let Some((invitation, questions)) = questionnaires::latest_open(tx, tenant, customer, now).await?
        && let Some(answer) = questionnaire::reply_answer(&questions.0, &row.body)
    {
        questionnaires::answer(tx, tenant, invitation, &[answer], now).await?;
    }
    let unsubscribe = match (&answered, opt_out) {
        (Some(delivery), true) => match record_unsubscribe(tx, tenant, delivery, now).await? {
            Some(new) => Some(new),
            // Unsubscribed from that message before (perhaps opted in since): withdraw again.
            None => unsubscribes::reopen(tx, tenant, delivery.id).await?,
        },
        _ => None,
    };
    let event = pb::InboundMessageReceived {
        provider: PROVIDER.name(provider),
        customer: row.customer_id.map(|c| CUSTOMER.name(c)).unwrap_or_default(),
        sender: masked_recipient(pb::Channel::Sms, &row.sender),
        opt_out: unsubscribe.is_some(),
    };
    emit(tx, tenant, &PROVIDER.name(provider), &event).await?;
    Ok(Some(unsubscribe))
}

impl App {
    /// A page of the tenant's inbound messages matching `filter`, newest first.
    pub async fn inbound_messages(
        &self,
        tenant: Uuid,
        filter: &crm_kit::filter::CheckedFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<InboundRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = receipts::list_inbound(&mut tx, tenant, filter, before, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

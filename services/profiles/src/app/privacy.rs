//! GDPR / PIPL: everything held about a customer, read in one transaction
//! for an export; and erasure — the customer's personal data removed from
//! every table in one transaction, an audit entry kept (when, by whom,
//! why: no personal data), and `CustomerErased` announced so that other
//! services erase their copies.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    history::{self, FieldChange},
    outbox,
};
use crm_proto::crm::profiles::v1 as pb;
use serde_json::Value as Json;
use uuid::Uuid;

use super::{App, customers::lock_for_change};
use crate::{
    resources::CUSTOMER,
    store::{
        CustomerRow,
        communications::{COMMUNICATIONS, CommunicationRow},
        erasure,
        history::{self as changes, ChangeRow},
        occurrences::{OCCURRENCES, OccurrenceRow},
        payment_accounts::{PAYMENT_ACCOUNTS, PaymentAccountRow},
        premises::{OCCUPANCIES, OccupancyRow},
        related_persons::{RELATED_PERSONS, RelatedPersonRow},
        rename::{self, RenameRow},
        transactions::{self, SpendingRow, TransactionRow},
    },
};

/// Everything profiles holds about one customer.
#[derive(Debug, Clone)]
pub struct CustomerData {
    pub customer: CustomerRow,
    pub related_persons: Vec<RelatedPersonRow>,
    pub payment_accounts: Vec<PaymentAccountRow>,
    pub communications: Vec<CommunicationRow>,
    pub occurrences: Vec<OccurrenceRow>,
    pub occupancies: Vec<OccupancyRow>,
    pub transactions: Vec<TransactionRow>,
    pub spending: Vec<SpendingRow>,
    pub rename_requests: Vec<RenameRow>,
    /// Oldest first.
    pub changes: Vec<ChangeRow>,
}

impl App {
    /// Everything held about customer `id`, deleted or not; NOT_FOUND if there is none.
    pub async fn customer_data(&self, tenant: Uuid, id: Uuid) -> Result<CustomerData, Error> {
        let all = i64::MAX;
        let mut tx = self.begin(tenant).await?;
        let customer = super::existing_customer(&mut tx, tenant, id).await?;
        let related_persons = RELATED_PERSONS.page_under(&mut tx, tenant, "customer_id", id, None, all).await?;
        let payment_accounts = PAYMENT_ACCOUNTS.page_under(&mut tx, tenant, "customer_id", id, None, all).await?;
        let communications = COMMUNICATIONS.page_under(&mut tx, tenant, "customer_id", id, None, all).await?;
        let occurrences = OCCURRENCES.page_under(&mut tx, tenant, "customer_id", id, None, all).await?;
        let occupancies = OCCUPANCIES.page_under(&mut tx, tenant, "customer_id", id, None, all).await?;
        let transactions = transactions::page(&mut tx, tenant, id, None, None, all).await?;
        let spending = transactions::spending(&mut tx, tenant, id).await?;
        let rename_requests = rename::page(&mut tx, tenant, (Some(id), None), None, all).await?;
        let mut changes = changes::page(&mut tx, tenant, id, (None, None), None, all).await?;
        changes.reverse();
        tx.commit().await?;
        Ok(CustomerData {
            customer,
            related_persons,
            payment_accounts,
            communications,
            occurrences,
            occupancies,
            transactions,
            spending,
            rename_requests,
            changes,
        })
    }

    /// Erases customer `id`'s personal data for `reason` (the etag checked
    /// when given); erasing an erased customer returns it unchanged.
    pub async fn erase_customer(&self, tenant: Uuid, id: Uuid, etag: &str, reason: &str, now: DateTime<Utc>) -> Result<CustomerRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before = lock_for_change(&mut tx, tenant, id, etag, "etag").await?;
        if before.erase_time.is_some() {
            tx.commit().await?;
            return Ok(before);
        }
        let erased = erasure::erase(&mut tx, tenant, id, now).await?;
        // Its match keys went with its data; so do their index rows, and the
        // rows merge logs kept of it (those merges can no longer be undone).
        crate::store::duplicates::reindex(&mut tx, tenant, &[id]).await?;
        crate::store::merges::forget(&mut tx, tenant, id).await?;
        // The audit entry: when, by whom, through which request and why — nothing of what was erased.
        let time = Json::String(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        let audit = [("erase_time", time), ("erase_reason", Json::String(reason.to_owned()))].map(|(field, value)| FieldChange {
            field: field.to_owned(),
            old: Json::Null,
            new: value.clone(),
            old_masked: Json::Null,
            new_masked: value,
        });
        changes::insert(&mut tx, tenant, (id, &CUSTOMER.name(id), "UPDATE"), &audit, &history::origin(), now).await?;
        super::segments::refresh(&mut tx, tenant, &[(id, false)], now).await?;
        let event = pb::CustomerErased { customer: CUSTOMER.name(id), erase_time: Some(crm_kit::time::to_timestamp(now)) };
        outbox::append(&mut tx, tenant, &CUSTOMER.name(id), &event).await?;
        tx.commit().await?;
        tracing::info!(customer = %id, "customer erased");
        Ok(erased)
    }
}

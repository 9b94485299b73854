//! Recording customers' transactions, many at a time and all or none: each
//! external id is stored once (a re-sent transaction returns the stored one,
//! a different one under a used id is refused), every customer's spending
//! moves in the same database transaction, and each new transaction is
//! announced on its customer's subject.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use crm_kit::{Error, outbox};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::App;
use crate::{
    domain::transaction::TransactionDraft,
    resources::{CUSTOMER, TRANSACTION},
    store::transactions::{self as store, SpendingRow, TransactionRow},
    wire::transactions::{same_transaction, to_proto},
};

impl App {
    /// Records `drafts` of live customers, all or none; the stored
    /// transactions in the order of `drafts`.
    pub async fn record_transactions(
        &self,
        tenant: Uuid,
        drafts: &[TransactionDraft],
        now: DateTime<Utc>,
    ) -> Result<Vec<TransactionRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        hold_live_customers(&mut tx, tenant, drafts).await?;
        // Keys claimed in one order by every batch, so that two batches sharing ids cannot deadlock.
        let mut sorted: Vec<(Uuid, &TransactionDraft)> = drafts.iter().map(|d| (Uuid::now_v7(), d)).collect();
        sorted.sort_by(|a, b| a.1.external_id.cmp(&b.1.external_id));
        let inserted = store::insert_new(&mut tx, tenant, &sorted, now).await?;
        let new_ids: HashSet<Uuid> = inserted.iter().map(|r| r.id).collect();
        let new: Vec<(Uuid, &TransactionDraft)> = sorted.iter().filter(|(id, _)| new_ids.contains(id)).copied().collect();
        store::insert_items(&mut tx, tenant, &new).await?;

        // RETURNING promises no order: each stored row finds its draft by id.
        let drafts_by_id: HashMap<Uuid, &TransactionDraft> = new.iter().copied().collect();
        let mut stored: HashMap<String, TransactionRow> = HashMap::with_capacity(drafts.len());
        for mut row in inserted {
            let Some(draft) = drafts_by_id.get(&row.id) else { continue };
            row.line_items = draft
                .line_items
                .iter()
                .map(|i| store::LineItemRow {
                    transaction_id: row.id,
                    product: i.product.clone(),
                    sku: i.sku.clone(),
                    quantity: i.quantity,
                    unit_price_minor: i.unit_price_minor,
                })
                .collect();
            stored.insert(row.external_id.clone(), row);
        }
        let events: Vec<(String, pb::TransactionRecorded)> = stored
            .values()
            .map(|row| (CUSTOMER.name(row.customer_id), pb::TransactionRecorded { transaction: Some(to_proto(row)) }))
            .collect();

        // Ids stored before (or twice in this batch): the same transaction again, or a clash.
        let known: Vec<&str> = drafts.iter().map(|d| d.external_id.as_str()).filter(|id| !stored.contains_key(*id)).collect();
        let mut first_new: HashSet<String> = stored.keys().cloned().collect();
        for row in store::find_by_external_ids(&mut tx, tenant, &known).await? {
            stored.insert(row.external_id.clone(), row);
        }
        let mut response = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let row = stored.get(&draft.external_id).ok_or(Error::Conflict)?;
            // A new transaction is compared too when its id comes again later in the batch.
            if !first_new.remove(&draft.external_id) && !same_transaction(row, draft) {
                return Err(Error::AlreadyExists {
                    reason: "EXTERNAL_ID_USED",
                    message: format!("external id {:?} is already recorded, with other content", draft.external_id),
                    resource_type: TRANSACTION.type_name,
                    name: TRANSACTION.name(row.customer_id, row.id),
                });
            }
            response.push(row.clone());
        }
        outbox::append_all(&mut tx, tenant, &events).await?;
        let mut touched: Vec<Uuid> = new.iter().map(|(_, d)| d.customer).collect();
        touched.sort_unstable();
        touched.dedup();
        if !touched.is_empty() {
            super::grading::rescore(&mut tx, tenant, &touched, now).await?;
        }
        tx.commit().await?;
        Ok(response)
    }

    /// Transaction `id` of `customer`, or NOT_FOUND.
    pub async fn transaction(&self, tenant: Uuid, customer: Uuid, id: Uuid) -> Result<TransactionRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = store::find(&mut tx, tenant, customer, id).await?.ok_or_else(|| TRANSACTION.not_found(customer, id))?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of `customer`'s transactions (of `kind`, when given), most recent first.
    pub async fn transactions(
        &self,
        tenant: Uuid,
        customer: Uuid,
        kind: Option<&str>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<TransactionRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        super::existing_customer(&mut tx, tenant, customer).await?;
        let rows = store::page(&mut tx, tenant, customer, kind, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// `customer`'s spending per currency (NOT_FOUND when there is no such customer).
    pub async fn spending(&self, tenant: Uuid, customer: Uuid) -> Result<Vec<SpendingRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        super::existing_customer(&mut tx, tenant, customer).await?;
        let rows = store::spending(&mut tx, tenant, customer).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// Holds the customers of `drafts` until the transaction ends: NOT_FOUND for
/// one that does not exist, FAILED_PRECONDITION for one that is deleted.
async fn hold_live_customers(tx: &mut crm_kit::db::TenantTx, tenant: Uuid, drafts: &[TransactionDraft]) -> Result<(), Error> {
    let mut ids: Vec<Uuid> = drafts.iter().map(|d| d.customer).collect();
    ids.sort_unstable();
    ids.dedup();
    let found: HashMap<Uuid, Option<DateTime<Utc>>> = store::hold_customers(tx, tenant, &ids).await?.into_iter().collect();
    for id in ids {
        match found.get(&id) {
            None => return Err(CUSTOMER.not_found(id)),
            Some(Some(_)) => {
                return Err(Error::FailedPrecondition {
                    reason: "CUSTOMER_DELETED",
                    message: "the customer is deleted; transactions are recorded for live customers only".to_owned(),
                    subject: CUSTOMER.name(id),
                });
            }
            Some(None) => {}
        }
    }
    Ok(())
}

//! Merging duplicate customers into a survivor, and undoing it exactly.
//!
//! A merge, in one transaction: the involved customers are locked in id
//! order (concurrent merges touching them queue; the later one finds a
//! customer merged and is refused), their rows kept as JSON, the merged
//! ones marked (`merged_into`, deleted: they leave every segment and free
//! their emails), their records moved to the survivor, the survivor given
//! the combined fields and their static segments, spending recomputed and
//! the survivor re-scored; the log and `CustomersMerged` written.
//!
//! An unmerge (within 30 days) refuses, naming each, if the survivor or a
//! moved record changed since; otherwise it reverses every step.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    idempotency::{self, IdempotencyKey},
    outbox,
};
use crm_proto::crm::profiles::v1 as pb;
use prost::Message;
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    App,
    customers::{Renaming, change, log_change},
};
use crate::{
    domain::customer::CustomerDraft,
    resources::{CUSTOMER, CUSTOMER_MERGE},
    store::{
        self as customers_store, CUSTOMERS, CustomerRow,
        merges::{self as store, KINDS, MergeRow},
    },
    wire::merges::UNMERGE_WINDOW,
};

/// Customers one merge folds into a survivor at most.
pub const MAX_DUPLICATES: usize = 10;

/// What a caller asked to merge.
pub struct MergeRequest {
    pub survivor: Uuid,
    /// Distinct, none the survivor (checked by the caller).
    pub duplicates: Vec<Uuid>,
    /// (field path, customer whose value to keep).
    pub field_sources: Vec<(String, Uuid)>,
    /// The caller's subject.
    pub actor: String,
}

impl App {
    /// Merges `request.duplicates` into `request.survivor`; `combine` makes
    /// the survivor's new fields from its row and the others' (in request
    /// order). `respond` makes the response from the log and the survivor after.
    pub async fn merge<R: Message + Default>(
        &self,
        tenant: Uuid,
        request: MergeRequest,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        combine: impl FnOnce(&CustomerRow, &[CustomerRow]) -> Result<CustomerDraft, Error>,
        respond: impl FnOnce(&MergeRow, &CustomerRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(key, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let MergeRequest { survivor: survivor_id, duplicates, field_sources, actor } = request;
        let ids: Vec<Uuid> = std::iter::once(survivor_id).chain(duplicates.iter().copied()).collect();
        let rows = store::lock(&mut tx, tenant, &ids).await?;
        let row_of = |id: Uuid| rows.iter().find(|r| r.id == id).cloned().ok_or_else(|| CUSTOMER.not_found(id));
        let survivor = row_of(survivor_id)?;
        let losers: Vec<CustomerRow> = duplicates.iter().map(|id| row_of(*id)).collect::<Result<_, _>>()?;
        for row in std::iter::once(&survivor).chain(&losers) {
            mergeable(row)?;
        }
        if let Some(pending) = store::rename_pending(&mut tx, tenant, &duplicates).await? {
            return Err(Error::FailedPrecondition {
                reason: "RENAME_PENDING",
                message: "a rename request of this customer is pending; approve or reject it before merging".to_owned(),
                subject: CUSTOMER.name(pending),
            });
        }
        let snapshots = store::snapshots(&mut tx, tenant, &ids).await?;
        let draft = combine(&survivor, &losers)?;

        // The merged customers leave: their emails free for the survivor, every segment left.
        let static_left = store::static_memberships(&mut tx, tenant, &duplicates).await?;
        for loser in &duplicates {
            customers_store::replace_emails(&mut tx, tenant, *loser, &[]).await?;
        }
        for after in store::mark_merged(&mut tx, tenant, &duplicates, survivor_id, now).await? {
            let before = losers.iter().find(|l| l.id == after.id);
            log_change(&mut tx, tenant, before, &after, now).await?;
        }
        // Their records move to the survivor.
        let mut moved = Vec::new();
        for kind in KINDS {
            moved.extend(store::move_records(&mut tx, tenant, kind, &duplicates, survivor_id, now).await?);
        }
        // The survivor takes the combined fields (a merge is no rename needing approval) and their static segments.
        change(&mut tx, tenant, survivor, |_| Ok(draft), Renaming::Approved, now).await?;
        let mut joined: Vec<(Uuid, Uuid)> = static_left.iter().map(|(_, segment)| (survivor_id, *segment)).collect();
        joined.sort_unstable();
        joined.dedup();
        let joined = super::segments::change_static(&mut tx, tenant, &joined, true, now).await?;
        store::recompute_spending(&mut tx, tenant, &ids).await?;
        super::grading::rescore(&mut tx, tenant, &[survivor_id], now).await?;

        let after: CustomerRow =
            CUSTOMERS.find(&mut tx, tenant, survivor_id, false).await?.ok_or_else(|| CUSTOMER.not_found(survivor_id))?;
        let log = MergeRow {
            id: Uuid::now_v7(),
            survivor_id,
            merged_ids: duplicates.clone(),
            field_sources: Json(field_sources),
            snapshots: Json(snapshots),
            survivor_revision: after.revision,
            moved: Json(moved),
            static_joined: joined.iter().map(|(_, segment)| *segment).collect(),
            static_left: Json(static_left),
            actor,
            merge_time: now,
            unmerge_time: None,
        };
        store::insert(&mut tx, tenant, &log).await?;
        let event = pb::CustomersMerged {
            customer_merge: CUSTOMER_MERGE.name(log.id),
            survivor: CUSTOMER.name(survivor_id),
            merged: duplicates.iter().map(|id| CUSTOMER.name(*id)).collect(),
        };
        outbox::append(&mut tx, tenant, &CUSTOMER.name(survivor_id), &event).await?;
        let response = respond(&log, &after);
        idempotency::remember(key, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        tracing::info!(merge = %log.id, survivor = %survivor_id, merged = duplicates.len(), "customers merged");
        Ok(response)
    }

    /// Undoes merge `id` as of `now`; the log after.
    pub async fn unmerge(&self, tenant: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<MergeRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let mut log = store::find(&mut tx, tenant, id, true).await?.ok_or_else(|| CUSTOMER_MERGE.not_found(id))?;
        let refuse =
            |reason: &'static str, message: String| Error::FailedPrecondition { reason, message, subject: CUSTOMER_MERGE.name(id) };
        if log.unmerge_time.is_some() {
            return Err(refuse("ALREADY_UNMERGED", "the merge was already undone".to_owned()));
        }
        if log.snapshots.is_empty() {
            return Err(refuse("MERGE_ERASED", "a customer of this merge was erased since; the merge cannot be undone".to_owned()));
        }
        if now > log.merge_time + UNMERGE_WINDOW {
            return Err(refuse("UNMERGE_WINDOW_PASSED", format!("a merge can be undone for {} days", UNMERGE_WINDOW.num_days())));
        }
        let ids: Vec<Uuid> = std::iter::once(log.survivor_id).chain(log.merged_ids.iter().copied()).collect();
        let rows = store::lock(&mut tx, tenant, &ids).await?;
        let conflicts = conflicts(&mut tx, tenant, &log, &rows).await?;
        if !conflicts.is_empty() {
            return Err(refuse("MERGE_CONFLICT", format!("changed since the merge: {}", conflicts.join("; "))));
        }
        // The survivor leaves the static segments the merge made it join; the records go home.
        let joined: Vec<(Uuid, Uuid)> = log.static_joined.iter().map(|segment| (log.survivor_id, *segment)).collect();
        super::segments::change_static(&mut tx, tenant, &joined, false, now).await?;
        for kind in KINDS {
            let of_kind: Vec<&store::Moved> = log.moved.iter().filter(|m| m.kind == kind).collect();
            if !of_kind.is_empty() {
                store::move_back(&mut tx, tenant, kind, &of_kind, now).await?;
            }
        }
        // The rows as they were, the survivor first (its emails are released before the others claim theirs).
        let mut snapshots: Vec<&serde_json::Value> = log.snapshots.iter().collect();
        snapshots.sort_by_key(|s| s.get("id").and_then(|v| v.as_str()) != Some(log.survivor_id.to_string().as_str()));
        for snapshot in snapshots {
            let restored = store::restore(&mut tx, tenant, snapshot, now).await?;
            let claims: Vec<String> =
                if restored.delete_time.is_none() { restored.emails.0.iter().map(|e| e.address.clone()).collect() } else { Vec::new() };
            customers_store::replace_emails(&mut tx, tenant, restored.id, &claims).await?;
            let before = rows.iter().find(|r| r.id == restored.id);
            log_change(&mut tx, tenant, before, &restored, now).await?;
        }
        crate::store::duplicates::reindex(&mut tx, tenant, &ids).await?;
        super::segments::change_static(&mut tx, tenant, &log.static_left, true, now).await?;
        store::recompute_spending(&mut tx, tenant, &ids).await?;
        // Grades came back with the rows; those resting on purchases are recomputed (the cut points may have moved).
        let graded = store::with_spending(&mut tx, tenant, &ids).await?;
        if !graded.is_empty() {
            super::grading::rescore(&mut tx, tenant, &graded, now).await?;
        }
        store::set_unmerged(&mut tx, tenant, id, now).await?;
        let event = pb::CustomersUnmerged {
            customer_merge: CUSTOMER_MERGE.name(id),
            survivor: CUSTOMER.name(log.survivor_id),
            restored: log.merged_ids.iter().map(|c| CUSTOMER.name(*c)).collect(),
        };
        outbox::append(&mut tx, tenant, &CUSTOMER.name(log.survivor_id), &event).await?;
        tx.commit().await?;
        log.unmerge_time = Some(now);
        tracing::info!(merge = %id, "merge undone");
        Ok(log)
    }

    /// A merge log.
    pub async fn merge_log(&self, tenant: Uuid, id: Uuid) -> Result<MergeRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let log = store::find(&mut tx, tenant, id, false).await?.ok_or_else(|| CUSTOMER_MERGE.not_found(id))?;
        tx.commit().await?;
        Ok(log)
    }
}

/// FAILED_PRECONDITION unless `row` is live and not merged.
fn mergeable(row: &CustomerRow) -> Result<(), Error> {
    let refuse = |reason: &'static str, message: &str| {
        Err(Error::FailedPrecondition { reason, message: message.to_owned(), subject: CUSTOMER.name(row.id) })
    };
    if row.merged_into.is_some() {
        return refuse("ALREADY_MERGED", "the customer was already merged into another");
    }
    if row.delete_time.is_some() {
        return refuse("CUSTOMER_DELETED", "the customer is deleted; undelete it before merging");
    }
    Ok(())
}

/// What changed since the merge that an unmerge would undo or lose: the
/// survivor edited, a merged customer no longer merged into it, a moved
/// record changed or gone.
async fn conflicts(tx: &mut crm_kit::db::TenantTx, tenant: Uuid, log: &MergeRow, rows: &[CustomerRow]) -> Result<Vec<String>, Error> {
    let mut found = Vec::new();
    match rows.iter().find(|r| r.id == log.survivor_id) {
        Some(s) if s.revision == log.survivor_revision => {}
        _ => found.push(format!("{} was changed", CUSTOMER.name(log.survivor_id))),
    }
    for merged in &log.merged_ids {
        if !rows.iter().any(|r| r.id == *merged && r.merged_into == Some(log.survivor_id)) {
            found.push(format!("{} is no longer merged into the survivor", CUSTOMER.name(*merged)));
        }
    }
    // A related person of one merged customer linked to another moved twice: its last revision counts.
    let mut last: std::collections::HashMap<Uuid, i64> = std::collections::HashMap::new();
    for m in log.moved.iter() {
        let entry = last.entry(m.id).or_insert(m.revision);
        *entry = (*entry).max(m.revision);
    }
    for kind in KINDS {
        let recorded: Vec<&store::Moved> = log.moved.iter().filter(|m| m.kind == kind).collect();
        if recorded.is_empty() {
            continue;
        }
        let ids: Vec<Uuid> = recorded.iter().map(|m| m.id).collect();
        let current = store::revisions(tx, tenant, kind, &ids).await?;
        for m in recorded {
            match current.iter().find(|(id, _)| *id == m.id) {
                Some((_, revision)) if Some(revision) == last.get(&m.id) => {}
                Some(_) => found.push(format!("{kind} {} was changed", m.id)),
                None => found.push(format!("{kind} {} was deleted", m.id)),
            }
        }
    }
    Ok(found)
}

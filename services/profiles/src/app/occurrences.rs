//! Occurrences (客户事件): recorded for a live customer, changed under their
//! etag, removed (through `archive`), each change announced. The premises an
//! occurrence concerns must exist.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx},
    idempotency::{self, IdempotencyKey},
    resource::ChildResourceType,
};
use crm_proto::crm::profiles::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{
    App,
    archive::{ArchiveRecord, announce, lock_for_update},
    customers::live_customer,
};
use crate::{
    domain::occurrence::OccurrenceDraft,
    resources::{OCCURRENCE, PREMISES},
    store::occurrences::{self as store, OCCURRENCES, OccurrenceRow},
    wire::occurrences::{changed_paths, to_proto},
};

impl App {
    /// Records `draft` for live customer `customer` and announces it.
    /// With a request id, a retry returns the first response.
    pub async fn create_occurrence<R: Message + Default>(
        &self,
        tenant: Uuid,
        customer: Uuid,
        draft: OccurrenceDraft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&OccurrenceRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        live_customer(&mut tx, tenant, customer, true).await?;
        ensure_premises_exist(&mut tx, tenant, &draft).await?;
        let row = store::insert(&mut tx, tenant, customer, Uuid::now_v7(), &draft, now).await?;
        announce::<Occurrences>(&mut tx, tenant, &row, Vec::new(), false).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Replaces record `id` with what `edit` makes of it (after the etag
    /// check); re-sending the same values changes nothing (same etag, no event).
    pub async fn update_occurrence(
        &self,
        tenant: Uuid,
        customer: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&OccurrenceRow) -> Result<OccurrenceDraft, Error>,
        now: DateTime<Utc>,
    ) -> Result<OccurrenceRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before = lock_for_update::<Occurrences>(&mut tx, tenant, (customer, id), etag, "occurrence.etag").await?;
        let draft = edit(&before)?;
        ensure_premises_exist(&mut tx, tenant, &draft).await?;
        let after = store::update(&mut tx, tenant, id, &draft, now).await?;
        let changed = changed_paths(&to_proto(&before), &to_proto(&after));
        if changed.is_empty() {
            // Nothing differs: roll the revision bump back.
            tx.rollback().await?;
            return Ok(before);
        }
        announce::<Occurrences>(&mut tx, tenant, &after, changed, false).await?;
        tx.commit().await?;
        Ok(after)
    }
}

/// Occurrences as archive records.
pub struct Occurrences;

impl ArchiveRecord for Occurrences {
    type Row = OccurrenceRow;
    type Changed = pb::OccurrenceChanged;
    const TABLE: Table = OCCURRENCES;
    const RESOURCE: ChildResourceType = OCCURRENCE;

    fn changed(row: &OccurrenceRow, changed_paths: Vec<String>, deleted: bool) -> pb::OccurrenceChanged {
        pb::OccurrenceChanged { occurrence: Some(to_proto(row)), changed_paths, deleted }
    }
}

/// INVALID_ARGUMENT `PREMISES_NOT_FOUND` when the draft names premises the tenant does not have.
async fn ensure_premises_exist(tx: &mut TenantTx, tenant: Uuid, draft: &OccurrenceDraft) -> Result<(), Error> {
    let Some(premises) = draft.premises else { return Ok(()) };
    match crate::store::premises::PREMISES.find::<crate::store::premises::PremisesRow>(tx, tenant, premises, false).await? {
        Some(_) => Ok(()),
        None => Err(Error::invalid("occurrence.premises", "PREMISES_NOT_FOUND", format!("{} does not exist", PREMISES.name(premises)))),
    }
}

//! Related persons (客户成员): added to a live customer, changed under their
//! etag, removed; each change with its `RelatedPersonChanged` event. A link
//! to another customer record must name one that exists in the tenant.

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
    domain::related_person::RelatedPersonDraft,
    resources::{CUSTOMER, RELATED_PERSON},
    store::{
        CUSTOMERS, CustomerRow,
        related_persons::{self as store, RELATED_PERSONS, RelatedPersonRow},
    },
    wire::related_persons::{changed_paths, to_proto},
};

impl App {
    /// Adds `draft` to live customer `customer` and writes `RelatedPersonChanged`.
    /// With a request id, a retry returns the first response.
    pub async fn create_related_person<R: Message + Default>(
        &self,
        tenant: Uuid,
        customer: Uuid,
        draft: RelatedPersonDraft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&RelatedPersonRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        // The customer row is locked so that it cannot be deleted under the new person.
        live_customer(&mut tx, tenant, customer, true).await?;
        ensure_linked_exists(&mut tx, tenant, &draft, "related_person.linked_customer").await?;
        let row = store::insert(&mut tx, tenant, customer, Uuid::now_v7(), &draft, now).await?;
        announce::<RelatedPersons>(&mut tx, tenant, &row, Vec::new(), false).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Replaces related person `id` with what `edit` makes of it (after the
    /// etag check); re-sending the same values changes nothing (same etag, no event).
    pub async fn update_related_person(
        &self,
        tenant: Uuid,
        customer: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&RelatedPersonRow) -> Result<RelatedPersonDraft, Error>,
        now: DateTime<Utc>,
    ) -> Result<RelatedPersonRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before = lock_for_update::<RelatedPersons>(&mut tx, tenant, (customer, id), etag, "related_person.etag").await?;
        let draft = edit(&before)?;
        ensure_linked_exists(&mut tx, tenant, &draft, "related_person.linked_customer").await?;
        let after = store::update(&mut tx, tenant, id, &draft, now).await?;
        let changed = changed_paths(&to_proto(&before), &to_proto(&after));
        if changed.is_empty() {
            // Nothing differs: roll the revision bump back.
            tx.rollback().await?;
            return Ok(before);
        }
        announce::<RelatedPersons>(&mut tx, tenant, &after, changed, false).await?;
        tx.commit().await?;
        Ok(after)
    }
}

/// INVALID_ARGUMENT on `field` when the draft links to a customer the tenant does not have.
async fn ensure_linked_exists(tx: &mut TenantTx, tenant: Uuid, draft: &RelatedPersonDraft, field: &str) -> Result<(), Error> {
    let Some(linked) = draft.linked_customer else { return Ok(()) };
    match CUSTOMERS.find::<CustomerRow>(tx, tenant, linked, false).await? {
        Some(_) => Ok(()),
        None => Err(Error::invalid(field, "LINKED_CUSTOMER_NOT_FOUND", format!("{} does not exist", CUSTOMER.name(linked)))),
    }
}

/// Related persons as archive records.
pub struct RelatedPersons;

impl ArchiveRecord for RelatedPersons {
    type Row = RelatedPersonRow;
    type Changed = pb::RelatedPersonChanged;
    const TABLE: Table = RELATED_PERSONS;
    const RESOURCE: ChildResourceType = RELATED_PERSON;

    fn changed(row: &RelatedPersonRow, changed_paths: Vec<String>, deleted: bool) -> pb::RelatedPersonChanged {
        pb::RelatedPersonChanged { related_person: Some(to_proto(row)), changed_paths, deleted }
    }
}

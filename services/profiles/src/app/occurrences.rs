//! Occurrences (客户事件) as archive records (see `archive`): the premises
//! an occurrence concerns must exist.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx},
    resource::ChildResourceType,
};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::archive::ArchiveRecord;
use crate::{
    domain::occurrence::OccurrenceDraft,
    resources::{OCCURRENCE, PREMISES},
    store::{
        occurrences::{self as store, OCCURRENCES, OccurrenceRow},
        premises::{PREMISES as PREMISES_TABLE, PremisesRow},
    },
    wire::occurrences::{WRITABLE, changed_paths, mask_pii, to_proto},
};

/// Occurrences as archive records.
pub struct Occurrences;

impl ArchiveRecord for Occurrences {
    type Row = OccurrenceRow;
    type Changed = pb::OccurrenceChanged;
    type Draft = OccurrenceDraft;
    const TABLE: Table = OCCURRENCES;
    const RESOURCE: ChildResourceType = OCCURRENCE;
    const ETAG_FIELD: &'static str = "occurrence.etag";
    type Proto = pb::Occurrence;
    const WRITABLE: &'static [&'static str] = WRITABLE;

    fn to_proto(row: &Self::Row) -> pb::Occurrence {
        to_proto(row)
    }

    fn mask_pii(record: &mut pb::Occurrence) {
        mask_pii(record);
    }

    fn changed(row: &OccurrenceRow, changed_paths: Vec<String>, deleted: bool) -> pb::OccurrenceChanged {
        pb::OccurrenceChanged { occurrence: Some(to_proto(row)), changed_paths, deleted }
    }

    fn changed_paths(before: &OccurrenceRow, after: &OccurrenceRow) -> Vec<String> {
        changed_paths(&to_proto(before), &to_proto(after))
    }

    /// INVALID_ARGUMENT `PREMISES_NOT_FOUND` when the draft names premises the tenant does not have.
    async fn check(tx: &mut TenantTx, tenant: Uuid, _: Uuid, _: Option<Uuid>, draft: &OccurrenceDraft) -> Result<(), Error> {
        let Some(premises) = draft.premises else { return Ok(()) };
        match PREMISES_TABLE.find::<PremisesRow>(tx, tenant, premises, false).await? {
            Some(_) => Ok(()),
            None => Err(Error::invalid("occurrence.premises", "PREMISES_NOT_FOUND", format!("{} does not exist", PREMISES.name(premises)))),
        }
    }

    async fn insert(
        tx: &mut TenantTx,
        tenant: Uuid,
        customer: Uuid,
        id: Uuid,
        draft: &OccurrenceDraft,
        now: DateTime<Utc>,
    ) -> Result<OccurrenceRow, Error> {
        store::insert(tx, tenant, customer, id, draft, now).await
    }

    async fn update(
        tx: &mut TenantTx,
        tenant: Uuid,
        (_, id): (Uuid, Uuid),
        draft: &OccurrenceDraft,
        now: DateTime<Utc>,
    ) -> Result<OccurrenceRow, Error> {
        store::update(tx, tenant, id, draft, now).await
    }
}

//! Related persons (客户成员) as archive records (see `archive`): a link to
//! another customer record must name one that exists in the tenant.

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
    domain::related_person::RelatedPersonDraft,
    resources::{CUSTOMER, RELATED_PERSON},
    store::{
        CUSTOMERS, CustomerRow,
        related_persons::{self as store, RELATED_PERSONS, RelatedPersonRow},
    },
    wire::related_persons::{WRITABLE, changed_paths, mask_pii, to_proto},
};

/// Related persons as archive records.
pub struct RelatedPersons;

impl ArchiveRecord for RelatedPersons {
    type Row = RelatedPersonRow;
    type Changed = pb::RelatedPersonChanged;
    type Draft = RelatedPersonDraft;
    const TABLE: Table = RELATED_PERSONS;
    const RESOURCE: ChildResourceType = RELATED_PERSON;
    const ETAG_FIELD: &'static str = "related_person.etag";
    type Proto = pb::RelatedPerson;
    const WRITABLE: &'static [&'static str] = WRITABLE;

    fn to_proto(row: &Self::Row) -> pb::RelatedPerson {
        to_proto(row)
    }

    fn mask_pii(record: &mut pb::RelatedPerson) {
        mask_pii(record);
    }

    fn changed(row: &RelatedPersonRow, changed_paths: Vec<String>, deleted: bool) -> pb::RelatedPersonChanged {
        pb::RelatedPersonChanged { related_person: Some(to_proto(row)), changed_paths, deleted }
    }

    fn changed_paths(before: &RelatedPersonRow, after: &RelatedPersonRow) -> Vec<String> {
        changed_paths(&to_proto(before), &to_proto(after))
    }

    /// INVALID_ARGUMENT when the draft links to a customer the tenant does not have.
    async fn check(tx: &mut TenantTx, tenant: Uuid, _: Uuid, _: Option<Uuid>, draft: &RelatedPersonDraft) -> Result<(), Error> {
        let Some(linked) = draft.linked_customer else { return Ok(()) };
        match CUSTOMERS.find::<CustomerRow>(tx, tenant, linked, false).await? {
            Some(_) => Ok(()),
            None => Err(Error::invalid(
                "related_person.linked_customer",
                "LINKED_CUSTOMER_NOT_FOUND",
                format!("{} does not exist", CUSTOMER.name(linked)),
            )),
        }
    }

    async fn insert(
        tx: &mut TenantTx,
        tenant: Uuid,
        customer: Uuid,
        id: Uuid,
        draft: &RelatedPersonDraft,
        now: DateTime<Utc>,
    ) -> Result<RelatedPersonRow, Error> {
        store::insert(tx, tenant, customer, id, draft, now).await
    }

    async fn update(
        tx: &mut TenantTx,
        tenant: Uuid,
        (_, id): (Uuid, Uuid),
        draft: &RelatedPersonDraft,
        now: DateTime<Utc>,
    ) -> Result<RelatedPersonRow, Error> {
        store::update(tx, tenant, id, draft, now).await
    }
}

//! Communication records (沟通记录) as archive records (see `archive`),
//! announced without their content; and the follow-ups due, per agent.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx},
    resource::ChildResourceType,
};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::{App, archive::ArchiveRecord};
use crate::{
    domain::communication::CommunicationDraft,
    resources::COMMUNICATION,
    store::communications::{self as store, COMMUNICATIONS, CommunicationRow},
    wire::communications::{WRITABLE, changed_paths, mask_pii, to_proto},
};

impl App {
    /// A page of follow-ups due by `due_by` — of `agent`, or everyone's — earliest first, after `after`.
    pub async fn due_reminders(
        &self,
        tenant: Uuid,
        agent: Option<&str>,
        due_by: NaiveDate,
        after: Option<(NaiveDate, Uuid)>,
        limit: i64,
    ) -> Result<Vec<CommunicationRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = store::due(&mut tx, tenant, agent, due_by, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// Communication records as archive records; their events leave the content out.
pub struct Communications;

impl ArchiveRecord for Communications {
    type Row = CommunicationRow;
    type Changed = pb::CommunicationChanged;
    type Draft = CommunicationDraft;
    const TABLE: Table = COMMUNICATIONS;
    const RESOURCE: ChildResourceType = COMMUNICATION;
    const ETAG_FIELD: &'static str = "communication.etag";
    type Proto = pb::Communication;
    const WRITABLE: &'static [&'static str] = WRITABLE;

    fn to_proto(row: &Self::Row) -> pb::Communication {
        to_proto(row)
    }

    fn mask_pii(record: &mut pb::Communication) {
        mask_pii(record);
    }

    fn changed(row: &CommunicationRow, changed_paths: Vec<String>, deleted: bool) -> pb::CommunicationChanged {
        let communication = pb::Communication { content: String::new(), ..to_proto(row) };
        pb::CommunicationChanged { communication: Some(communication), changed_paths, deleted }
    }

    fn changed_paths(before: &CommunicationRow, after: &CommunicationRow) -> Vec<String> {
        changed_paths(&to_proto(before), &to_proto(after))
    }

    async fn check(_: &mut TenantTx, _: Uuid, _: Uuid, _: Option<Uuid>, _: &CommunicationDraft) -> Result<(), Error> {
        Ok(())
    }

    async fn insert(
        tx: &mut TenantTx,
        tenant: Uuid,
        customer: Uuid,
        id: Uuid,
        draft: &CommunicationDraft,
        now: DateTime<Utc>,
    ) -> Result<CommunicationRow, Error> {
        store::insert(tx, tenant, customer, id, draft, now).await
    }

    async fn update(
        tx: &mut TenantTx,
        tenant: Uuid,
        (_, id): (Uuid, Uuid),
        draft: &CommunicationDraft,
        now: DateTime<Utc>,
    ) -> Result<CommunicationRow, Error> {
        store::update(tx, tenant, id, draft, now).await
    }
}

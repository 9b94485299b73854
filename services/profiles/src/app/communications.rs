//! Communication records (沟通记录): added to a live customer, changed under
//! their etag, removed (through `archive`), each change announced without
//! its content; and the follow-ups due, per agent.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::{
    Error,
    db::Table,
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
    domain::communication::CommunicationDraft,
    resources::COMMUNICATION,
    store::communications::{self as store, COMMUNICATIONS, CommunicationRow},
    wire::communications::{changed_paths, to_proto},
};

impl App {
    /// Records `draft` for live customer `customer` and announces it.
    /// With a request id, a retry returns the first response.
    pub async fn create_communication<R: Message + Default>(
        &self,
        tenant: Uuid,
        customer: Uuid,
        draft: CommunicationDraft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&CommunicationRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        live_customer(&mut tx, tenant, customer, true).await?;
        let row = store::insert(&mut tx, tenant, customer, Uuid::now_v7(), &draft, now).await?;
        announce::<Communications>(&mut tx, tenant, &row, Vec::new(), false).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Replaces record `id` with what `edit` makes of it (after the etag
    /// check); re-sending the same values changes nothing (same etag, no event).
    pub async fn update_communication(
        &self,
        tenant: Uuid,
        customer: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&CommunicationRow) -> Result<CommunicationDraft, Error>,
        now: DateTime<Utc>,
    ) -> Result<CommunicationRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before = lock_for_update::<Communications>(&mut tx, tenant, (customer, id), etag, "communication.etag").await?;
        let draft = edit(&before)?;
        let after = store::update(&mut tx, tenant, id, &draft, now).await?;
        let changed = changed_paths(&to_proto(&before), &to_proto(&after));
        if changed.is_empty() {
            // Nothing differs: roll the revision bump back.
            tx.rollback().await?;
            return Ok(before);
        }
        announce::<Communications>(&mut tx, tenant, &after, changed, false).await?;
        tx.commit().await?;
        Ok(after)
    }

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
    const TABLE: Table = COMMUNICATIONS;
    const RESOURCE: ChildResourceType = COMMUNICATION;

    fn changed(row: &CommunicationRow, changed_paths: Vec<String>, deleted: bool) -> pb::CommunicationChanged {
        let communication = pb::Communication { content: String::new(), ..to_proto(row) };
        pb::CommunicationChanged { communication: Some(communication), changed_paths, deleted }
    }
}

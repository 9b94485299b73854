//! Premises and occupancy (房产客户关系, 迁入/迁出): premises are added,
//! changed and — while they have no history — removed; customers move in
//! and out. A move-in ends the current holder of its role on the same day;
//! the premises row is locked first, so move-ins on one premises take turns,
//! and the database's exclusion constraint keeps one holder per role and day
//! whatever happens. Each premises shows today's billing party.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    idempotency::{self, IdempotencyKey},
    outbox,
};
use crm_proto::crm::profiles::v1 as pb;
use prost::{Message, Name};
use uuid::Uuid;

use super::{App, customers::live_customer, history};
use crate::{
    domain::premises::{PremisesDraft, billing_party, move_in_allowed},
    resources::{CUSTOMER, OCCUPANCY, PREMISES},
    store::premises::{self as store, MoveIn, OCCUPANCIES, OccupancyRow, PREMISES as PREMISES_TABLE, PremisesRow, Refused},
    wire::premises::{changed_paths, occupancy_to, premises_to},
};

/// The occupancy fields whose history is kept, in the field history of the occupant.
const OCCUPANCY_FIELDS: &[&str] = &["customer", "role", "move_in_date", "move_out_date"];

/// Writes the field history of occupancy `after` (from `before`; None: a move-in) under its occupant.
pub(super) async fn log_occupancy(
    tx: &mut TenantTx,
    tenant: Uuid,
    before: Option<&OccupancyRow>,
    after: &OccupancyRow,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let record = OCCUPANCY.name(after.premises_id, after.id);
    let change = history::Change { customer: after.customer_id, record: &record, fields: OCCUPANCY_FIELDS, now };
    history::record(tx, tenant, change, before.map(occupancy_to).as_ref(), Some(&occupancy_to(after)), |_| {}).await
}

/// Premises with today's billing party (role, customer).
pub type PremisesView = (PremisesRow, Option<(&'static str, Uuid)>);

/// What a move-in made: the new occupancy, and the one it ended.
pub type Moved = (OccupancyRow, Option<OccupancyRow>);

impl App {
    /// Adds premises (ALREADY_EXISTS for a unit code in use) and writes `PremisesChanged`.
    pub async fn create_premises<R: Message + Default>(
        &self,
        tenant: Uuid,
        draft: PremisesDraft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&PremisesRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let row = store::insert(&mut tx, tenant, Uuid::now_v7(), &draft, now).await?.map_err(|r| refusal(r, &draft))?;
        emit(
            &mut tx,
            tenant,
            &PREMISES.name(row.id),
            &pb::PremisesChanged { premises: Some(premises_to(&row, None)), ..Default::default() },
        )
        .await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Premises `id` with today's billing party, or NOT_FOUND.
    pub async fn premises(&self, tenant: Uuid, id: Uuid, today: NaiveDate) -> Result<PremisesView, Error> {
        let mut tx = self.begin(tenant).await?;
        let row: PremisesRow = PREMISES_TABLE.find(&mut tx, tenant, id, false).await?.ok_or_else(|| PREMISES.not_found(id))?;
        let mut billing = billing_parties(&mut tx, tenant, &[id], today).await?;
        tx.commit().await?;
        Ok((row, billing.remove(&id)))
    }

    /// A page of premises by unit code, each with today's billing party.
    pub async fn premises_page(
        &self,
        tenant: Uuid,
        after: Option<(String, Uuid)>,
        limit: i64,
        today: NaiveDate,
    ) -> Result<Vec<PremisesView>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = store::list(&mut tx, tenant, after, limit).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut billing = billing_parties(&mut tx, tenant, &ids, today).await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let billing = billing.remove(&r.id);
                (r, billing)
            })
            .collect())
    }

    /// Replaces premises `id` with what `edit` makes of it (after the etag check).
    pub async fn update_premises(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&PremisesRow) -> Result<PremisesDraft, Error>,
        now: DateTime<Utc>,
    ) -> Result<PremisesRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before: PremisesRow = PREMISES_TABLE.lock_for_change(&mut tx, tenant, id, &PREMISES, etag, "premises.etag").await?;
        let draft = edit(&before)?;
        let after = store::update(&mut tx, tenant, id, &draft, now).await?.map_err(|r| refusal(r, &draft))?;
        let changed = changed_paths(&premises_to(&before, None), &premises_to(&after, None));
        if changed.is_empty() {
            // Nothing differs: roll the revision bump back.
            tx.rollback().await?;
            return Ok(before);
        }
        let event = pb::PremisesChanged { premises: Some(premises_to(&after, None)), changed_paths: changed, deleted: false };
        emit(&mut tx, tenant, &PREMISES.name(id), &event).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Removes premises `id` — FAILED_PRECONDITION `PREMISES_HAS_HISTORY` once anyone held it.
    pub async fn delete_premises(&self, tenant: Uuid, id: Uuid, etag: &str) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let before: PremisesRow = PREMISES_TABLE.lock_for_change(&mut tx, tenant, id, &PREMISES, etag, "etag").await?;
        if store::has_history(&mut tx, tenant, id).await? {
            return Err(Error::FailedPrecondition {
                reason: "PREMISES_HAS_HISTORY",
                message: "premises that were ever held keep their history and cannot be removed".to_owned(),
                subject: PREMISES.name(id),
            });
        }
        PREMISES_TABLE.delete(&mut tx, tenant, id).await?;
        let event = pb::PremisesChanged { premises: Some(premises_to(&before, None)), changed_paths: Vec::new(), deleted: true };
        emit(&mut tx, tenant, &PREMISES.name(id), &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves `m.customer` into `m.premises` as `m.role` from `m.date`, ending
    /// the current holder of that role on the same day.
    pub async fn move_in<R: Message + Default>(
        &self,
        tenant: Uuid,
        m: MoveIn,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&Moved) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        // The premises first: move-ins on it take turns from here.
        PREMISES_TABLE.find::<PremisesRow>(&mut tx, tenant, m.premises, true).await?.ok_or_else(|| PREMISES.not_found(m.premises))?;
        live_customer(&mut tx, tenant, m.customer, false).await?;
        let current = store::current_holder(&mut tx, tenant, m.premises, &m.role).await?;
        if !move_in_allowed(m.date, current.as_ref().map(|c| c.move_in_date)) {
            return Err(overlap(m.premises, "the role's current holder moved in on or after that day"));
        }
        let ended = match &current {
            Some(current) => Some(store::end_occupancy(&mut tx, tenant, current.id, m.date, now).await?),
            None => None,
        };
        let row = store::insert_occupancy(&mut tx, tenant, Uuid::now_v7(), &m, now)
            .await?
            .map_err(|_| overlap(m.premises, "someone held the role on some of these days"))?;
        if let Some(ended) = &ended {
            log_occupancy(&mut tx, tenant, current.as_ref(), ended, now).await?;
        }
        log_occupancy(&mut tx, tenant, None, &row, now).await?;
        if let Some(ended) = &ended {
            emit(&mut tx, tenant, &PREMISES.name(m.premises), &pb::OccupancyChanged { occupancy: Some(occupancy_to(ended)), ended: true })
                .await?;
        }
        emit(&mut tx, tenant, &PREMISES.name(m.premises), &pb::OccupancyChanged { occupancy: Some(occupancy_to(&row)), ended: false })
            .await?;
        let response = respond(&(row, ended));
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Ends current occupancy `id` of `premises` on `date` (etag checked when given).
    pub async fn move_out(
        &self,
        tenant: Uuid,
        (premises, id): (Uuid, Uuid),
        date: NaiveDate,
        etag: &str,
        now: DateTime<Utc>,
    ) -> Result<OccupancyRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let current: OccupancyRow = OCCUPANCIES.lock_child_for_change(&mut tx, tenant, &OCCUPANCY, (premises, id), etag, "etag").await?;
        if current.move_out_date.is_some() {
            return Err(Error::FailedPrecondition {
                reason: "ALREADY_MOVED_OUT",
                message: "the occupancy has ended already".to_owned(),
                subject: OCCUPANCY.name(premises, id),
            });
        }
        if date < current.move_in_date {
            return Err(Error::invalid(
                "move_out_date",
                "MOVE_OUT_BEFORE_MOVE_IN",
                format!("on or after the move-in date {}", current.move_in_date),
            ));
        }
        let row = store::end_occupancy(&mut tx, tenant, id, date, now).await?;
        log_occupancy(&mut tx, tenant, Some(&current), &row, now).await?;
        emit(&mut tx, tenant, &PREMISES.name(premises), &pb::OccupancyChanged { occupancy: Some(occupancy_to(&row)), ended: true }).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of the occupancies of premises (`by_premises`) or of a customer, latest move-in first.
    pub async fn occupancies(
        &self,
        tenant: Uuid,
        by_premises: bool,
        parent: Uuid,
        after: Option<(NaiveDate, Uuid)>,
        limit: i64,
    ) -> Result<Vec<OccupancyRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let column = if by_premises {
            PREMISES_TABLE.find::<PremisesRow>(&mut tx, tenant, parent, false).await?.ok_or_else(|| PREMISES.not_found(parent))?;
            "premises_id"
        } else {
            crate::store::CUSTOMERS
                .find::<crate::store::CustomerRow>(&mut tx, tenant, parent, false)
                .await?
                .ok_or_else(|| CUSTOMER.not_found(parent))?;
            "customer_id"
        };
        let rows = store::history(&mut tx, tenant, column, parent, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// Today's billing party of each of `premises` that has one.
async fn billing_parties(
    tx: &mut TenantTx,
    tenant: Uuid,
    premises: &[Uuid],
    today: NaiveDate,
) -> Result<HashMap<Uuid, (&'static str, Uuid)>, Error> {
    let mut holders: HashMap<Uuid, Vec<(String, Uuid)>> = HashMap::new();
    for (p, role, customer) in store::holders_on(tx, tenant, premises, today).await? {
        holders.entry(p).or_default().push((role, customer));
    }
    Ok(holders.into_iter().filter_map(|(p, h)| billing_party(&h).map(|b| (p, b))).collect())
}

/// The error of a write the database refused.
fn refusal(refused: Refused, draft: &PremisesDraft) -> Error {
    match refused {
        Refused::UnitCodeTaken => Error::AlreadyExists {
            reason: "UNIT_CODE_TAKEN",
            message: format!("other premises have unit code {:?}", draft.unit_code),
            resource_type: PREMISES.type_name,
            name: String::new(),
        },
        Refused::Overlap => Error::Conflict,
    }
}

/// FAILED_PRECONDITION `OCCUPANCY_OVERLAP` on `premises`.
fn overlap(premises: Uuid, why: &str) -> Error {
    Error::FailedPrecondition {
        reason: "OCCUPANCY_OVERLAP",
        message: format!("cannot move in then: {why}"),
        subject: PREMISES.name(premises),
    }
}

/// Writes `event` about `subject`.
async fn emit<M: Message + Name>(tx: &mut TenantTx, tenant: Uuid, subject: &str, event: &M) -> Result<(), Error> {
    outbox::append(tx, tenant, subject, event).await
}

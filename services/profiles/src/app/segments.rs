//! Segments with exact, live member counts. A dynamic segment is filled
//! from its filter when created or refiltered; after that every customer
//! change re-evaluates the tenant's dynamic segments for that customer in
//! the change's own transaction ([`refresh`]), moving memberships and
//! counts and announcing each entry and exit (`SegmentMembershipChanged`).
//! Static segments change only by explicit adds and removes. A deleted
//! customer leaves every segment.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    filter::CheckedFilter,
    idempotency::{self, IdempotencyKey},
    outbox,
};
use crm_proto::crm::profiles::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::App;
use crate::{
    domain::segment::{MAX_SEGMENTS, SegmentDraft},
    resources::{CUSTOMER, SEGMENT},
    store::{
        CUSTOMERS, CustomerRow,
        customer_filter::CUSTOMER_FILTER,
        segments::{self as store, SEGMENTS, SegmentRow},
    },
};

impl App {
    /// Creates a segment (FAILED_PRECONDITION beyond the tenant's limit); a
    /// dynamic one is filled at once (without an event per first member).
    pub async fn create_segment<R: Message + Default>(
        &self,
        tenant: Uuid,
        (draft, filter): (SegmentDraft, CheckedFilter),
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&SegmentRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(key, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        if store::count(&mut tx, tenant).await? >= MAX_SEGMENTS {
            return Err(Error::FailedPrecondition {
                reason: "SEGMENT_LIMIT",
                message: format!("a tenant has at most {MAX_SEGMENTS} segments; delete one first"),
                subject: "segments".to_owned(),
            });
        }
        let id = Uuid::now_v7();
        store::insert(&mut tx, tenant, id, &draft, now).await?;
        if draft.kind == "DYNAMIC" {
            store::fill(&mut tx, tenant, id, &filter, now).await?;
        }
        let row = SEGMENTS.find(&mut tx, tenant, id, false).await?.ok_or_else(|| SEGMENT.not_found(id))?;
        let response = respond(&row);
        idempotency::remember(key, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Segment `id`, or NOT_FOUND.
    pub async fn segment(&self, tenant: Uuid, id: Uuid) -> Result<SegmentRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = SEGMENTS.find(&mut tx, tenant, id, false).await?.ok_or_else(|| SEGMENT.not_found(id))?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of the tenant's segments by display name.
    pub async fn segments(&self, tenant: Uuid, after: Option<(String, Uuid)>, limit: i64) -> Result<Vec<SegmentRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = SEGMENTS.page_by_display_name(&mut tx, tenant, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Changes segment `id` to what `edit` makes of it (after the etag check);
    /// a changed filter refills it, announcing who entered and left.
    pub async fn update_segment(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&SegmentRow) -> Result<(SegmentDraft, CheckedFilter), Error>,
        now: DateTime<Utc>,
    ) -> Result<SegmentRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before: SegmentRow = SEGMENTS.lock_for_change(&mut tx, tenant, id, &SEGMENT, etag, "segment.etag").await?;
        let (draft, filter) = edit(&before)?;
        if draft.display_name == before.display_name && draft.description == before.description && draft.filter == before.filter {
            tx.commit().await?;
            return Ok(before);
        }
        store::update(&mut tx, tenant, id, &draft, now).await?;
        if draft.kind == "DYNAMIC" && draft.filter != before.filter {
            let (entered, left) = store::fill(&mut tx, tenant, id, &filter, now).await?;
            let moves: Vec<(Uuid, Uuid, bool)> =
                entered.iter().map(|c| (*c, id, true)).chain(left.iter().map(|c| (*c, id, false))).collect();
            announce(&mut tx, tenant, &moves).await?;
        }
        let row = SEGMENTS.find(&mut tx, tenant, id, false).await?.ok_or_else(|| SEGMENT.not_found(id))?;
        tx.commit().await?;
        Ok(row)
    }

    /// Removes segment `id` and its memberships (etag checked when given).
    pub async fn delete_segment(&self, tenant: Uuid, id: Uuid, etag: &str) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let _: SegmentRow = SEGMENTS.lock_for_change(&mut tx, tenant, id, &SEGMENT, etag, "etag").await?;
        SEGMENTS.delete(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of segment `id`'s members (NOT_FOUND when there is no such segment).
    pub async fn segment_members(&self, tenant: Uuid, id: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<CustomerRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        SEGMENTS.find::<SegmentRow>(&mut tx, tenant, id, false).await?.ok_or_else(|| SEGMENT.not_found(id))?;
        let rows = store::members(&mut tx, tenant, id, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Adds (`add`) or removes `customers` to or from static segment `id`;
    /// how many moved, and the segment after.
    pub async fn change_static_members(
        &self,
        tenant: Uuid,
        id: Uuid,
        customers: &[Uuid],
        add: bool,
        now: DateTime<Utc>,
    ) -> Result<(usize, SegmentRow), Error> {
        let mut tx = self.begin(tenant).await?;
        // Held first, as every writer of a segment's members holds it before touching them.
        let segment: SegmentRow = SEGMENTS.find(&mut tx, tenant, id, true).await?.ok_or_else(|| SEGMENT.not_found(id))?;
        if segment.kind != "STATIC" {
            return Err(Error::FailedPrecondition {
                reason: "NOT_STATIC",
                message: "members are added to and removed from static segments only; a dynamic one follows its filter".to_owned(),
                subject: SEGMENT.name(id),
            });
        }
        let pairs: Vec<(Uuid, Uuid)> = customers.iter().map(|c| (*c, id)).collect();
        let moved = if add {
            let live: HashSet<Uuid> = CUSTOMERS
                .find_many::<CustomerRow>(&mut tx, tenant, customers)
                .await?
                .into_iter()
                .filter(|c| c.delete_time.is_none())
                .map(|c| c.id)
                .collect();
            if let Some(missing) = customers.iter().find(|c| !live.contains(c)) {
                return Err(CUSTOMER.not_found(*missing));
            }
            store::add(&mut tx, tenant, &pairs, now).await?
        } else {
            store::remove(&mut tx, tenant, &pairs).await?
        };
        counted(&mut tx, tenant, &moved, add).await?;
        let row = SEGMENTS.find(&mut tx, tenant, id, false).await?.ok_or_else(|| SEGMENT.not_found(id))?;
        tx.commit().await?;
        Ok((moved.len(), row))
    }

    /// How many live customers `filter` matches, and the newest `sample` of them.
    pub async fn preview_segment(&self, tenant: Uuid, filter: &CheckedFilter, sample: i64) -> Result<(i64, Vec<CustomerRow>), Error> {
        let mut tx = self.begin(tenant).await?;
        let preview = store::preview(&mut tx, tenant, filter, sample).await?;
        tx.commit().await?;
        Ok(preview)
    }

    /// Refills time-relative segment `id` if it is due (its next refill
    /// `every` later), announcing who entered and left; None when it was not
    /// due or another replica holds it.
    pub async fn sweep_segment(&self, tenant: Uuid, id: Uuid, every: chrono::Duration, now: DateTime<Utc>) -> Result<Option<usize>, Error> {
        let mut tx = self.begin(tenant).await?;
        let Some(filter) = store::take_sweep(&mut tx, tenant, id, now, every).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        let Ok(checked) = CUSTOMER_FILTER.check(&filter) else {
            // Stored filters were checked when written; one the schema no longer accepts is left as it is.
            tracing::warn!(%tenant, segment = %id, "a stored segment filter no longer checks; not refilled");
            tx.commit().await?;
            return Ok(Some(0));
        };
        let (entered, left) = store::fill(&mut tx, tenant, id, &checked, now).await?;
        let moves: Vec<(Uuid, Uuid, bool)> = entered.iter().map(|c| (*c, id, true)).chain(left.iter().map(|c| (*c, id, false))).collect();
        announce(&mut tx, tenant, &moves).await?;
        tx.commit().await?;
        Ok(Some(moves.len()))
    }

    /// Time-relative segments due for a refill, across tenants.
    pub async fn segments_due(&self, now: DateTime<Utc>) -> Result<Vec<(Uuid, Uuid)>, Error> {
        store::due_sweeps(&self.pool, now).await
    }

    /// The segments customer `id` is a member of (NOT_FOUND when there is no such customer).
    pub async fn customer_segments(&self, tenant: Uuid, id: Uuid) -> Result<Vec<Uuid>, Error> {
        let mut tx = self.begin(tenant).await?;
        super::existing_customer(&mut tx, tenant, id).await?;
        let segments = store::of_customer(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(segments)
    }
}

/// Re-evaluates the tenant's segments for `customers` (each with whether it
/// is live) after they changed in `tx`: they enter the dynamic segments
/// they now match and leave those they no longer do; a customer no longer
/// live leaves every segment. Counts move and each move is announced.
pub(super) async fn refresh(tx: &mut TenantTx, tenant: Uuid, customers: &[(Uuid, bool)], now: DateTime<Utc>) -> Result<(), Error> {
    let dynamic = store::dynamic(tx, tenant).await?;
    if dynamic.is_empty() && customers.iter().all(|(_, live)| *live) {
        return Ok(());
    }
    // Stored filters were checked when written; one that no longer checks (the schema changed) matches nobody.
    let filters: Vec<(Uuid, CheckedFilter)> =
        dynamic.iter().filter_map(|(id, filter)| CUSTOMER_FILTER.check(filter).ok().map(|f| (*id, f))).collect();
    let dynamic_ids: HashSet<Uuid> = dynamic.iter().map(|(id, _)| *id).collect();
    let live: Vec<Uuid> = customers.iter().filter(|(_, live)| *live).map(|(id, _)| *id).collect();
    let gone: HashSet<Uuid> = customers.iter().filter(|(_, live)| !*live).map(|(id, _)| *id).collect();
    let ids: Vec<Uuid> = customers.iter().map(|(id, _)| *id).collect();
    let hits = store::matches(tx, tenant, &live, &filters).await?;
    let current: HashSet<(Uuid, Uuid)> = store::memberships(tx, tenant, &ids).await?.into_iter().collect();
    let leave: Vec<(Uuid, Uuid)> =
        current.iter().filter(|(c, s)| gone.contains(c) || (dynamic_ids.contains(s) && !hits.contains(&(*c, *s)))).copied().collect();
    // Static segments a gone customer leaves are held like the dynamic ones, before their members are touched.
    let mut static_left: Vec<Uuid> = leave.iter().map(|(_, s)| *s).filter(|s| !dynamic_ids.contains(s)).collect();
    static_left.sort_unstable();
    static_left.dedup();
    store::hold(tx, tenant, &static_left).await?;
    let enter: Vec<(Uuid, Uuid)> = hits.iter().filter(|pair| !current.contains(pair)).copied().collect();
    if leave.is_empty() && enter.is_empty() {
        return Ok(());
    }
    let left = store::remove(tx, tenant, &leave).await?;
    let entered = store::add(tx, tenant, &enter, now).await?;
    let mut deltas: HashMap<Uuid, i64> = HashMap::new();
    for (_, s) in &entered {
        *deltas.entry(*s).or_default() += 1;
    }
    for (_, s) in &left {
        *deltas.entry(*s).or_default() -= 1;
    }
    store::adjust_counts(tx, tenant, &deltas.into_iter().collect::<Vec<_>>()).await?;
    let moves: Vec<(Uuid, Uuid, bool)> =
        entered.iter().map(|(c, s)| (*c, *s, true)).chain(left.iter().map(|(c, s)| (*c, *s, false))).collect();
    announce(tx, tenant, &moves).await
}

/// Adds (`add`) or removes static (customer, segment) memberships in `tx`,
/// the segments held first (in id order, as every writer of members does);
/// counts move and each move is announced. The pairs that moved.
pub(super) async fn change_static(
    tx: &mut TenantTx,
    tenant: Uuid,
    pairs: &[(Uuid, Uuid)],
    add: bool,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, Uuid)>, Error> {
    let mut held: Vec<Uuid> = pairs.iter().map(|(_, s)| *s).collect();
    held.sort_unstable();
    held.dedup();
    store::hold(tx, tenant, &held).await?;
    let moved = if add { store::add(tx, tenant, pairs, now).await? } else { store::remove(tx, tenant, pairs).await? };
    counted(tx, tenant, &moved, add).await?;
    Ok(moved)
}

/// After `moved` memberships were added (`add`) or removed: the segments' counts follow, and each move is announced.
async fn counted(tx: &mut TenantTx, tenant: Uuid, moved: &[(Uuid, Uuid)], add: bool) -> Result<(), Error> {
    let mut deltas: HashMap<Uuid, i64> = HashMap::new();
    for (_, s) in moved {
        *deltas.entry(*s).or_default() += if add { 1 } else { -1 };
    }
    store::adjust_counts(tx, tenant, &deltas.into_iter().collect::<Vec<_>>()).await?;
    let moves: Vec<(Uuid, Uuid, bool)> = moved.iter().map(|(c, s)| (*c, *s, add)).collect();
    announce(tx, tenant, &moves).await
}

/// `SegmentMembershipChanged` for each (customer, segment, entered), on the customers' subjects.
async fn announce(tx: &mut TenantTx, tenant: Uuid, moves: &[(Uuid, Uuid, bool)]) -> Result<(), Error> {
    let events: Vec<(String, pb::SegmentMembershipChanged)> = moves
        .iter()
        .map(|(customer, segment, entered)| {
            let name = CUSTOMER.name(*customer);
            (name.clone(), pb::SegmentMembershipChanged { segment: SEGMENT.name(*segment), customer: name, entered: *entered })
        })
        .collect();
    outbox::append_all(tx, tenant, &events).await
}

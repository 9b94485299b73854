//! The `segments` and `segment_members` tables: segments, their members and
//! counts, a dynamic segment's fill from its filter, and the evaluation of
//! every dynamic segment's filter against a few customers at once (one
//! statement, whatever the number of segments).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Revisioned, Table, TenantTx, db_span},
    filter::CheckedFilter,
};
use sqlx::{FromRow, Postgres, QueryBuilder};
use tracing::Instrument;
use uuid::Uuid;

use super::customers::{COLUMNS as CUSTOMER_COLUMNS, CustomerRow};
use crate::domain::segment::SegmentDraft;

/// A stored segment.
#[derive(Debug, Clone, FromRow)]
pub struct SegmentRow {
    pub id: Uuid,
    pub display_name: String,
    pub description: String,
    pub kind: String,
    pub filter: String,
    pub member_count: i64,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for SegmentRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

const COLUMNS: &str = "id, display_name, description, kind, filter, member_count, revision, create_time, update_time";

/// The `segments` table, for the kit's shared statements.
pub const SEGMENTS: Table = Table { name: "segments", columns: COLUMNS };

/// How many segments the tenant has.
pub async fn count(tx: &mut TenantTx, tenant: Uuid) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM segments WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "segments"))
        .await?)
}

/// Stores segment `id`.
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, id: Uuid, d: &SegmentDraft, now: DateTime<Utc>) -> Result<SegmentRow, Error> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO segments (tenant_id, id, display_name, description, kind, filter, time_relative, next_sweep_time, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 THEN $8 END, $8, $8) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&d.display_name)
    .bind(&d.description)
    .bind(&d.kind)
    .bind(&d.filter)
    .bind(d.time_relative)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "segments"))
    .await?)
}

/// Replaces segment `id`'s writable fields, bumping its revision.
pub async fn update(tx: &mut TenantTx, tenant: Uuid, id: Uuid, d: &SegmentDraft, now: DateTime<Utc>) -> Result<SegmentRow, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE segments SET display_name = $3, description = $4, filter = $5, time_relative = $7,
             next_sweep_time = CASE WHEN $7 THEN coalesce(next_sweep_time, $6) END, update_time = $6, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&d.display_name)
    .bind(&d.description)
    .bind(&d.filter)
    .bind(now)
    .bind(d.time_relative)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "segments"))
    .await?)
}

/// Makes dynamic segment `id`'s members exactly the live customers `filter`
/// matches; returns who entered and who left, and sets the count.
pub async fn fill(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    filter: &CheckedFilter,
    now: DateTime<Utc>,
) -> Result<(Vec<Uuid>, Vec<Uuid>), Error> {
    let mut qb = QueryBuilder::<Postgres>::new("WITH matching AS (SELECT c.id FROM customers c WHERE c.tenant_id = ");
    qb.push_bind(tenant).push(" AND c.delete_time IS NULL");
    filter.push_and(&mut qb);
    qb.push("), gone AS (DELETE FROM segment_members m WHERE m.tenant_id = ")
        .push_bind(tenant)
        .push(" AND m.segment_id = ")
        .push_bind(id)
        .push(" AND NOT EXISTS (SELECT 1 FROM matching WHERE matching.id = m.customer_id) RETURNING m.customer_id), added AS (")
        .push("INSERT INTO segment_members (tenant_id, segment_id, customer_id, join_time) SELECT ")
        .push_bind(tenant)
        .push(", ")
        .push_bind(id)
        .push(", matching.id, ")
        .push_bind(now)
        .push(" FROM matching ON CONFLICT DO NOTHING RETURNING customer_id) ")
        .push("SELECT true AS entered, customer_id FROM added UNION ALL SELECT false, customer_id FROM gone");
    let moved: Vec<(bool, Uuid)> = qb.build_query_as().fetch_all(&mut **tx).instrument(db_span("INSERT", "segment_members")).await?;
    recount(tx, tenant, id).await?;
    let of = |entered: bool| moved.iter().filter(|(e, _)| *e == entered).map(|(_, id)| *id).collect();
    Ok((of(true), of(false)))
}

/// Sets segment `id`'s count from its members.
async fn recount(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query(
        "UPDATE segments SET member_count = (SELECT count(*) FROM segment_members WHERE tenant_id = $1 AND segment_id = $2)
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "segments"))
    .await?;
    Ok(())
}

/// Time-relative segments due for a refill at `now`, across tenants (the `segment_scan` policy).
pub async fn due_sweeps(pool: &sqlx::PgPool, now: DateTime<Utc>) -> Result<Vec<(Uuid, Uuid)>, Error> {
    let mut tx = pool.begin_with("BEGIN READ ONLY; SELECT set_config('crm.scope', 'segment-scan', true)").await?;
    let due = sqlx::query_as(
        "SELECT tenant_id, id FROM segments WHERE time_relative AND next_sweep_time <= $1 ORDER BY next_sweep_time LIMIT 100",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .instrument(db_span("SELECT", "segments"))
    .await?;
    tx.commit().await?;
    Ok(due)
}

/// Takes segment `id`'s refill if it is due and no other replica holds it:
/// its filter, with its next refill set `every` later; None otherwise.
pub async fn take_sweep(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
    every: chrono::Duration,
) -> Result<Option<String>, Error> {
    let filter: Option<String> = sqlx::query_scalar(
        "SELECT filter FROM segments WHERE tenant_id = $1 AND id = $2 AND time_relative AND next_sweep_time <= $3 FOR UPDATE SKIP LOCKED",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .instrument(db_span("SELECT", "segments"))
    .await?;
    if filter.is_some() {
        sqlx::query("UPDATE segments SET next_sweep_time = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .bind(now + every)
            .execute(&mut **tx)
            .instrument(db_span("UPDATE", "segments"))
            .await?;
    }
    Ok(filter)
}

/// The tenant's dynamic segments and their filters, held `FOR KEY SHARE`
/// in id order: a refill or change of one (`FOR UPDATE`) waits for the
/// customer changes evaluating it and they for it — always segment row
/// before members — while customer changes do not wait for one another.
pub async fn dynamic(tx: &mut TenantTx, tenant: Uuid) -> Result<Vec<(Uuid, String)>, Error> {
    Ok(sqlx::query_as("SELECT id, filter FROM segments WHERE tenant_id = $1 AND kind = 'DYNAMIC' ORDER BY id FOR KEY SHARE")
        .bind(tenant)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "segments"))
        .await?)
}

/// The (customer, segment) pairs where live customer `customers` match a segment of `filters`.
pub async fn matches(
    tx: &mut TenantTx,
    tenant: Uuid,
    customers: &[Uuid],
    filters: &[(Uuid, CheckedFilter)],
) -> Result<HashSet<(Uuid, Uuid)>, Error> {
    if filters.is_empty() || customers.is_empty() {
        return Ok(HashSet::new());
    }
    let mut qb = QueryBuilder::<Postgres>::new("SELECT c.id, s.segment_id FROM customers c CROSS JOIN LATERAL (VALUES ");
    for (i, (segment, filter)) in filters.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push("(").push_bind(*segment).push("::uuid, coalesce((TRUE");
        filter.push_and(&mut qb);
        qb.push("), false))");
    }
    qb.push(") AS s(segment_id, hit) WHERE c.tenant_id = ")
        .push_bind(tenant)
        .push(" AND c.id = ANY(")
        .push_bind(customers.to_vec())
        .push(") AND c.delete_time IS NULL AND s.hit");
    let rows: Vec<(Uuid, Uuid)> = qb.build_query_as().fetch_all(&mut **tx).instrument(db_span("SELECT", "customers")).await?;
    Ok(rows.into_iter().collect())
}

/// Holds segments `ids` `FOR KEY SHARE`, in id order (before their members are touched).
pub async fn hold(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT 1 FROM segments WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR KEY SHARE")
        .bind(tenant)
        .bind(ids)
        .execute(&mut **tx)
        .instrument(db_span("SELECT", "segments"))
        .await?;
    Ok(())
}

/// The (customer, segment) memberships of `customers`, of every segment.
pub async fn memberships(tx: &mut TenantTx, tenant: Uuid, customers: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, Error> {
    Ok(sqlx::query_as("SELECT customer_id, segment_id FROM segment_members WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(customers)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "segment_members"))
        .await?)
}

/// Adds the (customer, segment) pairs (already there: skipped); the pairs added.
pub async fn add(tx: &mut TenantTx, tenant: Uuid, pairs: &[(Uuid, Uuid)], now: DateTime<Utc>) -> Result<Vec<(Uuid, Uuid)>, Error> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let (customers, segments): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
    Ok(sqlx::query_as(
        "INSERT INTO segment_members (tenant_id, segment_id, customer_id, join_time)
         SELECT $1, s, c, $4 FROM unnest($2::uuid[], $3::uuid[]) AS p(c, s)
         ON CONFLICT DO NOTHING RETURNING customer_id, segment_id",
    )
    .bind(tenant)
    .bind(&customers)
    .bind(&segments)
    .bind(now)
    .fetch_all(&mut **tx)
    .instrument(db_span("INSERT", "segment_members"))
    .await?)
}

/// Removes the (customer, segment) pairs (absent: skipped); the pairs removed.
pub async fn remove(tx: &mut TenantTx, tenant: Uuid, pairs: &[(Uuid, Uuid)]) -> Result<Vec<(Uuid, Uuid)>, Error> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let (customers, segments): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
    Ok(sqlx::query_as(
        "DELETE FROM segment_members m USING unnest($2::uuid[], $3::uuid[]) AS p(c, s)
         WHERE m.tenant_id = $1 AND m.customer_id = p.c AND m.segment_id = p.s RETURNING m.customer_id, m.segment_id",
    )
    .bind(tenant)
    .bind(&customers)
    .bind(&segments)
    .fetch_all(&mut **tx)
    .instrument(db_span("DELETE", "segment_members"))
    .await?)
}

/// Moves the counts of `deltas` (segment, change), in segment order so that
/// concurrent writers take the segments' rows in one order.
pub async fn adjust_counts(tx: &mut TenantTx, tenant: Uuid, deltas: &[(Uuid, i64)]) -> Result<(), Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut sorted = deltas.to_vec();
    sorted.sort_unstable();
    let (ids, changes): (Vec<Uuid>, Vec<i64>) = sorted.into_iter().unzip();
    sqlx::query(
        "UPDATE segments s SET member_count = s.member_count + d.change
         FROM (SELECT * FROM unnest($2::uuid[], $3::bigint[]) AS d(id, change) ORDER BY id) d
         WHERE s.tenant_id = $1 AND s.id = d.id",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&changes)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "segments"))
    .await?;
    Ok(())
}

/// A page of segment `id`'s live members, by customer id, after `after`.
pub async fn members(tx: &mut TenantTx, tenant: Uuid, id: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<CustomerRow>, Error> {
    let columns = CUSTOMER_COLUMNS.split(", ").map(|c| format!("c.{}", c.trim())).collect::<Vec<_>>().join(", ");
    Ok(sqlx::query_as(&format!(
        "SELECT {columns} FROM segment_members m JOIN customers c ON c.tenant_id = m.tenant_id AND c.id = m.customer_id
         WHERE m.tenant_id = $1 AND m.segment_id = $2 AND ($3::uuid IS NULL OR m.customer_id > $3)
         ORDER BY m.customer_id LIMIT $4"
    ))
    .bind(tenant)
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "segment_members"))
    .await?)
}

/// The segments customer `id` is a member of, by id.
pub async fn of_customer(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<Vec<Uuid>, Error> {
    Ok(sqlx::query_scalar("SELECT segment_id FROM segment_members WHERE tenant_id = $1 AND customer_id = $2 ORDER BY segment_id")
        .bind(tenant)
        .bind(id)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "segment_members"))
        .await?)
}

/// How many live customers `filter` matches, and the newest `sample` of them.
pub async fn preview(tx: &mut TenantTx, tenant: Uuid, filter: &CheckedFilter, sample: i64) -> Result<(i64, Vec<CustomerRow>), Error> {
    let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM customers c WHERE c.tenant_id = ");
    count.push_bind(tenant).push(" AND c.delete_time IS NULL");
    filter.push_and(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(&mut **tx).instrument(db_span("SELECT", "customers")).await?;
    let columns = CUSTOMER_COLUMNS.split(", ").map(|c| format!("c.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let mut rows = QueryBuilder::<Postgres>::new(format!("SELECT {columns} FROM customers c WHERE c.tenant_id = "));
    rows.push_bind(tenant).push(" AND c.delete_time IS NULL");
    filter.push_and(&mut rows);
    rows.push(" ORDER BY c.id DESC LIMIT ").push_bind(sample);
    let sample = rows.build_query_as().fetch_all(&mut **tx).instrument(db_span("SELECT", "customers")).await?;
    Ok((total, sample))
}

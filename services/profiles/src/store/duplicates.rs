//! Duplicate detection in Postgres: customers found by their match keys
//! (a GIN index), the keys themselves, the pairs the scan found, and the
//! scan's position per tenant.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::{FromRow, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use super::{CustomerRow, customers::COLUMNS};

/// A pair the scan found.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct PairRow {
    pub customer_id: Uuid,
    pub duplicate_id: Uuid,
    pub score: f64,
    pub signals: Vec<String>,
    pub find_time: DateTime<Utc>,
}

/// Live customers sharing one of `keys`, other than `except`; at most `limit`, oldest first.
pub async fn sharing_keys(
    tx: &mut TenantTx,
    tenant: Uuid,
    keys: &[String],
    except: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CustomerRow>, Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers
         WHERE tenant_id = $1 AND delete_time IS NULL AND ($3::uuid IS NULL OR id <> $3)
           AND id IN (SELECT customer_id FROM customer_match_keys WHERE tenant_id = $1 AND key = ANY($2))
         ORDER BY id LIMIT $4"
    ))
    .bind(tenant)
    .bind(keys)
    .bind(except)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "customers"))
    .await?)
}

/// For each probe (customer, its keys): the live customers other than it
/// sharing one of its keys, at most `limit` each, in one statement.
pub async fn sharing_keys_of_each(
    tx: &mut TenantTx,
    tenant: Uuid,
    probes: &[(Uuid, Vec<String>)],
    limit: i64,
) -> Result<Vec<(Uuid, CustomerRow)>, Error> {
    #[derive(FromRow)]
    struct Found {
        probe: Uuid,
        #[sqlx(flatten)]
        row: CustomerRow,
    }
    let ids: Vec<Uuid> = probes.iter().map(|(id, _)| *id).collect();
    // One text per probe (keys never hold a newline), split again in SQL: unnest cannot take ragged arrays.
    let joined: Vec<String> = probes.iter().map(|(_, k)| k.join("\n")).collect();
    let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
    let found: Vec<Found> = sqlx::query_as(&format!(
        "SELECT p.probe, {} FROM unnest($2::uuid[], $3::text[]) AS p(probe, joined)
         CROSS JOIN LATERAL (
             SELECT * FROM customers c
             WHERE c.tenant_id = $1 AND c.delete_time IS NULL AND c.id <> p.probe
               AND c.id IN (SELECT k.customer_id FROM customer_match_keys k
                            WHERE k.tenant_id = $1 AND k.key = ANY(string_to_array(p.joined, E'\\n')))
             ORDER BY c.id LIMIT $4
         ) c
         WHERE p.joined <> ''",
        columns.join(", ")
    ))
    .bind(tenant)
    .bind(&ids)
    .bind(&joined)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "customers"))
    .await?;
    Ok(found.into_iter().map(|f| (f.probe, f.row)).collect())
}

/// Customers (deleted ones too) changed after `after` and before `before`, in change order; at most `limit`.
pub async fn changed(
    tx: &mut TenantTx,
    tenant: Uuid,
    after: (DateTime<Utc>, Uuid),
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<CustomerRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers
         WHERE tenant_id = $1 AND (update_time, id) > ($2, $3) AND update_time < $4
         ORDER BY update_time, id LIMIT $5"
    ))
    .bind(tenant)
    .bind(after.0)
    .bind(after.1)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "customers"))
    .await?)
}

/// Stores the customers' match keys where they changed (without touching
/// `update_time`: the keys follow the row, they are not a change of it),
/// and their index rows.
pub async fn set_keys(tx: &mut TenantTx, tenant: Uuid, keys: &[(Uuid, Vec<String>)]) -> Result<(), Error> {
    let ids: Vec<Uuid> = keys.iter().map(|(id, _)| *id).collect();
    // One text per customer (keys never hold a newline), split again in SQL: unnest cannot take ragged arrays.
    let joined: Vec<String> = keys.iter().map(|(_, k)| k.join("\n")).collect();
    sqlx::query(
        "UPDATE customers c SET match_keys = u.keys
         FROM (SELECT id, CASE WHEN joined = '' THEN '{}'::text[] ELSE string_to_array(joined, E'\\n') END AS keys
               FROM unnest($2::uuid[], $3::text[]) AS x(id, joined)) AS u
         WHERE c.tenant_id = $1 AND c.id = u.id AND c.match_keys IS DISTINCT FROM u.keys",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&joined)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "customers"))
    .await?;
    reindex(tx, tenant, &ids).await
}

/// Rewrites the index rows of customers `ids` from their stored match keys
/// (after a write that set the keys without them: the scan, an unmerge, an erasure).
pub async fn reindex(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<(), Error> {
    sqlx::query("DELETE FROM customer_match_keys WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "customer_match_keys"))
        .await?;
    sqlx::query(
        "INSERT INTO customer_match_keys (tenant_id, key, customer_id)
         SELECT DISTINCT tenant_id, unnest(match_keys), id FROM customers WHERE tenant_id = $1 AND id = ANY($2) AND match_keys IS NOT NULL",
    )
    .bind(tenant)
    .bind(ids)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "customer_match_keys"))
    .await?;
    Ok(())
}

/// Tenants with customers not yet covered by a scan, across tenants (the `duplicate_scan` policies).
pub async fn unscanned_tenants(pool: &PgPool) -> Result<Vec<Uuid>, Error> {
    let mut tx = pool.begin_with("BEGIN READ ONLY; SELECT set_config('crm.scope', 'duplicate-scan', true)").await?;
    let tenants = sqlx::query_scalar(
        "SELECT DISTINCT c.tenant_id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM duplicate_scans s WHERE s.tenant_id = c.tenant_id)",
    )
    .fetch_all(&mut *tx)
    .instrument(db_span("SELECT", "customers"))
    .await?;
    tx.commit().await?;
    Ok(tenants)
}

/// Starts the tenant's scan from the beginning; no-op if it has one.
pub async fn start_scan(tx: &mut TenantTx, tenant: Uuid) -> Result<(), Error> {
    sqlx::query("INSERT INTO duplicate_scans (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "duplicate_scans"))
        .await?;
    Ok(())
}

/// Replaces the pairs involving `customers` with `pairs` (each with the
/// older customer first); a pair found before keeps its find time.
pub async fn replace_pairs(
    tx: &mut TenantTx,
    tenant: Uuid,
    customers: &[Uuid],
    pairs: &[(Uuid, Uuid, f64, Vec<&'static str>)],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let firsts: Vec<Uuid> = pairs.iter().map(|p| p.0).collect();
    let seconds: Vec<Uuid> = pairs.iter().map(|p| p.1).collect();
    let scores: Vec<f64> = pairs.iter().map(|p| p.2).collect();
    let signals: Vec<String> = pairs.iter().map(|p| p.3.join("\n")).collect();
    sqlx::query(
        "WITH found AS (
             SELECT * FROM unnest($3::uuid[], $4::uuid[], $5::float8[], $6::text[]) AS f(customer_id, duplicate_id, score, signals)
         ), gone AS (
             DELETE FROM duplicate_pairs p
             WHERE p.tenant_id = $1 AND (p.customer_id = ANY($2) OR p.duplicate_id = ANY($2))
               AND NOT EXISTS (SELECT 1 FROM found f WHERE f.customer_id = p.customer_id AND f.duplicate_id = p.duplicate_id)
         )
         INSERT INTO duplicate_pairs (tenant_id, customer_id, duplicate_id, score, signals, find_time)
         SELECT $1, customer_id, duplicate_id, score, string_to_array(signals, E'\\n'), $7 FROM found
         ON CONFLICT (tenant_id, customer_id, duplicate_id) DO UPDATE SET score = EXCLUDED.score, signals = EXCLUDED.signals",
    )
    .bind(tenant)
    .bind(customers)
    .bind(&firsts)
    .bind(&seconds)
    .bind(&scores)
    .bind(&signals)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "duplicate_pairs"))
    .await?;
    Ok(())
}

/// The pairs of live customers scoring at least `min_score`, most alike
/// first, after `after` (score, customer, duplicate); at most `limit`.
pub async fn pairs(
    tx: &mut TenantTx,
    tenant: Uuid,
    min_score: f64,
    after: Option<(f64, Uuid, Uuid)>,
    limit: i64,
) -> Result<Vec<PairRow>, Error> {
    let (score, first, second) = after.map_or((None, None, None), |(s, a, b)| (Some(s), Some(a), Some(b)));
    Ok(sqlx::query_as(
        "SELECT p.customer_id, p.duplicate_id, p.score, p.signals, p.find_time FROM duplicate_pairs p
         WHERE p.tenant_id = $1 AND p.score >= $2
           AND ($3::float8 IS NULL OR p.score < $3 OR (p.score = $3 AND (p.customer_id, p.duplicate_id) > ($4, $5)))
           AND EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = $1 AND c.id = p.customer_id AND c.delete_time IS NULL)
           AND EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = $1 AND c.id = p.duplicate_id AND c.delete_time IS NULL)
         ORDER BY p.score DESC, p.customer_id, p.duplicate_id LIMIT $6",
    )
    .bind(tenant)
    .bind(min_score)
    .bind(score)
    .bind(first)
    .bind(second)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "duplicate_pairs"))
    .await?)
}

/// Tenants with customers, across tenants (the `duplicate_scan` policy).
pub async fn scanned_tenants(pool: &PgPool) -> Result<Vec<Uuid>, Error> {
    let mut tx = pool.begin_with("BEGIN READ ONLY; SELECT set_config('crm.scope', 'duplicate-scan', true)").await?;
    let tenants = sqlx::query_scalar("SELECT tenant_id FROM duplicate_scans")
        .fetch_all(&mut *tx)
        .instrument(db_span("SELECT", "duplicate_scans"))
        .await?;
    tx.commit().await?;
    Ok(tenants)
}

/// Takes the tenant's scan (None if another replica holds it): where it stands.
pub async fn take_scan(tx: &mut TenantTx, tenant: Uuid) -> Result<Option<(DateTime<Utc>, Uuid)>, Error> {
    Ok(sqlx::query_as("SELECT scanned_time, scanned_id FROM duplicate_scans WHERE tenant_id = $1 FOR UPDATE SKIP LOCKED")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "duplicate_scans"))
        .await?)
}

/// Moves the tenant's scan on to `position`.
pub async fn advance_scan(tx: &mut TenantTx, tenant: Uuid, position: (DateTime<Utc>, Uuid)) -> Result<(), Error> {
    sqlx::query("UPDATE duplicate_scans SET scanned_time = $2, scanned_id = $3 WHERE tenant_id = $1")
        .bind(tenant)
        .bind(position.0)
        .bind(position.1)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "duplicate_scans"))
        .await?;
    Ok(())
}

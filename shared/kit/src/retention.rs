//! Outbox retention: events older than `CRM_OUTBOX_RETENTION_DAYS` (and
//! webhook delivery attempts as old) are deleted by a job every replica runs.
//! Each tenant's highest pruned position is kept, so that a consumer resuming
//! below it is told it missed events (OUT_OF_RANGE `EVENTS_PRUNED`, see
//! [`crate::outbox::check_not_pruned`]) instead of skipping them unknowingly.
//!
//! A deliverer with a cursor of its own (webhooks, the JetStream relay) that
//! the retention overtook moves past the gap and tells the tenant with an
//! `EventsPruned` event ([`tell_pruned`]).
//!
//! Replica-safe: a tenant is pruned under a transaction-scoped advisory lock
//! (a second replica skips it), in batches by position, and the stamping
//! lock is taken first so that no event is stamped while its tenant is pruned.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_proto::crm::events::v1::EventsPruned;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    db::{TenantTx, begin_tenant, db_span, scan_due_ids},
    error::Error,
};

/// Events deleted per statement.
const BATCH: i64 = 5000;
/// Tenants pruned per round.
const TENANTS_PER_ROUND: i64 = 100;

/// One round of the retention job: prunes up to [`TENANTS_PER_ROUND`]
/// tenants' events committed before `now - retention`; the number deleted.
pub async fn prune_round(pool: &PgPool, retention: Duration, now: DateTime<Utc>) -> Result<u64, Error> {
    let cutoff = now - chrono::Duration::from_std(retention).map_err(Error::internal)?;
    let tenants = scan_due_ids(
        pool,
        "outbox-retention",
        "outbox",
        "SELECT DISTINCT tenant_id FROM outbox WHERE time < $1 LIMIT $2",
        cutoff,
        TENANTS_PER_ROUND,
    )
    .await?;
    let mut deleted = 0;
    for tenant in tenants {
        deleted += prune_tenant(pool, tenant, cutoff).await?;
    }
    Ok(deleted)
}

/// Deletes `tenant`'s events (and webhook attempts) from before `cutoff`, a batch per transaction.
async fn prune_tenant(pool: &PgPool, tenant: Uuid, cutoff: DateTime<Utc>) -> Result<u64, Error> {
    let mut deleted = 0;
    loop {
        let mut tx = begin_tenant(pool, tenant).await?;
        let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended('crm.outbox.prune:' || $1::text, 0))")
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
        if !mine {
            return Ok(deleted);
        }
        // Stamped first: an old event not yet stamped gets its position now, so
        // the watermark covers it.
        crate::outbox::stamp_positions(&mut tx, tenant).await?;
        let (count, highest): (i64, Option<i64>) = sqlx::query_as(
            "WITH doomed AS (
                 SELECT position, seq FROM outbox_doomed($1, $2, $3)
             ), unpositioned AS (
                 DELETE FROM outbox_positions p USING doomed d WHERE p.tenant_id = $1 AND p.position = d.position
             ), gone AS (
                 DELETE FROM outbox o USING doomed d WHERE o.seq = d.seq RETURNING d.position
             )
             SELECT count(*), max(position) FROM gone",
        )
        .bind(tenant)
        .bind(cutoff)
        .bind(BATCH)
        .fetch_one(&mut *tx)
        .instrument(db_span("DELETE", "outbox"))
        .await?;
        if let Some(highest) = highest {
            sqlx::query(
                "INSERT INTO outbox_pruned (tenant_id, position, prune_time) VALUES ($1, $2, now())
                 ON CONFLICT (tenant_id) DO UPDATE SET position = greatest(outbox_pruned.position, excluded.position), prune_time = now()",
            )
            .bind(tenant)
            .bind(highest)
            .execute(&mut *tx)
            .instrument(db_span("INSERT", "outbox_pruned"))
            .await?;
        }
        sqlx::query("DELETE FROM webhook_attempts WHERE tenant_id = $1 AND attempt_time < $2")
            .bind(tenant)
            .bind(cutoff)
            .execute(&mut *tx)
            .instrument(db_span("DELETE", "webhook_attempts"))
            .await?;
        tx.commit().await?;
        deleted += count as u64;
        if count < BATCH {
            if deleted > 0 {
                tracing::info!(%tenant, deleted, "outbox events past retention deleted");
            }
            return Ok(deleted);
        }
    }
}

/// Tells the tenant, in `tx`, that `deliverer` (`webhooks/{id}`,
/// `jetstream/{stream}`), whose cursor stood at `after_position`, resumes
/// after `through_position`: the events in between were deleted by the
/// retention before it sent them on (an `EventsPruned` event, which the
/// caller commits with its cursor moved) — the deliverers' counterpart of
/// Subscribe's OUT_OF_RANGE `EVENTS_PRUNED`, so a gap is never skipped silently.
pub async fn tell_pruned(
    tx: &mut TenantTx,
    tenant: Uuid,
    deliverer: &str,
    after_position: i64,
    through_position: i64,
) -> Result<(), Error> {
    tracing::warn!(%deliverer, after_position, through_position, "events were pruned before they were delivered");
    let told = EventsPruned { deliverer: deliverer.to_owned(), after_position, through_position };
    crate::outbox::append(tx, tenant, deliverer, &told).await
}

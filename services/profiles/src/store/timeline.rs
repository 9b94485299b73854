//! A customer's timeline: the keys (time, kind, id) of a page of entries
//! across communications, transactions, occurrences, move-ins, move-outs and
//! field changes, newest first, in one statement. Each kind is one branch
//! that reads its own index newest first and stops after a page; Postgres
//! merges them. The records themselves are then read by id.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

/// The key of one timeline entry, and its order: time, then kind, then id, all descending.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct TimelineKey {
    pub time: DateTime<Utc>,
    pub kind: String,
    pub id: Uuid,
}

/// The kinds, each with its branch: `$1` tenant, `$2` customer, `$3`-`$5`
/// the key to continue after (NULL: from the newest), `$6` the page size.
pub const KINDS: [(&str, &str); 6] = [
    (
        "COMMUNICATION",
        "SELECT occur_time AS time, 'COMMUNICATION'::text AS kind, id FROM communications
         WHERE tenant_id = $1 AND customer_id = $2 AND occur_time <= coalesce($3, 'infinity')
           AND (occur_time, 'COMMUNICATION'::text, id) < (coalesce($3, 'infinity'), coalesce($4, '~'), coalesce($5, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
         ORDER BY occur_time DESC, id DESC LIMIT $6",
    ),
    (
        "TRANSACTION",
        "SELECT occur_time AS time, 'TRANSACTION'::text AS kind, id FROM transactions
         WHERE tenant_id = $1 AND customer_id = $2 AND occur_time <= coalesce($3, 'infinity')
           AND (occur_time, 'TRANSACTION'::text, id) < (coalesce($3, 'infinity'), coalesce($4, '~'), coalesce($5, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
         ORDER BY occur_time DESC, id DESC LIMIT $6",
    ),
    (
        "OCCURRENCE",
        "SELECT occur_date::timestamp AT TIME ZONE 'UTC' AS time, 'OCCURRENCE'::text AS kind, id FROM occurrences
         WHERE tenant_id = $1 AND customer_id = $2 AND occur_date <= (coalesce($3, 'infinity') AT TIME ZONE 'UTC')::date
           AND (occur_date::timestamp AT TIME ZONE 'UTC', 'OCCURRENCE'::text, id)
               < (coalesce($3, 'infinity'), coalesce($4, '~'), coalesce($5, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
         ORDER BY occur_date DESC, id DESC LIMIT $6",
    ),
    (
        "MOVE_IN",
        "SELECT move_in_date::timestamp AT TIME ZONE 'UTC' AS time, 'MOVE_IN'::text AS kind, id FROM occupancies
         WHERE tenant_id = $1 AND customer_id = $2 AND move_in_date <= (coalesce($3, 'infinity') AT TIME ZONE 'UTC')::date
           AND (move_in_date::timestamp AT TIME ZONE 'UTC', 'MOVE_IN'::text, id)
               < (coalesce($3, 'infinity'), coalesce($4, '~'), coalesce($5, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
         ORDER BY move_in_date DESC, id DESC LIMIT $6",
    ),
    (
        "MOVE_OUT",
        "SELECT move_out_date::timestamp AT TIME ZONE 'UTC' AS time, 'MOVE_OUT'::text AS kind, id FROM occupancies
         WHERE tenant_id = $1 AND customer_id = $2 AND move_out_date IS NOT NULL
           AND move_out_date <= (coalesce($3, 'infinity') AT TIME ZONE 'UTC')::date
           AND (move_out_date::timestamp AT TIME ZONE 'UTC', 'MOVE_OUT'::text, id)
               < (coalesce($3, 'infinity'), coalesce($4, '~'), coalesce($5, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
         ORDER BY move_out_date DESC, id DESC LIMIT $6",
    ),
    (
        "FIELD_CHANGE",
        "SELECT change_time AS time, 'FIELD_CHANGE'::text AS kind, id FROM field_changes
         WHERE tenant_id = $1 AND customer_id = $2 AND change_time <= coalesce($3, 'infinity')
           AND (change_time, 'FIELD_CHANGE'::text, id) < (coalesce($3, 'infinity'), coalesce($4, '~'), coalesce($5, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
         ORDER BY change_time DESC, id DESC LIMIT $6",
    ),
];

/// The keys of a page of `customer`'s entries of `kinds` (names from
/// [`KINDS`]), newest first, after `after`.
pub async fn page(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    kinds: &[&str],
    after: Option<&TimelineKey>,
    limit: i64,
) -> Result<Vec<TimelineKey>, Error> {
    let branches: Vec<String> = KINDS.iter().filter(|(kind, _)| kinds.contains(kind)).map(|(_, sql)| format!("({sql})")).collect();
    if branches.is_empty() {
        return Ok(Vec::new());
    }
    let sql =
        format!("SELECT time, kind, id FROM ({}) AS entries ORDER BY time DESC, kind DESC, id DESC LIMIT $6", branches.join(" UNION ALL "));
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(customer)
        .bind(after.map(|k| k.time))
        .bind(after.map(|k| k.kind.as_str()))
        .bind(after.map(|k| k.id))
        .bind(limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "timeline"))
        .await?)
}

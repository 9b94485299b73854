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

/// The kinds of entries, each read from: its table, its time (as a
/// timestamp), the column its index orders by, the bound on that column
/// (`$3` being the time to continue before), and any further condition.
struct Branch {
    kind: &'static str,
    table: &'static str,
    time: &'static str,
    order: &'static str,
    bound: &'static str,
    also: &'static str,
}

/// Dates count as midnight UTC.
const BRANCHES: [Branch; 6] = [
    Branch {
        kind: "COMMUNICATION",
        table: "communications",
        time: "occur_time",
        order: "occur_time",
        bound: "coalesce($3, 'infinity')",
        also: "",
    },
    Branch {
        kind: "TRANSACTION",
        table: "transactions",
        time: "occur_time",
        order: "occur_time",
        bound: "coalesce($3, 'infinity')",
        also: "",
    },
    Branch {
        kind: "OCCURRENCE",
        table: "occurrences",
        time: "occur_date::timestamp AT TIME ZONE 'UTC'",
        order: "occur_date",
        bound: "(coalesce($3, 'infinity') AT TIME ZONE 'UTC')::date",
        also: "",
    },
    Branch {
        kind: "MOVE_IN",
        table: "occupancies",
        time: "move_in_date::timestamp AT TIME ZONE 'UTC'",
        order: "move_in_date",
        bound: "(coalesce($3, 'infinity') AT TIME ZONE 'UTC')::date",
        also: "",
    },
    Branch {
        kind: "MOVE_OUT",
        table: "occupancies",
        time: "move_out_date::timestamp AT TIME ZONE 'UTC'",
        order: "move_out_date",
        bound: "(coalesce($3, 'infinity') AT TIME ZONE 'UTC')::date",
        also: "AND move_out_date IS NOT NULL",
    },
    Branch {
        kind: "FIELD_CHANGE",
        table: "field_changes",
        time: "change_time",
        order: "change_time",
        bound: "coalesce($3, 'infinity')",
        also: "",
    },
];

/// The kinds of entries, by name.
pub const KINDS: [&str; 6] = ["COMMUNICATION", "TRANSACTION", "OCCURRENCE", "MOVE_IN", "MOVE_OUT", "FIELD_CHANGE"];

impl Branch {
    /// The branch's statement: `$1` tenant, `$2` customer, `$3`-`$5` the key
    /// to continue after (NULL: from the newest), `$6` the page size. The
    /// bound on the indexed column lets the index start at the key; the row
    /// comparison drops the entries of that instant already shown.
    fn sql(&self) -> String {
        let Branch { kind, table, time, order, bound, also } = self;
        format!(
            "SELECT {time} AS time, '{kind}'::text AS kind, id FROM {table}
             WHERE tenant_id = $1 AND customer_id = $2 {also} AND {order} <= {bound}
               AND ({time}, '{kind}'::text, id) < (coalesce($3, 'infinity'), coalesce($4, '~'), coalesce($5, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
             ORDER BY {order} DESC, id DESC LIMIT $6"
        )
    }
}

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
    let branches: Vec<String> = BRANCHES.iter().filter(|b| kinds.contains(&b.kind)).map(|b| format!("({})", b.sql())).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_branch() {
        assert_eq!(BRANCHES.map(|b| b.kind), KINDS);
        assert!(BRANCHES.iter().all(|b| b.sql().contains(&format!("'{}'::text", b.kind))));
    }
}

//! The `classification_rules` table.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span},
};
use sqlx::{FromRow, Postgres, postgres::PgArguments, query::QueryAs};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{
    classify::{Actions, Conditions, Rule},
    ticket::{Channel, Priority, TicketType},
};

/// A stored rule.
#[derive(Debug, Clone, FromRow)]
pub struct RuleRow {
    pub id: Uuid,
    pub display_name: String,
    pub position: i32,
    pub keywords: Vec<String>,
    pub channels: Vec<String>,
    pub types: Vec<String>,
    pub customer_categories: Vec<String>,
    pub set_category: String,
    pub set_priority: String,
    pub set_team: String,
    pub create_time: DateTime<Utc>,
    /// Incremented by every edit; the etag.
    pub revision: i64,
}

const COLUMNS: &str = "id, display_name, position, keywords, channels, types, customer_categories, set_category, set_priority, set_team, create_time, revision";
const RULES: Table = Table { name: "classification_rules", columns: COLUMNS };

impl RuleRow {
    /// The rule as classification applies it; `None` (the rule never applies)
    /// if a stored name is unknown — it fails closed rather than matching more.
    pub fn rule(&self) -> Option<Rule> {
        let channels = self.channels.iter().map(|c| Channel::parse(c)).collect::<Option<Vec<_>>>();
        let types = self.types.iter().map(|t| TicketType::parse(t)).collect::<Option<Vec<_>>>();
        let priority = match self.set_priority.as_str() {
            "" => Some(None),
            name => Priority::parse(name).map(Some),
        };
        let (Some(channels), Some(types), Some(priority)) = (channels, types, priority) else {
            tracing::warn!(rule = %self.id, "a classification rule names an unknown channel, type or priority; it is skipped");
            return None;
        };
        Some(Rule {
            position: self.position,
            conditions: Conditions {
                keywords: self.keywords.clone(),
                channels,
                types,
                customer_categories: self.customer_categories.clone(),
            },
            actions: Actions { category: self.set_category.clone(), priority, team: self.set_team.clone() },
        })
    }
}

/// Binds $1 tenant, $2 id and $3-$11 the rule's fields, in the order of its columns.
fn bind_rule<'q>(
    query: QueryAs<'q, Postgres, RuleRow, PgArguments>,
    tenant: Uuid,
    r: &'q RuleRow,
) -> QueryAs<'q, Postgres, RuleRow, PgArguments> {
    query
        .bind(tenant)
        .bind(r.id)
        .bind(&r.display_name)
        .bind(r.position)
        .bind(&r.keywords)
        .bind(&r.channels)
        .bind(&r.types)
        .bind(&r.customer_categories)
        .bind(&r.set_category)
        .bind(&r.set_priority)
        .bind(&r.set_team)
}

/// Inserts a rule (the row's id and time are used as given).
pub async fn insert_rule(tx: &mut TenantTx, tenant: Uuid, r: &RuleRow) -> Result<RuleRow, Error> {
    let sql = format!(
        "INSERT INTO classification_rules (tenant_id, id, display_name, position, keywords, channels, types, customer_categories,
         set_category, set_priority, set_team, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
    );
    Ok(bind_rule(sqlx::query_as(&sql), tenant, r)
        .bind(r.create_time)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "classification_rules"))
        .await?)
}

/// The tenant's rules in evaluation order.
pub async fn list_rules(tx: &mut TenantTx, tenant: Uuid) -> Result<Vec<RuleRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM classification_rules WHERE tenant_id = $1 ORDER BY position, id");
    Ok(sqlx::query_as(&sql).bind(tenant).fetch_all(&mut **tx).instrument(db_span("SELECT", "classification_rules")).await?)
}

/// A page of the tenant's rules in evaluation order, after the (position, id) key `after`.
pub async fn rules_page(tx: &mut TenantTx, tenant: Uuid, after: Option<(i64, Uuid)>, limit: i64) -> Result<Vec<RuleRow>, Error> {
    let (position, id) = after.unzip();
    let sql = format!(
        "SELECT {COLUMNS} FROM classification_rules WHERE tenant_id = $1 AND ($2::bigint IS NULL OR (position::bigint, id) > ($2, $3))
         ORDER BY position, id LIMIT $4"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(position)
        .bind(id)
        .bind(limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "classification_rules"))
        .await?)
}

/// One rule; `lock` holds it until the transaction ends.
pub async fn find_rule(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Option<RuleRow>, Error> {
    RULES.find(tx, tenant, id, lock).await
}

/// Replaces a rule's conditions, actions, name and position and bumps its revision.
pub async fn update_rule(tx: &mut TenantTx, tenant: Uuid, r: &RuleRow) -> Result<RuleRow, Error> {
    let sql = format!(
        "UPDATE classification_rules SET display_name = $3, position = $4, keywords = $5, channels = $6, types = $7,
         customer_categories = $8, set_category = $9, set_priority = $10, set_team = $11, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(bind_rule(sqlx::query_as(&sql), tenant, r).fetch_one(&mut **tx).instrument(db_span("UPDATE", "classification_rules")).await?)
}

/// Deletes a rule; false if there was none.
pub async fn delete_rule(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<bool, Error> {
    let done = sqlx::query("DELETE FROM classification_rules WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "classification_rules"))
        .await?;
    Ok(done.rows_affected() == 1)
}

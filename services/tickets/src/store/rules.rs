//! The `classification_rules` table.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::classify::{Actions, Conditions, Rule};

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
}

const COLUMNS: &str =
    "id, display_name, position, keywords, channels, types, customer_categories, set_category, set_priority, set_team, create_time";

impl RuleRow {
    /// The rule as classification applies it.
    pub fn rule(&self) -> Rule {
        Rule {
            position: self.position,
            conditions: Conditions {
                keywords: self.keywords.clone(),
                channels: self.channels.clone(),
                types: self.types.clone(),
                customer_categories: self.customer_categories.clone(),
            },
            actions: Actions { category: self.set_category.clone(), priority: self.set_priority.clone(), team: self.set_team.clone() },
        }
    }
}

/// Inserts a rule (the row's id and time are used as given).
pub async fn insert_rule(tx: &mut TenantTx, tenant: Uuid, r: &RuleRow) -> Result<RuleRow, Error> {
    let sql = format!(
        "INSERT INTO classification_rules (tenant_id, id, display_name, position, keywords, channels, types, customer_categories,
         set_category, set_priority, set_team, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
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

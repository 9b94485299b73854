//! The `templates` table.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Revisioned, Table, TenantTx, db_span},
};
use sqlx::{FromRow, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{
    channel::{Channel, Purpose},
    template::{Content, TemplateDraft},
};

/// A stored template.
#[derive(Debug, Clone, FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub display_name: String,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    #[sqlx(try_from = "String")]
    pub purpose: Purpose,
    pub contents: Json<Vec<Content>>,
    pub default_locale: String,
    pub locked_variables: Vec<String>,
    pub variables: Vec<String>,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for TemplateRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

impl TemplateRow {
    /// The template as written.
    pub fn draft(&self) -> TemplateDraft {
        TemplateDraft {
            display_name: self.display_name.clone(),
            channel: self.channel,
            purpose: self.purpose,
            contents: self.contents.0.clone(),
            default_locale: self.default_locale.clone(),
            locked_variables: self.locked_variables.clone(),
        }
    }
}

/// The templates table for find, lock and paging by display name.
pub const TEMPLATES: Table = Table {
    name: "templates",
    columns: "id, display_name, channel, purpose, contents, default_locale, locked_variables, variables, revision, create_time, update_time",
};

/// Inserts a checked template using `variables`.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    draft: &TemplateDraft,
    variables: &[String],
    now: DateTime<Utc>,
) -> Result<TemplateRow, Error> {
    let sql = format!(
        "INSERT INTO templates (tenant_id, id, display_name, channel, purpose, contents, default_locale, locked_variables, variables, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {}",
        TEMPLATES.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(&draft.display_name)
        .bind(draft.channel.as_str())
        .bind(draft.purpose.as_str())
        .bind(Json(&draft.contents))
        .bind(&draft.default_locale)
        .bind(&draft.locked_variables)
        .bind(variables)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "templates"))
        .await?)
}

/// Replaces template `id`'s fields (the channel never changes), bumping its revision.
pub async fn update(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    draft: &TemplateDraft,
    variables: &[String],
    now: DateTime<Utc>,
) -> Result<TemplateRow, Error> {
    let sql = format!(
        "UPDATE templates SET display_name = $3, purpose = $4, contents = $5, default_locale = $6, locked_variables = $7, variables = $8,
         update_time = $9, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {}",
        TEMPLATES.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(&draft.display_name)
        .bind(draft.purpose.as_str())
        .bind(Json(&draft.contents))
        .bind(&draft.default_locale)
        .bind(&draft.locked_variables)
        .bind(variables)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "templates"))
        .await?)
}

/// Deletes template `id`.
pub async fn delete(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM templates WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "templates"))
        .await?;
    Ok(())
}

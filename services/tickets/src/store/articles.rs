//! The `articles` and `article_versions` tables.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

/// A stored article.
#[derive(Debug, Clone, FromRow)]
pub struct ArticleRow {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub category: String,
    pub tags: Vec<String>,
    pub locale: String,
    pub status: String,
    pub version: i32,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// The editable fields of an article, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleFields {
    pub title: String,
    pub body: String,
    pub category: String,
    pub tags: Vec<String>,
    pub locale: String,
    pub status: String,
}

const COLUMNS: &str = "id, title, body, category, tags, locale, status, version, revision, create_time, update_time";

async fn record_version(tx: &mut TenantTx, tenant: Uuid, row: &ArticleRow, editor: &str) -> Result<(), Error> {
    sqlx::query("INSERT INTO article_versions (tenant_id, article_id, version, title, body, editor, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(tenant)
        .bind(row.id)
        .bind(row.version)
        .bind(&row.title)
        .bind(&row.body)
        .bind(editor)
        .bind(row.update_time)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "article_versions"))
        .await?;
    Ok(())
}

/// Inserts an article as version 1.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    f: &ArticleFields,
    tokens: &[String],
    editor: &str,
    now: DateTime<Utc>,
) -> Result<ArticleRow, Error> {
    let sql = format!(
        "INSERT INTO articles (tenant_id, id, title, body, category, tags, locale, status, search_tokens, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
    );
    let row: ArticleRow = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(&f.title)
        .bind(&f.body)
        .bind(&f.category)
        .bind(&f.tags)
        .bind(&f.locale)
        .bind(&f.status)
        .bind(tokens)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "articles"))
        .await?;
    record_version(tx, tenant, &row, editor).await?;
    Ok(row)
}

/// One article; `lock` holds it until the transaction ends.
pub async fn find(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Option<ArticleRow>, Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM articles WHERE tenant_id = $1 AND id = $2{lock}");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(&mut **tx).instrument(db_span("SELECT", "articles")).await?)
}

/// Replaces the fields; `new_version_by` (the editor) records a new version,
/// as a new title or body does.
pub async fn update(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    f: &ArticleFields,
    tokens: &[String],
    new_version_by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ArticleRow, Error> {
    let sql = format!(
        "UPDATE articles SET title = $3, body = $4, category = $5, tags = $6, locale = $7, status = $8, search_tokens = $9,
         version = version + $10::int, revision = revision + 1, update_time = $11 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let row: ArticleRow = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(&f.title)
        .bind(&f.body)
        .bind(&f.category)
        .bind(&f.tags)
        .bind(&f.locale)
        .bind(&f.status)
        .bind(tokens)
        .bind(i32::from(new_version_by.is_some()))
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "articles"))
        .await?;
    if let Some(editor) = new_version_by {
        record_version(tx, tenant, &row, editor).await?;
    }
    Ok(row)
}

/// A stored version.
#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    pub version: i32,
    pub title: String,
    pub body: String,
    pub editor: String,
    pub create_time: DateTime<Utc>,
}

/// A page of an article's versions, newest first, before version `before`.
pub async fn versions(tx: &mut TenantTx, tenant: Uuid, id: Uuid, before: Option<i64>, limit: i64) -> Result<Vec<VersionRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT version, title, body, editor, create_time FROM article_versions WHERE tenant_id = $1 AND article_id = $2
         AND ($3::bigint IS NULL OR version < $3) ORDER BY version DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(id)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "article_versions"))
    .await?)
}

/// Articles containing any of `tokens`, with how many they contain, best first.
pub async fn search(
    tx: &mut TenantTx,
    tenant: Uuid,
    tokens: &[String],
    locale: &str,
    include_unpublished: bool,
    limit: i64,
) -> Result<Vec<(ArticleRow, i32)>, Error> {
    #[derive(FromRow)]
    struct Hit {
        #[sqlx(flatten)]
        article: ArticleRow,
        score: i32,
    }
    let sql = format!(
        "SELECT {COLUMNS}, (SELECT count(*) FROM unnest(a.search_tokens) t WHERE t = ANY($2))::int AS score
         FROM articles a WHERE a.tenant_id = $1 AND a.search_tokens && $2 AND ($3 OR a.status = 'PUBLISHED') AND ($4 = '' OR a.locale = $4)
         ORDER BY score DESC, a.update_time DESC, a.id LIMIT $5"
    );
    let hits: Vec<Hit> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(tokens)
        .bind(include_unpublished)
        .bind(locale)
        .bind(limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "articles"))
        .await?;
    Ok(hits.into_iter().map(|h| (h.article, h.score)).collect())
}

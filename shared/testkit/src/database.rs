//! A fresh, uniquely named database per test.

use anyhow::Context;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// A database created for one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// URL of the service's login role (subject to RLS).
    pub app_url: String,
    /// URL of the schema owner (runs migrations).
    pub owner_url: String,
}

fn env_url(var: &str) -> anyhow::Result<String> {
    std::env::var(var).with_context(|| format!("{var} is not set: run the tests with `make test`, which starts Postgres and exports it"))
}

/// `url` pointing at database `name` instead.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let slash = base.rfind('/').expect("a postgres URL has a path");
    let mut out = format!("{}/{name}", &base[..slash]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Creates an empty database for `service` (e.g. "profiles"), owned by the service's owner role.
pub async fn fresh_database(service: &str) -> anyhow::Result<TestDb> {
    let upper = service.to_ascii_uppercase();
    let owner_base = env_url(&format!("{upper}_MIGRATION_DATABASE_URL"))?;
    let app_base = env_url(&format!("{upper}_DATABASE_URL"))?;
    let name = format!("test_{service}_{}", Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&owner_base).await.context("connecting as the owner role")?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.context("creating the test database")?;
    conn.close().await?;
    Ok(TestDb { app_url: with_database(&app_base, &name), owner_url: with_database(&owner_base, &name), name })
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_repointed() {
        assert_eq!(super::with_database("postgres://u@h:1/a?sslmode=disable", "b"), "postgres://u@h:1/b?sslmode=disable");
        assert_eq!(super::with_database("postgres://u@h/a", "b"), "postgres://u@h/b");
    }
}

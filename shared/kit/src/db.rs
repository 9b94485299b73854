//! Postgres: the pool, migrations run by the schema owner, least-privilege
//! grants to the service's login role, tenant-scoped transactions, and DB
//! client spans.
//!
//! Tenant isolation is enforced by Row-Level Security: every table has a
//! policy on `crm.tenant_id`, which [`begin_tenant`] sets for the current
//! transaction only, so a pooled connection never carries a tenant over.

use std::time::Duration;

use sqlx::{
    PgPool, Postgres, Transaction,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions, PgSslMode},
};
use std::sync::atomic::{AtomicI64, Ordering};
use tracing::Instrument;
use uuid::Uuid;

use crate::{config::KitConfig, error::Error};

/// A transaction whose row visibility is limited to one tenant by RLS.
///
/// Statements run on it as on the connection it derefs to (`&mut *tx`, or
/// `&mut **tx` through a `&mut TenantTx`); its end is traced like its start
/// (client spans `COMMIT transaction` / `ROLLBACK transaction` beside
/// `BEGIN transaction`), since a commit waits for the WAL flush and can be
/// where a slow write spends its time. Dropped without either, it rolls back.
pub struct TenantTx(Transaction<'static, Postgres>);

impl TenantTx {
    /// Commits, under a client span.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.0.commit().instrument(db_span("COMMIT", "transaction")).await
    }

    /// Rolls back, under a client span.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.0.rollback().instrument(db_span("ROLLBACK", "transaction")).await
    }
}

impl std::ops::Deref for TenantTx {
    type Target = sqlx::PgConnection;

    fn deref(&self) -> &sqlx::PgConnection {
        &self.0
    }
}

impl std::ops::DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
        &mut self.0
    }
}

/// How to reach Postgres at `url`: its own settings, with the config's TLS
/// mode and CA file in place of the URL's `sslmode` and `sslrootcert`.
pub fn connect_options(url: &str, config: &KitConfig) -> anyhow::Result<PgConnectOptions> {
    let mut options: PgConnectOptions = url.parse().map_err(|e| anyhow::anyhow!("a Postgres URL: {e}"))?;
    if let Some(mode) = &config.database_sslmode {
        let mode: PgSslMode = mode.parse().map_err(|_| {
            anyhow::anyhow!("CRM_DATABASE_SSLMODE {mode:?}: one of disable, allow, prefer, require, verify-ca, verify-full")
        })?;
        options = options.ssl_mode(mode);
    }
    Ok(match &config.database_ca_file {
        Some(ca) => {
            anyhow::ensure!(ca.is_file(), "CRM_DATABASE_CA_FILE {}: no such file", ca.display());
            // Under `prefer` or `require` the certificate is not checked at all:
            // a CA file there would promise a verification that never happens.
            anyhow::ensure!(
                matches!(options.get_ssl_mode(), PgSslMode::VerifyCa | PgSslMode::VerifyFull),
                "CRM_DATABASE_CA_FILE is set but the sslmode is {:?}: use verify-full (or verify-ca), e.g. CRM_DATABASE_SSLMODE=verify-full",
                options.get_ssl_mode()
            );
            options.ssl_root_cert(ca)
        }
        None => options,
    })
}

/// Opens the service's pool, retrying for up to 30 s so that a service
/// starting beside its database does not crash-loop.
pub async fn connect(config: &KitConfig) -> anyhow::Result<PgPool> {
    let options = connect_options(config.database_url.expose(), config)?;
    let pool_options = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_millis(config.db_acquire_timeout_ms))
        // No `SELECT 1` round trip before every use: a connection that died
        // while idle fails at BEGIN, before any work, and `begin_tenant` (and
        // the health `ping`) take another.
        .test_before_acquire(false);
    retry_connect(|| pool_options.clone().connect_with(options.clone())).await
}

async fn retry_connect<F, Fut>(connect: F) -> anyhow::Result<PgPool>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<PgPool, sqlx::Error>>,
{
    let mut delay = Duration::from_millis(100);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match connect().await {
            Ok(pool) => return Ok(pool),
            // A certificate that does not match (rustls reports it as invalid
            // data) or a server without TLS is not going to change by waiting.
            Err(err) if refused_for_good(&err) => {
                return Err(anyhow::Error::new(err).context("connecting to Postgres (TLS or settings; not retried)"));
            }
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %err, "database not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(err) => return Err(anyhow::Error::new(err).context("connecting to Postgres")),
        }
    }
}

/// Whether connecting failed in a way waiting cannot fix: TLS verification
/// or the settings themselves.
fn refused_for_good(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Tls(_) | sqlx::Error::Configuration(_) => true,
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// Runs `migrator` as the schema owner, then grants the login role of `app`
/// exactly what a service needs: DML on the tables and use of the sequences —
/// no DDL, no ownership (so RLS applies), no access to the migrations table.
pub async fn migrate(owner: PgConnectOptions, migrator: &Migrator, app: &PgPool) -> anyhow::Result<()> {
    let owner = retry_connect(|| PgPoolOptions::new().max_connections(1).connect_with(owner.clone())).await?;
    migrator.run(&owner).await.map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    let app_role: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(app).await?;
    let owner_role: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&owner).await?;
    anyhow::ensure!(app_role != owner_role, "the service must not connect as the schema owner ({owner_role}); RLS would not bind it");
    let role = quote_ident(&app_role);
    for statement in [
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!("REVOKE ALL ON _sqlx_migrations FROM {role}"),
    ] {
        sqlx::query(&statement).execute(&owner).await?;
    }
    owner.close().await;
    Ok(())
}

/// Quotes a role name as an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The due rows of a scan across tenants: `sql` (binding `$1` = `now` and
/// `$2` = `limit`) runs in a read-only transaction whose `crm.scope` is
/// `scope`, which the table's read-only scan policy admits — a policy that
/// shows ids and instants, never a tenant's data. Background jobs find their
/// work this way, then do it tenant by tenant in [`begin_tenant`] transactions.
pub async fn scan_due<T>(
    pool: &PgPool,
    scope: &'static str,
    table: &'static str,
    sql: &str,
    now: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<Vec<T>, Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut tx = begin_with(pool, format!("BEGIN READ ONLY; SELECT set_config('crm.scope', '{scope}', true)")).await?;
    let rows = sqlx::query_as(sql).bind(now).bind(limit).fetch_all(&mut *tx).instrument(db_span("SELECT", table)).await?;
    tx.commit().await?;
    Ok(rows)
}

/// [`scan_due`] of one id column: the tenants (or other ids) with due work.
pub async fn scan_due_ids(
    pool: &PgPool,
    scope: &'static str,
    table: &'static str,
    sql: &str,
    now: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, Error> {
    let rows: Vec<(Uuid,)> = scan_due(pool, scope, table, sql, now, limit).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Callers waiting for a pooled connection right now (the
/// `db.client.connection.pending_requests` gauge).
static WAITING: AtomicI64 = AtomicI64::new(0);

/// How many callers wait for a pooled connection.
pub fn waiting_for_connection() -> i64 {
    WAITING.load(Ordering::Relaxed)
}

/// Counts its caller in [`WAITING`] while it lives.
struct Waiting;

impl Waiting {
    fn enter() -> Self {
        WAITING.fetch_add(1, Ordering::Relaxed);
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A pooled connection with `statement` (a `BEGIN …`) run on it, under a
/// client span `BEGIN`; a caller that finds no idle connection counts as
/// waiting until it gets one.
async fn begin_with(pool: &PgPool, statement: String) -> Result<TenantTx, sqlx::Error> {
    async {
        if let Some(tx) = pool.try_begin_with(statement.clone()).await? {
            return Ok(TenantTx(tx));
        }
        let _waiting = Waiting::enter();
        pool.begin_with(statement).await.map(TenantTx)
    }
    .instrument(db_span("BEGIN", "transaction"))
    .await
}

/// Begins a transaction in which RLS shows only `tenant`'s rows, in one
/// round trip: `BEGIN` and the transaction-local `set_config` travel as one
/// simple query (a UUID's text form cannot break out of its quotes). A pooled
/// connection that died while idle (a database restart or failover) fails
/// here before any work was done, so the next one is tried.
pub async fn begin_tenant(pool: &PgPool, tenant: Uuid) -> Result<TenantTx, Error> {
    let begin = format!("BEGIN; SELECT set_config('crm.tenant_id', '{}', true)", tenant.hyphenated());
    let mut attempts = pool.options().get_max_connections() + 1;
    loop {
        match begin_with(pool, begin.clone()).await {
            Err(err) if attempts > 1 && lost_connection(&err) => attempts -= 1,
            result => return Ok(result?),
        }
    }
}

/// The first row of simple query `sql`, if any. (Through the executor:
/// sqlx 0.8's `RawSql::fetch_optional` fails on no row, like `fetch_one`.)
/// Boxed, so that the executor's lifetimes are fixed here: unboxed, callers'
/// futures fail to prove `Send` ("`Executor` is not general enough").
fn fetch_optional_raw<'c>(
    conn: &'c mut sqlx::PgConnection,
    sql: &'c str,
) -> futures::future::BoxFuture<'c, Result<Option<sqlx::postgres::PgRow>, sqlx::Error>> {
    Box::pin(async move { sqlx::Executor::fetch_optional(conn, sqlx::raw_sql(sql)).await })
}

/// Runs simple query `sql` — several `;`-separated statements in one round
/// trip, no parameters — on `conn` (a `&mut **tx` of a [`TenantTx`] too).
/// Boxed as [`fetch_optional_raw`] is.
pub fn execute_simple<'c>(conn: &'c mut sqlx::PgConnection, sql: &'c str) -> futures::future::BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move { sqlx::Executor::execute(conn, sqlx::raw_sql(sql)).await.map(drop) })
}

/// Whether `err` says a prepared statement does not exist on the connection (26000).
fn missing_statement(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("26000"))
}

/// Whether `err` says a prepared plan no longer fits its tables (0A000:
/// "cached plan must not change result type", after a migration).
fn stale_plan(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("0A000"))
}

/// The 32-bit FNV-1a hash of `text`: a short, stable tag of a column list.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193))
}

/// Whether `err` says the connection itself is gone (not that the statement failed).
fn lost_connection(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        // 08: connection exceptions; 57P01-57P03: the server shut down or is starting.
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// A row that carries its revision, from which its etag is made.
pub trait Revisioned {
    /// Incremented by every change of the row.
    fn revision(&self) -> i64;
}

/// A row of a resource that lives under a parent (`customers/{c}/relatedPersons/{p}`).
pub trait ChildRow: Revisioned {
    /// The row's own id.
    fn id(&self) -> Uuid;
    /// The parent's id.
    fn parent_id(&self) -> Uuid;
}

/// A tenant table with the suite's row conventions — `tenant_id`, `id`,
/// `revision` (the etag), `update_time`, `delete_time` for soft deletion — and
/// the statements every service writes the same way over one.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// Table name.
    pub name: &'static str,
    /// The column list a row type is read from.
    pub columns: &'static str,
}

impl Table {
    /// Row `id` of `tenant` read in **one** round trip, for the hottest
    /// reads (a Get): the tenant set transaction-locally and the row read by
    /// a statement prepared on the connection, as one simple query —
    ///
    /// ```sql
    /// SET LOCAL crm.tenant_id = '<tenant>'; EXECUTE crm_get_<table>_<hash>('<tenant>', '<id>')
    /// ```
    ///
    /// Postgres runs a simple query's statements as one implicit transaction,
    /// so the setting binds the read exactly as [`begin_tenant`] does and ends
    /// with it: RLS holds, and nothing carries over to the connection's next
    /// use (a failed statement rolls the whole query back). Only UUIDs are
    /// spliced into the text, whose text form cannot leave its quotes. Against
    /// `begin_tenant` + [`Table::find`] + `COMMIT` it saves two of three round
    /// trips; `EXECUTE` keeps the plan that a plain simple query would parse
    /// and plan on every call. The statement is prepared on a connection the
    /// first time the connection lacks it and the read runs again there (a
    /// plan a migration made stale is prepared afresh); where a pooler in
    /// transaction mode (PgBouncer) does not keep it on the session, the read
    /// falls back to the transaction path.
    pub async fn get<T>(&self, pool: &PgPool, tenant: Uuid, id: Uuid) -> Result<Option<T>, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        // The column list's hash in the name: two builds selecting different columns (a rolling
        // deploy behind a pooler that shares sessions) never run each other's statement.
        let statement = format!("crm_get_{}_{:08x}", self.name, fnv1a(self.columns));
        let read = format!(
            "SET LOCAL crm.tenant_id = '{}'; EXECUTE {statement}('{}', '{}')",
            tenant.hyphenated(),
            tenant.hyphenated(),
            id.hyphenated()
        );
        let prepare =
            format!("PREPARE {statement} (uuid, uuid) AS SELECT {} FROM {} WHERE tenant_id = $1 AND id = $2", self.columns, self.name);
        let mut lost_attempts = pool.options().get_max_connections() + 1;
        loop {
            let mut conn = pool.acquire().await?;
            match self.read_prepared(&mut conn, &read, &statement, &prepare).await {
                Ok(Some(row)) => return Ok(row.as_ref().map(T::from_row).transpose()?),
                // The session will not keep the statement (a pooler in transaction mode): the transaction path.
                Ok(None) => {
                    drop(conn);
                    let mut tx = begin_tenant(pool, tenant).await?;
                    let row = self.find(&mut tx, tenant, id, false).await?;
                    tx.commit().await?;
                    return Ok(row);
                }
                Err(err) if lost_connection(&err) && lost_attempts > 1 => {
                    lost_attempts -= 1;
                    conn.close_on_drop();
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Runs `read` on `conn`, preparing `statement` there when the session
    /// lacks it (or re-preparing it when a migration changed the columns'
    /// types under its plan) and running it again on the same session:
    /// `Some(row)` as read, `None` when the statement still cannot be used.
    async fn read_prepared(
        &self,
        conn: &mut sqlx::PgConnection,
        read: &str,
        statement: &str,
        prepare: &str,
    ) -> Result<Option<Option<sqlx::postgres::PgRow>>, sqlx::Error> {
        for _ in 0..2 {
            match fetch_optional_raw(conn, read).instrument(db_span("SELECT", self.name)).await {
                Ok(row) => return Ok(Some(row)),
                Err(err) if missing_statement(&err) => {}
                Err(err) if stale_plan(&err) => {
                    execute_simple(conn, &format!("DEALLOCATE {statement}")).instrument(db_span("DEALLOCATE", self.name)).await?;
                }
                Err(err) => return Err(err),
            }
            match execute_simple(conn, prepare).instrument(db_span("PREPARE", self.name)).await {
                // 42P05: prepared already (another client of a shared session did it): use it.
                Err(err) if !matches!(&err, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P05")) => return Err(err),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Row `id`; `lock` holds it (`FOR UPDATE`) until the transaction ends, for a change.
    pub async fn find<T>(&self, tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Option<T>, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let lock = if lock { " FOR UPDATE" } else { "" };
        let sql = format!("SELECT {} FROM {} WHERE tenant_id = $1 AND id = $2{lock}", self.columns, self.name);
        Ok(sqlx::query_as::<_, T>(&sql).bind(tenant).bind(id).fetch_optional(&mut **tx).instrument(db_span("SELECT", self.name)).await?)
    }

    /// The rows with these ids (in no particular order; missing ones are left out).
    pub async fn find_many<T>(&self, tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<T>, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {} FROM {} WHERE tenant_id = $1 AND id = ANY($2)", self.columns, self.name);
        Ok(sqlx::query_as::<_, T>(&sql).bind(tenant).bind(ids).fetch_all(&mut **tx).instrument(db_span("SELECT", self.name)).await?)
    }

    /// A page of rows in (`display_name`, id) order, after the key `after` of
    /// the previous page's last row; for resources listed by their name.
    pub async fn page_by_display_name<T>(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        after: Option<(String, Uuid)>,
        limit: i64,
    ) -> Result<Vec<T>, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let (name, id) = after.unzip();
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 AND ($2::text IS NULL OR (display_name, id) > ($2, $3)) ORDER BY display_name, id LIMIT $4",
            self.columns, self.name
        );
        Ok(sqlx::query_as::<_, T>(&sql)
            .bind(tenant)
            .bind(name)
            .bind(id)
            .bind(limit)
            .fetch_all(&mut **tx)
            .instrument(db_span("SELECT", self.name))
            .await?)
    }

    /// Row `id` of resource type `resource`, locked for a change once the
    /// caller's `etag` (request field `etag_field`; empty: no check) is found
    /// current: INVALID_ARGUMENT for a malformed etag (before any read),
    /// NOT_FOUND naming the resource, ABORTED `ETAG_MISMATCH` when stale.
    pub async fn lock_for_change<T>(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        id: Uuid,
        resource: &crate::resource::ResourceType,
        etag: &str,
        etag_field: &str,
    ) -> Result<T, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin + Revisioned,
    {
        crate::etag::parse(etag, etag_field)?;
        let row: T = self.find(tx, tenant, id, true).await?.ok_or_else(|| resource.not_found(id))?;
        resource.check_etag(etag, etag_field, id, row.revision())?;
        Ok(row)
    }

    /// Row `id` of child resource type `resource`, which must live under
    /// `parent` (a real id under another parent is NOT_FOUND too, so names
    /// cannot be mixed); `lock` holds it for a change.
    pub async fn find_child<T>(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        resource: &crate::resource::ChildResourceType,
        parent: Uuid,
        id: Uuid,
        lock: bool,
    ) -> Result<T, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin + ChildRow,
    {
        self.find::<T>(tx, tenant, id, lock).await?.filter(|row| row.parent_id() == parent).ok_or_else(|| resource.not_found(parent, id))
    }

    /// [`find_child`](Self::find_child), locked for a change once the caller's
    /// `etag` (request field `etag_field`; empty: no check) is found current.
    pub async fn lock_child_for_change<T>(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        resource: &crate::resource::ChildResourceType,
        (parent, id): (Uuid, Uuid),
        etag: &str,
        etag_field: &str,
    ) -> Result<T, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin + ChildRow,
    {
        crate::etag::parse(etag, etag_field)?;
        let row: T = self.find_child(tx, tenant, resource, parent, id, true).await?;
        resource.check_etag(etag, etag_field, parent, id, row.revision())?;
        Ok(row)
    }

    /// A page of the rows whose `parent_column` is `parent`, in id order
    /// (creation order for UUIDv7 ids), after the id `after`.
    pub async fn page_under<T>(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        parent_column: &str,
        parent: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<T>, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 AND {parent_column} = $2 AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4",
            self.columns, self.name
        );
        Ok(sqlx::query_as::<_, T>(&sql)
            .bind(tenant)
            .bind(parent)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut **tx)
            .instrument(db_span("SELECT", self.name))
            .await?)
    }

    /// Removes row `id` for good (resources without soft deletion).
    pub async fn delete(&self, tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
        let sql = format!("DELETE FROM {} WHERE tenant_id = $1 AND id = $2", self.name);
        sqlx::query(&sql).bind(tenant).bind(id).execute(&mut **tx).instrument(db_span("DELETE", self.name)).await?;
        Ok(())
    }

    /// Soft-deletes (`Some(now)`) or restores (`None`) row `id`, bumping its revision.
    pub async fn set_delete_time<T>(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        id: Uuid,
        delete_time: Option<chrono::DateTime<chrono::Utc>>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<T, Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let sql = format!(
            "UPDATE {} SET delete_time = $3, update_time = $4, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {}",
            self.name, self.columns
        );
        Ok(sqlx::query_as::<_, T>(&sql)
            .bind(tenant)
            .bind(id)
            .bind(delete_time)
            .bind(now)
            .fetch_one(&mut **tx)
            .instrument(db_span("UPDATE", self.name))
            .await?)
    }
}

/// A client span for one database operation, named and attributed per the
/// OpenTelemetry database semantic conventions (see `telemetry`): never with
/// parameter values.
pub fn db_span(operation: &'static str, collection: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db",
        otel.name = %format_args!("{operation} {collection}"),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
        db.collection.name = collection,
    )
}

/// Whether the database answers a trivial query within `timeout`.
pub async fn ping(pool: &PgPool, timeout: Duration) -> bool {
    // The pool does not test connections before use: a connection that died
    // while idle fails here once, and the next one answers for the database.
    let attempts = pool.options().get_max_connections() + 1;
    let ping = async {
        for _ in 0..attempts {
            match sqlx::query("SELECT 1").execute(pool).await {
                Ok(_) => return true,
                Err(err) if lost_connection(&err) => continue,
                Err(_) => return false,
            }
        }
        false
    };
    tokio::time::timeout(timeout, ping).await.unwrap_or(false)
}
#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(super::quote_ident(r#"a"b"#), r#""a""b""#);
    }
}

//! The `teams` and `team_members` tables.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span, execute_simple},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

/// A stored team.
#[derive(Debug, Clone, FromRow)]
pub struct TeamRow {
    pub id: Uuid,
    pub display_name: String,
    pub strategy: String,
    pub lead: String,
    pub last_assigned: String,
    pub create_time: DateTime<Utc>,
    /// Incremented by every edit; the etag.
    pub revision: i64,
}

const TEAM_COLUMNS: &str = "id, display_name, strategy, lead, last_assigned, create_time, revision";
const TEAMS: Table = Table { name: "teams", columns: TEAM_COLUMNS };

/// Inserts a team.
pub async fn insert_team(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    display_name: &str,
    strategy: &str,
    lead: &str,
    now: DateTime<Utc>,
) -> Result<TeamRow, Error> {
    let sql = format!(
        "INSERT INTO teams (tenant_id, id, display_name, strategy, lead, create_time) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TEAM_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(display_name)
        .bind(strategy)
        .bind(lead)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "teams"))
        .await?)
}

/// How long an assignment waits for the tenant's dispatch lock before the
/// call fails UNAVAILABLE `BUSY` (retryable): long enough for any dispatch to
/// finish, short enough that one tenant's pile-up cannot hold the pooled
/// connections every tenant shares.
pub const DISPATCH_LOCK_WAIT: &str = "5s";

/// Serialises the tenant's assignment decisions until the transaction ends:
/// an agent's load counts tickets of all their teams, so two intakes in
/// different teams must not both count the same spare place. Taken before
/// any team row lock, so dispatchers never wait on each other in a circle;
/// waits at most [`DISPATCH_LOCK_WAIT`] (only for this lock: `lock_timeout`
/// goes back to the session's default in the same round trip — nothing else
/// in the services sets it).
pub async fn lock_dispatch(tx: &mut TenantTx, tenant: Uuid) -> Result<(), Error> {
    // One simple query; only the UUID's text is spliced in, which cannot leave its quotes.
    let sql = format!(
        "SET LOCAL lock_timeout = '{DISPATCH_LOCK_WAIT}';
         SELECT pg_advisory_xact_lock(hashtextextended('crm.tickets.dispatch:{}', 0));
         SET LOCAL lock_timeout = DEFAULT",
        tenant.hyphenated()
    );
    execute_simple(tx, &sql).instrument(db_span("SELECT", "pg_advisory_xact_lock")).await?;
    Ok(())
}

/// The teams `agent` is a member of.
pub async fn teams_of(tx: &mut TenantTx, tenant: Uuid, agent: &str) -> Result<Vec<Uuid>, Error> {
    Ok(sqlx::query_scalar("SELECT team_id FROM team_members WHERE tenant_id = $1 AND agent = $2 ORDER BY team_id")
        .bind(tenant)
        .bind(agent)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "team_members"))
        .await?)
}

/// One team; `lock` holds its row until the transaction ends.
pub async fn find_team(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Option<TeamRow>, Error> {
    TEAMS.find(tx, tenant, id, lock).await
}

/// A page of the tenant's teams by display name, after the (display name, id) key `after`.
pub async fn list_teams(tx: &mut TenantTx, tenant: Uuid, after: Option<(String, Uuid)>, limit: i64) -> Result<Vec<TeamRow>, Error> {
    TEAMS.page_by_display_name(tx, tenant, after, limit).await
}

/// Replaces a team's name, strategy and lead and bumps its revision.
pub async fn update_team(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    display_name: &str,
    strategy: &str,
    lead: &str,
) -> Result<TeamRow, Error> {
    let sql = format!(
        "UPDATE teams SET display_name = $3, strategy = $4, lead = $5, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {TEAM_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(display_name)
        .bind(strategy)
        .bind(lead)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "teams"))
        .await?)
}

/// Remembers the agent most recently auto-assigned.
pub async fn set_last_assigned(tx: &mut TenantTx, tenant: Uuid, id: Uuid, agent: &str) -> Result<(), Error> {
    sqlx::query("UPDATE teams SET last_assigned = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(agent)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "teams"))
        .await?;
    Ok(())
}

/// A membership with the agent's current load (open, live tickets assigned
/// to them, in any team) and the capacity that load is held to.
#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub team_id: Uuid,
    pub agent: String,
    /// As set on this membership.
    pub capacity: i32,
    /// The agent's capacity across teams: the lowest set on any of their memberships.
    pub agent_capacity: i32,
    pub skills: Vec<String>,
    pub available: bool,
    pub load: i64,
}

const MEMBER_COLUMNS: &str = "m.team_id, m.agent, m.capacity, \
(SELECT min(x.capacity) FROM team_members x WHERE x.tenant_id = m.tenant_id AND x.agent = m.agent) AS agent_capacity, \
m.skills, m.available, \
(SELECT count(*) FROM tickets t WHERE t.tenant_id = m.tenant_id AND t.assignee = m.agent \
 AND t.status IN ('NEW', 'OPEN', 'PENDING') AND t.delete_time IS NULL) AS load";

/// Adds or replaces a membership and returns it with its load.
pub async fn upsert_member(
    tx: &mut TenantTx,
    tenant: Uuid,
    team: Uuid,
    agent: &str,
    capacity: i32,
    skills: &[String],
    available: bool,
) -> Result<MemberRow, Error> {
    sqlx::query(
        "INSERT INTO team_members (tenant_id, team_id, agent, capacity, skills, available) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, team_id, agent) DO UPDATE SET capacity = EXCLUDED.capacity, skills = EXCLUDED.skills, available = EXCLUDED.available",
    )
    .bind(tenant)
    .bind(team)
    .bind(agent)
    .bind(capacity)
    .bind(skills)
    .bind(available)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "team_members"))
    .await?;
    let sql = format!("SELECT {MEMBER_COLUMNS} FROM team_members m WHERE m.tenant_id = $1 AND m.team_id = $2 AND m.agent = $3");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(team).bind(agent).fetch_one(&mut **tx).instrument(db_span("SELECT", "team_members")).await?)
}

/// Removes a membership; false if there was none.
pub async fn delete_member(tx: &mut TenantTx, tenant: Uuid, team: Uuid, agent: &str) -> Result<bool, Error> {
    let done = sqlx::query("DELETE FROM team_members WHERE tenant_id = $1 AND team_id = $2 AND agent = $3")
        .bind(tenant)
        .bind(team)
        .bind(agent)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "team_members"))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A team's members with their loads, by agent.
pub async fn members(tx: &mut TenantTx, tenant: Uuid, team: Uuid) -> Result<Vec<MemberRow>, Error> {
    let sql = format!("SELECT {MEMBER_COLUMNS} FROM team_members m WHERE m.tenant_id = $1 AND m.team_id = $2 ORDER BY m.agent");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(team).fetch_all(&mut **tx).instrument(db_span("SELECT", "team_members")).await?)
}

/// A page of a team's members by agent, after agent `after`.
pub async fn members_page(tx: &mut TenantTx, tenant: Uuid, team: Uuid, after: Option<String>, limit: i64) -> Result<Vec<MemberRow>, Error> {
    let sql = format!(
        "SELECT {MEMBER_COLUMNS} FROM team_members m WHERE m.tenant_id = $1 AND m.team_id = $2 AND ($3::text IS NULL OR m.agent > $3)
         ORDER BY m.agent LIMIT $4"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(team)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "team_members"))
        .await?)
}

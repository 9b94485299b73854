//! A tested campaign's own rows: its holdout and rest (`campaign_ab_members`),
//! its winner and how far the winner went out (columns of `campaigns`), and
//! each group's numbers.

use chrono::{DateTime, Duration, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use tracing::Instrument;
use uuid::Uuid;

use super::{ab_tests::GroupRow, campaigns as store};
use crate::domain::ab_test::Decision;

/// Stores audience members of campaign `campaign` in the holdout or the
/// rest (`(customer, "holdout" | "rest")`); a member stored before (a page
/// repeated after a crash) is skipped. Returns the group of each one stored.
pub async fn insert_members(tx: &mut TenantTx, tenant: Uuid, campaign: Uuid, members: &[(Uuid, &str)]) -> Result<Vec<String>, Error> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let (customers, groups): (Vec<Uuid>, Vec<&str>) = members.iter().copied().unzip();
    Ok(sqlx::query_scalar(
        "INSERT INTO campaign_ab_members (tenant_id, campaign_id, customer_id, grp)
         SELECT $1, $2, c, g FROM unnest($3::uuid[], $4::text[]) AS t(c, g)
         ON CONFLICT DO NOTHING RETURNING grp",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(&customers)
    .bind(&groups)
    .fetch_all(&mut **tx)
    .instrument(db_span("INSERT", "campaign_ab_members"))
    .await?)
}

/// Up to `limit` of campaign `campaign`'s rest after customer `after`, in customer-id order.
pub async fn rest_page(tx: &mut TenantTx, tenant: Uuid, campaign: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<Uuid>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT customer_id FROM campaign_ab_members
         WHERE tenant_id = $1 AND campaign_id = $2 AND grp = 'rest' AND ($3::uuid IS NULL OR customer_id > $3)
         ORDER BY customer_id LIMIT $4",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "campaign_ab_members"))
    .await?)
}

/// Records that the winner went out to the rest up to customer `cursor`, and whether that was all of it.
pub async fn set_rest_progress(tx: &mut TenantTx, tenant: Uuid, campaign: Uuid, cursor: Option<Uuid>, done: bool) -> Result<(), Error> {
    sqlx::query("UPDATE campaigns SET rest_cursor = coalesce($3, rest_cursor), rest_done = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(campaign)
        .bind(cursor)
        .bind(done)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "campaigns"))
        .await?;
    Ok(())
}

/// Moves campaign `id`'s members still waiting for the winner to the
/// cancelled count: nothing more goes to them.
pub async fn cancel_rest(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    let waiting: i64 = store::counts(tx, tenant, &[id]).await?.iter().filter(|(_, s, _, _)| s == "AWAITING_WINNER").map(|c| c.3).sum();
    if waiting > 0 {
        let deltas = [(("AWAITING_WINNER", ""), -waiting), (("CANCELLED", ""), waiting)].into_iter().collect();
        store::add_counts(tx, tenant, id, &deltas).await?;
    }
    set_rest_progress(tx, tenant, id, None, true).await
}

/// Records campaign `campaign`'s winner (once: a decided test is not decided again).
pub async fn decide(tx: &mut TenantTx, tenant: Uuid, campaign: Uuid, decision: &Decision, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query(
        "UPDATE campaigns SET ab_winner = $3, ab_decision = $4, ab_detail = $5, ab_decide_time = $6
         WHERE tenant_id = $1 AND id = $2 AND ab_winner = ''",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(&decision.winner)
    .bind(decision.reason)
    .bind(&decision.detail)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "campaigns"))
    .await?;
    Ok(())
}

/// Each group's numbers in campaign `campaign`: its test's variants, the
/// holdout and the rest. A member converted when they reached any goal
/// within `window` after `since` (when the campaign began sending), or for
/// the rest after `rest_since` (when the winner was chosen).
pub async fn groups(
    tx: &mut TenantTx,
    tenant: Uuid,
    campaign: Uuid,
    since: DateTime<Utc>,
    rest_since: Option<DateTime<Utc>>,
    window: Duration,
) -> Result<Vec<GroupRow>, Error> {
    Ok(sqlx::query_as(
        "WITH members AS (
             SELECT d.variant, d.customer_id, d.id AS delivery_id, d.status = 'SENT' AS sent, d.open_time, d.click_time
             FROM deliveries d WHERE d.tenant_id = $1 AND d.campaign_id = $2 AND d.variant <> ''
             UNION ALL
             SELECT m.grp, m.customer_id, NULL, false, NULL, NULL
             FROM campaign_ab_members m WHERE m.tenant_id = $1 AND m.campaign_id = $2 AND m.grp = 'holdout'
         )
         SELECT m.variant, count(*) AS runs,
                count(*) FILTER (WHERE m.sent) AS sent,
                count(*) FILTER (WHERE m.sent AND m.open_time IS NOT NULL) AS opened,
                count(*) FILTER (WHERE m.sent AND m.click_time IS NOT NULL) AS clicked,
                count(*) FILTER (WHERE m.sent AND EXISTS (
                    SELECT 1 FROM conversions c WHERE c.tenant_id = $1 AND c.delivery_id = m.delivery_id)) AS attributed,
                count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM conversions c WHERE c.tenant_id = $1 AND c.customer_id = m.customer_id
                      AND c.occur_time >= CASE WHEN m.variant = 'rest' THEN coalesce($4, $3) ELSE $3 END
                      AND c.occur_time < CASE WHEN m.variant = 'rest' THEN coalesce($4, $3) ELSE $3 END + $5)) AS converted
         FROM members m GROUP BY m.variant ORDER BY m.variant",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(since)
    .bind(rest_since)
    .bind(window)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "deliveries"))
    .await?)
}

//! The `grading_settings` and `grading_state` tables, and the two
//! statements of grading: the tenant's quintile cut points, and every (or
//! some) customer's scores, tier and stage from their spending in the
//! grading currency — set only where they change, returning what changed.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use futures::TryStreamExt;
use sqlx::{FromRow, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{
    grading::{GradingSettings, MIN_AT_RISK_DAYS},
    lifetime::{BgNbd, GammaGamma, LifetimeModel, Prediction},
};

/// What the job computed last: the cut points and the lifetime-value model.
#[derive(Debug, Clone, Default, FromRow)]
pub struct GradingState {
    pub recency_days: Option<Vec<i32>>,
    pub frequency: Option<Vec<i64>>,
    pub monetary: Option<Vec<i64>>,
    pub graded_customers: i64,
    pub compute_time: Option<DateTime<Utc>>,
    /// r, alpha, a, b; None while there is no model.
    pub purchase_model: Option<Vec<f64>>,
    /// p, q, gamma; None while there is no model or purchase values are too alike to fit.
    pub spend_model: Option<Vec<f64>>,
    pub model_customers: Option<i64>,
    pub model_repeat_check: Option<f64>,
    pub model_fit_time: Option<DateTime<Utc>>,
}

impl GradingState {
    /// The stored lifetime-value model; None until one was fitted.
    pub fn model(&self) -> Option<LifetimeModel> {
        let [r, alpha, a, b] = self.purchase_model.as_deref().and_then(|m| <[f64; 4]>::try_from(m).ok())?;
        let spend = self.spend_model.as_deref().and_then(|m| <[f64; 3]>::try_from(m).ok());
        Some(LifetimeModel {
            purchases: BgNbd { r, alpha, a, b },
            spend: spend.map(|[p, q, gamma]| GammaGamma { p, q, gamma }),
            fitted_customers: usize::try_from(self.model_customers.unwrap_or_default()).unwrap_or_default(),
            repeat_check: self.model_repeat_check.unwrap_or_default(),
        })
    }
}

const STATE_COLUMNS: &str = "recency_days, frequency, monetary, graded_customers, compute_time, purchase_model, spend_model, \
model_customers, model_repeat_check, model_fit_time";

/// The value tiers and lifecycle stages as stored; a change carries their indexes.
pub const TIERS: [&str; 4] = ["", "HIGH", "MEDIUM", "LOW"];
pub const STAGES: [&str; 8] = ["", "PROSPECT", "NEW", "ACTIVE", "LOYAL", "AT_RISK", "LAPSED", "WON_BACK"];

/// A customer whose grades or predictions changed: 20 bytes, so that a
/// regrade that changes a million of them holds 20 MB, not their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradeChange {
    pub id: Uuid,
    /// Indexes into `TIERS` and `STAGES`, before and after.
    pub previous_value_tier: u8,
    pub value_tier: u8,
    pub previous_lifecycle_stage: u8,
    pub lifecycle_stage: u8,
}

impl GradeChange {
    /// Whether its tier or stage moved (what is announced).
    pub fn is_regrade(&self) -> bool {
        self.value_tier != self.previous_value_tier || self.lifecycle_stage != self.previous_lifecycle_stage
    }
}

fn index_of(values: &[&str], value: &str) -> u8 {
    values.iter().position(|v| *v == value).and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
}

const SETTINGS_COLUMNS: &str = "currency_code, high_min_score, medium_min_score, new_days, at_risk_days, at_risk_gap_factor, lapsed_days, \
loyal_min_purchases, won_back_days, regrade_interval_hours, value_horizon_days";

/// The tenant's settings and when they were set; None while never set (the defaults apply).
pub async fn settings(tx: &mut TenantTx, tenant: Uuid) -> Result<Option<(GradingSettings, DateTime<Utc>)>, Error> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        settings: GradingSettings,
        update_time: DateTime<Utc>,
    }
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {SETTINGS_COLUMNS}, update_time FROM grading_settings WHERE tenant_id = $1"))
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "grading_settings"))
        .await?;
    Ok(row.map(|r| (r.settings, r.update_time)))
}

/// Stores the tenant's settings.
pub async fn put_settings(tx: &mut TenantTx, tenant: Uuid, s: &GradingSettings, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO grading_settings (tenant_id, {SETTINGS_COLUMNS}, update_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $12)
         ON CONFLICT (tenant_id) DO UPDATE SET currency_code = $2, high_min_score = $3, medium_min_score = $4, new_days = $5,
             at_risk_days = $6, at_risk_gap_factor = $7, lapsed_days = $8, loyal_min_purchases = $9, won_back_days = $10,
             regrade_interval_hours = $11, update_time = $12, value_horizon_days = $13"
    ))
    .bind(tenant)
    .bind(&s.currency_code)
    .bind(s.high_min_score)
    .bind(s.medium_min_score)
    .bind(s.new_days)
    .bind(s.at_risk_days)
    .bind(s.at_risk_gap_factor)
    .bind(s.lapsed_days)
    .bind(s.loyal_min_purchases)
    .bind(s.won_back_days)
    .bind(s.regrade_interval_hours)
    .bind(now)
    .bind(s.value_horizon_days)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "grading_settings"))
    .await?;
    Ok(())
}

/// The cut points and model in use (none while the job never ran).
pub async fn state(tx: &mut TenantTx, tenant: Uuid) -> Result<GradingState, Error> {
    Ok(sqlx::query_as(&format!("SELECT {STATE_COLUMNS} FROM grading_state WHERE tenant_id = $1"))
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "grading_state"))
        .await?
        .unwrap_or_default())
}

/// From now on the tenant is graded (its first run due at `now`); no-op if it is.
pub async fn start_grading(tx: &mut TenantTx, tenant: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query("INSERT INTO grading_state (tenant_id, next_run_time) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .bind(now)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "grading_state"))
        .await?;
    Ok(())
}

/// Tenants due for a regrade at `now`, across tenants (the `grading_scan` policy).
pub async fn due_tenants(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<Uuid>, Error> {
    let mut tx = pool.begin_with("BEGIN READ ONLY; SELECT set_config('crm.scope', 'grading-scan', true)").await?;
    let tenants = sqlx::query_scalar("SELECT tenant_id FROM grading_state WHERE next_run_time <= $1")
        .bind(now)
        .fetch_all(&mut *tx)
        .instrument(db_span("SELECT", "grading_state"))
        .await?;
    tx.commit().await?;
    Ok(tenants)
}

/// Takes the tenant's grading run: `due_only` skips it (false) unless it is
/// due and no other replica holds it; otherwise waits for any run in progress.
pub async fn take_run(tx: &mut TenantTx, tenant: Uuid, due_only: bool, now: DateTime<Utc>) -> Result<bool, Error> {
    if !due_only {
        start_grading(tx, tenant, now).await?;
    }
    let sql = if due_only {
        "SELECT 1 FROM grading_state WHERE tenant_id = $1 AND next_run_time <= $2 FOR UPDATE SKIP LOCKED"
    } else {
        "SELECT 1 FROM grading_state WHERE tenant_id = $1 AND $2::timestamptz IS NOT NULL FOR UPDATE"
    };
    let taken: Option<i32> =
        sqlx::query_scalar(sql).bind(tenant).bind(now).fetch_optional(&mut **tx).instrument(db_span("SELECT", "grading_state")).await?;
    Ok(taken.is_some())
}

/// Computes the tenant's quintile cut points over its live customers with
/// purchases in the grading currency, as of `now`; the next run is due an interval later.
pub async fn compute_cut_points(tx: &mut TenantTx, tenant: Uuid, s: &GradingSettings, now: DateTime<Utc>) -> Result<GradingState, Error> {
    Ok(sqlx::query_as(&format!(
        "WITH graded AS (
             SELECT floor(extract(epoch FROM $3 - sp.last_purchase_time) / 86400)::int AS days, sp.purchase_count AS n,
                    sp.purchase_minor - sp.refund_minor AS net
             FROM customer_spending sp JOIN customers c ON c.tenant_id = sp.tenant_id AND c.id = sp.customer_id
             WHERE sp.tenant_id = $1 AND sp.currency_code = $2 AND sp.purchase_count > 0 AND c.delete_time IS NULL
         ), points AS (
             SELECT percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY days) AS recency_days,
                    percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY n) AS frequency,
                    percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY net) AS monetary,
                    count(*) AS graded_customers
             FROM graded
         )
         INSERT INTO grading_state AS g (tenant_id, recency_days, frequency, monetary, graded_customers, compute_time, next_run_time)
         SELECT $1, recency_days, frequency, monetary, graded_customers, $3, $3 + make_interval(hours => $4) FROM points
         ON CONFLICT (tenant_id) DO UPDATE SET recency_days = EXCLUDED.recency_days, frequency = EXCLUDED.frequency,
             monetary = EXCLUDED.monetary, graded_customers = EXCLUDED.graded_customers, compute_time = EXCLUDED.compute_time,
             next_run_time = EXCLUDED.next_run_time
         RETURNING {STATE_COLUMNS}"
    ))
    .bind(tenant)
    .bind(&s.currency_code)
    .bind(now)
    .bind(s.regrade_interval_hours)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "grading_state"))
    .await?)
}

/// Scores, tiers, stages and churn risks of the tenant's live customers
/// (`customers`, or all) as of `now` against the stored cut points, with
/// the lifetime-value `predictions` (in the grading currency; a customer
/// without one has none), in one pass over the rows; sets only what changed
/// (no revision bump: these fields are the service's, not the caller's) and
/// returns the customers it changed, with their tier and stage before and
/// after, streamed into compact form.
pub async fn score(
    tx: &mut TenantTx,
    tenant: Uuid,
    s: &GradingSettings,
    customers: Option<&[Uuid]>,
    predictions: &[(Uuid, Prediction)],
    now: DateTime<Utc>,
) -> Result<Vec<GradeChange>, Error> {
    let ids: Vec<Uuid> = predictions.iter().map(|(id, _)| *id).collect();
    let alive: Vec<f64> = predictions.iter().map(|(_, p)| round_to(p.probability_alive.clamp(0.0, 1.0), 1e4)).collect();
    let purchases: Vec<f64> = predictions.iter().map(|(_, p)| round_to(p.expected_purchases, 1e3)).collect();
    // Saturating: an absurd forecast is capped, never an error.
    let value: Vec<i64> = predictions.iter().map(|(_, p)| p.expected_value.round().clamp(0.0, 9.0e15) as i64).collect();
    // Some customers are read from their ids (an index lookup each), not as `c.id = ANY($2)` over the
    // tenant: under row-level security the planner misjudges the tenant's size, and its generic plan
    // scanned every customer to re-score a batch of a few thousand.
    let (source, only) = match customers {
        Some(_) => ("unnest($2::uuid[]) AS k(id) JOIN customers c ON c.tenant_id = $1 AND c.id = k.id", "TRUE"),
        None => ("customers c", "$2::uuid[] IS NULL"),
    };
    let sql = format!(
        "WITH cuts AS (
             SELECT (SELECT recency_days FROM grading_state WHERE tenant_id = $1) AS rd,
                    (SELECT frequency FROM grading_state WHERE tenant_id = $1) AS fr,
                    (SELECT monetary FROM grading_state WHERE tenant_id = $1) AS mo
         ), facts AS (
             SELECT c.id, c.value_tier AS old_tier, c.lifecycle_stage AS old_stage, c.lifecycle_time,
                    sp.purchase_count AS n, sp.purchase_minor - sp.refund_minor AS net,
                    -- Whole days, as the cut points count them.
                    floor(extract(epoch FROM $4 - sp.last_purchase_time) / 86400) AS days,
                    extract(epoch FROM sp.last_purchase_time - sp.first_purchase_time) / 86400 / nullif(sp.purchase_count - 1, 0) AS gap
             FROM {source}
             LEFT JOIN customer_spending sp
                    ON sp.tenant_id = c.tenant_id AND sp.customer_id = c.id AND sp.currency_code = $3 AND sp.purchase_count > 0
             WHERE c.tenant_id = $1 AND c.delete_time IS NULL AND {only}
             -- Taken in id order, as writers of transactions take them, so that neither waits on the other in a circle.
             ORDER BY c.id FOR NO KEY UPDATE OF c
         ), scores AS (
             SELECT f.*,
                    CASE WHEN f.n IS NULL OR cuts.rd IS NULL THEN NULL ELSE
                        1 + (f.days <= cuts.rd[4])::int + (f.days <= cuts.rd[3])::int + (f.days <= cuts.rd[2])::int + (f.days <= cuts.rd[1])::int
                    END AS r,
                    CASE WHEN f.n IS NULL OR cuts.fr IS NULL THEN NULL ELSE
                        1 + (f.n > cuts.fr[1])::int + (f.n > cuts.fr[2])::int + (f.n > cuts.fr[3])::int + (f.n > cuts.fr[4])::int
                    END AS fq,
                    CASE WHEN f.n IS NULL OR cuts.mo IS NULL THEN NULL ELSE
                        1 + (f.net > cuts.mo[1])::int + (f.net > cuts.mo[2])::int + (f.net > cuts.mo[3])::int + (f.net > cuts.mo[4])::int
                    END AS m,
                    CASE WHEN f.gap IS NULL THEN $7::float8 ELSE least($7::float8, greatest({MIN_AT_RISK_DAYS}, $8 * f.gap)) END AS at_risk_after,
                    -- A single purchase has no rhythm of its own: the tenant's (at-risk days over the gap factor) stands in.
                    CASE WHEN f.gap IS NULL THEN $7::float8 / $8 ELSE greatest(1, f.gap) END AS typical_gap
             FROM facts f CROSS JOIN cuts
         ), graded AS (
             SELECT s.id, s.old_tier, s.old_stage, s.lifecycle_time, s.r, s.fq, s.m,
                    CASE WHEN s.r IS NULL THEN '' WHEN s.r + s.fq + s.m >= $5 THEN 'HIGH' WHEN s.r + s.fq + s.m >= $6 THEN 'MEDIUM' ELSE 'LOW' END
                        AS tier,
                    CASE WHEN s.n IS NULL THEN 'PROSPECT'
                         WHEN s.days > $9 THEN 'LAPSED'
                         WHEN s.days > s.at_risk_after THEN 'AT_RISK'
                         WHEN s.old_stage = 'LAPSED'
                              OR (s.old_stage = 'WON_BACK' AND s.lifecycle_time > $4 - make_interval(days => $10)) THEN 'WON_BACK'
                         WHEN s.n = 1 AND s.days <= $11 THEN 'NEW'
                         WHEN s.n >= $12 THEN 'LOYAL'
                         ELSE 'ACTIVE'
                    END AS stage,
                    CASE WHEN s.n IS NULL THEN ''
                         WHEN s.days > s.at_risk_after THEN 'HIGH'
                         WHEN s.days > s.typical_gap THEN 'MEDIUM'
                         ELSE 'LOW'
                    END AS churn
             FROM scores s
         ), predicted AS (
             SELECT * FROM unnest($13::uuid[], $14::float8[], $15::float8[], $16::int8[]) AS p(id, alive, purchases, value)
         ), next AS (
             SELECT g.*, p.alive, p.purchases, p.value, CASE WHEN p.id IS NULL THEN '' ELSE $3 END AS value_currency
             FROM graded g LEFT JOIN predicted p ON p.id = g.id
         )
         UPDATE customers c SET recency_score = g.r, frequency_score = g.fq, monetary_score = g.m, value_tier = g.tier,
                lifecycle_stage = g.stage, lifecycle_time = CASE WHEN g.stage <> g.old_stage THEN $4 ELSE c.lifecycle_time END,
                churn_risk = g.churn, probability_alive = g.alive, expected_purchases = g.purchases, expected_value_minor = g.value,
                expected_value_currency = g.value_currency
         FROM next g
         WHERE c.tenant_id = $1 AND c.id = g.id
           AND (c.recency_score, c.frequency_score, c.monetary_score, c.value_tier, c.lifecycle_stage, c.churn_risk,
                c.probability_alive, c.expected_purchases, c.expected_value_minor, c.expected_value_currency)
               IS DISTINCT FROM (g.r::smallint, g.fq::smallint, g.m::smallint, g.tier, g.stage, g.churn,
                g.alive, g.purchases, g.value, g.value_currency)
         RETURNING c.id, g.old_tier, c.value_tier, g.old_stage, c.lifecycle_stage"
    );
    let mut rows = sqlx::query_as::<_, (Uuid, String, String, String, String)>(&sql)
        .bind(tenant)
        .bind(customers)
        .bind(&s.currency_code)
        .bind(now)
        .bind(s.high_min_score)
        .bind(s.medium_min_score)
        .bind(f64::from(s.at_risk_days))
        .bind(s.at_risk_gap_factor)
        .bind(f64::from(s.lapsed_days))
        .bind(s.won_back_days)
        .bind(f64::from(s.new_days))
        .bind(i64::from(s.loyal_min_purchases))
        .bind(&ids)
        .bind(&alive)
        .bind(&purchases)
        .bind(&value)
        .fetch(&mut **tx);
    let span = db_span("UPDATE", "customers");
    let mut changed = Vec::new();
    while let Some((id, old_tier, tier, old_stage, stage)) = rows.try_next().instrument(span.clone()).await? {
        changed.push(GradeChange {
            id,
            previous_value_tier: index_of(&TIERS, &old_tier),
            value_tier: index_of(&TIERS, &tier),
            previous_lifecycle_stage: index_of(&STAGES, &old_stage),
            lifecycle_stage: index_of(&STAGES, &stage),
        });
    }
    Ok(changed)
}

fn round_to(value: f64, per_unit: f64) -> f64 {
    (value * per_unit).round() / per_unit
}

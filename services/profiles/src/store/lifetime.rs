//! Lifetime values in Postgres: the purchase histories the model is fitted
//! on and predicts from, the fitted model (kept in `grading_state`), and
//! each customer's predictions.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use futures::TryStreamExt;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::lifetime::{History, LifetimeModel, Prediction};

/// Customers updated per statement when predictions are written.
const WRITE_BATCH: usize = 10_000;

/// The purchase histories in `currency` of the tenant's live customers
/// (`customers`, or all with purchases), in id order, as of `now`.
/// Streamed, so that a million of them take ~50 MB rather than their rows'.
pub async fn histories(
    tx: &mut TenantTx,
    tenant: Uuid,
    currency: &str,
    customers: Option<&[Uuid]>,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, History)>, Error> {
    let mut rows = sqlx::query_as::<_, (Uuid, i64, i64, f64, f64)>(
        "SELECT c.id, sp.purchase_count, sp.purchase_minor - sp.refund_minor,
                extract(epoch FROM sp.last_purchase_time - sp.first_purchase_time)::float8 / 86400,
                greatest(0, extract(epoch FROM $4 - sp.first_purchase_time)::float8 / 86400)
         FROM customer_spending sp JOIN customers c ON c.tenant_id = sp.tenant_id AND c.id = sp.customer_id
         WHERE sp.tenant_id = $1 AND sp.currency_code = $2 AND sp.purchase_count > 0 AND c.delete_time IS NULL
           AND ($3::uuid[] IS NULL OR c.id = ANY($3))
         ORDER BY c.id",
    )
    .bind(tenant)
    .bind(currency)
    .bind(customers)
    .bind(now)
    .fetch(&mut **tx);
    let mut histories = Vec::new();
    let span = db_span("SELECT", "customer_spending");
    while let Some((id, purchases, net, last, age)) = rows.try_next().instrument(span.clone()).await? {
        let repeats = u32::try_from(purchases - 1).unwrap_or(u32::MAX);
        histories.push((id, History { repeats, last, age: age.max(last), mean_value: net as f64 / purchases as f64 }));
    }
    Ok(histories)
}

/// Stores the tenant's model fitted at `now` (None: it has none).
pub async fn put_model(tx: &mut TenantTx, tenant: Uuid, model: Option<&LifetimeModel>, now: DateTime<Utc>) -> Result<(), Error> {
    let purchase = model.map(|m| vec![m.purchases.r, m.purchases.alpha, m.purchases.a, m.purchases.b]);
    let spend = model.and_then(|m| m.spend).map(|s| vec![s.p, s.q, s.gamma]);
    sqlx::query(
        "UPDATE grading_state SET purchase_model = $2, spend_model = $3, model_customers = $4, model_repeat_check = $5,
                model_fit_time = CASE WHEN $2 IS NULL THEN NULL ELSE $6 END
         WHERE tenant_id = $1",
    )
    .bind(tenant)
    .bind(purchase)
    .bind(spend)
    .bind(model.map(|m| i64::try_from(m.fitted_customers).unwrap_or(i64::MAX)))
    .bind(model.map(|m| m.repeat_check))
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "grading_state"))
    .await?;
    Ok(())
}

/// Writes the customers' predictions in `currency`, rounded (so that a
/// night's drift below the rounding is not a change), where they changed;
/// the ids of those that did.
pub async fn put_predictions(
    tx: &mut TenantTx,
    tenant: Uuid,
    currency: &str,
    predictions: &[(Uuid, Prediction)],
) -> Result<Vec<Uuid>, Error> {
    let mut changed = Vec::new();
    for batch in predictions.chunks(WRITE_BATCH) {
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        let alive: Vec<f64> = batch.iter().map(|(_, p)| round_to(p.probability_alive.clamp(0.0, 1.0), 1e4)).collect();
        let purchases: Vec<f64> = batch.iter().map(|(_, p)| round_to(p.expected_purchases, 1e3)).collect();
        // Saturating: an absurd forecast is capped, never an error.
        let value: Vec<i64> = batch.iter().map(|(_, p)| p.expected_value.round().clamp(0.0, 9.0e15) as i64).collect();
        let ids_changed: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE customers c SET probability_alive = u.alive, expected_purchases = u.purchases, expected_value_minor = u.value,
                    expected_value_currency = $6
             FROM unnest($2::uuid[], $3::float8[], $4::float8[], $5::int8[]) AS u(id, alive, purchases, value)
             WHERE c.tenant_id = $1 AND c.id = u.id
               AND (c.probability_alive, c.expected_purchases, c.expected_value_minor, c.expected_value_currency)
                   IS DISTINCT FROM (u.alive, u.purchases, u.value, $6)
             RETURNING c.id",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&alive)
        .bind(&purchases)
        .bind(&value)
        .bind(currency)
        .fetch_all(&mut **tx)
        .instrument(db_span("UPDATE", "customers"))
        .await?;
        changed.extend(ids_changed);
    }
    Ok(changed)
}

/// Clears the predictions of the tenant's customers who have none any
/// more (deleted, or without purchases in `currency`), or of all of them
/// when `all` (the tenant has no model); the ids of those cleared.
pub async fn clear_predictions(tx: &mut TenantTx, tenant: Uuid, currency: &str, all: bool) -> Result<Vec<Uuid>, Error> {
    Ok(sqlx::query_scalar(
        "UPDATE customers c SET probability_alive = NULL, expected_purchases = NULL, expected_value_minor = NULL,
                expected_value_currency = ''
         WHERE c.tenant_id = $1 AND c.probability_alive IS NOT NULL
           AND ($3 OR c.delete_time IS NOT NULL OR NOT EXISTS (
                SELECT 1 FROM customer_spending sp
                WHERE sp.tenant_id = c.tenant_id AND sp.customer_id = c.id AND sp.currency_code = $2 AND sp.purchase_count > 0))
         RETURNING c.id",
    )
    .bind(tenant)
    .bind(currency)
    .bind(all)
    .fetch_all(&mut **tx)
    .instrument(db_span("UPDATE", "customers"))
    .await?)
}

fn round_to(value: f64, per_unit: f64) -> f64 {
    (value * per_unit).round() / per_unit
}

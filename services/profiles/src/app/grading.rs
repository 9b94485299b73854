//! Value grading (RFM), lifecycle stages, churn risk and lifetime value:
//! the tenant's settings, a regrade (cut points, every customer's grades,
//! then the lifetime-value model's fit and every customer's predictions, in
//! one transaction; the job runs one per tenant and interval, a replica
//! skipping a tenant another holds), and the re-scoring of the customers a
//! transaction touched against the stored cut points and model. Every
//! change of tier or stage is announced with `CustomerGraded`.

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx, outbox};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::App;
use crate::{
    domain::grading::GradingSettings,
    domain::lifetime::{History, LifetimeModel, Prediction},
    resources::CUSTOMER,
    store::{
        grading::{self as store, GradeChange, GradingState, STAGES, TIERS},
        lifetime,
    },
};

/// Customers whose segments a regrade re-evaluates per statement.
const REFRESH_BATCH: usize = 10_000;
/// `CustomerGraded` events appended per statement (the first regrade of a big tenant changes everyone).
const ANNOUNCE_BATCH: usize = 5_000;

impl App {
    /// The tenant's settings (defaults while never set), when they were set, and the cut points in use.
    pub async fn grading_settings(&self, tenant: Uuid) -> Result<(GradingSettings, Option<DateTime<Utc>>, GradingState), Error> {
        let mut tx = self.begin(tenant).await?;
        let (settings, update_time) = settings_of(&mut tx, tenant).await?;
        let cuts = store::state(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok((settings, update_time, cuts))
    }

    /// Stores the tenant's settings (validated by the caller).
    pub async fn set_grading_settings(&self, tenant: Uuid, settings: &GradingSettings, now: DateTime<Utc>) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        store::put_settings(&mut tx, tenant, settings, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Regrades the tenant as of `now`: `due_only` (the job) does nothing
    /// unless the tenant is due and no other replica is at it; otherwise (an
    /// administrator's call) it waits for a run in progress and runs. The
    /// new cut points and how many customers changed tier or stage; None when skipped.
    pub async fn regrade(&self, tenant: Uuid, due_only: bool, now: DateTime<Utc>) -> Result<Option<(GradingState, usize)>, Error> {
        let mut tx = self.begin(tenant).await?;
        if !store::take_run(&mut tx, tenant, due_only, now).await? {
            tx.commit().await?;
            return Ok(None);
        }
        let (settings, _) = settings_of(&mut tx, tenant).await?;
        store::compute_cut_points(&mut tx, tenant, &settings, now).await?;
        let histories = lifetime::histories(&mut tx, tenant, &settings.currency_code, None, now).await?;
        let model = LifetimeModel::fit(histories.iter().map(|(_, h)| *h));
        lifetime::put_model(&mut tx, tenant, model.as_ref(), now).await?;
        let predictions = predict(&settings, model.as_ref(), histories);
        let changed = store::score(&mut tx, tenant, &settings, None, &predictions, now).await?;
        drop(predictions);
        // Their segments follow every change (filters may name any of these fields), a batch at a time.
        for batch in changed.chunks(REFRESH_BATCH) {
            let batch: Vec<(Uuid, bool)> = batch.iter().map(|c| (c.id, true)).collect();
            super::segments::refresh(&mut tx, tenant, &batch, now).await?;
        }
        let announced = announce_grades(&mut tx, tenant, &changed).await?;
        let state = store::state(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(Some((state, announced)))
    }

    /// Tenants due for a regrade.
    pub async fn grading_due(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, Error> {
        store::due_tenants(&self.pool, now).await
    }
}

/// Re-scores `customers` after their transactions were recorded in `tx`,
/// against the stored cut points, and marks the tenant as graded.
pub(super) async fn rescore(tx: &mut TenantTx, tenant: Uuid, customers: &[Uuid], now: DateTime<Utc>) -> Result<(), Error> {
    store::start_grading(tx, tenant, now).await?;
    let (settings, _) = settings_of(tx, tenant).await?;
    let model = store::state(tx, tenant).await?.model();
    let histories = lifetime::histories(tx, tenant, &settings.currency_code, Some(customers), now).await?;
    let predictions = predict(&settings, model.as_ref(), histories);
    let changed = store::score(tx, tenant, &settings, Some(customers), &predictions, now).await?;
    // Their spending moved, whatever their grades did: every one of them is re-evaluated.
    let touched: Vec<(Uuid, bool)> = customers.iter().map(|id| (*id, true)).collect();
    super::segments::refresh(tx, tenant, &touched, now).await?;
    announce_grades(tx, tenant, &changed).await?;
    Ok(())
}

/// What `model` predicts for each of `histories` over the tenant's horizon (nothing without a model).
fn predict(settings: &GradingSettings, model: Option<&LifetimeModel>, histories: Vec<(Uuid, History)>) -> Vec<(Uuid, Prediction)> {
    let Some(model) = model else { return Vec::new() };
    let horizon = f64::from(settings.value_horizon_days);
    histories.into_iter().map(|(id, h)| (id, model.predict(&h, horizon))).collect()
}

/// Announces the changes of tier or stage among `changed`, a batch of
/// events per statement; how many there were.
async fn announce_grades(tx: &mut TenantTx, tenant: Uuid, changed: &[GradeChange]) -> Result<usize, Error> {
    let announced: Vec<GradeChange> = changed.iter().filter(|c| c.is_regrade()).copied().collect();
    for batch in announced.chunks(ANNOUNCE_BATCH) {
        announce(tx, tenant, batch).await?;
    }
    Ok(announced.len())
}

async fn settings_of(tx: &mut TenantTx, tenant: Uuid) -> Result<(GradingSettings, Option<DateTime<Utc>>), Error> {
    Ok(match store::settings(tx, tenant).await? {
        Some((settings, time)) => (settings, Some(time)),
        None => (GradingSettings::default(), None),
    })
}

/// `CustomerGraded` for each change, on the customers' subjects, in one statement.
async fn announce(tx: &mut TenantTx, tenant: Uuid, changed: &[GradeChange]) -> Result<(), Error> {
    let tier = |i: u8| pb::ValueTier::from_str_name(&format!("VALUE_TIER_{}", TIERS[usize::from(i)])).map_or(0, |t| t as i32);
    let stage = |i: u8| pb::LifecycleStage::from_str_name(&format!("LIFECYCLE_STAGE_{}", STAGES[usize::from(i)])).map_or(0, |t| t as i32);
    let events: Vec<(String, pb::CustomerGraded)> = changed
        .iter()
        .map(|c| {
            let name = CUSTOMER.name(c.id);
            let event = pb::CustomerGraded {
                customer: name.clone(),
                value_tier: tier(c.value_tier),
                previous_value_tier: tier(c.previous_value_tier),
                lifecycle_stage: stage(c.lifecycle_stage),
                previous_lifecycle_stage: stage(c.previous_lifecycle_stage),
            };
            (name, event)
        })
        .collect();
    outbox::append_all(tx, tenant, &events).await
}

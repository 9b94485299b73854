//! A/B/n tests of journeys' send steps: registered when a version is
//! published, decided by the background job (`jobs::ab_tests`) with the
//! domain's test, and reported per group with lift against the holdout.
//! (Campaigns' tests: [`super::campaign_tests`].)

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx};
use uuid::Uuid;

use super::{App, attribution::WINDOW_DAYS};
use crate::{
    domain::{
        ab_test::{self, AbTest, Metric, Sample, variant_name},
        journey::{Action, Definition},
    },
    store::{
        ab_tests::{self, AbTestRow, GroupRow},
        journeys,
    },
};

/// The tested send steps of `definition`.
pub fn tested_steps(definition: &Definition) -> Vec<(&str, &AbTest)> {
    definition
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Send { ab: Some(test), .. } => Some((s.id.as_str(), test)),
            _ => None,
        })
        .collect()
}

/// Registers the tested steps of version `version` of journey `journey` in `tx`.
pub async fn register_in(
    tx: &mut TenantTx,
    tenant: Uuid,
    journey: Uuid,
    version: i32,
    definition: &Definition,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let steps: Vec<&str> = tested_steps(definition).into_iter().map(|(id, _)| id).collect();
    if steps.is_empty() {
        return Ok(());
    }
    ab_tests::register(tx, tenant, journey, version, &steps, now).await
}

/// A test's groups and decision: a journey's tested step, or a campaign's test.
#[derive(Debug, Clone)]
pub struct TestReport {
    /// The step and version tested ('' and 0 for a campaign).
    pub step: String,
    pub version: i32,
    pub winner: String,
    pub decision: String,
    pub detail: String,
    pub groups: Vec<GroupRow>,
}

/// Each variant's sample of `test` (the control first) from its groups' numbers.
pub fn samples(test: &AbTest, groups: &[GroupRow]) -> Vec<Sample> {
    (0..test.groups())
        .map(|i| {
            let name = variant_name(i);
            let found = groups.iter().find(|g| g.variant == name);
            let successes = found.map_or(0, |g| match test.metric {
                Metric::Open => g.opened,
                Metric::Click => g.clicked,
                Metric::Conversion => g.attributed,
            });
            Sample { variant: name, sent: found.map_or(0, |g| g.sent), successes }
        })
        .collect()
}

impl App {
    /// Decides the test of step `step` of version `version` of journey
    /// `journey` if it can be decided now; the winner, if chosen.
    pub async fn decide_ab_test(
        &self,
        tenant: Uuid,
        journey: Uuid,
        version: i32,
        step: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, Error> {
        let mut tx = self.begin(tenant).await?;
        let Some(row) = ab_tests::find(&mut tx, tenant, journey, version, step).await?.filter(|t| t.winner.is_empty()) else {
            return Ok(None);
        };
        let Some(definition) = journeys::version(&mut tx, tenant, journey, version).await? else { return Ok(None) };
        let Some((_, test)) = tested_steps(&definition).into_iter().find(|(id, _)| *id == step) else { return Ok(None) };
        let groups = ab_tests::groups(&mut tx, tenant, &row, Duration::days(WINDOW_DAYS)).await?;
        let deadline_passed = now >= row.publish_time + Duration::days(test.decide_within_days);
        let Some(decision) = ab_test::decide(test, &samples(test, &groups), deadline_passed) else { return Ok(None) };
        ab_tests::decide(&mut tx, tenant, &row, &decision, now).await?;
        tx.commit().await?;
        tracing::info!(%tenant, %journey, version, step, winner = %decision.winner, reason = decision.reason, "an A/B/n test was decided");
        Ok(Some(decision.winner))
    }

    /// Journey `journey`'s tested steps with each group's numbers.
    pub async fn ab_test_reports(&self, tenant: Uuid, journey: Uuid) -> Result<Vec<TestReport>, Error> {
        let mut tx = self.begin(tenant).await?;
        let mut reports = Vec::new();
        for test in ab_tests::of_journey(&mut tx, tenant, journey).await? {
            let groups = ab_tests::groups(&mut tx, tenant, &test, Duration::days(WINDOW_DAYS)).await?;
            let AbTestRow { step_id: step, version, winner, decision, detail, .. } = test;
            reports.push(TestReport { step, version, winner, decision, detail, groups });
        }
        tx.commit().await?;
        Ok(reports)
    }
}

//! Runs journeys: every poll interval, the tenants with due runs (found
//! across tenants through the `due_scan` policy) have their due runs
//! claimed for a lease, their customers read from profiles in one batch,
//! and each run taken through its steps until it waits or ends — each step
//! one transaction (`App::take_step`). A runner that dies mid-run leaves the
//! run claimed until the lease ends; the next runner finds it where the last
//! recorded step left it, so no step happens twice.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use crm_kit::{Error, auth::ServiceTokens, client::Caller};
use futures::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    app::{App, journey_runs::Asked},
    domain::{
        customer::Customer,
        journey::{Action, Condition, Definition},
        journey_run::{self, EndReason, RunState},
        rules::ContactRules,
    },
    profiles::ProfilesClient,
    store::journey_runs::{RunRow, due_tenants},
};

/// Tenants served per scan.
const TENANTS_PER_SCAN: i64 = 50;
/// Runs claimed per tenant per round.
const RUNS_PER_CLAIM: i64 = 500;
/// Runs of one claim taken through their steps at once.
const CONCURRENT_RUNS: usize = 32;
/// Steps one run takes per wake-up at most (a journey has at most 100, and
/// none loops without waiting).
const STEPS_PER_WAKE: usize = 200;

/// Published versions never change: each is read once.
type Versions = Arc<Mutex<HashMap<(Uuid, Uuid, i32), Arc<Definition>>>>;

/// The runner's parts.
#[derive(Clone)]
pub struct Runner {
    app: App,
    profiles: ProfilesClient,
    tokens: ServiceTokens,
    versions: Versions,
}

/// One tenant's round: who the caller is to profiles, the customers, the rules.
struct Round {
    tenant: Uuid,
    caller: Caller,
    customers: HashMap<Uuid, Customer>,
    rules: ContactRules,
}

impl Runner {
    pub fn new(app: App, profiles: ProfilesClient, tokens: ServiceTokens) -> Self {
        Self { app, profiles, tokens, versions: Versions::default() }
    }

    /// Runs journeys every `poll` until `shutdown` turns true.
    pub fn spawn(self, poll: Duration, shutdown: watch::Receiver<bool>) {
        super::every(poll, shutdown, "journey runner", move || {
            let this = self.clone();
            async move { this.drain().await }
        });
    }

    /// Takes due runs until none is due.
    async fn drain(&self) -> Result<(), Error> {
        loop {
            let tenants = due_tenants(self.app.pool(), Utc::now(), TENANTS_PER_SCAN).await?;
            let mut claimed_any = false;
            for tenant in tenants {
                let claimed = self.app.claim_due_runs(tenant, Utc::now(), RUNS_PER_CLAIM).await?;
                claimed_any |= !claimed.is_empty();
                if let Err(err) = self.run_tenant(tenant, claimed).await {
                    // The claimed runs are retaken when their lease ends.
                    tracing::warn!(error = %crm_kit::error::cause_chain(&err), %tenant, "journey runs could not go on; retrying after the lease");
                }
            }
            if !claimed_any {
                return Ok(());
            }
        }
    }

    async fn run_tenant(&self, tenant: Uuid, claimed: Vec<RunRow>) -> Result<(), Error> {
        if claimed.is_empty() {
            return Ok(());
        }
        let caller = Caller::service(&self.tokens.mint(tenant)?)?;
        let mut ids: Vec<Uuid> = claimed.iter().map(|r| r.customer_id).collect();
        ids.sort();
        ids.dedup();
        let customers = self.profiles.customers_by_id(&caller, &ids).await?;
        let rules = self.app.contact_rules(tenant).await?;
        let round = Round { tenant, caller, customers, rules };
        let results: Vec<Result<(), Error>> =
            futures::stream::iter(claimed).map(|run| self.advance(&round, run)).buffer_unordered(CONCURRENT_RUNS).collect().await;
        for err in results.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %crm_kit::error::cause_chain(&err), %tenant, "a journey run could not go on; retrying after the lease");
        }
        Ok(())
    }

    async fn definition(&self, tenant: Uuid, run: &RunRow) -> Result<Arc<Definition>, Error> {
        let key = (tenant, run.journey_id, run.version);
        if let Some(found) = self.versions.lock().expect("not poisoned").get(&key) {
            return Ok(found.clone());
        }
        let definition = Arc::new(self.app.journey_version(tenant, run.journey_id, run.version).await?);
        let mut versions = self.versions.lock().expect("not poisoned");
        if versions.len() > 10_000 {
            versions.clear();
        }
        versions.insert(key, definition.clone());
        Ok(definition)
    }

    /// Takes `run` through its steps until it waits, ends or moves elsewhere.
    async fn advance(&self, round: &Round, mut run: RunRow) -> Result<(), Error> {
        let definition = self.definition(round.tenant, &run).await?;
        let mut customer = round.customers.get(&run.customer_id).cloned();
        for _ in 0..STEPS_PER_WAKE {
            let Some(step_id) = run.step_id.clone() else { return Ok(()) };
            let state = RunState::parse(&run.state);
            let Some(found) = customer.as_ref().filter(|c| !c.deleted && !c.disabled) else {
                self.app.end_run(round.tenant, &run, EndReason::CustomerGone, Utc::now()).await?;
                return Ok(());
            };
            let step = journey_run::step(&definition, &step_id);
            let mut asked = Asked { customer: found, zone: round.rules.zone_of(&found.fields.time_zone), branch: false, failure: None };
            let mut changed_customer = false;
            if let (RunState::Active, Some(step)) = (state, step) {
                match &step.action {
                    Action::Branch { condition: Condition::InSegment { segment }, .. } => {
                        asked.branch = self.profiles.segments_of(&round.caller, run.customer_id).await?.contains(segment);
                    }
                    Action::Branch { condition: Condition::Matches { filter }, .. } => {
                        asked.branch = match self.profiles.matches(&round.caller, run.customer_id, filter, "filter").await {
                            Ok(matches) => matches,
                            // A filter profiles no longer takes (a field renamed) is not a match.
                            Err(Error::InvalidArgument { .. }) => false,
                            Err(other) => return Err(other),
                        };
                    }
                    Action::UpdateCustomer { add_tags, remove_tags, .. } => {
                        // Still this runner's to take (not another's after a lapsed lease), for another lease.
                        if !self.app.hold_run(round.tenant, &run, Utc::now()).await? {
                            return Ok(());
                        }
                        match self.profiles.retag(&round.caller, run.customer_id, add_tags, remove_tags).await {
                            Ok(true) => changed_customer = true,
                            Ok(false) => asked.failure = Some("the customer is gone from profiles".to_owned()),
                            Err(err @ Error::InvalidArgument { .. }) => asked.failure = Some(err.to_string()),
                            Err(other) => return Err(other),
                        }
                    }
                    _ => {}
                }
            }
            let Some(moved) = self.app.take_step(round.tenant, &run, &definition, &asked, Utc::now()).await? else { return Ok(()) };
            run = moved;
            if RunState::parse(&run.state) == RunState::Waiting {
                return Ok(());
            }
            if changed_customer {
                customer = self.profiles.customers_by_id(&round.caller, &[run.customer_id]).await?.remove(&run.customer_id);
            }
        }
        tracing::warn!(run = %run.id, "a journey run took the most steps of one wake-up; it goes on after the lease");
        Ok(())
    }
}

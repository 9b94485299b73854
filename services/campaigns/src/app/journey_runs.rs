//! Journey runs: customers started on a journey's published version (by an
//! event of profiles' or tickets' stream, in the transaction that claims the
//! event, or by EnterJourney), each step recorded in the transaction that
//! does it and moves the run on, and runs ended early (a purchase, a
//! cancellation, a customer gone).
//!
//! Exactly once: a start is unique per (journey, customer, entry key) and
//! a step is taken only by the transaction that finds the run, under its row
//! lock, where the runner left it (same state, step and step count); its
//! effects in campaigns (the message, the points) are written in that same
//! transaction, under keys naming the run and step.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use crm_kit::{
    Error,
    db::TenantTx,
    idempotency::{self, IdempotencyKey},
};
use prost::Message;
use uuid::Uuid;

use super::{
    App,
    coupons::{NewCoupon, issue_in},
    loyalty::{Booking, grant_in},
    notices::Notice,
};
use crate::{
    domain::{
        ab_test::{Assignment, HOLDOUT, variant_index, variant_name},
        customer::Customer,
        journey::{Action, Condition, Definition, EventTrigger, Reentry, Trigger},
        journey_run::{self, CustomerEvent, EndReason, Move, Outcome, RunState, entry_key, may_reenter},
        questionnaire::SURVEY_LINK,
    },
    resources::{COUPON, JOURNEY, JOURNEY_RUN},
    store::{
        ab_tests, conversions,
        journey_runs::{self, Door, Entrance, Entrant, NewRun, Position, RUNS, RunRow, RunScope, StepRow},
        questionnaires::{self, NewInvitation, QUESTIONNAIRES, QuestionnaireRow},
    },
};

/// How many of a run's latest steps a read shows.
pub const STEPS_SHOWN: i64 = 100;

/// What a start came to.
#[derive(Debug, Clone)]
pub enum Entered {
    /// A new run.
    Started(RunRow),
    /// The run this same start (entry key) made before.
    Existing(RunRow),
    /// The re-entry rule refuses it: NEVER, or AFTER_DAYS too soon (the last start).
    Refused { reentry: Reentry, last_start: DateTime<Utc> },
}

/// Why a trigger fired: its key (unique per firing) and a description for people.
#[derive(Debug, Clone, Copy)]
pub struct Firing<'a> {
    /// E.g. "profiles/1042" (a stream position), "requests/{id}".
    pub key: &'a str,
    /// E.g. "profiles event 1042".
    pub label: &'a str,
}

/// Starts `customer` on `entrance`'s version in `tx`, as its re-entry rule allows.
async fn enter_in(
    tx: &mut TenantTx,
    tenant: Uuid,
    entrance: &Entrance,
    customer: Uuid,
    firing: Firing<'_>,
    ticket: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Entered, Error> {
    let definition = &entrance.definition.0;
    let key = entry_key(definition.reentry, firing.key);
    if let Some(run) = journey_runs::by_entry(tx, tenant, entrance.journey_id, customer, &key).await? {
        return Ok(Entered::Existing(run));
    }
    if let Reentry::AfterDays(_) = definition.reentry {
        journey_runs::lock_starts(tx, entrance.journey_id, customer).await?;
        let last = journey_runs::last_start(tx, tenant, entrance.journey_id, customer).await?;
        if let Some(last_start) = last.filter(|_| !may_reenter(definition.reentry, last, now)) {
            return Ok(Entered::Refused { reentry: definition.reentry, last_start });
        }
    }
    let Some(first) = definition.steps.first() else { return Err(Error::Internal(anyhow::anyhow!("a published journey without steps"))) };
    let run = NewRun {
        journey_id: entrance.journey_id,
        version: entrance.version,
        customer_id: customer,
        entry_key: &key,
        trigger: firing.label,
        first_step: &first.id,
        exit_on_purchase: definition.exit_on_purchase,
        due_time: now,
        ticket_id: ticket,
    };
    match journey_runs::insert(tx, tenant, &run, now).await? {
        Some(run) => Ok(Entered::Started(run)),
        // Started by a concurrent transaction with the same key (only NEVER's "once" can race here).
        None => {
            journey_runs::by_entry(tx, tenant, entrance.journey_id, customer, &key).await?.map(Entered::Existing).ok_or(Error::Conflict)
        }
    }
}

/// What an event of another service's stream means to journeys.
#[derive(Debug, Clone)]
pub struct Fired {
    pub event: CustomerEvent,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The stream's name and the event's position, e.g. "profiles/1042": the
    /// entry key of the runs it starts (where re-entry allows more than one).
    pub key: String,
    /// E.g. "profiles event 1042".
    pub label: String,
}

/// Applies `fired` (in stream order) to journeys in `tx`: a purchase ends
/// the runs that exit on it, and every ACTIVE journey published before an
/// event and started by it takes the customer — in one statement per journey
/// for a batch of events between purchases. The runs started.
pub async fn apply_events(tx: &mut TenantTx, tenant: Uuid, fired: &[Fired], now: DateTime<Utc>) -> Result<u64, Error> {
    let mut entrances: HashMap<String, Vec<Entrance>> = HashMap::new();
    let mut started = 0;
    let mut pending: Vec<&Fired> = Vec::new();
    for f in fired {
        // A purchase ends what came before it, not the runs it starts itself (a cross-sell).
        if f.event.event == EventTrigger::TransactionCreated {
            started += enter_all(tx, tenant, &std::mem::take(&mut pending), &mut entrances, now).await?;
            journey_runs::exit_on_purchase(tx, tenant, f.event.customer, now).await?;
        }
        pending.push(f);
    }
    started += enter_all(tx, tenant, &pending, &mut entrances, now).await?;
    Ok(started)
}

/// Starts `fired`'s customers on the journeys their events trigger (`entrances` caches each trigger's journeys).
async fn enter_all(
    tx: &mut TenantTx,
    tenant: Uuid,
    fired: &[&Fired],
    entrances: &mut HashMap<String, Vec<Entrance>>,
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    let mut by_trigger: BTreeMap<String, (Trigger, Vec<&Fired>)> = BTreeMap::new();
    for f in fired {
        let trigger = Trigger::Event(f.event.event.clone());
        let key = serde_json::to_string(&trigger).unwrap_or_default();
        by_trigger.entry(key).or_insert_with(|| (trigger, Vec::new())).1.push(f);
    }
    let mut started = 0;
    for (key, (trigger, fired)) in by_trigger {
        if !entrances.contains_key(&key) {
            let found = journey_runs::entrances_for(tx, tenant, &trigger).await?;
            entrances.insert(key.clone(), found);
        }
        for entrance in &entrances[&key] {
            // A journey takes what happens after it is published, not the stream's history.
            let after: Vec<&&Fired> = fired.iter().filter(|f| f.time >= entrance.first_publish_time).collect();
            let definition = &entrance.definition.0;
            if let Reentry::AfterDays(_) = definition.reentry {
                for f in after {
                    let firing = Firing { key: &f.key, label: &f.label };
                    if let Entered::Started(_) = enter_in(tx, tenant, entrance, f.event.customer, firing, f.event.ticket, now).await? {
                        started += 1;
                    }
                }
                continue;
            }
            let Some(first) = definition.steps.first().filter(|_| !after.is_empty()) else { continue };
            let entrants: Vec<Entrant> =
                after.iter().map(|f| (f.event.customer, entry_key(definition.reentry, &f.key), f.label.clone(), f.event.ticket)).collect();
            let door = Door {
                journey_id: entrance.journey_id,
                version: entrance.version,
                first_step: &first.id,
                exit_on_purchase: definition.exit_on_purchase,
            };
            started += journey_runs::insert_many(tx, tenant, door, &entrants, now).await?;
        }
    }
    Ok(started)
}

/// A customer a birthday or holiday pass greets, and when.
#[derive(Debug, Clone, Copy)]
pub struct Greeting {
    pub customer: Uuid,
    pub due: DateTime<Utc>,
}

/// What the runner learnt outside the transaction for the step it takes.
#[derive(Debug, Clone)]
pub struct Asked<'a> {
    /// The customer as profiles has them now.
    pub customer: &'a Customer,
    /// The customer's time zone (theirs, else the tenant's).
    pub zone: Tz,
    /// A branch's answer.
    pub branch: bool,
    /// Why an update of the customer in profiles could not be made.
    pub failure: Option<String>,
}

/// The step record and the move of one step.
struct Taken {
    outcome: Outcome,
    delivery: Option<Uuid>,
    detail: String,
    to: Move,
    /// For a goal wait: the goal.
    awaiting: Option<String>,
    /// For a tested send step: the group.
    variant: String,
}

impl Taken {
    fn of(outcome: Outcome, to: Move) -> Self {
        Self { outcome, delivery: None, detail: String::new(), to, awaiting: None, variant: String::new() }
    }

    fn saying(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// Where an ended run stands.
fn ended(reason: EndReason) -> Position<'static> {
    Position { state: reason.state().as_str(), step_id: None, due_time: None, end_reason: reason.as_str(), awaiting_goal: None }
}

/// Where a run at `step` stands after moving `to`: taking its next step
/// within the lease, waiting at `step` (for `awaiting`, if a goal), or ended.
fn position<'a>(to: &'a Move, step: &'a str, awaiting: Option<&'a str>, lease_until: DateTime<Utc>) -> Position<'a> {
    match to {
        Move::To(next) => Position {
            state: RunState::Active.as_str(),
            step_id: Some(next),
            due_time: Some(lease_until),
            end_reason: "",
            awaiting_goal: None,
        },
        Move::WaitUntil(until) => Position {
            state: RunState::Waiting.as_str(),
            step_id: Some(step),
            due_time: Some(*until),
            end_reason: "",
            awaiting_goal: awaiting,
        },
        Move::End(reason) => ended(*reason),
    }
}

impl App {
    /// Starts `customer` on journey `journey` (ACTIVE) by an explicit call.
    /// With a request id, a retry returns the first run; without, the
    /// re-entry rule may refuse (ALREADY_EXISTS for NEVER, FAILED_PRECONDITION
    /// for AFTER_DAYS within the period).
    pub async fn enter_journey<R: Message + Default>(
        &self,
        tenant: Uuid,
        journey: Uuid,
        customer: Uuid,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&RunRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let Some(entrance) = journey_runs::entrance(&mut tx, tenant, journey).await? else {
            // Not ACTIVE: say what it is, read in this transaction (not on a second connection while it is open).
            let found: Option<crate::store::journeys::JourneyRow> =
                crate::store::journeys::JOURNEYS.find(&mut tx, tenant, journey, false).await?;
            let row = found.ok_or_else(|| JOURNEY.not_found(journey))?;
            return Err(Error::FailedPrecondition {
                reason: "JOURNEY_NOT_ACTIVE",
                message: format!("the journey is {}; only an ACTIVE journey takes entrants", row.state),
                subject: JOURNEY.name(journey),
            });
        };
        // Without a request id every call is a start of its own.
        let key = format!("requests/{}", request.map_or_else(|| Uuid::now_v7().to_string(), |k| k.request_id().to_owned()));
        let firing = Firing { key: &key, label: "EnterJourney" };
        let run = match enter_in(&mut tx, tenant, &entrance, customer, firing, None, now).await? {
            Entered::Started(run) => run,
            // The same request id again (after its idempotency record expired): the run it started.
            Entered::Existing(run) if entrance.definition.0.reentry != Reentry::Never => run,
            Entered::Existing(run) => {
                return Err(Error::AlreadyExists {
                    reason: "ALREADY_ENTERED",
                    message: format!("customers/{customer} started this journey before; its re-entry is NEVER"),
                    resource_type: JOURNEY_RUN.type_name,
                    name: JOURNEY_RUN.name(journey, run.id),
                });
            }
            Entered::Refused { last_start, .. } => {
                return Err(Error::FailedPrecondition {
                    reason: "REENTRY_TOO_SOON",
                    message: format!("customers/{customer} last started this journey at {last_start}; re-entry needs more days to pass"),
                    subject: JOURNEY.name(journey),
                });
            }
        };
        let response = respond(&run);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        tracing::info!(run = %run.id, journey = %journey, "customer entered a journey by request");
        Ok(response)
    }

    /// Run `run` of journey `journey` with its latest steps, or NOT_FOUND.
    pub async fn journey_run(&self, tenant: Uuid, journey: Uuid, run: Uuid) -> Result<(RunRow, Vec<StepRow>), Error> {
        let mut tx = self.begin(tenant).await?;
        let found: Option<RunRow> = RUNS.find(&mut tx, tenant, run, false).await?;
        let Some(row) = found.filter(|r| r.journey_id == journey) else { return Err(JOURNEY_RUN.not_found(journey, run)) };
        let steps = journey_runs::steps_of(&mut tx, tenant, &[row.id], STEPS_SHOWN).await?;
        tx.commit().await?;
        Ok((row, steps))
    }

    /// A page of runs, newest first, with their latest steps.
    pub async fn journey_runs(
        &self,
        tenant: Uuid,
        scope: RunScope,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<(Vec<RunRow>, Vec<StepRow>), Error> {
        let mut tx = self.begin(tenant).await?;
        let runs = journey_runs::list(&mut tx, tenant, scope, before, limit).await?;
        let ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
        let steps = journey_runs::steps_of(&mut tx, tenant, &ids, STEPS_SHOWN).await?;
        tx.commit().await?;
        Ok((runs, steps))
    }

    /// Journey `id`'s published version, if the journey is ACTIVE.
    pub async fn journey_entrance(&self, tenant: Uuid, id: Uuid) -> Result<Option<Entrance>, Error> {
        let mut tx = self.begin(tenant).await?;
        let found = journey_runs::entrance(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Where the pass for `occurrence` of journey `journey` stands: (next page token, done); None before it starts.
    pub async fn occasion_pass(&self, tenant: Uuid, journey: Uuid, occurrence: &str) -> Result<Option<(String, bool)>, Error> {
        let mut tx = self.begin(tenant).await?;
        let found = journey_runs::occurrence(&mut tx, tenant, journey, occurrence).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Starts each of `greetings` on `entrance`'s version for `occurrence`
    /// (the entry key: one run per customer and occasion, whatever the
    /// re-entry rule), due at its time, and records the pass as read up to
    /// `next_page_token`, in one transaction; the runs started. Two replicas
    /// on the same pass start nobody twice (the entry key).
    pub async fn enter_occasion(
        &self,
        tenant: Uuid,
        entrance: &Entrance,
        occurrence: &str,
        greetings: &[Greeting],
        next_page_token: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let definition = &entrance.definition.0;
        let Some(first) = definition.steps.first() else { return Ok(0) };
        let mut tx = self.begin(tenant).await?;
        let mut started = 0;
        for g in greetings {
            let run = NewRun {
                journey_id: entrance.journey_id,
                version: entrance.version,
                customer_id: g.customer,
                entry_key: occurrence,
                trigger: occurrence,
                first_step: &first.id,
                exit_on_purchase: definition.exit_on_purchase,
                due_time: g.due,
                ticket_id: None,
            };
            if journey_runs::insert(&mut tx, tenant, &run, now).await?.is_some() {
                started += 1;
            }
        }
        journey_runs::save_occurrence(&mut tx, tenant, entrance.journey_id, occurrence, next_page_token, started, now).await?;
        tx.commit().await?;
        Ok(u64::try_from(started).unwrap_or(0))
    }

    /// Invites `run`'s customer to questionnaire `questionnaire` from step
    /// `source` in `tx` (once per step); the invitation's link (empty
    /// without a public URL).
    async fn invite(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        questionnaire: &str,
        run: &RunRow,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let id: Uuid = questionnaire.parse().unwrap_or_default();
        let found: Option<QuestionnaireRow> = QUESTIONNAIRES.find(tx, tenant, id, false).await?;
        let days = found.map_or(7, |q| q.answer_within_days);
        let invitation = NewInvitation {
            questionnaire_id: id,
            customer_id: run.customer_id,
            journey_id: Some(run.journey_id),
            ticket_id: run.ticket_id,
            source,
            expire_time: now + Duration::days(i64::from(days)),
        };
        let made = questionnaires::invite(tx, tenant, &invitation, now).await?;
        Ok(self.links().invitation_url(tenant, made.id).unwrap_or_default())
    }

    /// Checks that `run` is still where the runner saw it and extends its
    /// lease, just before the runner changes something outside campaigns
    /// for it (a customer's tags in profiles): a runner whose lease ran out
    /// meanwhile learns it here instead of repeating another's step.
    pub async fn hold_run(&self, tenant: Uuid, run: &RunRow, now: DateTime<Utc>) -> Result<bool, Error> {
        let mut tx = self.begin(tenant).await?;
        if !still_at(&mut tx, tenant, run).await? {
            return Ok(false);
        }
        let lease_until = now + Duration::from_std(self.lease()).unwrap_or(Duration::minutes(1));
        journey_runs::extend_lease(&mut tx, tenant, run.id, lease_until).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims up to `limit` of the tenant's due runs for this runner's lease.
    pub async fn claim_due_runs(&self, tenant: Uuid, now: DateTime<Utc>, limit: i64) -> Result<Vec<RunRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let lease_until = now + Duration::from_std(self.lease()).unwrap_or(Duration::minutes(1));
        let claimed = journey_runs::claim(&mut tx, tenant, now, lease_until, limit).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// The definition of version `version` of journey `journey` (never changes once published).
    pub async fn journey_version(&self, tenant: Uuid, journey: Uuid, version: i32) -> Result<Definition, Error> {
        let mut tx = self.begin(tenant).await?;
        let found = crate::store::journeys::version(&mut tx, tenant, journey, version).await?;
        tx.commit().await?;
        found.ok_or_else(|| JOURNEY.not_found(journey))
    }

    /// Ends `run` for `reason` if it is still where the caller saw it; the run after, None if it had moved.
    pub async fn end_run(&self, tenant: Uuid, run: &RunRow, reason: EndReason, now: DateTime<Utc>) -> Result<Option<RunRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        if !still_at(&mut tx, tenant, run).await? {
            return Ok(None);
        }
        let ended = journey_runs::set_position(&mut tx, tenant, run.id, &ended(reason), 0, now).await?;
        tx.commit().await?;
        Ok(Some(ended))
    }

    /// Stops run `id` of journey `journey` (CANCELLED) unless it has ended; the run.
    pub async fn cancel_run(&self, tenant: Uuid, journey: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<RunRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let found: Option<RunRow> = RUNS.find(&mut tx, tenant, id, true).await?;
        let Some(run) = found.filter(|r| r.journey_id == journey) else { return Err(JOURNEY_RUN.not_found(journey, id)) };
        let run = match run.due_time {
            None => run,
            Some(_) => journey_runs::set_position(&mut tx, tenant, id, &ended(EndReason::Cancelled), 0, now).await?,
        };
        tx.commit().await?;
        Ok(run)
    }

    /// Takes `run`'s next step of `definition` (or leaves the wait it is
    /// in), with what the runner `asked` profiles, and moves the run on, in
    /// one transaction. The run after, None if it had moved meanwhile
    /// (another runner took the step, a purchase ended it).
    pub async fn take_step(
        &self,
        tenant: Uuid,
        run: &RunRow,
        definition: &Definition,
        asked: &Asked<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRow>, Error> {
        let Some(step_id) = run.step_id.as_deref() else { return Ok(None) };
        let mut tx = self.begin(tenant).await?;
        if !still_at(&mut tx, tenant, run).await? {
            return Ok(None);
        }
        let lease_until = now + Duration::from_std(self.lease()).unwrap_or(Duration::minutes(1));
        let Some(step) = journey_run::step(definition, step_id) else {
            // A published version never changes; a run at a step it lacks can only end (in this transaction, which holds its lock).
            let ended = journey_runs::set_position(&mut tx, tenant, run.id, &ended(EndReason::Finished), 0, now).await?;
            tx.commit().await?;
            return Ok(Some(ended));
        };
        if RunState::parse(&run.state) == RunState::Waiting {
            // A goal wait goes on one way if the goal was reached while it waited, the other on its timeout.
            let reached = match &step.action {
                Action::WaitForGoal { goal, .. } => {
                    conversions::reached(&mut tx, tenant, run.customer_id, goal, run.waiting_since.unwrap_or(run.enter_time)).await?
                }
                _ => false,
            };
            let to = journey_run::after(step, reached);
            let moved = journey_runs::set_position(&mut tx, tenant, run.id, &position(&to, &step.id, None, lease_until), 0, now).await?;
            tx.commit().await?;
            return Ok(Some(moved));
        }
        let seq = run.step_count;
        let source = format!("{}/steps/{seq}", JOURNEY_RUN.name(run.journey_id, run.id));
        let taken = match &step.action {
            Action::Send { template, variables, ab, questionnaire, .. } => {
                // A tested step: the run's group, the winner's once chosen; the holdout gets nothing.
                let (variant, message) = match ab {
                    None => (String::new(), Some((template, variables))),
                    Some(test) => {
                        let decided = ab_tests::find(&mut tx, tenant, run.journey_id, run.version, &step.id).await?;
                        let winner = decided.and_then(|t| variant_index(&t.winner));
                        match test.assign(run.id, &step.id, winner) {
                            Assignment::Holdout => (HOLDOUT.to_owned(), None),
                            Assignment::Variant(0) => (variant_name(0), Some((template, variables))),
                            Assignment::Variant(i) => (variant_name(i), test.variants.get(i - 1).map(|v| (&v.template, &v.variables))),
                        }
                    }
                };
                let taken = match message {
                    None => Taken::of(Outcome::HeldOut, journey_run::after(step, false)),
                    Some((template, variables)) => {
                        let variables = match questionnaire {
                            None => variables.clone(),
                            Some(q) => {
                                let link = self.invite(&mut tx, tenant, q, run, &source, now).await?;
                                let mut with_link = variables.clone();
                                with_link.insert(SURVEY_LINK.to_owned(), link);
                                with_link
                            }
                        };
                        let notice = Notice {
                            template: template.parse().unwrap_or_default(),
                            customer: asked.customer,
                            variables: &variables,
                            request_id: &source,
                        };
                        match self.accept_notice(&mut tx, tenant, notice, now).await {
                            Ok(delivery) => {
                                Taken { delivery: Some(delivery.id), ..Taken::of(Outcome::Sent, journey_run::after(step, false)) }
                            }
                            // Nothing was written: the run goes on without the message, saying why.
                            Err(err @ (Error::InvalidArgument { .. } | Error::FailedPrecondition { .. })) => {
                                Taken::of(Outcome::NotSent, journey_run::after(step, false)).saying(err.to_string())
                            }
                            Err(other) => return Err(other),
                        }
                    }
                };
                Taken { variant, ..taken }
            }
            Action::Wait { wait, .. } => {
                let until = journey_run::wake_time(*wait, asked.zone, now);
                Taken::of(Outcome::Waited, Move::WaitUntil(until)).saying(until.to_rfc3339())
            }
            Action::WaitForGoal { goal, timeout_minutes, .. } => {
                let until = now + Duration::minutes(*timeout_minutes);
                let waiting =
                    Taken::of(Outcome::AwaitingGoal, Move::WaitUntil(until)).saying(format!("{goal} until {}", until.to_rfc3339()));
                Taken { awaiting: Some(goal.clone()), ..waiting }
            }
            Action::Branch { condition, .. } => {
                // A goal is campaigns' own record; the rest the runner asked profiles.
                let holds = match condition {
                    Condition::GoalReached { goal } => conversions::reached(&mut tx, tenant, run.customer_id, goal, run.enter_time).await?,
                    _ => asked.branch,
                };
                Taken::of(if holds { Outcome::BranchTrue } else { Outcome::BranchFalse }, journey_run::after(step, holds))
            }
            Action::UpdateCustomer { .. } => match &asked.failure {
                None => Taken::of(Outcome::Updated, journey_run::after(step, false)),
                Some(why) => Taken::of(Outcome::Failed, journey_run::after(step, false)).saying(why.clone()),
            },
            Action::GrantPoints { points, expire_days, reason, .. } => {
                let booking = Booking { customer_id: run.customer_id, points: *points, reason, source: &source };
                let expire_time = (*expire_days > 0).then(|| now + Duration::days(i64::from(*expire_days)));
                grant_in(&mut tx, tenant, &booking, expire_time, now).await?;
                Taken::of(Outcome::PointsGranted, journey_run::after(step, false)).saying(format!("{points} points"))
            }
            Action::IssueCoupon { currency, value_minor, valid_days, description, .. } => {
                let coupon = NewCoupon {
                    customer_id: run.customer_id,
                    currency_code: currency.clone(),
                    value_minor: *value_minor,
                    description: description.clone(),
                    valid_from: now,
                    expire_time: now + Duration::days(i64::from(*valid_days)),
                };
                let issued = issue_in(&mut tx, tenant, &coupon, &source, now).await?;
                Taken::of(Outcome::CouponIssued, journey_run::after(step, false)).saying(COUPON.name(issued.id))
            }
            Action::Exit => Taken::of(Outcome::Exited, journey_run::after(step, false)),
        };
        let record = StepRow {
            run_id: run.id,
            seq,
            step_id: step.id.clone(),
            outcome: taken.outcome.as_str().to_owned(),
            delivery_id: taken.delivery,
            detail: taken.detail,
            time: now,
            variant: taken.variant,
        };
        journey_runs::record_step(&mut tx, tenant, &record).await?;
        let position = position(&taken.to, &step.id, taken.awaiting.as_deref(), lease_until);
        let moved = journey_runs::set_position(&mut tx, tenant, run.id, &position, 1, now).await?;
        tx.commit().await?;
        Ok(Some(moved))
    }
}

/// Locks `run` and says whether it is still where the caller saw it.
async fn still_at(tx: &mut TenantTx, tenant: Uuid, run: &RunRow) -> Result<bool, Error> {
    let current: Option<RunRow> = RUNS.find(tx, tenant, run.id, true).await?;
    Ok(current.is_some_and(|c| c.step_count == run.step_count && c.state == run.state && c.step_id == run.step_id && c.due_time.is_some()))
}

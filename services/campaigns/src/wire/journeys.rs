//! Journeys in and out: a request's journey into a domain definition (every
//! malformed field a violation naming its step), a stored journey into a
//! response.

use std::time::Duration as StdDuration;

use crm_kit::{Error, FieldViolation, etag, time::to_timestamp};
use crm_proto::{crm::campaigns::v1 as pb, google::r#type::TimeOfDay};

use crate::{
    domain::{
        ab_test::{AbTest, Metric, Variant},
        journey::{Action, Condition, Definition, EventTrigger, Problem, Reentry, Step, Trigger, Wait},
    },
    resources::{CUSTOMER, DELIVERY, JOURNEY, JOURNEY_RUN, QUESTIONNAIRE, TEMPLATE},
    store::{
        journey_runs::{RunRow, StepRow},
        journeys::JourneyRow,
    },
};

/// Segment names in profiles: "segments/{id}".
const SEGMENTS: &str = "segments/";

/// The field a domain problem is about: a step by its index, or a journey field.
pub fn problem_field(definition: &Definition, p: &Problem) -> String {
    match p.subject.as_str() {
        "trigger" => "journey.trigger".to_owned(),
        "reentry" => "journey.reentry_days".to_owned(),
        "steps" => "journey.steps".to_owned(),
        id => {
            definition.steps.iter().position(|s| s.id == id).map_or_else(|| "journey.steps".to_owned(), |i| format!("journey.steps[{i}]"))
        }
    }
}

/// `problems` as INVALID_ARGUMENT, one violation each, naming the step in the message.
pub fn problems_to_error(definition: &Definition, problems: &[Problem]) -> Error {
    let violations = problems
        .iter()
        .map(|p| {
            let about = if matches!(p.subject.as_str(), "trigger" | "reentry" | "steps") {
                String::new()
            } else {
                format!("step {:?}: ", p.subject)
            };
            FieldViolation::new(problem_field(definition, p), p.reason, format!("{about}{}", p.message))
        })
        .collect();
    Error::InvalidArgument { violations }
}

fn minute_of_day(t: Option<&TimeOfDay>) -> Option<u16> {
    let t = t?;
    let valid = (0..24).contains(&t.hours) && (0..60).contains(&t.minutes);
    // An impossible time is kept out of range, for the domain's check to name.
    Some(if valid { u16::try_from(t.hours * 60 + t.minutes).unwrap_or(u16::MAX) } else { u16::MAX })
}

fn time_of_day(minute: u16) -> TimeOfDay {
    TimeOfDay { hours: i32::from(minute / 60), minutes: i32::from(minute % 60), ..Default::default() }
}

/// The trigger of a request (its shape; whether its segment and holiday exist is the use case's to check).
fn trigger_from(trigger: Option<&pb::JourneyTrigger>) -> Result<Trigger, FieldViolation> {
    use pb::journey_trigger::Kind;
    let missing = || FieldViolation::new("journey.trigger", "MISSING_TRIGGER", "one of event, birthday, holiday, api (true)");
    match trigger.and_then(|t| t.kind.as_ref()).ok_or_else(missing)? {
        Kind::Event(e) => {
            let segment = || match e.segment.strip_prefix(SEGMENTS) {
                Some(id) if !id.is_empty() => Ok(id.to_owned()),
                _ => Err(FieldViolation::new("journey.trigger.event.segment", "INVALID_SEGMENT", "segments/{id} of profiles")),
            };
            let event = match pb::JourneyEvent::try_from(e.event) {
                Ok(pb::JourneyEvent::CustomerCreated) => EventTrigger::CustomerCreated,
                Ok(pb::JourneyEvent::SegmentEntered) => EventTrigger::SegmentEntered { segment: segment()? },
                Ok(pb::JourneyEvent::SegmentLeft) => EventTrigger::SegmentLeft { segment: segment()? },
                Ok(pb::JourneyEvent::TierChanged) => EventTrigger::TierChanged,
                Ok(pb::JourneyEvent::TransactionCreated) => EventTrigger::TransactionCreated,
                Ok(pb::JourneyEvent::TicketResolved) => EventTrigger::TicketResolved,
                Ok(pb::JourneyEvent::ComplaintOpened) => EventTrigger::ComplaintOpened,
                _ => return Err(FieldViolation::new("journey.trigger.event.event", "INVALID_EVENT", "one of the JOURNEY_EVENT_ values")),
            };
            Ok(Trigger::Event(event))
        }
        Kind::Birthday(t) => Ok(Trigger::Birthday { minute_of_day: minute_of_day(Some(t)).unwrap_or(u16::MAX) }),
        Kind::Holiday(h) => {
            let holiday = h.holiday.strip_prefix("holidays/").unwrap_or(&h.holiday).to_owned();
            let minute_of_day = minute_of_day(h.time.as_ref())
                .ok_or_else(|| FieldViolation::new("journey.trigger.holiday.time", "MISSING_TIME_OF_DAY", "when the greeting starts"))?;
            Ok(Trigger::Holiday { holiday, minute_of_day })
        }
        Kind::Api(true) => Ok(Trigger::Api),
        Kind::Api(false) => Err(missing()),
    }
}

/// One step of a request; `field` is its path.
fn step_from(step: &pb::JourneyStep, field: &str) -> Result<Step, FieldViolation> {
    use pb::journey_step::Kind;
    let next = (!step.next.is_empty()).then(|| step.next.clone());
    let action = match step.kind.as_ref() {
        Some(Kind::Send(send)) => {
            let template = match TEMPLATE.id_of(&send.template) {
                Some(id) => id.to_string(),
                None => return Err(FieldViolation::new(format!("{field}.send.template"), "INVALID_TEMPLATE", "templates/{id}")),
            };
            let ab = match send.ab_test.as_ref() {
                None => None,
                Some(t) => Some(ab_test_from(t, &format!("{field}.send.ab_test"))?),
            };
            let questionnaire = match send.questionnaire.as_str() {
                "" => None,
                name => match QUESTIONNAIRE.id_of(name) {
                    Some(id) => Some(id.to_string()),
                    None => {
                        return Err(FieldViolation::new(
                            format!("{field}.send.questionnaire"),
                            "INVALID_QUESTIONNAIRE",
                            "questionnaires/{id}",
                        ));
                    }
                },
            };
            Action::Send { template, variables: send.variables.clone().into_iter().collect(), next, ab, questionnaire }
        }
        Some(Kind::Wait(wait)) => {
            let wait = match wait.until.as_ref() {
                Some(pb::wait_step::Until::Duration(d)) => {
                    let exact = d.nanos == 0 && d.seconds % 60 == 0;
                    Wait::Minutes(if exact { d.seconds / 60 } else { 0 })
                }
                Some(pb::wait_step::Until::TimeOfDay(t)) => Wait::UntilMinuteOfDay(minute_of_day(Some(t)).unwrap_or(u16::MAX)),
                None => return Err(FieldViolation::new(format!("{field}.wait"), "INVALID_WAIT", "a duration or a time_of_day")),
            };
            Action::Wait { wait, next }
        }
        Some(Kind::Branch(branch)) => {
            let condition = match branch.condition.as_ref() {
                Some(pb::branch_step::Condition::InSegment(name)) => match name.strip_prefix(SEGMENTS) {
                    Some(id) if !id.is_empty() => Condition::InSegment { segment: id.to_owned() },
                    _ => {
                        return Err(FieldViolation::new(
                            format!("{field}.branch.in_segment"),
                            "INVALID_SEGMENT",
                            "segments/{id} of profiles",
                        ));
                    }
                },
                Some(pb::branch_step::Condition::Filter(filter)) => Condition::Matches { filter: filter.clone() },
                Some(pb::branch_step::Condition::GoalReached(goal)) => Condition::GoalReached { goal: goal.clone() },
                None => return Err(FieldViolation::new(format!("{field}.branch"), "INVALID_CONDITION", "in_segment or filter")),
            };
            Action::Branch { condition, if_true: branch.if_true.clone(), if_false: branch.if_false.clone() }
        }
        Some(Kind::UpdateCustomer(u)) => Action::UpdateCustomer { add_tags: u.add_tags.clone(), remove_tags: u.remove_tags.clone(), next },
        Some(Kind::GrantPoints(g)) => Action::GrantPoints { points: g.points, expire_days: g.expire_days, reason: g.reason.clone(), next },
        Some(Kind::WaitForGoal(w)) => {
            let timeout = w.timeout.as_ref().filter(|d| d.nanos == 0 && d.seconds % 60 == 0).map_or(0, |d| d.seconds / 60);
            let on_timeout = (!w.on_timeout.is_empty()).then(|| w.on_timeout.clone());
            Action::WaitForGoal { goal: w.goal.clone(), timeout_minutes: timeout, next, on_timeout }
        }
        Some(Kind::IssueCoupon(c)) => {
            let value = match c.value.as_ref().map(|m| crm_kit::money::to_minor(m, None)) {
                Some(Ok(v)) if v.minor > 0 => v,
                Some(Err((reason, message))) => return Err(FieldViolation::new(format!("{field}.issue_coupon.value"), reason, message)),
                _ => {
                    return Err(FieldViolation::new(
                        format!("{field}.issue_coupon.value"),
                        "INVALID_AMOUNT",
                        "a coupon is worth more than zero",
                    ));
                }
            };
            Action::IssueCoupon {
                currency: value.currency,
                value_minor: value.minor,
                valid_days: c.valid_days,
                description: c.description.clone(),
                next,
            }
        }
        Some(Kind::Exit(_)) => Action::Exit,
        None => {
            return Err(FieldViolation::new(
                field.to_owned(),
                "MISSING_ACTION",
                "one of send, wait, branch, update_customer, grant_points, issue_coupon, exit",
            ));
        }
    };
    Ok(Step { id: step.id.clone(), action })
}

/// A send step's A/B/n test from a request (its numbers are the domain's to check).
fn ab_test_from(t: &pb::AbTest, field: &str) -> Result<AbTest, FieldViolation> {
    let metric = metric_from(t.metric, field)?;
    let mut variants = Vec::new();
    for (i, v) in t.variants.iter().enumerate() {
        let Some(id) = TEMPLATE.id_of(&v.template) else {
            return Err(FieldViolation::new(format!("{field}.variants[{i}].template"), "INVALID_TEMPLATE", "templates/{id}"));
        };
        variants.push(Variant { template: id.to_string(), variables: v.variables.clone().into_iter().collect(), local_send_minute: None });
    }
    Ok(AbTest {
        variants,
        holdout_percent: t.holdout_percent,
        metric,
        min_sample: if t.min_sample == 0 { 100 } else { i64::from(t.min_sample) },
        decide_within_days: if t.decide_within_days == 0 { 14 } else { i64::from(t.decide_within_days) },
    })
}

/// What decides a test's winner, from a request.
pub(super) fn metric_from(metric: i32, field: &str) -> Result<Metric, FieldViolation> {
    match pb::AbTestMetric::try_from(metric) {
        Ok(pb::AbTestMetric::Open) => Ok(Metric::Open),
        Ok(pb::AbTestMetric::Click) => Ok(Metric::Click),
        Ok(pb::AbTestMetric::Conversion) => Ok(Metric::Conversion),
        _ => Err(FieldViolation::new(format!("{field}.metric"), "INVALID_METRIC", "OPEN, CLICK or CONVERSION")),
    }
}

/// What decides a test's winner, as the API shows it.
pub(super) fn metric_to(metric: Metric) -> pb::AbTestMetric {
    match metric {
        Metric::Open => pb::AbTestMetric::Open,
        Metric::Click => pb::AbTestMetric::Click,
        Metric::Conversion => pb::AbTestMetric::Conversion,
    }
}

fn ab_test_to(t: &AbTest) -> pb::AbTest {
    let metric = metric_to(t.metric);
    pb::AbTest {
        variants: t
            .variants
            .iter()
            .map(|v| pb::AbVariant { template: format!("templates/{}", v.template), variables: v.variables.clone().into_iter().collect() })
            .collect(),
        holdout_percent: t.holdout_percent,
        metric: metric as i32,
        min_sample: i32::try_from(t.min_sample).unwrap_or(i32::MAX),
        decide_within_days: i32::try_from(t.decide_within_days).unwrap_or(i32::MAX),
    }
}

/// The definition in `journey`, or every malformed field at once.
pub fn definition_from(journey: &pb::Journey) -> Result<Definition, Error> {
    let mut violations = Vec::new();
    let trigger = trigger_from(journey.trigger.as_ref()).map_err(|v| violations.push(v)).ok();
    let steps: Vec<Step> = journey
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| step_from(s, &format!("journey.steps[{i}]")).map_err(|v| violations.push(v)).ok())
        .collect();
    let reentry = match pb::JourneyReentry::try_from(journey.reentry) {
        Ok(pb::JourneyReentry::Unspecified | pb::JourneyReentry::Never) => Reentry::Never,
        Ok(pb::JourneyReentry::AfterDays) => Reentry::AfterDays(i64::from(journey.reentry_days)),
        Ok(pb::JourneyReentry::Always) => Reentry::Always,
        Err(_) => {
            violations.push(FieldViolation::new("journey.reentry", "INVALID_REENTRY", "one of the JOURNEY_REENTRY_ values"));
            Reentry::Never
        }
    };
    match (trigger, violations.is_empty()) {
        (Some(trigger), true) => Ok(Definition { trigger, steps, reentry, exit_on_purchase: journey.exit_on_purchase }),
        _ => Err(Error::InvalidArgument { violations }),
    }
}

fn trigger_to(trigger: &Trigger) -> pb::JourneyTrigger {
    use pb::journey_trigger::Kind;
    let event = |event: pb::JourneyEvent, segment: Option<&str>| {
        Kind::Event(pb::JourneyEventTrigger { event: event as i32, segment: segment.map(|s| format!("{SEGMENTS}{s}")).unwrap_or_default() })
    };
    let kind = match trigger {
        Trigger::Event(EventTrigger::CustomerCreated) => event(pb::JourneyEvent::CustomerCreated, None),
        Trigger::Event(EventTrigger::SegmentEntered { segment }) => event(pb::JourneyEvent::SegmentEntered, Some(segment)),
        Trigger::Event(EventTrigger::SegmentLeft { segment }) => event(pb::JourneyEvent::SegmentLeft, Some(segment)),
        Trigger::Event(EventTrigger::TierChanged) => event(pb::JourneyEvent::TierChanged, None),
        Trigger::Event(EventTrigger::TransactionCreated) => event(pb::JourneyEvent::TransactionCreated, None),
        Trigger::Event(EventTrigger::TicketResolved) => event(pb::JourneyEvent::TicketResolved, None),
        Trigger::Event(EventTrigger::ComplaintOpened) => event(pb::JourneyEvent::ComplaintOpened, None),
        Trigger::Birthday { minute_of_day } => Kind::Birthday(time_of_day(*minute_of_day)),
        Trigger::Holiday { holiday, minute_of_day } => {
            Kind::Holiday(pb::JourneyHolidayTrigger { holiday: format!("holidays/{holiday}"), time: Some(time_of_day(*minute_of_day)) })
        }
        Trigger::Api => Kind::Api(true),
    };
    pb::JourneyTrigger { kind: Some(kind) }
}

fn step_to(step: &Step) -> pb::JourneyStep {
    use pb::journey_step::Kind;
    let (kind, next) = match &step.action {
        Action::Send { template, variables, next, ab, questionnaire } => {
            let send = pb::SendStep {
                template: format!("templates/{template}"),
                variables: variables.clone().into_iter().collect(),
                ab_test: ab.as_ref().map(ab_test_to),
                questionnaire: questionnaire.as_ref().map(|q| format!("questionnaires/{q}")).unwrap_or_default(),
            };
            (Kind::Send(send), next.clone())
        }
        Action::Wait { wait, next } => {
            let until = match wait {
                Wait::Minutes(m) => pb::wait_step::Until::Duration(
                    prost_types::Duration::try_from(StdDuration::from_secs(u64::try_from(*m).unwrap_or(0) * 60)).unwrap_or_default(),
                ),
                Wait::UntilMinuteOfDay(m) => pb::wait_step::Until::TimeOfDay(time_of_day(*m)),
            };
            (Kind::Wait(pb::WaitStep { until: Some(until) }), next.clone())
        }
        Action::Branch { condition, if_true, if_false } => {
            let condition = match condition {
                Condition::InSegment { segment } => pb::branch_step::Condition::InSegment(format!("{SEGMENTS}{segment}")),
                Condition::Matches { filter } => pb::branch_step::Condition::Filter(filter.clone()),
                Condition::GoalReached { goal } => pb::branch_step::Condition::GoalReached(goal.clone()),
            };
            (Kind::Branch(pb::BranchStep { condition: Some(condition), if_true: if_true.clone(), if_false: if_false.clone() }), None)
        }
        Action::UpdateCustomer { add_tags, remove_tags, next } => {
            (Kind::UpdateCustomer(pb::UpdateCustomerStep { add_tags: add_tags.clone(), remove_tags: remove_tags.clone() }), next.clone())
        }
        Action::GrantPoints { points, expire_days, reason, next } => {
            (Kind::GrantPoints(pb::GrantPointsStep { points: *points, expire_days: *expire_days, reason: reason.clone() }), next.clone())
        }
        Action::WaitForGoal { goal, timeout_minutes, next, on_timeout } => {
            let timeout = Some(prost_types::Duration { seconds: timeout_minutes * 60, nanos: 0 });
            let wait = pb::GoalWaitStep { goal: goal.clone(), timeout, on_timeout: on_timeout.clone().unwrap_or_default() };
            (Kind::WaitForGoal(wait), next.clone())
        }
        Action::IssueCoupon { currency, value_minor, valid_days, description, next } => {
            let value = Some(crm_kit::money::from_minor(currency, *value_minor));
            (Kind::IssueCoupon(pb::IssueCouponStep { value, valid_days: *valid_days, description: description.clone() }), next.clone())
        }
        Action::Exit => (Kind::Exit(pb::ExitStep {}), None),
    };
    pb::JourneyStep { id: step.id.clone(), kind: Some(kind), next: next.unwrap_or_default() }
}

/// A stored journey (its draft) as a response.
pub fn journey_to(row: &JourneyRow) -> pb::Journey {
    let d = &row.draft.0;
    let (reentry, reentry_days) = match d.reentry {
        Reentry::Never => (pb::JourneyReentry::Never, 0),
        Reentry::AfterDays(days) => (pb::JourneyReentry::AfterDays, i32::try_from(days).unwrap_or(i32::MAX)),
        Reentry::Always => (pb::JourneyReentry::Always, 0),
    };
    let state = match row.state.as_str() {
        "ACTIVE" => pb::JourneyState::Active,
        "PAUSED" => pb::JourneyState::Paused,
        _ => pb::JourneyState::Draft,
    };
    pb::Journey {
        name: JOURNEY.name(row.id),
        display_name: row.display_name.clone(),
        trigger: Some(trigger_to(&d.trigger)),
        steps: d.steps.iter().map(step_to).collect(),
        reentry: reentry as i32,
        reentry_days,
        exit_on_purchase: d.exit_on_purchase,
        state: state as i32,
        published_version: row.published_version,
        has_unpublished_changes: row.has_unpublished_changes,
        etag: etag::of_revision(row.revision),
        create_time: Some(to_timestamp(row.create_time)),
        update_time: Some(to_timestamp(row.update_time)),
        publish_time: row.publish_time.map(to_timestamp),
    }
}

fn run_state(state: &str) -> pb::JourneyRunState {
    match state {
        "ACTIVE" => pb::JourneyRunState::Active,
        "WAITING" => pb::JourneyRunState::Waiting,
        "COMPLETED" => pb::JourneyRunState::Completed,
        "EXITED" => pb::JourneyRunState::Exited,
        _ => pb::JourneyRunState::Unspecified,
    }
}

fn end_reason(reason: &str) -> pb::JourneyRunEndReason {
    pb::JourneyRunEndReason::from_str_name(&format!("JOURNEY_RUN_END_REASON_{reason}")).unwrap_or(pb::JourneyRunEndReason::Unspecified)
}

fn outcome(outcome: &str) -> pb::JourneyStepOutcome {
    pb::JourneyStepOutcome::from_str_name(&format!("JOURNEY_STEP_OUTCOME_{outcome}")).unwrap_or(pb::JourneyStepOutcome::Unspecified)
}

/// A stored run with its steps (those of other runs in `steps` are skipped) as a response.
pub fn run_to(row: &RunRow, steps: &[StepRow]) -> pb::JourneyRun {
    pb::JourneyRun {
        name: JOURNEY_RUN.name(row.journey_id, row.id),
        customer: CUSTOMER.name(row.customer_id),
        version: row.version,
        state: run_state(&row.state) as i32,
        current_step: row.step_id.clone().unwrap_or_default(),
        wake_time: row.due_time.map(to_timestamp),
        trigger: row.trigger.clone(),
        enter_time: Some(to_timestamp(row.enter_time)),
        end_time: row.end_time.map(to_timestamp),
        end_reason: end_reason(&row.end_reason) as i32,
        steps: steps
            .iter()
            .filter(|s| s.run_id == row.id)
            .map(|s| pb::JourneyRunStep {
                step: s.step_id.clone(),
                outcome: outcome(&s.outcome) as i32,
                delivery: s.delivery_id.map(|d| DELIVERY.name(d)).unwrap_or_default(),
                detail: s.detail.clone(),
                time: Some(to_timestamp(s.time)),
                variant: s.variant.clone(),
            })
            .collect(),
    }
}

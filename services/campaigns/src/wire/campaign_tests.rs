//! A campaign's A/B/n test in (validated, every problem named) and out (with its outcome).

use crm_kit::{FieldViolation, time::to_timestamp};
use crm_proto::{crm::campaigns::v1 as pb, google::r#type::TimeOfDay};

use super::journeys::{metric_from, metric_to};
use crate::{
    domain::ab_test::{AbTest, CampaignTest, Variant},
    resources::TEMPLATE,
    store::campaigns::CampaignRow,
};

/// A time of day in whole minutes, as the minute of the day; a violation on `field` otherwise.
pub fn minute_of_day(t: &TimeOfDay, field: &str, v: &mut Vec<FieldViolation>) -> Option<i32> {
    let whole_minute = (0..24).contains(&t.hours) && (0..60).contains(&t.minutes) && t.seconds == 0 && t.nanos == 0;
    if !whole_minute {
        v.push(FieldViolation::new(field, "INVALID_TIME", "a time of day in whole minutes, 00:00-23:59"));
    }
    whole_minute.then_some(t.hours * 60 + t.minutes)
}

/// The minute of the day `minute` as a time of day.
pub fn time_of_day(minute: i32) -> TimeOfDay {
    TimeOfDay { hours: minute / 60, minutes: minute % 60, seconds: 0, nanos: 0 }
}

/// A campaign's test from a request; problems are pushed onto `v`.
pub fn campaign_test_from(t: &pb::CampaignAbTest, v: &mut Vec<FieldViolation>) -> Option<CampaignTest> {
    const FIELD: &str = "campaign.ab_test";
    let metric = metric_from(t.metric, FIELD).map_err(|e| v.push(e)).ok();
    let mut variants = Vec::new();
    for (i, variant) in t.variants.iter().enumerate() {
        let field = format!("{FIELD}.variants[{i}]");
        let Some(id) = TEMPLATE.id_of(&variant.template) else {
            v.push(FieldViolation::new(format!("{field}.template"), "INVALID_TEMPLATE", "templates/{id}"));
            continue;
        };
        let local_send_minute = variant.local_send_time.as_ref().and_then(|t| minute_of_day(t, &format!("{field}.local_send_time"), v));
        variants.push(Variant { template: id.to_string(), variables: variant.variables.clone().into_iter().collect(), local_send_minute });
    }
    let decide_after_minutes = match &t.decide_after {
        None => 24 * 60,
        Some(d) if d.nanos == 0 && d.seconds % 60 == 0 => d.seconds / 60,
        Some(_) => {
            v.push(FieldViolation::new(format!("{FIELD}.decide_after"), "INVALID_DEADLINE", "whole minutes"));
            0
        }
    };
    let test = CampaignTest {
        test: AbTest {
            variants,
            holdout_percent: t.holdout_percent,
            metric: metric?,
            min_sample: if t.min_sample == 0 { 100 } else { i64::from(t.min_sample) },
            decide_within_days: 0,
        },
        test_percent: if t.test_percent == 0 { 100 } else { t.test_percent },
        decide_after_minutes,
    };
    let problems = test.check();
    for (reason, message) in &problems {
        v.push(FieldViolation::new(FIELD, reason, message.clone()));
    }
    problems.is_empty().then_some(test)
}

/// Campaign `row`'s test with its outcome, if it has one.
pub fn campaign_test_to(row: &CampaignRow) -> Option<pb::CampaignAbTest> {
    let t = &row.ab_test.as_ref()?.0;
    Some(pb::CampaignAbTest {
        variants: t
            .test
            .variants
            .iter()
            .map(|v| pb::CampaignVariant {
                template: format!("templates/{}", v.template),
                variables: v.variables.clone().into_iter().collect(),
                local_send_time: v.local_send_minute.map(time_of_day),
            })
            .collect(),
        holdout_percent: t.test.holdout_percent,
        test_percent: t.test_percent,
        metric: metric_to(t.test.metric) as i32,
        min_sample: i32::try_from(t.test.min_sample).unwrap_or(i32::MAX),
        decide_after: Some(prost_types::Duration { seconds: t.decide_after_minutes * 60, nanos: 0 }),
        winner: row.ab_winner.clone(),
        decision: row.ab_decision.clone(),
        detail: row.ab_detail.clone(),
        decide_time: row.ab_decide_time.map(to_timestamp),
    })
}

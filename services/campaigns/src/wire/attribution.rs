//! Conversions and attribution reports out.

use std::collections::BTreeMap;

use crm_kit::{money::from_minor, time::to_timestamp};
use crm_proto::crm::campaigns::v1 as pb;

use crate::{
    app::ab_tests::TestReport,
    domain::ab_test::HOLDOUT,
    resources::{CAMPAIGN, CUSTOMER, DELIVERY, JOURNEY},
    store::{
        ab_tests::GroupRow,
        conversions::{ConversionRow, Earned},
    },
};

/// A stored conversion as a response.
pub fn conversion_to(row: &ConversionRow) -> pb::Conversion {
    pb::Conversion {
        name: format!("conversions/{}", row.id),
        customer: CUSTOMER.name(row.customer_id),
        goal: row.goal.clone(),
        value: (!row.currency_code.is_empty()).then(|| from_minor(&row.currency_code, row.revenue_minor)),
        occur_time: Some(to_timestamp(row.occur_time)),
        delivery: row.delivery_id.map(|d| DELIVERY.name(d)).unwrap_or_default(),
        campaign: row.campaign_id.map(|c| CAMPAIGN.name(c)).unwrap_or_default(),
        journey: row.journey_id.map(|j| JOURNEY.name(j)).unwrap_or_default(),
        source: row.source.clone(),
    }
}

/// A tested step's groups, with lift against its holdout.
fn ab_test_to(report: &TestReport) -> pb::AbTestResult {
    let rate = |g: &GroupRow| if g.runs > 0 { g.converted as f64 / g.runs as f64 } else { 0.0 };
    let holdout = report.groups.iter().find(|g| g.variant == HOLDOUT).map(rate).unwrap_or(0.0);
    pb::AbTestResult {
        step: report.step.clone(),
        version: report.version,
        groups: report
            .groups
            .iter()
            .map(|g| pb::AbGroupResult {
                variant: g.variant.clone(),
                runs: g.runs,
                sent: g.sent,
                opened: g.opened,
                clicked: g.clicked,
                converted: g.converted,
                conversion_rate: rate(g),
                lift: if holdout > 0.0 && g.variant != HOLDOUT { rate(g) / holdout - 1.0 } else { 0.0 },
            })
            .collect(),
        winner: report.winner.clone(),
        decision: report.decision.clone(),
        detail: report.detail.clone(),
    }
}

/// What a sender's messages earned, as report `name`, with its A/B/n tests.
pub fn attribution_to(name: &str, earned: &Earned, window_days: i64, tests: &[TestReport]) -> pb::Attribution {
    let mut revenue: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_goal: BTreeMap<String, i64> = BTreeMap::new();
    let mut conversions = 0;
    for (goal, currency, count, minor) in &earned.groups {
        conversions += count;
        *by_goal.entry(goal.clone()).or_default() += count;
        if !currency.is_empty() {
            *revenue.entry(currency.as_str()).or_default() += minor;
        }
    }
    pb::Attribution {
        name: name.to_owned(),
        messages_sent: earned.messages_sent,
        conversions,
        conversion_rate: if earned.messages_sent > 0 { conversions as f64 / earned.messages_sent as f64 } else { 0.0 },
        revenue: revenue.into_iter().map(|(currency, minor)| from_minor(currency, minor)).collect(),
        conversions_by_goal: by_goal.into_iter().collect(),
        window_days: i32::try_from(window_days).unwrap_or(i32::MAX),
        ab_tests: tests.iter().map(ab_test_to).collect(),
    }
}

//! Conversions and attribution reports out.

use std::collections::BTreeMap;

use crm_kit::{money::from_minor, time::to_timestamp};
use crm_proto::crm::campaigns::v1 as pb;

use crate::{
    resources::{CAMPAIGN, CUSTOMER, DELIVERY, JOURNEY},
    store::conversions::{ConversionRow, Earned},
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

/// What a sender's messages earned, as report `name`.
pub fn attribution_to(name: &str, earned: &Earned, window_days: i64) -> pb::Attribution {
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
    }
}

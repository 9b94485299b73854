//! The wire form of grading settings: validated in, with the cut points and the lifetime-value model out.

use chrono::{DateTime, Utc};
use crm_kit::{FieldViolation, money, time};
use crm_proto::crm::profiles::v1 as pb;

use crate::{domain::grading::GradingSettings, store::grading::GradingState};

/// The settings' resource name.
pub const SETTINGS_NAME: &str = "gradingSettings";

/// The paths UpdateGradingSettings may change.
pub const WRITABLE: &[&str] = &[
    "currency_code",
    "high_min_score",
    "medium_min_score",
    "new_days",
    "at_risk_days",
    "at_risk_gap_factor",
    "lapsed_days",
    "loyal_min_purchases",
    "won_back_days",
    "regrade_interval_hours",
    "value_horizon_days",
];

/// Stored settings, when they were set, and the cut points in use, as the API returns them.
pub fn to_proto(s: &GradingSettings, update_time: Option<DateTime<Utc>>, state: &GradingState) -> pb::GradingSettings {
    let cut_points = state.compute_time.map(|compute_time| pb::GradingCutPoints {
        recency_days: state.recency_days.clone().unwrap_or_default(),
        frequency: state.frequency.clone().unwrap_or_default(),
        monetary: state.monetary.iter().flatten().map(|m| money::from_minor(&s.currency_code, *m)).collect(),
        graded_customers: state.graded_customers,
        compute_time: Some(time::to_timestamp(compute_time)),
    });
    pb::GradingSettings {
        name: SETTINGS_NAME.to_owned(),
        currency_code: s.currency_code.clone(),
        high_min_score: s.high_min_score,
        medium_min_score: s.medium_min_score,
        new_days: s.new_days,
        at_risk_days: s.at_risk_days,
        at_risk_gap_factor: s.at_risk_gap_factor,
        lapsed_days: s.lapsed_days,
        loyal_min_purchases: s.loyal_min_purchases,
        won_back_days: s.won_back_days,
        regrade_interval_hours: s.regrade_interval_hours,
        cut_points,
        update_time: update_time.map(time::to_timestamp),
        value_horizon_days: s.value_horizon_days,
        lifetime_model: lifetime_model(state),
    }
}

fn lifetime_model(state: &GradingState) -> Option<pb::LifetimeValueModel> {
    let model = state.model()?;
    Some(pb::LifetimeValueModel {
        r: model.purchases.r,
        alpha: model.purchases.alpha,
        a: model.purchases.a,
        b: model.purchases.b,
        p: model.spend.map_or(0.0, |s| s.p),
        q: model.spend.map_or(0.0, |s| s.q),
        gamma: model.spend.map_or(0.0, |s| s.gamma),
        fitted_customers: i64::try_from(model.fitted_customers).unwrap_or(i64::MAX),
        repeat_check: model.repeat_check,
        fit_time: state.model_fit_time.map(time::to_timestamp),
    })
}

/// Settings from a request, validated; violations named under `prefix`.
pub fn from_proto(p: &pb::GradingSettings, prefix: &str) -> Result<GradingSettings, Vec<FieldViolation>> {
    let settings = GradingSettings {
        currency_code: p.currency_code.clone(),
        high_min_score: p.high_min_score,
        medium_min_score: p.medium_min_score,
        new_days: p.new_days,
        at_risk_days: p.at_risk_days,
        at_risk_gap_factor: p.at_risk_gap_factor,
        lapsed_days: p.lapsed_days,
        loyal_min_purchases: p.loyal_min_purchases,
        won_back_days: p.won_back_days,
        regrade_interval_hours: p.regrade_interval_hours,
        value_horizon_days: p.value_horizon_days,
    };
    let violations: Vec<FieldViolation> = settings
        .violations()
        .into_iter()
        .map(|(field, reason, message)| FieldViolation::new(format!("{prefix}.{field}"), reason, message))
        .collect();
    if violations.is_empty() { Ok(settings) } else { Err(violations) }
}

crm_kit::mask_fields!(pb::GradingSettings;
    "currency_code" => currency_code,
    "high_min_score" => high_min_score,
    "medium_min_score" => medium_min_score,
    "new_days" => new_days,
    "at_risk_days" => at_risk_days,
    "at_risk_gap_factor" => at_risk_gap_factor,
    "lapsed_days" => lapsed_days,
    "loyal_min_purchases" => loyal_min_purchases,
    "won_back_days" => won_back_days,
    "regrade_interval_hours" => regrade_interval_hours,
    "value_horizon_days" => value_horizon_days,
);

//! Value grading and lifecycle settings of a tenant (the defaults apply
//! until an administrator sets them), and what makes a set of them valid.

/// A tenant's grading settings.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GradingSettings {
    pub currency_code: String,
    pub high_min_score: i32,
    pub medium_min_score: i32,
    pub new_days: i32,
    pub at_risk_days: i32,
    pub at_risk_gap_factor: f64,
    pub lapsed_days: i32,
    pub loyal_min_purchases: i32,
    pub won_back_days: i32,
    pub regrade_interval_hours: i32,
    pub value_horizon_days: i32,
}

impl Default for GradingSettings {
    fn default() -> Self {
        Self {
            currency_code: "CNY".to_owned(),
            high_min_score: 12,
            medium_min_score: 8,
            new_days: 30,
            at_risk_days: 90,
            at_risk_gap_factor: 2.0,
            lapsed_days: 365,
            loyal_min_purchases: 5,
            won_back_days: 90,
            regrade_interval_hours: 24,
            value_horizon_days: 365,
        }
    }
}

/// The shortest silence that makes anyone AT_RISK, whatever their rhythm.
pub const MIN_AT_RISK_DAYS: i32 = 14;

impl GradingSettings {
    /// The (field, reason, message) of every rule these settings break.
    pub fn violations(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut found = Vec::new();
        if crm_kit::money::exponent(&self.currency_code).is_none() {
            found.push(("currency_code", "INVALID_CURRENCY", "an ISO 4217 currency code with minor units, e.g. CNY".to_owned()));
        }
        let days = [
            ("new_days", self.new_days),
            ("at_risk_days", self.at_risk_days),
            ("lapsed_days", self.lapsed_days),
            ("won_back_days", self.won_back_days),
        ];
        for (field, value) in days {
            if !(1..=3650).contains(&value) {
                found.push((field, "OUT_OF_RANGE", "1 to 3650 days".to_owned()));
            }
        }
        if !(3..=15).contains(&self.high_min_score)
            || !(3..=15).contains(&self.medium_min_score)
            || self.medium_min_score >= self.high_min_score
        {
            found.push(("medium_min_score", "INVALID_CUTS", "3 ≤ medium_min_score < high_min_score ≤ 15".to_owned()));
        }
        if self.at_risk_days >= self.lapsed_days {
            found.push(("at_risk_days", "INVALID_THRESHOLDS", "fewer days than lapsed_days".to_owned()));
        }
        if !(1.0..=100.0).contains(&self.at_risk_gap_factor) {
            found.push(("at_risk_gap_factor", "OUT_OF_RANGE", "1 to 100 typical gaps".to_owned()));
        }
        if !(2..=1_000_000).contains(&self.loyal_min_purchases) {
            found.push(("loyal_min_purchases", "OUT_OF_RANGE", "2 or more purchases".to_owned()));
        }
        if !(1..=168).contains(&self.regrade_interval_hours) {
            found.push(("regrade_interval_hours", "OUT_OF_RANGE", "1 to 168 hours".to_owned()));
        }
        if !(30..=1825).contains(&self.value_horizon_days) {
            found.push(("value_horizon_days", "OUT_OF_RANGE", "30 to 1825 days".to_owned()));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_broken_settings_name_their_field() {
        assert!(GradingSettings::default().violations().is_empty());
        let broken = GradingSettings { currency_code: "XAU".into(), medium_min_score: 12, at_risk_days: 400, ..Default::default() };
        let fields: Vec<_> = broken.violations().into_iter().map(|(field, _, _)| field).collect();
        assert_eq!(fields, ["currency_code", "medium_min_score", "at_risk_days"]);
    }
}

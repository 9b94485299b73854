//! The loyalty programme: what a purchase earns (points per currency unit,
//! times the customer's tier multiplier) and which member tier a customer's
//! progress over the rolling window reaches.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::is_slug;

/// A purchase recorded in profiles, as the programme earns on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub customer: Uuid,
    pub transaction: Uuid,
    pub currency: String,
    /// The amount in minor units.
    pub minor: i64,
}

/// The most tiers a programme has.
pub const MAX_TIERS: usize = 10;

/// What tiers are judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Points granted within the window.
    #[default]
    Points,
    /// Spend on purchases within the window, in minor units of the earn currency.
    Spend,
}

/// A member tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub id: String,
    pub display_name: String,
    /// The least progress that reaches it.
    pub threshold: i64,
    /// Earning multiplier in percent (100: ×1).
    pub multiplier_percent: i32,
}

/// A tenant's programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub earn_currency: String,
    /// Points per whole currency unit; 0: purchases earn nothing.
    pub points_per_unit: i32,
    /// 0: earned points never expire.
    pub earned_points_expire_days: i32,
    pub basis: Basis,
    pub window_days: i32,
    /// Lowest first, thresholds strictly increasing.
    pub tiers: Vec<Tier>,
    /// Since when purchases earn (the rate was last turned on): the stream's
    /// older purchases, replayed to a newly followed tenant, earn nothing.
    #[serde(default)]
    pub earning_since: Option<DateTime<Utc>>,
}

impl Default for Program {
    fn default() -> Self {
        Self {
            earn_currency: "CNY".into(),
            points_per_unit: 0,
            earned_points_expire_days: 0,
            basis: Basis::Points,
            window_days: 365,
            tiers: Vec::new(),
            earning_since: None,
        }
    }
}

impl Program {
    /// `self` as changed at `now` from `before`: earning starts (again) now
    /// when the rate goes from 0 to more.
    pub fn changed_from(mut self, before: &Program, now: DateTime<Utc>) -> Self {
        self.earning_since = match (before.points_per_unit > 0, self.points_per_unit > 0) {
            (_, false) => None,
            (false, true) => Some(now),
            (true, true) => before.earning_since,
        };
        self
    }

    /// Whether a purchase made at `time` earns.
    pub fn earns_at(&self, time: DateTime<Utc>) -> bool {
        self.earning_since.is_some_and(|since| time >= since)
    }

    /// The tier `progress` reaches (the highest whose threshold it meets), if any.
    pub fn tier_for(&self, progress: i64) -> Option<&Tier> {
        self.tiers.iter().rev().find(|t| progress >= t.threshold)
    }

    /// The points a purchase of `minor` units of `currency` (with `exponent`
    /// decimal places) earns a customer in tier `tier`: floor(amount × rate ×
    /// multiplier), nothing in another currency.
    pub fn earned(&self, currency: &str, minor: i64, exponent: u32, tier: &str) -> i64 {
        if currency != self.earn_currency || minor <= 0 || self.points_per_unit <= 0 {
            return 0;
        }
        let multiplier = self.tiers.iter().find(|t| t.id == tier).map_or(100, |t| t.multiplier_percent);
        let scaled = i128::from(minor) * i128::from(self.points_per_unit) * i128::from(multiplier);
        let per = 100 * 10_i128.pow(exponent);
        i64::try_from(scaled / per).unwrap_or(i64::MAX)
    }

    /// Every problem of the programme: (field, reason, message).
    pub fn check(&self) -> Vec<(String, &'static str, String)> {
        let mut problems = Vec::new();
        let mut problem = |field: String, reason, message: String| problems.push((field, reason, message));
        if !(0..=1000).contains(&self.points_per_unit) {
            problem("loyalty_program.points_per_unit".into(), "INVALID_RATE", "0-1000 points per unit".into());
        }
        if !(0..=3650).contains(&self.earned_points_expire_days) {
            problem("loyalty_program.earned_points_expire_days".into(), "INVALID_EXPIRY", "1-3650 days, or 0 for never".into());
        }
        if !(1..=3650).contains(&self.window_days) {
            problem("loyalty_program.tier_window_days".into(), "INVALID_WINDOW", "1-3650 days".into());
        }
        if self.tiers.len() > MAX_TIERS {
            problem("loyalty_program.tiers".into(), "TOO_MANY_TIERS", format!("at most {MAX_TIERS} tiers"));
        }
        let mut previous = 0;
        for (i, tier) in self.tiers.iter().enumerate() {
            let field = format!("loyalty_program.tiers[{i}]");
            if !is_slug(&tier.id) || self.tiers[..i].iter().any(|t| t.id == tier.id) {
                problem(format!("{field}.id"), "INVALID_TIER_ID", "unique, 1-63 lowercase letters, digits and hyphens".into());
            }
            if tier.display_name.trim().is_empty() || tier.display_name.chars().count() > 100 {
                problem(format!("{field}.display_name"), "INVALID_DISPLAY_NAME", "1-100 characters".into());
            }
            if tier.threshold <= previous {
                problem(format!("{field}.threshold"), "INVALID_THRESHOLD", "more than zero and than the tier below".into());
            }
            previous = tier.threshold.max(previous);
            if !(100..=1000).contains(&tier.multiplier_percent) {
                problem(format!("{field}.multiplier_percent"), "INVALID_MULTIPLIER", "100-1000 percent".into());
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> Program {
        let tier = |id: &str, threshold, multiplier_percent| Tier { id: id.into(), display_name: id.into(), threshold, multiplier_percent };
        Program { points_per_unit: 1, tiers: vec![tier("silver", 1000, 100), tier("gold", 5000, 150)], ..Program::default() }
    }

    #[test]
    fn a_purchase_earns_whole_points_at_the_tiers_multiplier() {
        let p = program();
        // CNY 99.99 at 1 point per yuan: 99 points; gold's 1.5×: 149.
        assert_eq!(p.earned("CNY", 9_999, 2, ""), 99);
        assert_eq!(p.earned("CNY", 9_999, 2, "gold"), 149);
        assert_eq!(p.earned("USD", 9_999, 2, "gold"), 0, "another currency earns nothing");
        assert_eq!(p.earned("CNY", 0, 2, ""), 0);
        assert_eq!(Program::default().earned("CNY", 9_999, 2, ""), 0, "no rate, no points");
        // A currency without decimals (JPY-like exponent 0).
        assert_eq!(Program { earn_currency: "JPY".into(), ..p }.earned("JPY", 1_234, 0, ""), 1_234);
    }

    #[test]
    fn the_highest_tier_reached_counts() {
        let p = program();
        assert_eq!(p.tier_for(999), None);
        assert_eq!(p.tier_for(1000).map(|t| t.id.as_str()), Some("silver"));
        assert_eq!(p.tier_for(70_000).map(|t| t.id.as_str()), Some("gold"));
        assert!(p.check().is_empty());
    }

    #[test]
    fn bad_programmes_name_each_field() {
        let mut p = program();
        p.tiers[1].threshold = 1000;
        p.tiers[1].multiplier_percent = 50;
        p.points_per_unit = -1;
        let fields: Vec<String> = p.check().into_iter().map(|(f, _, _)| f).collect();
        assert_eq!(
            fields,
            ["loyalty_program.points_per_unit", "loyalty_program.tiers[1].threshold", "loyalty_program.tiers[1].multiplier_percent"]
        );
    }
}

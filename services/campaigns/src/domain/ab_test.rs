//! A/B/n tests of a journey's send step or of a campaign: which group a run
//! or an audience member falls in (deterministic, so a retried step or a
//! repeated snapshot page lands in the same one), and when the winner is
//! chosen — the best variant against the runner-up with a two-sided
//! two-proportion z-test at p < 0.05, once every variant has its minimum
//! sample; with no significant difference by the deadline, the control is
//! kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The group name of the holdout.
pub const HOLDOUT: &str = "holdout";
/// The most variants besides the control.
pub const MAX_VARIANTS: usize = 4;
/// The significance level at the deadline.
pub const ALPHA: f64 = 0.05;
/// The significance a winner needs before the deadline. The numbers are
/// looked at again and again while a test runs; each look at 0.05 would be
/// another chance of a false winner. A strict bound for the looks before
/// the deadline and 0.05 at it (the Haybittle–Peto rule) keeps the overall
/// false-positive rate near 5 %.
pub const INTERIM_ALPHA: f64 = 0.001;

/// What decides the winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Open,
    Click,
    Conversion,
}

/// Another version of the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub template: String,
    pub variables: BTreeMap<String, String>,
    /// A campaign variant's own local send time (minute of the day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_send_minute: Option<i32>,
}

/// A send step's test (a campaign's: [`CampaignTest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbTest {
    /// "b", "c", … in order (the step's own message is "a").
    pub variants: Vec<Variant>,
    pub holdout_percent: i32,
    pub metric: Metric,
    pub min_sample: i64,
    pub decide_within_days: i64,
}

/// The name of variant `index` (0: the control, "a").
pub fn variant_name(index: usize) -> String {
    char::from(b'a' + u8::try_from(index.min(25)).unwrap_or(25)).to_string()
}

/// The index of variant `name`.
pub fn variant_index(name: &str) -> Option<usize> {
    match name.as_bytes() {
        [c @ b'a'..=b'z'] => Some(usize::from(c - b'a')),
        _ => None,
    }
}

/// Where a run falls at a tested step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    Holdout,
    /// 0: the control.
    Variant(usize),
}

/// A stable 64-bit hash of the run and step for decision `salt`: the same
/// run always falls in the same group. FNV-1a of the bytes, then each salt
/// through SplitMix64's finaliser, so that the decisions (holdout, variant,
/// test or rest) are independent of each other: FNV-1a alone differs only
/// in its last step between salts, and its remainders then go together.
fn hash(run: Uuid, step: &str, salt: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run.as_bytes().iter().chain(step.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h.wrapping_add(u64::from(salt).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl AbTest {
    /// Variants including the control.
    pub fn groups(&self) -> usize {
        self.variants.len() + 1
    }

    /// The group of run `run` at step `step`: the holdout, else the winner once chosen, else an even split.
    pub fn assign(&self, run: Uuid, step: &str, winner: Option<usize>) -> Assignment {
        let bucket = hash(run, step, 0) % 100;
        if bucket < u64::try_from(self.holdout_percent.max(0)).unwrap_or(0) {
            return Assignment::Holdout;
        }
        match winner {
            Some(w) => Assignment::Variant(w),
            None => Assignment::Variant(usize::try_from(hash(run, step, 1) % self.groups() as u64).unwrap_or(0)),
        }
    }

    /// Every problem of a journey step's test: (reason, message).
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = self.check_groups();
        if !(1..=90).contains(&self.decide_within_days) {
            problems.push(("INVALID_DEADLINE", "a decision within 1-90 days".to_owned()));
        }
        problems
    }

    /// Every problem of the variants, holdout and sample: (reason, message).
    fn check_groups(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.variants.is_empty() || self.variants.len() > MAX_VARIANTS {
            problems.push(("INVALID_AB_TEST", format!("a test has 1-{MAX_VARIANTS} variants besides the step's own message")));
        }
        if self.variants.iter().any(|v| v.template.is_empty()) {
            problems.push(("MISSING_TEMPLATE", "each variant names its template".to_owned()));
        }
        if !(0..=50).contains(&self.holdout_percent) {
            problems.push(("INVALID_HOLDOUT", "a holdout of 0-50 percent".to_owned()));
        }
        if !(10..=100_000).contains(&self.min_sample) {
            problems.push(("INVALID_SAMPLE", "a minimum sample of 10-100000 messages per variant".to_owned()));
        }
        problems
    }
}

/// The group name of a tested campaign's rest, sent the winner after the test.
pub const REST: &str = "rest";

/// A campaign's test: a send step's, plus the fraction of the audience
/// tested and how long the campaign waits for a significant difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignTest {
    /// Its `decide_within_days` is unused: `decide_after_minutes` says.
    pub test: AbTest,
    /// Percent of the audience outside the holdout in the test, 1-100.
    pub test_percent: i32,
    pub decide_after_minutes: i64,
}

/// Where an audience member of a tested campaign falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignGroup {
    Holdout,
    /// 0: the control.
    Variant(usize),
    /// Waits for the winner.
    Rest,
}

impl CampaignTest {
    /// The longest a campaign waits for a significant difference: 30 days.
    pub const MAX_DECIDE_AFTER_MINUTES: i64 = 30 * 24 * 60;

    /// The group of customer `customer` in campaign `campaign`'s audience.
    pub fn group_of(&self, campaign: Uuid, customer: Uuid) -> CampaignGroup {
        let campaign = campaign.to_string();
        match self.test.assign(customer, &campaign, None) {
            Assignment::Holdout => CampaignGroup::Holdout,
            Assignment::Variant(_) if hash(customer, &campaign, 2) % 100 >= u64::try_from(self.test_percent.max(0)).unwrap_or(0) => {
                CampaignGroup::Rest
            }
            Assignment::Variant(i) => CampaignGroup::Variant(i),
        }
    }

    /// Every problem of the test's numbers: (reason, message).
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = self.test.check_groups();
        if !(1..=100).contains(&self.test_percent) {
            problems.push(("INVALID_TEST_PERCENT", "a test of 1-100 percent of the audience outside the holdout".to_owned()));
        }
        if !(1..=Self::MAX_DECIDE_AFTER_MINUTES).contains(&self.decide_after_minutes) {
            problems.push(("INVALID_DEADLINE", "a decision within 1 minute to 30 days, in whole minutes".to_owned()));
        }
        problems
    }
}

/// One variant's numbers: messages sent and successes by the metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub variant: String,
    pub sent: i64,
    pub successes: i64,
}

/// A chosen winner.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub winner: String,
    /// "SIGNIFICANT" or "NO_SIGNIFICANT_DIFFERENCE".
    pub reason: &'static str,
    pub detail: String,
}

fn rate(s: &Sample) -> f64 {
    if s.sent > 0 { s.successes as f64 / s.sent as f64 } else { 0.0 }
}

/// The winner of `test`, if one can be chosen from `samples` (one per
/// variant, the control included) now; `deadline_passed`: the test's time is up.
pub fn decide(test: &AbTest, samples: &[Sample], deadline_passed: bool) -> Option<Decision> {
    let control = || Decision {
        winner: variant_name(0),
        reason: "NO_SIGNIFICANT_DIFFERENCE",
        detail: "no variant was significantly better by the deadline: the control is kept".to_owned(),
    };
    let full = samples.len() == test.groups() && samples.iter().all(|s| s.sent >= test.min_sample);
    if !full {
        return deadline_passed.then(control);
    }
    let mut ranked: Vec<&Sample> = samples.iter().collect();
    ranked.sort_by(|a, b| rate(b).total_cmp(&rate(a)).then_with(|| a.variant.cmp(&b.variant)));
    let (best, second) = (ranked[0], ranked[1]);
    let p = two_proportion_p(best.successes, best.sent, second.successes, second.sent);
    if p < if deadline_passed { ALPHA } else { INTERIM_ALPHA } {
        let detail =
            format!("p = {p:.4} ({} {:.1}% against {} {:.1}%)", best.variant, rate(best) * 100.0, second.variant, rate(second) * 100.0);
        return Some(Decision { winner: best.variant.clone(), reason: "SIGNIFICANT", detail });
    }
    deadline_passed.then(control)
}

/// The two-sided p-value of a two-proportion z-test (pooled) of s1/n1 against s2/n2.
pub fn two_proportion_p(s1: i64, n1: i64, s2: i64, n2: i64) -> f64 {
    if n1 <= 0 || n2 <= 0 {
        return 1.0;
    }
    let (n1, n2) = (n1 as f64, n2 as f64);
    let pooled = (s1 + s2) as f64 / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    let z = ((s1 as f64 / n1) - (s2 as f64 / n2)).abs() / se;
    2.0 * (1.0 - normal_cdf(z))
}

/// The standard normal CDF, through erf (Abramowitz & Stegun 7.1.26, error < 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * (x.abs() / std::f64::consts::SQRT_2));
    let poly = t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(x * x) / 2.0).exp();
    if x >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(holdout_percent: i32) -> AbTest {
        let variant = Variant { template: "t2".into(), variables: BTreeMap::new(), local_send_minute: None };
        AbTest { variants: vec![variant], holdout_percent, metric: Metric::Click, min_sample: 100, decide_within_days: 14 }
    }

    fn sample(variant: &str, sent: i64, successes: i64) -> Sample {
        Sample { variant: variant.into(), sent, successes }
    }

    #[test]
    fn the_normal_tail_matches_published_values() {
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-9);
        assert!((normal_cdf(-2.575_829) - 0.005).abs() < 1e-6);
        // 120/1000 against 80/1000: z ≈ 2.98, p ≈ 0.0029.
        let p = two_proportion_p(120, 1000, 80, 1000);
        assert!((p - 0.0029).abs() < 0.0003, "{p}");
        assert_eq!(two_proportion_p(0, 100, 0, 100), 1.0);
    }

    #[test]
    fn runs_fall_in_stable_groups_near_the_split_asked_for() {
        let t = test(10);
        let mut counts = BTreeMap::new();
        for _ in 0..20_000 {
            *counts.entry(format!("{:?}", t.assign(Uuid::now_v7(), "offer", None))).or_insert(0) += 1;
        }
        let holdout = counts["Holdout"];
        assert!((1_700..2_300).contains(&holdout), "{counts:?}");
        assert!((8_400..9_600).contains(&counts["Variant(0)"]), "{counts:?}");
        let run = Uuid::now_v7();
        assert_eq!(t.assign(run, "offer", None), t.assign(run, "offer", None));
        // Once decided, everyone outside the holdout gets the winner.
        assert!((0..1000).all(|_| t.assign(Uuid::now_v7(), "offer", Some(1)) != Assignment::Variant(0)));
    }

    #[test]
    fn a_winner_needs_the_sample_and_significance_or_the_deadline_keeps_the_control() {
        let t = test(0);
        assert_eq!(decide(&t, &[sample("a", 50, 5), sample("b", 50, 20)], false), None, "sample too small");
        // p ≈ 0.003: not before the deadline (the interim bound is 0.001), at it.
        assert_eq!(decide(&t, &[sample("a", 1000, 80), sample("b", 1000, 120)], false), None);
        let won = decide(&t, &[sample("a", 1000, 80), sample("b", 1000, 120)], true).unwrap();
        assert_eq!((won.winner.as_str(), won.reason), ("b", "SIGNIFICANT"));
        // p < 0.001: a winner before the deadline.
        let early = decide(&t, &[sample("a", 1000, 80), sample("b", 1000, 140)], false).unwrap();
        assert_eq!(early.winner, "b");
        assert_eq!(decide(&t, &[sample("a", 1000, 100), sample("b", 1000, 104)], false), None, "not significant yet");
        let kept = decide(&t, &[sample("a", 1000, 100), sample("b", 1000, 104)], true).unwrap();
        assert_eq!((kept.winner.as_str(), kept.reason), ("a", "NO_SIGNIFICANT_DIFFERENCE"));
        assert_eq!(decide(&t, &[sample("a", 5, 1)], true).unwrap().winner, "a");
        assert_eq!((variant_name(0), variant_name(2), variant_index("c")), ("a".to_owned(), "c".to_owned(), Some(2)));
    }

    #[test]
    fn a_campaign_audience_splits_into_holdout_test_and_rest_stably() {
        let t = CampaignTest { test: test(10), test_percent: 20, decide_after_minutes: 60 };
        let campaign = Uuid::now_v7();
        let mut counts: BTreeMap<String, i32> = BTreeMap::new();
        for _ in 0..20_000 {
            *counts.entry(format!("{:?}", t.group_of(campaign, Uuid::now_v7()))).or_default() += 1;
        }
        // 10 % held out; 20 % of the other 90 % tested, half each; 72 % rest.
        assert!((1_700..2_300).contains(&counts["Holdout"]), "{counts:?}");
        assert!((1_500..2_100).contains(&counts["Variant(0)"]) && (1_500..2_100).contains(&counts["Variant(1)"]), "{counts:?}");
        assert!((13_800..15_000).contains(&counts["Rest"]), "{counts:?}");
        let customer = Uuid::now_v7();
        assert_eq!(t.group_of(campaign, customer), t.group_of(campaign, customer));
        // Odd fractions and up to five groups split evenly: each decision independent of the others.
        for (groups, test_percent) in [(2, 1), (2, 3), (2, 7), (4, 2), (5, 33)] {
            let variant = Variant { template: "t".into(), variables: BTreeMap::new(), local_send_minute: None };
            let ab = AbTest { variants: vec![variant; groups - 1], ..test(10) };
            let t = CampaignTest { test: ab, test_percent, decide_after_minutes: 60 };
            let mut per_group = vec![0f64; groups];
            let (mut tested, total) = (0f64, 200_000);
            for _ in 0..total {
                match t.group_of(campaign, Uuid::now_v7()) {
                    CampaignGroup::Variant(i) => {
                        per_group[i] += 1.0;
                        tested += 1.0;
                    }
                    CampaignGroup::Holdout | CampaignGroup::Rest => {}
                }
            }
            let share = tested / (total as f64 * 0.9) * 100.0;
            assert!(
                (share - f64::from(test_percent)).abs() < 0.1 * f64::from(test_percent) + 0.1,
                "{groups} groups at {test_percent} %: {share}"
            );
            let even = tested / groups as f64;
            assert!(per_group.iter().all(|n| (n - even).abs() < 0.15 * even), "{groups} groups at {test_percent} %: {per_group:?}");
        }
        let everyone = CampaignTest { test_percent: 100, ..t.clone() };
        assert!((0..1000).all(|_| everyone.group_of(campaign, Uuid::now_v7()) != CampaignGroup::Rest));
        assert!(t.check().is_empty());
        let bad = CampaignTest { test_percent: 0, decide_after_minutes: 0, ..t };
        let reasons: Vec<&str> = bad.check().into_iter().map(|(r, _)| r).collect();
        assert_eq!(reasons, ["INVALID_TEST_PERCENT", "INVALID_DEADLINE"]);
    }
}

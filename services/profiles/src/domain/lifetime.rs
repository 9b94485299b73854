//! The lifetime-value model of a tenant's customers: BG/NBD (Fader, Hardie
//! & Lee, "Counting your customers the easy way", 2005) for how many more
//! purchases a customer will make and the probability that they are still
//! a customer at all, and Gamma-Gamma (Fader, Hardie & Lee, "RFM and CLV",
//! 2005) for what each of those purchases will be worth. Both are fitted by
//! maximum likelihood (with a weak prior that keeps degenerate data finite)
//! on (a sample of) the tenant's purchasing customers; how and why is in
//! docs/api/profiles.md.

use std::collections::BTreeMap;

use super::optimize::nelder_mead;

/// One customer's purchases as the models see them; times in days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct History {
    /// Purchases after the first ("x").
    pub repeats: u32,
    /// Days from the first purchase to the last ("t_x"; 0 without repeats).
    pub last: f64,
    /// Days from the first purchase to now ("T").
    pub age: f64,
    /// Net spend per purchase, in minor units (0 or less once refunds ate it).
    pub mean_value: f64,
}

impl History {
    fn purchases(&self) -> f64 {
        f64::from(self.repeats) + 1.0
    }
}

/// BG/NBD: purchase rates are Gamma(r, α) across customers (α in days),
/// and after each repeat purchase a customer leaves for good with a
/// probability that is Beta(a, b) across customers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// Gamma-Gamma: each purchase's value is Gamma(p, ν) around a customer's
/// own ν, which is Gamma(q, γ) across customers (γ in minor units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

/// A tenant's fitted model and how well it explains the data it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LifetimeModel {
    pub purchases: BgNbd,
    /// None when purchase values are too alike to fit (all the same price,
    /// say): each customer's own mean value then stands.
    pub spend: Option<GammaGamma>,
    /// How many customers it was fitted on (a sample of at most `MAX_FIT_SAMPLE`).
    pub fitted_customers: usize,
    /// Repeat purchases the model expects of those customers over their
    /// ages, over the repeat purchases they made: near 1 when it fits.
    pub repeat_check: f64,
}

/// What the model says of one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Probability that the customer has not left for good.
    pub probability_alive: f64,
    /// Purchases expected over the horizon.
    pub expected_purchases: f64,
    /// Spend expected over the horizon, in minor units, undiscounted.
    pub expected_value: f64,
}

/// Customers a fit uses at most (an even sample of the tenant's): enough to
/// pin the parameters down, few enough to fit in about a second.
pub const MAX_FIT_SAMPLE: usize = 50_000;
/// Purchasing customers, and repeat purchasers among them, a fit needs at least.
pub const MIN_FIT_CUSTOMERS: usize = 50;
pub const MIN_FIT_REPEATERS: usize = 10;

impl LifetimeModel {
    /// Fits both models to `histories`; None when there are too few
    /// customers or repeat purchasers, or the fit does not converge to a
    /// usable model (the tenant then has no lifetime values until it does).
    pub fn fit(histories: impl ExactSizeIterator<Item = History>) -> Option<Self> {
        let stride = histories.len().div_ceil(MAX_FIT_SAMPLE).max(1);
        let sample: Vec<History> = histories.step_by(stride).collect();
        if sample.len() < MIN_FIT_CUSTOMERS || sample.iter().filter(|h| h.repeats > 0).count() < MIN_FIT_REPEATERS {
            return None;
        }
        let purchases = BgNbd::fit(&sample)?;
        let spend = GammaGamma::fit(&sample);
        let observed: f64 = sample.iter().map(|h| f64::from(h.repeats)).sum();
        let expected: f64 = sample.iter().map(|h| purchases.expected_repeats(h.age)).sum();
        let repeat_check = expected / observed;
        repeat_check.is_finite().then_some(Self { purchases, spend, fitted_customers: sample.len(), repeat_check })
    }

    /// The customer's prediction over the next `horizon_days`.
    pub fn predict(&self, history: &History, horizon_days: f64) -> Prediction {
        let expected_purchases = self.purchases.conditional_expected_purchases(history, horizon_days);
        Prediction {
            probability_alive: self.purchases.probability_alive(history),
            expected_purchases,
            expected_value: expected_purchases * self.spend.map_or(history.mean_value.max(0.0), |s| s.expected_mean_value(history)),
        }
    }
}

impl BgNbd {
    /// The maximum-likelihood parameters for `histories`; None if the search does not settle.
    pub fn fit(histories: &[History]) -> Option<Self> {
        let scale = time_scale(histories);
        let mut groups: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
        for h in histories {
            groups.entry(h.repeats).or_default().push((h.last / scale, h.age / scale));
        }
        let groups: Vec<(u32, Vec<(f64, f64)>)> = groups.into_iter().collect();
        let negative = |p: &[f64]| match from_logs(p) {
            Some([r, alpha, a, b]) if a + b > 1.0 + 1e-6 => -log_likelihood(&Self { r, alpha, a, b }, &groups) - log_prior(p),
            _ => f64::NAN,
        };
        let [r, alpha, a, b] = minimise(negative)?;
        Some(Self { r, alpha: alpha * scale, a, b })
    }

    /// The log-likelihood of `histories` under these parameters.
    pub fn log_likelihood(&self, histories: &[History]) -> f64 {
        let groups: Vec<(u32, Vec<(f64, f64)>)> = histories.iter().map(|h| (h.repeats, vec![(h.last, h.age)])).collect();
        log_likelihood(self, &groups)
    }

    /// P(alive | x, t_x, T): 1 without repeat purchases (the model lets
    /// customers leave only after one), falling the longer they are silent.
    pub fn probability_alive(&self, h: &History) -> f64 {
        if h.repeats == 0 {
            return 1.0;
        }
        1.0 / (1.0 + self.dropout_odds(h).exp())
    }

    /// The log of the odds that the customer left after their last purchase.
    fn dropout_odds(&self, h: &History) -> f64 {
        let x = f64::from(h.repeats);
        self.a.ln() - (self.b + x - 1.0).ln() + (self.r + x) * ((self.alpha + h.age).ln() - (self.alpha + h.last).ln())
    }

    /// E[Y(t) | x, t_x, T]: purchases expected over the next `t` days.
    pub fn conditional_expected_purchases(&self, h: &History, t: f64) -> f64 {
        let Self { r, alpha, b, .. } = *self;
        let a = away_from_one(self.a);
        let x = f64::from(h.repeats);
        let z = t / (alpha + h.age + t);
        let log_tail = (r + x) * ((alpha + h.age) / (alpha + h.age + t)).ln() + ln_hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        let numerator = (a + b + x - 1.0) / (a - 1.0) * (1.0 - log_tail.exp());
        let denominator = 1.0 + if h.repeats > 0 { self.dropout_odds(h).exp() } else { 0.0 };
        clean(numerator / denominator)
    }

    /// E[X(t)]: repeat purchases a new customer is expected to make in `t` days.
    pub fn expected_repeats(&self, t: f64) -> f64 {
        let Self { r, alpha, b, .. } = *self;
        let a = away_from_one(self.a);
        let log_tail = r * (alpha / (alpha + t)).ln() + ln_hyp2f1(r, b, a + b - 1.0, t / (alpha + t));
        clean((a + b - 1.0) / (a - 1.0) * (1.0 - log_tail.exp()))
    }
}

/// Σ log L over customers grouped by their repeat count (the Gamma terms
/// depend on the count alone, so each is computed once per group).
fn log_likelihood(m: &BgNbd, groups: &[(u32, Vec<(f64, f64)>)]) -> f64 {
    let BgNbd { r, alpha, a, b } = *m;
    let constant = lgamma(a + b) - lgamma(b) - lgamma(r) + r * alpha.ln();
    let mut total = 0.0;
    for (x, rows) in groups {
        let x = f64::from(*x);
        let per_count = constant + lgamma(r + x) + lgamma(b + x) - lgamma(a + b + x);
        let left = if x > 0.0 { a.ln() - (b + x - 1.0).ln() } else { f64::NEG_INFINITY };
        for &(last, age) in rows {
            total += per_count + log_add_exp(-(r + x) * (alpha + age).ln(), left - (r + x) * (alpha + last).ln());
        }
    }
    total
}

impl GammaGamma {
    /// The maximum-likelihood parameters from the customers whose purchases
    /// kept a positive value; None if there are none or the search does not
    /// settle (values all alike have their maximum at infinity).
    pub fn fit(histories: &[History]) -> Option<Self> {
        let valued: Vec<&History> = histories.iter().filter(|h| h.mean_value > 0.0).collect();
        if valued.is_empty() {
            return None;
        }
        let scale = valued.iter().map(|h| h.mean_value).sum::<f64>() / valued.len() as f64;
        let mut groups: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
        for h in &valued {
            groups.entry(h.repeats).or_default().push(h.mean_value / scale);
        }
        let groups: Vec<(f64, Vec<f64>)> = groups.into_iter().map(|(x, m)| (f64::from(x) + 1.0, m)).collect();
        let negative = |logs: &[f64]| match from_logs(logs) {
            Some([p, q, gamma]) => -gamma_gamma_log_likelihood(&Self { p, q, gamma }, &groups) - log_prior(logs),
            None => f64::NAN,
        };
        let [p, q, gamma] = minimise(negative)?;
        Some(Self { p, q, gamma: gamma * scale })
    }

    /// The log-likelihood of `histories` (those with a positive value) under these parameters.
    pub fn log_likelihood(&self, histories: &[History]) -> f64 {
        let groups: Vec<(f64, Vec<f64>)> =
            histories.iter().filter(|h| h.mean_value > 0.0).map(|h| (h.purchases(), vec![h.mean_value])).collect();
        gamma_gamma_log_likelihood(self, &groups)
    }

    /// E[value of a purchase | the customer's purchases]: their own mean,
    /// pulled towards the population's the fewer purchases it rests on. A
    /// customer whose purchases were refunded away gets the population's.
    pub fn expected_mean_value(&self, h: &History) -> f64 {
        let Self { p, q, gamma } = *self;
        if q <= 1.0 {
            // The population mean is unbounded: the customer's own is all there is.
            return h.mean_value.max(0.0);
        }
        if h.mean_value <= 0.0 {
            return p * gamma / (q - 1.0);
        }
        let x = h.purchases();
        p * (gamma + h.mean_value * x) / (p * x + q - 1.0)
    }
}

fn gamma_gamma_log_likelihood(m: &GammaGamma, groups: &[(f64, Vec<f64>)]) -> f64 {
    let GammaGamma { p, q, gamma } = *m;
    let mut total = 0.0;
    for (x, means) in groups {
        let px = p * x;
        let per_count = lgamma(px + q) - lgamma(px) - lgamma(q) + q * gamma.ln() + px * x.ln();
        for &mean in means {
            total += per_count + (px - 1.0) * mean.ln() - (px + q) * (gamma + mean * x).ln();
        }
    }
    total
}

/// Times in units of the oldest customer's age, so that the search starts near every answer.
fn time_scale(histories: &[History]) -> f64 {
    histories.iter().map(|h| h.age).fold(1.0, f64::max)
}

/// The spread of the weak prior on each parameter's log (in the scaled
/// units the search works in): wide enough that a few thousand customers
/// outweigh it, but it keeps the estimate finite where the data cannot pin
/// it down (customers who all buy at the same rate drive the maximum
/// likelihood to r, α → ∞).
const PRIOR_SPREAD: f64 = 2.0;

/// log p(parameters) under that prior, up to a constant.
fn log_prior(logs: &[f64]) -> f64 {
    -logs.iter().map(|l| l * l).sum::<f64>() / (2.0 * PRIOR_SPREAD * PRIOR_SPREAD)
}

/// Positive parameters from the search's logs; None when absurd (the search then turns back).
fn from_logs<const N: usize>(logs: &[f64]) -> Option<[f64; N]> {
    let mut out = [0.0; N];
    for (o, l) in out.iter_mut().zip(logs) {
        *o = l.exp();
        if !(1e-6..=1e6).contains(o) {
            return None;
        }
    }
    Some(out)
}

/// Minimises a negative log-likelihood over log-parameters from all zeros
/// (every parameter 1), restarting once from where the first search stopped
/// (a simplex can stall on a ridge); the parameters, or None if it did not settle.
fn minimise<const N: usize>(negative: impl Fn(&[f64]) -> f64) -> Option<[f64; N]> {
    let first = nelder_mead(&negative, &[0.0; N], 1.0, 1e-9, 6_000);
    let found = nelder_mead(&negative, &first.point, 0.2, 1e-11, 6_000);
    // Pressed against the bounds, the likelihood was still climbing: no finite answer (values all alike).
    if !found.converged || !found.value.is_finite() || found.point.iter().any(|l| l.abs() > 13.0) {
        return None;
    }
    from_logs(&found.point)
}

/// ln ₂F₁(a, b; c; z) for a, b, c > 0 and 0 ≤ z < 1, by its series (every
/// term positive), kept in range by rescaling as it grows.
fn ln_hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    const MAX_TERMS: usize = 200_000;
    let (mut term, mut sum, mut log_scale) = (1.0_f64, 1.0_f64, 0.0_f64);
    for k in 0..MAX_TERMS {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if sum > 1e250 {
            term /= 1e250;
            sum /= 1e250;
            log_scale += 250.0 * std::f64::consts::LN_10;
        }
        if term < sum * 1e-15 && (a + k) * (b + k) * z < (c + k) * (k + 1.0) {
            break;
        }
    }
    log_scale + sum.ln()
}

/// `a`, nudged off 1, where the closed forms divide by a - 1 (their limit is continuous there).
fn away_from_one(a: f64) -> f64 {
    if (a - 1.0).abs() < 1e-7 { 1.0 + 1e-7 } else { a }
}

/// Expected counts are never negative or NaN; rounding can make them -0.0000001.
fn clean(value: f64) -> f64 {
    if value.is_finite() { value.max(0.0) } else { 0.0 }
}

fn log_add_exp(x: f64, y: f64) -> f64 {
    let (high, low) = if x > y { (x, y) } else { (y, x) };
    if low == f64::NEG_INFINITY { high } else { high + (low - high).exp().ln_1p() }
}

fn lgamma(x: f64) -> f64 {
    libm::lgamma(x)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    /// The published fit to the CDNOW sample (weeks): Fader, Hardie & Lee 2005.
    const CDNOW: BgNbd = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };

    #[test]
    fn reproduces_the_papers_worked_example() {
        // Their customer with x = 2, t_x = 30.43, T = 38.86 is expected to buy 1.226 times in the next 39 weeks.
        let h = History { repeats: 2, last: 30.43, age: 38.86, mean_value: 0.0 };
        let expected = CDNOW.conditional_expected_purchases(&h, 39.0);
        assert!((expected - 1.226).abs() < 0.001, "{expected}");
    }

    #[test]
    fn the_probability_alive_falls_with_silence_and_is_one_without_repeats() {
        let at = |last: f64, age: f64, repeats| CDNOW.probability_alive(&History { repeats, last, age, mean_value: 0.0 });
        assert_eq!(at(0.0, 70.0, 0), 1.0);
        assert!(at(30.0, 32.0, 4) > at(30.0, 40.0, 4));
        assert!(at(30.0, 40.0, 4) > at(30.0, 70.0, 4));
        assert!(at(30.0, 70.0, 4) > 0.0);
        // A silent frequent buyer is more likely gone than a silent occasional one.
        assert!(at(10.0, 70.0, 12) < at(10.0, 70.0, 1));
    }

    #[test]
    fn the_gamma_gamma_mean_moves_from_the_population_towards_the_customer() {
        let spend = GammaGamma { p: 6.25, q: 3.74, gamma: 15.44 };
        let population = spend.p * spend.gamma / (spend.q - 1.0);
        let one = spend.expected_mean_value(&History { repeats: 0, last: 0.0, age: 10.0, mean_value: 100.0 });
        let many = spend.expected_mean_value(&History { repeats: 49, last: 0.0, age: 10.0, mean_value: 100.0 });
        assert!(population < one && one < many && many < 100.0, "{population} {one} {many}");
        assert_eq!(spend.expected_mean_value(&History { repeats: 3, last: 1.0, age: 10.0, mean_value: -5.0 }), population);
    }

    #[test]
    fn customers_who_all_buy_alike_still_get_a_finite_model() {
        // Clockwork buyers: every 10 days, the maximum likelihood lies at infinity; the prior holds it.
        let alike: Vec<History> =
            (0..200).map(|i| History { repeats: i % 5, last: f64::from(i % 5) * 10.0, age: 60.0, mean_value: 100.0 }).collect();
        let model = LifetimeModel::fit(alike.into_iter()).expect("a model");
        let m = model.purchases;
        assert!([m.r, m.alpha, m.a, m.b].iter().all(|v| v.is_finite() && *v < 1e5), "{model:?}");
        assert!((model.repeat_check - 1.0).abs() < 0.2, "{model:?}");
        // All at one price: no spread to fit; each customer's own mean stands.
        assert_eq!(model.spend, None);
        let prediction = model.predict(&History { repeats: 2, last: 20.0, age: 25.0, mean_value: 100.0 }, 365.0);
        assert!((prediction.expected_value - 100.0 * prediction.expected_purchases).abs() < 1e-9);
    }

    #[test]
    fn too_little_data_fits_nothing() {
        let few: Vec<History> = (0..40).map(|i| History { repeats: i % 3, last: 5.0, age: 50.0, mean_value: 10.0 }).collect();
        assert_eq!(LifetimeModel::fit(few.into_iter()), None);
        let no_repeats: Vec<History> = (0..500).map(|_| History { repeats: 0, last: 0.0, age: 50.0, mean_value: 10.0 }).collect();
        assert_eq!(LifetimeModel::fit(no_repeats.into_iter()), None);
    }

    /// A Gamma(shape, 1) draw (Marsaglia & Tsang).
    fn gamma(rng: &mut StdRng, shape: f64) -> f64 {
        if shape < 1.0 {
            return gamma(rng, shape + 1.0) * rng.r#gen::<f64>().powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let normal = (-2.0 * rng.r#gen::<f64>().max(1e-300).ln()).sqrt() * (std::f64::consts::TAU * rng.r#gen::<f64>()).cos();
            let v = (1.0 + c * normal).powi(3);
            if v > 0.0 && rng.r#gen::<f64>().max(1e-300).ln() < 0.5 * normal * normal + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Customers drawn from a BG/NBD world with `truth`: each one's history
    /// up to an age of 60-720 days, and how often they buy in the `horizon` days after.
    fn simulate(truth: BgNbd, customers: usize, horizon: f64, rng: &mut StdRng) -> Vec<(History, u32)> {
        (0..customers)
            .map(|_| {
                let rate = gamma(rng, truth.r) / truth.alpha;
                let (left, stay) = (gamma(rng, truth.a), gamma(rng, truth.b));
                let leave = left / (left + stay);
                let age = rng.gen_range(60.0..720.0);
                let (mut t, mut repeats, mut last, mut future) = (0.0, 0, 0.0, 0);
                loop {
                    t += -rng.r#gen::<f64>().max(1e-300).ln() / rate;
                    if t > age + horizon {
                        break;
                    }
                    if t <= age {
                        repeats += 1;
                        last = t;
                    } else {
                        future += 1;
                    }
                    if rng.r#gen::<f64>() < leave {
                        break;
                    }
                }
                (History { repeats, last, age, mean_value: 1.0 }, future)
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5, ..ProptestConfig::default() })]

        /// On purchase histories drawn from known parameters, the fit is at
        /// least as likely as the truth, recovers the mean purchase rate, and
        /// forecasts the purchases of the following half-year.
        #[test]
        fn fitted_on_synthetic_histories_the_model_forecasts_them(
            r in 0.4..1.5_f64,
            alpha in 15.0..60.0_f64,
            a in 0.6..1.5_f64,
            b in 2.0..6.0_f64,
            seed in any::<u64>(),
        ) {
            let truth = BgNbd { r, alpha, a, b };
            let mut rng = StdRng::seed_from_u64(seed);
            let drawn = simulate(truth, 6_000, 180.0, &mut rng);
            let histories: Vec<History> = drawn.iter().map(|(h, _)| *h).collect();
            let fitted = BgNbd::fit(&histories).expect("a fit");
            // The fit maximises likelihood × prior: it may give up at most the truth's prior penalty in likelihood.
            let scale = time_scale(&histories);
            let truth_prior = log_prior(&[r.ln(), (alpha / scale).ln(), a.ln(), b.ln()]);
            prop_assert!(fitted.log_likelihood(&histories) >= truth.log_likelihood(&histories) + truth_prior - 1e-6, "{fitted:?} vs {truth:?}");
            let rate = |m: &BgNbd| m.r / m.alpha;
            prop_assert!((rate(&fitted) / rate(&truth) - 1.0).abs() < 0.15, "{fitted:?} vs {truth:?}");
            let forecast: f64 = histories.iter().map(|h| fitted.conditional_expected_purchases(h, 180.0)).sum();
            let actual: f64 = drawn.iter().map(|(_, future)| f64::from(*future)).sum();
            prop_assert!((forecast / actual - 1.0).abs() < 0.12, "forecast {forecast} vs actual {actual} ({fitted:?} vs {truth:?})");
            let expected: f64 = histories.iter().map(|h| fitted.expected_repeats(h.age)).sum();
            let observed: f64 = histories.iter().map(|h| f64::from(h.repeats)).sum();
            prop_assert!((expected / observed - 1.0).abs() < 0.05, "{expected} vs {observed}");
        }

        /// On purchase values drawn from known parameters, the Gamma-Gamma fit
        /// is at least as likely as the truth and its per-customer means track
        /// the customers' true means.
        #[test]
        fn fitted_on_synthetic_values_the_spend_model_tracks_true_means(
            p in 2.0..8.0_f64,
            q in 2.0..6.0_f64,
            gamma_rate in 50.0..500.0_f64,
            seed in any::<u64>(),
        ) {
            let truth = GammaGamma { p, q, gamma: gamma_rate };
            let mut rng = StdRng::seed_from_u64(seed);
            let mut histories = Vec::new();
            let mut true_means = Vec::new();
            for _ in 0..4_000 {
                let nu = gamma(&mut rng, q) / gamma_rate;
                let repeats = rng.gen_range(0..8_u32);
                let total: f64 = (0..=repeats).map(|_| gamma(&mut rng, p) / nu).sum();
                histories.push(History { repeats, last: 1.0, age: 2.0, mean_value: total / f64::from(repeats + 1) });
                true_means.push(p / nu);
            }
            let fitted = GammaGamma::fit(&histories).expect("a fit");
            let scale = histories.iter().map(|h| h.mean_value).sum::<f64>() / histories.len() as f64;
            let truth_prior = log_prior(&[p.ln(), q.ln(), (gamma_rate / scale).ln()]);
            prop_assert!(fitted.log_likelihood(&histories) >= truth.log_likelihood(&histories) + truth_prior - 1e-6, "{fitted:?} vs {truth:?}");
            let predicted: f64 = histories.iter().map(|h| fitted.expected_mean_value(h)).sum();
            let actual: f64 = true_means.iter().sum();
            prop_assert!((predicted / actual - 1.0).abs() < 0.05, "{predicted} vs {actual}");
        }
    }
}

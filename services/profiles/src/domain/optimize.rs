//! Derivative-free minimisation (Nelder–Mead simplex), for fitting the
//! lifetime-value models by maximum likelihood: their likelihoods are
//! cheap to evaluate but awkward to differentiate.

/// The point found and the function's value there.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    pub point: Vec<f64>,
    pub value: f64,
    /// Whether the simplex shrank below the tolerance (rather than running out of evaluations).
    pub converged: bool,
}

/// Minimises `f` from `start`, the first simplex spanning `step` along each
/// axis; stops when the values at the simplex's corners agree to within
/// `tolerance` relative to the best (a sum over 50 000 customers cannot
/// agree closer than its rounding) or after `max_evaluations`. Non-finite values
/// count as +∞, so `f` may refuse a region by returning NaN.
pub fn nelder_mead(f: impl Fn(&[f64]) -> f64, start: &[f64], step: f64, tolerance: f64, max_evaluations: usize) -> Minimum {
    let value = |x: &[f64]| {
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let n = start.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = (0..=n)
        .map(|i| {
            let mut x = start.to_vec();
            if i > 0 {
                x[i - 1] += step;
            }
            let v = value(&x);
            (x, v)
        })
        .collect();
    let mut evaluations = n + 1;
    let mut converged = false;
    while evaluations < max_evaluations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[n].1);
        if worst - best <= tolerance * (1.0 + best.abs()) {
            converged = true;
            break;
        }
        let centroid: Vec<f64> = (0..n).map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64).collect();
        let along = |t: f64| -> Vec<f64> { centroid.iter().zip(&simplex[n].0).map(|(c, w)| c + t * (w - c)).collect() };
        let reflected = along(-1.0);
        let reflected_value = value(&reflected);
        evaluations += 1;
        if reflected_value < best {
            let expanded = along(-2.0);
            let expanded_value = value(&expanded);
            evaluations += 1;
            simplex[n] = if expanded_value < reflected_value { (expanded, expanded_value) } else { (reflected, reflected_value) };
            continue;
        }
        if reflected_value < simplex[n - 1].1 {
            simplex[n] = (reflected, reflected_value);
            continue;
        }
        // Contract towards the better of the worst corner and its reflection.
        let contracted = if reflected_value < worst { along(-0.5) } else { along(0.5) };
        let contracted_value = value(&contracted);
        evaluations += 1;
        if contracted_value < reflected_value.min(worst) {
            simplex[n] = (contracted, contracted_value);
            continue;
        }
        // Nothing helped: shrink every corner towards the best.
        let best_point = simplex[0].0.clone();
        for corner in simplex.iter_mut().skip(1) {
            let shrunk: Vec<f64> = best_point.iter().zip(&corner.0).map(|(b, x)| b + 0.5 * (x - b)).collect();
            let v = value(&shrunk);
            *corner = (shrunk, v);
        }
        evaluations += n;
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (point, value) = simplex.swap_remove(0);
    Minimum { point, value, converged }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_the_rosenbrock_valley() {
        let rosenbrock = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let found = nelder_mead(rosenbrock, &[-1.2, 1.0], 0.5, 1e-14, 5_000);
        assert!(found.converged, "{found:?}");
        assert!((found.point[0] - 1.0).abs() < 1e-3 && (found.point[1] - 1.0).abs() < 1e-3, "{found:?}");
    }

    #[test]
    fn walks_around_a_refused_region_and_reports_running_out() {
        // NaN outside x > 0: the minimum of (x - 2)² there is still found.
        let found = nelder_mead(|x: &[f64]| if x[0] > 0.0 { (x[0] - 2.0).powi(2) } else { f64::NAN }, &[0.1], 1.0, 1e-12, 500);
        assert!((found.point[0] - 2.0).abs() < 1e-4, "{found:?}");
        let starved = nelder_mead(|x: &[f64]| x.iter().map(|v| v * v).sum(), &[5.0, 5.0, 5.0], 1.0, 1e-30, 10);
        assert!(!starved.converged);
    }
}

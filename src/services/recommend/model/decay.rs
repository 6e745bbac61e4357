//! Decay in log scale: a sum of weights, each halved every
//! [`HALF_LIFE_DAYS`] after it was observed, kept as its logarithm relative
//! to a fixed epoch so that it never needs rewriting as time passes.

use crate::domain::Timestamp;

/// Popularity and affinity halve in this time.
pub const HALF_LIFE_DAYS: f64 = 7.0;
/// Decay's time origin (2026-01-01T00:00:00Z).
pub(in crate::services::recommend) const EPOCH_MS: i64 = 1_767_225_600_000;

fn half_lives(at: Timestamp) -> f64 {
    (at.0 - EPOCH_MS) as f64 / (HALF_LIFE_DAYS * 86_400_000.0)
}

/// `ln(e^a + e^b)`, exact at −∞.
fn log_add(a: f64, b: f64) -> f64 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    if low == f64::NEG_INFINITY {
        return high;
    }
    high + (low - high).exp().ln_1p()
}

/// A decayed sum in ln scale plus `weight` observed at `at`.
pub fn decayed_add(sum: f64, weight: f64, at: Timestamp) -> f64 {
    log_add(sum, weight.ln() + half_lives(at) * std::f64::consts::LN_2)
}

/// A decayed sum's value as of `now` (for weighing, not ordering).
pub fn decayed_value(sum: f64, now: Timestamp) -> f64 {
    (sum - half_lives(now) * std::f64::consts::LN_2).exp()
}

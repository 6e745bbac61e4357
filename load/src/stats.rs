//! What a load run records: per operation, a latency histogram and a count
//! of every outcome (status, with the problem code for refusals), merged
//! from the workers at the end; live counters for the progress line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, up to ten minutes.
const MAX_MICROS: u64 = 600_000_000;

/// One operation's record in one worker.
#[derive(Clone)]
pub struct OpStats {
    latency: Histogram<u64>,
    /// Outcome (`"200"`, `"409 OUT_OF_STOCK"`, `"transport"`) → count.
    outcomes: BTreeMap<String, u64>,
    errors: u64,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            latency: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid bounds"),
            outcomes: BTreeMap::new(),
            errors: 0,
        }
    }
}

/// The records of one worker (or, merged, of the whole run).
#[derive(Clone, Default)]
pub struct Stats {
    ops: BTreeMap<&'static str, OpStats>,
}

impl Stats {
    /// Records one request of `op` that took `took` (from its intended
    /// start) and ended in `outcome`; `error` marks server errors and
    /// transport failures.
    pub fn record(&mut self, op: &'static str, took: Duration, outcome: String, error: bool) {
        let stats = self.ops.entry(op).or_insert_with(OpStats::new);
        let micros = (took.as_micros() as u64).clamp(1, MAX_MICROS);
        // Clamped into the histogram's range, so recording cannot fail.
        let _ = stats.latency.record(micros);
        *stats.outcomes.entry(outcome).or_insert(0) += 1;
        if error {
            stats.errors += 1;
        }
    }

    /// Adds `other`'s records to these.
    pub fn merge(&mut self, other: Stats) {
        for (op, theirs) in other.ops {
            let ours = self.ops.entry(op).or_insert_with(OpStats::new);
            // Same bounds on both sides, so adding cannot fail.
            let _ = ours.latency.add(&theirs.latency);
            for (outcome, n) in theirs.outcomes {
                *ours.outcomes.entry(outcome).or_insert(0) += n;
            }
            ours.errors += theirs.errors;
        }
    }

    /// The summary rows, one per operation, over `secs` of measuring.
    pub fn rows(&self, secs: f64) -> Vec<OpRow> {
        self.ops
            .iter()
            .map(|(op, s)| {
                let ms = |q: f64| s.latency.value_at_quantile(q) as f64 / 1000.0;
                let count = s.latency.len();
                OpRow {
                    operation: (*op).to_owned(),
                    count,
                    per_sec: count as f64 / secs.max(1e-9),
                    p50_ms: ms(0.50),
                    p90_ms: ms(0.90),
                    p99_ms: ms(0.99),
                    max_ms: s.latency.max() as f64 / 1000.0,
                    outcomes: s.outcomes.clone(),
                    errors: s.errors,
                }
            })
            .collect()
    }
}

/// One operation in the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpRow {
    /// e.g. `item.get`, `checkout`, `ws.push`.
    pub operation: String,
    /// Requests (or frames) recorded.
    pub count: u64,
    /// `count` over the measured seconds.
    pub per_sec: f64,
    /// Latency quantiles, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Outcome → count: the HTTP status, with the problem `code` for
    /// 4xx answers; `transport` for a request that got no answer.
    pub outcomes: BTreeMap<String, u64>,
    /// Server errors (5xx) and transport failures.
    pub errors: u64,
}

/// Counters the progress line reads while the workers run.
#[derive(Default)]
pub struct Live {
    /// Requests (and pushed frames) completed.
    pub done: AtomicU64,
    /// Of which server errors or transport failures.
    pub errors: AtomicU64,
}

impl Live {
    /// Counts one completed request.
    pub fn count(&self, error: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

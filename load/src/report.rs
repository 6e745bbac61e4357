//! The end of a run: the report, as a table for people or JSON for tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::invariants::Check;
use crate::scenarios::Scenario;
use crate::stats::OpRow;

/// Everything a run measured and checked.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// The run's tag (in every seeded email and item).
    pub run: String,
    /// Nodes loaded.
    pub targets: Vec<String>,
    /// Seconds measured (from the first iteration to the last answer).
    pub seconds: f64,
    /// Workers (requests in flight at most).
    pub workers: usize,
    /// Target iterations/s (open loop), or `null` for a closed loop.
    pub rate: Option<f64>,
    /// Items seeded.
    pub items: usize,
    /// Units per item.
    pub stock_per_item: u64,
    /// Buyers seeded.
    pub buyers: usize,
    /// Seconds spent seeding (accounts, items, waiting for search).
    pub seed_seconds: f64,
    /// Open loop: iterations that fell due before the end but were never
    /// sent because the workers were behind (the server could not keep up).
    pub missed: u64,
    /// One row per operation.
    pub operations: Vec<OpRow>,
    /// Checkout outcomes, for scenarios that buy.
    pub checkouts: Option<CheckoutsReport>,
    /// The websocket scenario's sockets.
    pub sockets: Option<SocketsReport>,
    /// The invariants checked after the run.
    pub invariants: Vec<Check>,
    /// Whether every invariant held.
    pub held: bool,
}

/// Checkout outcomes as answered, and orders as read back.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutsReport {
    /// `201` `CONFIRMED`.
    pub confirmed: u64,
    /// `201` `PAYMENT_FAILED`.
    pub payment_failed: u64,
    /// `202` (payment still pending when answered).
    pub accepted: u64,
    /// Refusals by status and code.
    pub refused: BTreeMap<String, u64>,
    /// No answer or a `5xx`.
    pub unanswered: u64,
    /// The run's orders in the API, by status, after settling.
    pub orders_by_status: BTreeMap<String, u64>,
}

/// The websocket scenario's sockets.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketsReport {
    /// Opened.
    pub opened: usize,
    /// Failed to open.
    pub failed: usize,
    /// Seconds to open them all.
    pub open_secs: f64,
}

impl Report {
    /// The report as a table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        self.write_header(&mut out);
        self.write_operations(&mut out);
        if let Some(checkouts) = &self.checkouts {
            checkouts.write(&mut out);
        }
        if let Some(sockets) = &self.sockets {
            sockets.write(&mut out);
        }
        let _ = writeln!(out, "\ninvariants:");
        for check in &self.invariants {
            let verdict = if check.held { "held  " } else { "BROKEN" };
            let _ = writeln!(out, "  [{verdict}] {}: {}", check.name, check.detail);
        }
        out
    }

    /// What ran, against what, and what was seeded.
    fn write_header(&self, out: &mut String) {
        let mode = match self.rate {
            Some(rate) => format!("open loop at {} iterations/s", thousands(rate as u64)),
            None => "closed loop".to_owned(),
        };
        let scenario = serde_json::to_value(self.scenario)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "scenario {scenario} (run {}): {:.1} s, {} workers, {mode}, against {}",
            self.run,
            self.seconds,
            self.workers,
            self.targets.join(", ")
        );
        let _ = writeln!(
            out,
            "seeded {} items of {} units, {} buyers in {:.1} s",
            thousands(self.items as u64),
            thousands(self.stock_per_item),
            thousands(self.buyers as u64),
            self.seed_seconds
        );
        if self.missed > 0 {
            let _ = writeln!(
                out,
                "behind schedule: {} iterations fell due and were never sent (the target rate is above what the server answers)",
                thousands(self.missed)
            );
        }
    }

    /// One line per operation: count, rate, latency, outcomes.
    fn write_operations(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n{:<12} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9}  outcomes",
            "operation", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for row in &self.operations {
            let outcomes: Vec<String> = row
                .outcomes
                .iter()
                .map(|(outcome, n)| format!("{outcome} ×{}", thousands(*n)))
                .collect();
            let _ = writeln!(
                out,
                "{:<12} {:>10} {:>10} {:>8.2} {:>8.2} {:>8.2} {:>9.2}  {}",
                row.operation,
                thousands(row.count),
                thousands(row.per_sec.round() as u64),
                row.p50_ms,
                row.p90_ms,
                row.p99_ms,
                row.max_ms,
                outcomes.join(", ")
            );
        }
    }
}

impl CheckoutsReport {
    /// The checkouts' answers, then the orders the API holds.
    fn write(&self, out: &mut String) {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|(code, n)| format!("{code} ×{n}"))
            .collect();
        let orders: Vec<String> = self
            .orders_by_status
            .iter()
            .map(|(status, n)| format!("{status} {}", thousands(*n)))
            .collect();
        let _ = writeln!(
            out,
            "\ncheckouts: {} confirmed, {} payment failed, {} answered 202, {} refused{}, {} unanswered",
            thousands(self.confirmed),
            thousands(self.payment_failed),
            thousands(self.accepted),
            self.refused.values().sum::<u64>(),
            if refused.is_empty() {
                String::new()
            } else {
                format!(" ({})", refused.join(", "))
            },
            self.unanswered
        );
        let _ = writeln!(out, "orders in the API: {}", orders.join(", "));
    }
}

impl SocketsReport {
    /// The sockets opened, failed, and how long opening took.
    fn write(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "websockets: {} open ({} failed), opened in {:.1} s",
            thousands(self.opened as u64),
            self.failed,
            self.open_secs
        );
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn groups_digits_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}

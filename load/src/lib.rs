//! `agora load`: the load harness shipped with the server, its own crate
//! (`agora-load`) so the server does not compile an HTTP client.
//!
//! It seeds its own seller, items and buyers through the API (named with a
//! run tag, so runs never share data), then runs a scenario's workers for
//! a bounded time, closed-loop (each worker as fast as the server answers)
//! or open-loop at a target rate: each worker keeps a fixed schedule and
//! latency is counted from when a request was *due*, so a slow server
//! cannot hide its queueing (no coordinated omission). It ends with a
//! table (requests/s, p50/p90/p99/max per operation, outcomes by status)
//! and invariant checks read back through the API, or the same as JSON.
//!
//! - [`scenarios`]: what a worker does per iteration.
//! - [`seed`], [`invariants`]: before and after.
//! - [`sockets`]: the websocket scenario's listeners.
//! - [`driver`]: a worker's schedule (open or closed loop) and loop; the
//!   progress line.
//! - [`options`]: the command line, checked, and how a run is sized.
//! - [`client`], [`stats`]: requests and what is recorded of them.
//! - [`report`]: the report, as JSON or as the table people read.
#![warn(missing_docs)]

pub mod client;
pub mod driver;
pub mod invariants;
pub mod options;
pub mod report;
pub mod scenarios;
pub mod seed;
pub mod sockets;
pub mod stats;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::Targets;
use invariants::ReadBack;
pub use options::LoadOptions;
use report::{CheckoutsReport, Report, SocketsReport};
use scenarios::{lock, Scenario, Shared, Tally};
use sockets::Listeners;
use stats::{Live, Stats};

/// Seeds, runs the scenario, reads the run back; the report.
pub async fn run(options: LoadOptions) -> anyhow::Result<Report> {
    options.validate()?;
    let scenario = options.scenario;
    let sizing = options.sizing();
    let targets = Targets::new(&options.targets, sizing.workers)?;
    let live = Arc::new(Live::default());
    let seed = seed::seed(&targets, &sizing.plan).await?;
    let listeners = if scenario == Scenario::Websocket {
        Some(open_sockets(&options, &targets, &seed.buyers, &live).await)
    } else {
        None
    };
    let shared = Arc::new(Shared {
        scenario,
        seed,
        tally: Tally::default(),
        next_buyer: AtomicUsize::new(0),
    });
    let ran = driver::run_workers(
        &options,
        &sizing,
        &targets,
        &shared,
        &live,
        listeners.as_ref(),
    )
    .await?;
    let mut stats = ran.stats;
    let mut read_back = invariants::check(&targets, &shared, &ran.workers).await?;
    let sockets = match listeners {
        Some(listeners) => Some(close_sockets(listeners, &mut read_back, &mut stats).await),
        None => None,
    };
    Ok(Report {
        scenario,
        run: shared.seed.tag.clone(),
        targets: targets.bases(),
        seconds: ran.secs,
        workers: sizing.workers,
        rate: options.rate,
        items: sizing.plan.items,
        stock_per_item: sizing.plan.stock,
        buyers: sizing.buyers,
        seed_seconds: shared.seed.seconds,
        missed: ran.missed,
        operations: stats.rows(ran.secs),
        checkouts: checkouts_report(&shared, &read_back),
        sockets,
        held: read_back.checks.iter().all(|c| c.held),
        invariants: read_back.checks,
    })
}

/// The websocket scenario's listeners, opened for the seeded buyers.
async fn open_sockets(
    options: &LoadOptions,
    targets: &Targets,
    buyers: &[String],
    live: &Arc<Live>,
) -> Listeners {
    let listeners = Listeners::open(&targets.bases(), buyers, options.sockets, live.clone()).await;
    eprintln!(
        "opened {} websockets ({} failed) in {:.1} s",
        listeners.opened, listeners.failed, listeners.open_secs
    );
    listeners
}

/// Waits for every confirmation to reach its buyer's sockets and adds that
/// check; the sockets' records go into `stats`, then they close.
async fn close_sockets(
    listeners: Listeners,
    read_back: &mut ReadBack,
    stats: &mut Stats,
) -> SocketsReport {
    let expected: Vec<u64> = read_back
        .confirmed_per_buyer
        .iter()
        .zip(&listeners.per_buyer)
        .map(|(orders, sockets)| orders * sockets)
        .collect();
    let heard = listeners
        .wait_for(&read_back.confirmed_per_buyer, Duration::from_secs(10))
        .await;
    read_back.checks.push(invariants::pushes_check(
        &heard,
        &expected,
        listeners.failed,
    ));
    let report = SocketsReport {
        opened: listeners.opened,
        failed: listeners.failed,
        open_secs: listeners.open_secs,
    };
    stats.merge(listeners.close());
    report
}

/// How the checkouts were answered, and the orders the API holds (for
/// scenarios that buy).
fn checkouts_report(shared: &Shared, read_back: &ReadBack) -> Option<CheckoutsReport> {
    let tally = &shared.tally;
    shared.scenario.buys().then(|| CheckoutsReport {
        confirmed: tally.confirmed.load(Ordering::Relaxed),
        payment_failed: tally.payment_failed.load(Ordering::Relaxed),
        accepted: lock(&tally.pending).len() as u64,
        refused: lock(&tally.refused).clone(),
        unanswered: tally.unknown.load(Ordering::Relaxed),
        orders_by_status: read_back.orders_by_status.clone().into_iter().collect(),
    })
}

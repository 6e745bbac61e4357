//! `agora load`: the load harness shipped with the server.
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
//! - [`client`], [`stats`]: requests and what is recorded of them.

pub mod client;
pub mod driver;
pub mod invariants;
pub mod report;
pub mod scenarios;
pub mod seed;
pub mod sockets;
pub mod stats;

use std::io::IsTerminal;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{Caller, Targets, REQUEST_TIMEOUT};
use report::{CheckoutsReport, Report, SocketsReport};
use scenarios::{lock, Scenario, Shared, Tally, Worker};
use seed::Plan;
use sockets::Listeners;
use stats::{Live, Stats};

/// Longest run the harness accepts, seconds.
const MAX_DURATION: f64 = 3600.0;

/// `agora load` options.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadOptions {
    /// What to run.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Node(s) to load, comma-separated or repeated; workers and sockets
    /// are spread over them round-robin, seeding goes to the first.
    #[arg(
        long = "target",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub targets: Vec<String>,
    /// Seconds to run (a flash sale ends sooner once every buyer has tried).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Workers: requests in flight at most (each its own buyer).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Target iterations per second over all workers (open loop). Without
    /// it, each worker goes as fast as the server answers (closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Items to seed (a flash sale and the stock scenario seed one).
    #[arg(long, default_value_t = 100)]
    pub items: usize,
    /// Buyers to seed [default: the concurrency; 500 in a flash sale;
    /// none for the stock scenario].
    #[arg(long)]
    pub buyers: Option<usize>,
    /// Units per item [default: 1,000,000; 50 in a flash sale; 10^9 for
    /// the stock scenario].
    #[arg(long)]
    pub stock: Option<u64>,
    /// Websockets to open (websocket scenario), spread over the buyers.
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Seed of the workers' random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Allow targets that are not on this machine (loopback) — load only
    /// systems you run.
    #[arg(long)]
    pub allow_remote: bool,
}

impl LoadOptions {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.duration > 0.0 && self.duration <= MAX_DURATION,
            "--duration must be in (0, {MAX_DURATION}] seconds"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.concurrency),
            "--concurrency must be 1..=10000"
        );
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && (0.001..=10_000_000.0).contains(&rate),
                "--rate must be in [0.001, 10000000]"
            );
        }
        anyhow::ensure!(
            (1..=1_000_000).contains(&self.items),
            "--items must be 1..=1000000"
        );
        if let Some(buyers) = self.buyers {
            anyhow::ensure!(
                (1..=100_000).contains(&buyers),
                "--buyers must be 1..=100000"
            );
        }
        if let Some(stock) = self.stock {
            anyhow::ensure!(stock <= 1_000_000_000, "--stock must be at most 1000000000");
        }
        anyhow::ensure!(self.sockets <= 100_000, "--sockets must be at most 100000");
        for target in &self.targets {
            check_target(target, self.allow_remote)?;
        }
        Ok(())
    }
}

/// A target must be an `http://` URL, on this machine unless allowed.
fn check_target(target: &str, allow_remote: bool) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(target)
        .map_err(|e| anyhow::anyhow!("--target {target}: not a URL ({e})"))?;
    anyhow::ensure!(
        url.scheme() == "http",
        "--target {target}: only http:// is supported"
    );
    let host = url.host_str().unwrap_or_default();
    let local = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        local || allow_remote,
        "--target {target}: not a loopback address; pass --allow-remote to load another machine"
    );
    Ok(())
}

/// Seeds, runs the scenario, reads the run back; the report.
pub async fn run(options: LoadOptions) -> anyhow::Result<Report> {
    options.validate()?;
    let scenario = options.scenario;
    let flash = scenario == Scenario::FlashSale;
    let default_stock = match scenario {
        Scenario::FlashSale => 50,
        Scenario::Stock => 1_000_000_000,
        _ => 1_000_000,
    };
    let buyers = options.buyers.unwrap_or(match scenario {
        Scenario::FlashSale => 500,
        // The seller does all the work.
        Scenario::Stock => 0,
        _ => options.concurrency,
    });
    let workers = match scenario {
        Scenario::Stock => options.concurrency,
        _ => options.concurrency.min(buyers),
    };
    let plan = Plan {
        items: if scenario.one_item() {
            1
        } else {
            options.items
        },
        stock: options.stock.unwrap_or(default_stock),
        buyers,
        searchable: scenario.searches(),
    };
    let targets = Targets::new(&options.targets, workers)?;
    let live = Arc::new(Live::default());
    let seed = seed::seed(&targets, &plan).await?;
    let listeners = if scenario == Scenario::Websocket {
        let listeners = Listeners::open(
            &targets.bases(),
            &seed.buyers,
            options.sockets,
            live.clone(),
        )
        .await;
        eprintln!(
            "opened {} websockets ({} failed) in {:.1} s",
            listeners.opened, listeners.failed, listeners.open_secs
        );
        Some(listeners)
    } else {
        None
    };
    let shared = Arc::new(Shared {
        scenario,
        seed,
        tally: Tally::default(),
        next_buyer: AtomicUsize::new(0),
    });

    let duration = Duration::from_secs_f64(options.duration);
    let start = Instant::now();
    let end = start + duration;
    let progress = tokio::spawn(driver::progress(live.clone(), start, duration));
    let mut tasks = Vec::with_capacity(workers);
    for n in 0..workers {
        let caller = Caller::new(&targets, n, live.clone());
        let worker = Worker::new(n, workers, if flash { 0 } else { buyers }, options.seed);
        let schedule = driver::Schedule::new(options.rate, n, workers, start, end);
        tasks.push(tokio::spawn(driver::work(
            shared.clone(),
            caller,
            worker,
            schedule,
        )));
    }
    // Every request has its own timeout, so workers end by then; anything
    // still running after that is abandoned rather than waited for.
    let joined = tokio::time::timeout(
        duration + 2 * REQUEST_TIMEOUT + Duration::from_secs(5),
        futures::future::join_all(tasks),
    )
    .await
    .map_err(|_| anyhow::anyhow!("workers did not stop in time"))?;
    let secs = start.elapsed().as_secs_f64();
    progress.abort();
    if let Some(listeners) = &listeners {
        listeners.stop_recording();
    }
    eprintln!(
        "{}{}",
        if std::io::stderr().is_terminal() {
            "\n"
        } else {
            ""
        },
        driver::progress_line(&live, start, duration, 0)
    );
    let mut stats = Stats::default();
    let mut done_workers = Vec::with_capacity(workers);
    let mut missed = 0;
    for joined in joined {
        let (caller, worker, late) = joined?;
        stats.merge(caller.stats);
        done_workers.push(worker);
        missed += late;
    }

    let mut read_back = invariants::check(&targets, &shared, &done_workers).await?;
    let sockets = match listeners {
        Some(listeners) => {
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
            Some(report)
        }
        None => None,
    };
    let tally = &shared.tally;
    let checkouts = scenario.buys().then(|| CheckoutsReport {
        confirmed: tally.confirmed.load(Ordering::Relaxed),
        payment_failed: tally.payment_failed.load(Ordering::Relaxed),
        accepted: lock(&tally.pending).len() as u64,
        refused: lock(&tally.refused).clone(),
        unanswered: tally.unknown.load(Ordering::Relaxed),
        orders_by_status: read_back.orders_by_status.clone().into_iter().collect(),
    });
    Ok(Report {
        scenario,
        run: shared.seed.tag.clone(),
        targets: targets.bases(),
        seconds: secs,
        workers,
        rate: options.rate,
        items: plan.items,
        stock_per_item: plan.stock,
        buyers,
        seed_seconds: shared.seed.seconds,
        missed,
        operations: stats.rows(secs),
        checkouts,
        sockets,
        held: read_back.checks.iter().all(|c| c.held),
        invariants: read_back.checks,
    })
}

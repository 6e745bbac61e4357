//! `agora load`'s options: what the command line may ask, checked before
//! any request, and how a run is sized from them.

use std::net::IpAddr;

use crate::scenarios::Scenario;
use crate::seed::Plan;

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
    /// Refuses options out of range and targets not on this machine
    /// (unless allowed).
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
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

    /// How the run is sized: each scenario's defaults where not told.
    pub fn sizing(&self) -> Sizing {
        let scenario = self.scenario;
        let default_stock = match scenario {
            Scenario::FlashSale => 50,
            Scenario::Stock => 1_000_000_000,
            _ => 1_000_000,
        };
        let buyers = self.buyers.unwrap_or(match scenario {
            Scenario::FlashSale => 500,
            // The seller does all the work.
            Scenario::Stock => 0,
            _ => self.concurrency,
        });
        let workers = match scenario {
            Scenario::Stock => self.concurrency,
            _ => self.concurrency.min(buyers),
        };
        let plan = Plan {
            items: if scenario.one_item() { 1 } else { self.items },
            stock: self.stock.unwrap_or(default_stock),
            buyers,
            searchable: scenario.searches(),
        };
        Sizing {
            plan,
            buyers,
            workers,
        }
    }
}

/// How a run is sized.
pub struct Sizing {
    /// What to seed.
    pub plan: Plan,
    /// Buyers seeded.
    pub buyers: usize,
    /// Workers run.
    pub workers: usize,
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

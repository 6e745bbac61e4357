//! A worker's life: when its iterations are due (closed loop, or an open
//! loop at a fixed rate that counts latency from the due time), the loop
//! that runs them, the progress line, and the run of all the workers.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{Caller, Targets, REQUEST_TIMEOUT};
use crate::options::{LoadOptions, Sizing};
use crate::report;
use crate::scenarios::{self, Next, Scenario, Shared, Worker};
use crate::sockets::Listeners;
use crate::stats::{Live, Stats};

/// When a worker's iterations are due.
pub struct Schedule {
    /// Open loop: the gap between this worker's iterations.
    interval: Option<Duration>,
    next: Instant,
    end: Instant,
    /// Iterations that were due before the end but never started.
    missed: u64,
}

impl Schedule {
    /// Worker `n` of `workers`, at `rate` iterations/s over all (open
    /// loop) or as fast as answered, from `start` to `end`.
    pub fn new(
        rate: Option<f64>,
        n: usize,
        workers: usize,
        start: Instant,
        end: Instant,
    ) -> Schedule {
        let interval = rate.map(|r| Duration::from_secs_f64(workers as f64 / r));
        // Workers are staggered over one interval, so the load is even.
        let offset = interval.map_or(Duration::ZERO, |i| i.mul_f64(n as f64 / workers as f64));
        Schedule {
            interval,
            next: start + offset,
            end,
            missed: 0,
        }
    }

    /// Waits until the next iteration is due; when it was due, or `None`
    /// once the run is over. A late worker starts at once but still counts
    /// from the due time.
    async fn due(&mut self) -> Option<Instant> {
        match self.interval {
            Some(interval) => {
                let now = Instant::now();
                if self.next >= self.end || now >= self.end {
                    // Iterations that fell due while the worker was behind
                    // and never went out: reported, not hidden.
                    if self.next < self.end {
                        let behind = (self.end - self.next).as_secs_f64() / interval.as_secs_f64();
                        self.missed += behind.ceil() as u64;
                        self.next = self.end;
                    }
                    return None;
                }
                tokio::time::sleep_until(self.next.into()).await;
                let due = self.next;
                self.next += interval;
                Some(due)
            }
            None => {
                let now = Instant::now();
                (now < self.end).then_some(now)
            }
        }
    }
}

/// Runs a worker's iterations until its schedule ends; the worker, its
/// records and how many iterations it missed.
pub async fn work(
    shared: Arc<Shared>,
    mut caller: Caller,
    mut worker: Worker,
    mut schedule: Schedule,
) -> (Caller, Worker, u64) {
    // One iteration is at most two requests of `REQUEST_TIMEOUT` each; an
    // iteration still running past this is cut off, so the worker always
    // comes back with what it recorded.
    let hard_end = schedule.end + 2 * REQUEST_TIMEOUT;
    while let Some(due) = schedule.due().await {
        let step = scenarios::step(&shared, &mut caller, &mut worker, due);
        match tokio::time::timeout_at(hard_end.into(), step).await {
            Ok(Next::Continue) => {}
            Ok(Next::Done) | Err(_) => break,
        }
    }
    (caller, worker, schedule.missed)
}

/// Prints a progress line on stderr every second (rewritten in place on a
/// terminal).
pub async fn progress(live: Arc<Live>, start: Instant, duration: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let line = progress_line(&live, start, duration, last);
        last = live.done.load(Ordering::Relaxed);
        if terminal {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// The progress line: elapsed, requests so far, per second since `last`,
/// errors.
pub fn progress_line(live: &Live, start: Instant, duration: Duration, last: u64) -> String {
    let done = live.done.load(Ordering::Relaxed);
    let errors = live.errors.load(Ordering::Relaxed);
    format!(
        "{:>5.1} s / {:.0} s  {:>10} requests  {:>8}/s  {} errors",
        start.elapsed().as_secs_f64(),
        duration.as_secs_f64(),
        report::thousands(done),
        report::thousands(done.saturating_sub(last)),
        report::thousands(errors),
    )
}

/// What the workers did, once all came back.
pub struct Ran {
    /// Seconds from the start to the last worker's return.
    pub secs: f64,
    /// Every worker's records, merged.
    pub stats: Stats,
    /// The workers, for the read-back (the carts they set).
    pub workers: Vec<Worker>,
    /// Iterations that fell due and never went out, over all workers.
    pub missed: u64,
}

/// Runs the sized workers over `targets` for the options' duration (at
/// their rate, or closed loop) with the progress line; stops the sockets'
/// recording when they are done, then prints the final progress line.
pub async fn run_workers(
    options: &LoadOptions,
    sizing: &Sizing,
    targets: &Targets,
    shared: &Arc<Shared>,
    live: &Arc<Live>,
    listeners: Option<&Listeners>,
) -> anyhow::Result<Ran> {
    let Sizing {
        buyers, workers, ..
    } = *sizing;
    let flash = shared.scenario == Scenario::FlashSale;
    let duration = Duration::from_secs_f64(options.duration);
    let start = Instant::now();
    let end = start + duration;
    let progress = tokio::spawn(progress(live.clone(), start, duration));
    let mut tasks = Vec::with_capacity(workers);
    for n in 0..workers {
        let caller = Caller::new(targets, n, live.clone());
        let worker = Worker::new(n, workers, if flash { 0 } else { buyers }, options.seed);
        let schedule = Schedule::new(options.rate, n, workers, start, end);
        tasks.push(tokio::spawn(work(shared.clone(), caller, worker, schedule)));
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
    if let Some(listeners) = listeners {
        listeners.stop_recording();
    }
    let newline = if std::io::stderr().is_terminal() {
        "\n"
    } else {
        ""
    };
    eprintln!("{newline}{}", progress_line(live, start, duration, 0));
    let mut ran = Ran {
        secs,
        stats: Stats::default(),
        workers: Vec::with_capacity(workers),
        missed: 0,
    };
    for joined in joined {
        let (caller, worker, late) = joined?;
        ran.stats.merge(caller.stats);
        ran.workers.push(worker);
        ran.missed += late;
    }
    Ok(ran)
}

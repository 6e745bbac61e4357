//! The websocket scenario's listeners: sockets signed in as the run's
//! buyers, each timing the `order.updated` frames it receives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::scenarios::lock;
use super::stats::{Live, Stats};

/// Sockets opened at once.
const WAVE: usize = 200;

/// The open sockets and what they heard.
pub struct Listeners {
    readers: Vec<JoinHandle<()>>,
    /// `ws.push` latencies: from the update's `at` (when the server made the
    /// change) to the frame's arrival, by the update's status; only while
    /// the workers run (later frames still count for the invariant).
    pub stats: Arc<Mutex<Stats>>,
    recording: Arc<AtomicBool>,
    /// `CONFIRMED` updates received, per buyer (summed over their sockets).
    pub confirmed: Arc<Vec<AtomicU64>>,
    /// Sockets per buyer.
    pub per_buyer: Vec<u64>,
    /// Sockets that opened.
    pub opened: usize,
    /// Sockets that failed to open.
    pub failed: usize,
    /// Seconds spent opening them.
    pub open_secs: f64,
}

impl Listeners {
    /// Opens `count` sockets on `bases` (round-robin), socket `i` signed in
    /// as buyer `i % buyers.len()`.
    pub async fn open(
        bases: &[String],
        buyers: &[String],
        count: usize,
        live: Arc<Live>,
    ) -> Listeners {
        // Thousands of sockets need more descriptors than the usual soft limit.
        if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
        let stats = Arc::new(Mutex::new(Stats::default()));
        let recording = Arc::new(AtomicBool::new(true));
        let confirmed: Arc<Vec<AtomicU64>> =
            Arc::new(buyers.iter().map(|_| AtomicU64::new(0)).collect());
        let mut per_buyer = vec![0u64; buyers.len()];
        let (mut readers, mut failed) = (Vec::with_capacity(count), 0);
        let started = Instant::now();
        let indices: Vec<usize> = (0..count).collect();
        for wave in indices.chunks(WAVE) {
            let opened = futures::future::join_all(wave.iter().map(|&i| {
                let base = &bases[i % bases.len()];
                let buyer = i % buyers.len();
                let url = format!(
                    "{}/ws?token={}",
                    base.replacen("http", "ws", 1),
                    buyers[buyer]
                );
                async move {
                    let connect = tokio_tungstenite::connect_async(url);
                    match tokio::time::timeout(Duration::from_secs(10), connect).await {
                        Ok(Ok((socket, _))) => Some((buyer, socket)),
                        _ => None,
                    }
                }
            }))
            .await;
            for socket in opened {
                let Some((buyer, mut socket)) = socket else {
                    failed += 1;
                    continue;
                };
                per_buyer[buyer] += 1;
                let (stats, confirmed, live, recording) = (
                    stats.clone(),
                    confirmed.clone(),
                    live.clone(),
                    recording.clone(),
                );
                readers.push(tokio::spawn(async move {
                    while let Some(Ok(frame)) = socket.next().await {
                        let Message::Text(text) = frame else { continue };
                        let arrived = OffsetDateTime::now_utc();
                        let Ok(update) = serde_json::from_str::<serde_json::Value>(&text) else {
                            continue;
                        };
                        if update["type"] != "order.updated" {
                            continue;
                        }
                        let at = update["at"]
                            .as_str()
                            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok());
                        let lag = at.map_or(Duration::ZERO, |at| {
                            (arrived - at).try_into().unwrap_or(Duration::ZERO)
                        });
                        if recording.load(Ordering::Relaxed) {
                            let status = update["status"].as_str().unwrap_or("?").to_owned();
                            lock(&stats).record("ws.push", lag, status, false);
                            live.count(false);
                        }
                        if update["status"] == "CONFIRMED" {
                            confirmed[buyer].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
        }
        Listeners {
            opened: readers.len(),
            readers,
            stats,
            recording,
            confirmed,
            per_buyer,
            failed,
            open_secs: started.elapsed().as_secs_f64(),
        }
    }

    /// Stops timing frames (the run is over; settling follows).
    pub fn stop_recording(&self) {
        self.recording.store(false, Ordering::Relaxed);
    }

    /// Waits (at most `patience`) until buyer `b` has heard `expected[b]`
    /// confirmations on each of their sockets; per buyer, what was heard.
    pub async fn wait_for(&self, expected: &[u64], patience: Duration) -> Vec<u64> {
        let want: Vec<u64> = expected
            .iter()
            .zip(&self.per_buyer)
            .map(|(orders, sockets)| orders * sockets)
            .collect();
        let deadline = Instant::now() + patience;
        loop {
            let heard: Vec<u64> = self
                .confirmed
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
            if heard.iter().zip(&want).all(|(h, w)| h >= w) || Instant::now() >= deadline {
                return heard;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes every socket.
    pub fn close(self) -> Stats {
        for reader in self.readers {
            reader.abort();
        }
        lock(&self.stats).clone()
    }
}

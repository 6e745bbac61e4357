//! The websocket scenario's listeners: sockets signed in as the run's
//! buyers, each timing the `order.updated` frames it receives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::scenarios::lock;
use crate::stats::{Live, Stats};

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
        let heard = Heard {
            stats: Arc::new(Mutex::new(Stats::default())),
            recording: Arc::new(AtomicBool::new(true)),
            confirmed: Arc::new(buyers.iter().map(|_| AtomicU64::new(0)).collect()),
            live,
        };
        let mut per_buyer = vec![0u64; buyers.len()];
        let (mut readers, mut failed) = (Vec::with_capacity(count), 0);
        let started = Instant::now();
        let indices: Vec<usize> = (0..count).collect();
        for wave in indices.chunks(WAVE) {
            for socket in open_wave(bases, buyers, wave).await {
                let Some((buyer, socket)) = socket else {
                    failed += 1;
                    continue;
                };
                per_buyer[buyer] += 1;
                readers.push(tokio::spawn(heard.clone().listen(buyer, socket)));
            }
        }
        Listeners {
            opened: readers.len(),
            readers,
            stats: heard.stats,
            recording: heard.recording,
            confirmed: heard.confirmed,
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

/// An open websocket.
type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the sockets numbered `wave` at once: each its buyer and socket,
/// or `None` if it did not open within 10 s.
async fn open_wave(
    bases: &[String],
    buyers: &[String],
    wave: &[usize],
) -> Vec<Option<(usize, Socket)>> {
    futures::future::join_all(wave.iter().map(|&i| {
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
    .await
}

/// What every socket's reader shares: where it records and counts the
/// updates it hears.
#[derive(Clone)]
struct Heard {
    stats: Arc<Mutex<Stats>>,
    recording: Arc<AtomicBool>,
    confirmed: Arc<Vec<AtomicU64>>,
    live: Arc<Live>,
}

impl Heard {
    /// Reads `buyer`'s socket until it closes, hearing each text frame.
    async fn listen(self, buyer: usize, mut socket: Socket) {
        while let Some(Ok(frame)) = socket.next().await {
            let Message::Text(text) = frame else { continue };
            self.hear(buyer, &text);
        }
    }

    /// An `order.updated` frame: its lag from the update's `at` recorded
    /// (while the workers run), a `CONFIRMED` counted for its buyer.
    fn hear(&self, buyer: usize, text: &str) {
        let arrived = OffsetDateTime::now_utc();
        let Ok(update) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        if update["type"] != "order.updated" {
            return;
        }
        let at = update["at"]
            .as_str()
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok());
        let lag = at.map_or(Duration::ZERO, |at| {
            (arrived - at).try_into().unwrap_or(Duration::ZERO)
        });
        if self.recording.load(Ordering::Relaxed) {
            let status = update["status"].as_str().unwrap_or("?").to_owned();
            lock(&self.stats).record("ws.push", lag, status, false);
            self.live.count(false);
        }
        if update["status"] == "CONFIRMED" {
            self.confirmed[buyer].fetch_add(1, Ordering::Relaxed);
        }
    }
}

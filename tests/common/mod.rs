//! Helpers shared by the library-level tests (each test file includes this
//! with `mod common;` and uses what it needs).
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use agora::config::Settings;
use agora::domain::event::EventBody;
use agora::node::Node;
use agora::storage::event_log::EventConsumer;
use agora::storage::{Store, StoreOptions};

/// Settings for a node in a test: its own data dir and a gateway that
/// answers at once.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        payment_latency_ms: 0,
        ..Settings::default()
    }
}

/// Starts a node through the one builder. A node stopped just before on
/// the same files may still hold sled's file lock for a moment while its
/// background threads finish, so a failed start is retried a while.
pub async fn start_node(settings: Settings) -> Node {
    for _ in 0..50 {
        match Node::start(settings.clone()).await {
            Ok(node) => return node,
            Err(e) => {
                tracing::debug!(error = %e, "storage still locked");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Node::start(settings).await.expect("starting the node")
}

/// Waits until `check` holds, polling; generously bounded so a slow machine
/// never fails a test (this is a wait, not a timing assertion).
pub async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The last event `consumer` can read now (it drains until the log is quiet).
pub async fn last_event(consumer: &mut EventConsumer) -> Option<EventBody> {
    let mut last = None;
    while let Ok(Ok(batch)) =
        tokio::time::timeout(Duration::from_millis(300), consumer.next_batch(100)).await
    {
        last = batch.last().map(|e| e.body.clone()).or(last);
    }
    last
}

/// Opens the store under `dir`, waiting while one just stopped on the same
/// files still holds sled's file lock (its flusher thread lets go a moment
/// after the last handle is dropped).
pub async fn reopen(dir: &std::path::Path) -> Store {
    for _ in 0..50 {
        if let Ok(store) = Store::open(dir, StoreOptions::default()) {
            return store;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Store::open(dir, StoreOptions::default()).expect("opening storage")
}

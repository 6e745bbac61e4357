//! Helpers shared by the library-level tests (each test file includes this
//! with `mod common;` and uses what it needs).
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use agora::domain::event::EventBody;
use agora::storage::events::EventConsumer;

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

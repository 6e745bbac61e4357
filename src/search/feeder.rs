//! The indexer's feeder and supervisor: reads the event log after the
//! index's own offset and hands each batch to the indexer actor; when the
//! actor fails, starts a new one from the last commit.

use std::sync::Arc;
use std::time::Duration;

use ractor::Actor;
use tokio::sync::watch;

use super::index::{IndexState, Shared};
use super::indexer::{IndexerActor, IndexerMsg};
use crate::storage::event_log::EventConsumer;
use crate::storage::Store;

/// Most events handed over at once.
const BATCH: usize = 512;
/// Wait before starting a new indexer after a failure.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// Feeds the log to an indexer actor, starting a new one (from the last
/// commit) whenever one fails, until `stop` turns true; then commits.
pub(super) async fn feed(
    shared: Arc<Shared>,
    store: Store,
    commit_every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let pause = |stop: &mut watch::Receiver<bool>| {
        let mut stop = stop.clone();
        async move {
            tokio::select! {
                () = tokio::time::sleep(RESTART_BACKOFF) => false,
                _ = stop.wait_for(|s| *s) => true,
            }
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let committed = match shared.committed_offset() {
            IndexState::Current(offset) => offset,
            _ => 0,
        };
        let actor = IndexerActor::new(shared.clone(), store.clone(), commit_every);
        let (indexer, handle) = match Actor::spawn(None, actor, committed).await {
            Ok(spawned) => spawned,
            Err(e) => {
                tracing::error!(error = %e, "search indexer failed to start");
                if pause(&mut stop).await {
                    return;
                }
                continue;
            }
        };
        let mut consumer = EventConsumer::at(store.clone(), "search", committed);
        let stopped = loop {
            let Some(events) = consumer.next_or_stop(BATCH, &mut stop).await else {
                break true;
            };
            if ractor::call!(indexer, IndexerMsg::Apply, events).is_err() {
                break false;
            }
        };
        if stopped {
            match ractor::call!(indexer, IndexerMsg::Flush) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "final search commit failed"),
                Err(e) => tracing::warn!(error = %e, "search indexer gone at shutdown"),
            }
            indexer.stop(None);
            let _ = handle.await;
            return;
        }
        tracing::error!("search indexer failed; starting a new one from its last commit");
        indexer.stop(None);
        let _ = handle.await;
        if pause(&mut stop).await {
            return;
        }
    }
}

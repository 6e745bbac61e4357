//! The offline commands: maintenance run on a stopped node's storage
//! (`agora reindex`, `agora recommendations rebuild`, `agora events
//! export|stats`). Each opens the store itself, so the node must be stopped
//! (sled holds a lock on its files), and flushes it before returning.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::Settings;
use crate::storage::archiver::LogStats;
use crate::storage::export::{export_events, ExportError};
use crate::storage::{Store, StoreOptions};

/// Where `agora events export` writes.
pub enum ExportTarget {
    /// A file, created (and synced) by the export.
    File(PathBuf),
    /// Standard output; a reader that closes it early ends the export
    /// without an error.
    Stdout,
}

/// What an export wrote.
pub struct Exported {
    /// Events written.
    pub events: u64,
    /// Whether the reader of standard output stopped before the end.
    pub cut_short: bool,
}

/// Rebuilds the search index from the item records; the number of items.
pub async fn reindex(settings: &Settings) -> anyhow::Result<u64> {
    with_store(settings, |store| async move {
        crate::search::reindex(&settings.data_dir, &store)
    })
    .await
}

/// Replays the whole event log into the recommender's aggregates; the
/// events applied and the time it took.
pub async fn rebuild_recommendations(settings: &Settings) -> anyhow::Result<(u64, Duration)> {
    with_store(settings, |store| async move {
        let started = std::time::Instant::now();
        let applied = crate::services::recommend::rebuild(&store).await?;
        Ok((applied, started.elapsed()))
    })
    .await
}

/// Writes the events after `after` (at most `limit`) as JSON lines.
pub async fn export(
    settings: &Settings,
    after: u64,
    limit: Option<u64>,
    target: ExportTarget,
) -> anyhow::Result<Exported> {
    with_store(settings, |store| async move {
        let archive = store.archive().clone();
        let limit = limit.unwrap_or(u64::MAX);
        tokio::task::spawn_blocking(move || {
            store.with_trees(|trees| match target {
                ExportTarget::File(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    let events = export_events(trees, &archive, after, limit, &mut out)?;
                    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                    Ok(Exported {
                        events,
                        cut_short: false,
                    })
                }
                ExportTarget::Stdout => {
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    match export_events(trees, &archive, after, limit, &mut out)
                        .and_then(|events| out.flush().map(|()| events).map_err(ExportError::Io))
                    {
                        Ok(events) => Ok(Exported {
                            events,
                            cut_short: false,
                        }),
                        // A reader that stopped early (`| head`) is not an error.
                        Err(ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                            Ok(Exported {
                                events: 0,
                                cut_short: true,
                            })
                        }
                        Err(e) => Err(e.into()),
                    }
                }
            })
        })
        .await?
    })
    .await
}

/// The event log's size: live events, archived segments, the floor.
pub async fn event_stats(settings: &Settings) -> anyhow::Result<LogStats> {
    with_store(settings, |store| async move {
        let counted = store.clone();
        Ok(
            tokio::task::spawn_blocking(move || crate::storage::archiver::log_stats(&counted))
                .await??,
        )
    })
    .await
}

/// Opens the node's store, runs `command` on it, and shuts the store down
/// (flushing it) whatever the command's outcome.
async fn with_store<'a, F, Fut, T>(settings: &'a Settings, command: F) -> anyhow::Result<T>
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + 'a,
{
    let dir = &settings.data_dir;
    let store = Store::open(dir, StoreOptions::default()).map_err(|e| {
        anyhow::anyhow!(
            "opening storage in {} (is a node running on it?): {e}",
            dir.display()
        )
    })?;
    let outcome = command(store.clone()).await;
    store.shutdown().await;
    outcome
}

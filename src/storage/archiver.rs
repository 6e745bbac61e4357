//! The event log's archiver: moves the events every durable consumer has
//! handled out of sled into the archive's segment files, so the log in
//! sled stops growing with the node's age.
//!
//! A pass (every `event_archive_secs`, from the node's housekeeping):
//!
//! 1. removes half-written segments a crash left behind, and trims from
//!    sled any event the archive already holds (a pass that stopped
//!    between a segment's rename and its trim);
//! 2. finds the floor: the lowest durable offset of every consumer (every
//!    entry of the offsets tree, plus the ones kept elsewhere: the search
//!    index's committed offset and the recommender's, which is held even
//!    while it is paused), and never within the newest `event_log_keep`
//!    events;
//! 3. while at least `event_archive_min_events` events lie between the
//!    archive's mark and the floor, writes them as one segment (at most
//!    [`MAX_SEGMENT_EVENTS`]), durable before anything is removed, then
//!    trims them from sled in short writes.
//!
//! A consumer that is behind (or paused) holds the archive back rather
//! than read the archive later: holding back is the safe default, and the
//! report names the consumer at the floor (the node warns when it holds
//! the live log past twice its usual size). Any reader still reads across
//! the boundary (see [`crate::storage::event_log::EventConsumer`]).

use std::io::Write;
use std::sync::Arc;

use crate::storage::event_json::event_json;
use crate::storage::event_log::read_after;
use crate::storage::{StorageError, Store, TreeName};

pub use crate::storage::archive::MAX_SEGMENT_EVENTS;
/// Events removed from sled per write (each write joins a group commit
/// with checkouts, so it stays short).
const TRIM_CHUNK: u64 = 1_024;
/// Events read from sled per chunk while writing a segment.
const READ_CHUNK: usize = 1_024;

/// How much to keep and how much to move at once.
#[derive(Debug, Clone, Copy)]
pub struct ArchivePolicy {
    /// The newest events stay in sled whatever the consumers' offsets.
    pub keep: u64,
    /// The smallest segment written (fewer events wait for the next pass).
    pub min_events: u64,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Events moved to new segments.
    pub archived: u64,
    /// The archive's mark after the pass.
    pub archived_through: u64,
    /// The floor the consumers allowed (before `keep`).
    pub floor: u64,
    /// The consumer whose offset is the floor (`None` if none holds).
    pub held_by: Option<String>,
    /// Events left in sled.
    pub live: u64,
}

/// Runs one pass. `holds` are (name, offset) of consumers that keep
/// their offsets outside the offsets tree (search, recommender): the
/// archive never passes any of them.
pub async fn archive_pass(
    store: &Store,
    holds: &[(&str, u64)],
    policy: ArchivePolicy,
) -> Result<ArchiveReport, StorageError> {
    let archive = store.archive().clone();
    let mut through = tokio::task::spawn_blocking(move || {
        archive.remove_temporaries()?;
        archive.archived_through()
    })
    .await
    .map_err(|_| StorageError::JobPanicked)?
    .map_err(io_error)?;
    trim(store, through).await?;

    let newest = *store.event_watch().borrow();
    let (mut floor, mut held_by) = store.read(lowest_offset).await?;
    for &(name, offset) in holds {
        if offset < floor {
            (floor, held_by) = (offset, Some(name.to_owned()));
        }
    }
    let upto = floor.min(newest.saturating_sub(policy.keep.max(1)));
    let mut archived = 0;
    while upto.saturating_sub(through) >= policy.min_events.max(1) {
        let last = upto.min(through + MAX_SEGMENT_EVENTS);
        write_segment(store, through + 1, last).await?;
        trim(store, last).await?;
        archived += last - through;
        through = last;
    }
    let first_live = store
        .read(|trees| {
            Ok(trees
                .tree(TreeName::Events)
                .first()?
                .map_or(0, |(key, _)| seq_of(&key)))
        })
        .await?;
    let live = if first_live == 0 {
        0
    } else {
        newest.saturating_sub(first_live) + 1
    };
    metrics::gauge!("agora_event_log_archived_through").set(through as f64);
    metrics::gauge!("agora_event_log_live_events").set(live as f64);
    metrics::counter!("agora_event_log_archived_events_total").increment(archived);
    Ok(ArchiveReport {
        archived,
        archived_through: through,
        floor,
        held_by,
        live,
    })
}

/// The lowest offset in the offsets tree and its consumer (`u64::MAX`
/// and none when it is empty).
fn lowest_offset(trees: &crate::storage::Trees) -> Result<(u64, Option<String>), StorageError> {
    let mut lowest = (u64::MAX, None);
    for entry in trees.tree(TreeName::Offsets).iter() {
        let (name, value) = entry?;
        if value.len() == 8 && seq_of(&value) < lowest.0 {
            lowest = (
                seq_of(&value),
                Some(String::from_utf8_lossy(&name).into_owned()),
            );
        }
    }
    Ok(lowest)
}

/// Writes the events `first..=last` from sled as one segment (durable
/// when this returns). Refuses if sled does not hold every one of them.
async fn write_segment(store: &Store, first: u64, last: u64) -> Result<(), StorageError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        store.with_trees(|trees| {
            let archive = store.archive();
            let mut problem = None;
            let written = archive.write_segment(first, last, |out: &mut dyn Write| {
                let mut position = first - 1;
                while position < last {
                    let events = read_after(trees, position, last, READ_CHUNK)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    for event in &events {
                        if event.seq != position + 1 {
                            problem = Some(position + 1);
                            return Err(std::io::Error::other("a gap in the log"));
                        }
                        let line = event_json(trees, event)
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        serde_json::to_writer(&mut *out, &line)?;
                        out.write_all(b"\n")?;
                        position = event.seq;
                    }
                    if events.is_empty() {
                        problem = Some(position + 1);
                        return Err(std::io::Error::other("a gap in the log"));
                    }
                }
                Ok(())
            });
            if let Some(missing) = problem {
                tracing::error!(
                    missing,
                    first,
                    last,
                    "event missing from sled; not archived"
                );
            }
            written.map(|_| ()).map_err(io_error)
        })
    })
    .await
    .map_err(|_| StorageError::JobPanicked)?
}

/// Removes every event up to `through` from sled, oldest first, in short
/// writes (each atomic: a crash leaves a contiguous live log).
async fn trim(store: &Store, through: u64) -> Result<(), StorageError> {
    loop {
        let first = store
            .read(|trees| {
                Ok(trees
                    .tree(TreeName::Events)
                    .first()?
                    .map(|(key, _)| seq_of(&key)))
            })
            .await?;
        let Some(first) = first.filter(|&first| first <= through) else {
            return Ok(());
        };
        let last = through.min(first + TRIM_CHUNK - 1);
        let range = Arc::new(first..=last);
        store
            .write(move |tx| {
                for seq in range.as_ref().clone() {
                    tx.remove(TreeName::Events, seq.to_be_bytes().to_vec());
                }
                Ok::<_, StorageError>(())
            })
            .await?;
    }
}

fn seq_of(bytes: &[u8]) -> u64 {
    let mut seq = [0u8; 8];
    if let Some(head) = bytes.get(..8) {
        seq.copy_from_slice(head);
    }
    u64::from_be_bytes(seq)
}

fn io_error(e: std::io::Error) -> StorageError {
    StorageError::Io(Arc::new(sled::Error::Io(e)))
}

/// The log's size, live and archived (`agora events stats`).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogStats {
    /// Events in sled.
    pub live_events: u64,
    /// Their keys and values, bytes (before sled's own overhead).
    pub live_bytes: u64,
    /// The oldest event in sled (0 if none).
    pub first_live: u64,
    /// The newest event.
    pub newest: u64,
    /// The last archived event (0 if none).
    pub archived_through: u64,
    /// Segment files.
    pub segments: u64,
    /// Their size on disk, bytes (compressed).
    pub archive_bytes: u64,
}

/// Counts the live log and the archive. Blocking: scans the events tree
/// (for `agora events stats`, on a stopped node).
pub fn log_stats(store: &Store) -> Result<LogStats, StorageError> {
    let mut stats = store.with_trees(|trees| {
        let mut stats = LogStats::default();
        for entry in trees.tree(TreeName::Events).iter() {
            let (key, value) = entry?;
            if stats.first_live == 0 {
                stats.first_live = seq_of(&key);
            }
            stats.live_events += 1;
            stats.live_bytes += (key.len() + value.len()) as u64;
        }
        Ok::<_, StorageError>(stats)
    })?;
    stats.newest = *store.event_watch().borrow();
    for segment in store.archive().segments().map_err(io_error)? {
        stats.segments += 1;
        stats.archived_through = stats.archived_through.max(segment.last);
        stats.archive_bytes += std::fs::metadata(&segment.path).map_err(io_error)?.len();
    }
    Ok(stats)
}

//! The data-lake hand-off: the event log as JSON lines, for batch engines
//! (Spark, DuckDB) that train better models offline than the recommender's
//! counters.
//!
//! One line per event, in log order:
//! `{"seq":1,"at":"2026-…Z","type":"item.created","data":{…}}`. Item events
//! carry the whole item; `order.updated` is joined with its order's lines,
//! amount and currency (the event itself names only the order), so a
//! consumer needs nothing but the file. Fields use the API's spelling.
//!
//! The archive ([`crate::storage::archive`]) keeps the log's older part in
//! this same format, so an export copies archived lines as they are and
//! renders only the live part (one line's form is in
//! [`crate::storage::event_json`]).

use std::io::{self, Write};

use crate::storage::archive::Archive;
use crate::storage::event_json::event_json;
use crate::storage::event_log::read_after;
use crate::storage::{StorageError, TreeName, Trees};

/// Events read per chunk.
const CHUNK: usize = 1024;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the log failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Writing the output failed.
    #[error("writing the export: {0}")]
    Io(#[from] io::Error),
}

/// Writes the events after `after` (up to `limit` of them) to `out`, one
/// JSON object per line: the archived ones as archived, then the live log;
/// returns how many. Blocking: reads sled and the archive directly.
pub fn export_events(
    trees: &Trees,
    archive: &Archive,
    after: u64,
    limit: u64,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let end = match trees
        .tree(TreeName::Events)
        .last()
        .map_err(StorageError::from)?
    {
        Some((key, _)) => u64::from_be_bytes(key[..8].try_into().unwrap_or([0; 8])),
        None => 0,
    };
    let mut position = after;
    let mut written = 0u64;
    // The archive first: up to its mark, sled's copies (left by a pass
    // that stopped before trimming them) are ignored.
    let mut archived = archive.lines_after(after)?;
    while written < limit {
        let Some((seq, line)) = archived.next_line()? else {
            break;
        };
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        position = seq;
        written += 1;
    }
    while position < end && written < limit {
        let want = usize::try_from((limit - written).min(CHUNK as u64)).unwrap_or(CHUNK);
        let events = read_after(trees, position, end, want)?;
        let Some(last) = events.last() else {
            break;
        };
        position = last.seq;
        for event in &events {
            serde_json::to_writer(&mut *out, &event_json(trees, event)?)
                .map_err(io::Error::from)?;
            out.write_all(b"\n")?;
            written += 1;
        }
    }
    out.flush()?;
    Ok(written)
}

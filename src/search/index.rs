//! The index on disk and its snapshots: opening (or rebuilding) it, the
//! state readers and the indexer share, snapshots pinned by cursors, and
//! the node's cursor key.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher};
use tokio::sync::watch;

use super::cursor::CursorKey;
use super::documents::{self, Payload};
use super::schema::{self, Fields, SCHEMA_VERSION};
use crate::storage::Store;

/// Snapshots kept for cursors (one per index generation that served a page
/// with a next page).
const PINNED_SNAPSHOTS: usize = 32;
/// How long a cursor's snapshot is kept; after that its cursor continues on
/// the newest snapshot from the same sort key.
const PINNED_FOR: Duration = Duration::from_secs(600);

/// What the index on disk holds.
pub(super) enum IndexState {
    /// Current schema, events applied up to this offset.
    Current(u64),
    /// Built by another schema version, or never committed: rebuild.
    Stale,
}

/// State shared by readers and the indexer.
pub(super) struct Shared {
    pub(super) index: Index,
    pub(super) fields: Fields,
    pub(super) reader: IndexReader,
    /// (generation, snapshot): the newest loaded snapshot.
    pub(super) current: RwLock<(u64, Searcher)>,
    /// Snapshots pinned by cursors.
    pub(super) pinned: Mutex<VecDeque<(u64, Instant, Searcher)>>,
    /// Last event sequence number committed to the index.
    pub(super) indexed: watch::Sender<u64>,
}

impl Shared {
    /// Loads the newest commit for readers.
    pub(super) fn reload(&self) -> tantivy::Result<()> {
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = (current.0 + 1, searcher);
        Ok(())
    }

    pub(super) fn committed_offset(&self) -> IndexState {
        let payload = self.index.load_metas().ok().and_then(|m| m.payload);
        match payload.and_then(|p| serde_json::from_str::<Payload>(&p).ok()) {
            Some(p) if p.schema == SCHEMA_VERSION => IndexState::Current(p.offset),
            _ => IndexState::Stale,
        }
    }

    pub(super) fn snapshot(&self, generation: Option<u64>) -> (u64, Searcher) {
        if let Some(generation) = generation {
            let mut pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = pinned.iter().position(|(g, ..)| *g == generation) {
                // Least recently used goes first: a snapshot in use moves back.
                let (g, _, searcher) = pinned.remove(at).expect("found");
                pinned.push_back((g, Instant::now(), searcher.clone()));
                return (g, searcher);
            }
        }
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn pin(&self, generation: u64, searcher: &Searcher) {
        let mut pinned = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        pinned.retain(|(_, at, _)| now.duration_since(*at) < PINNED_FOR);
        if let Some(at) = pinned.iter().position(|(g, ..)| *g == generation) {
            let entry = pinned.remove(at).expect("found");
            pinned.push_back((entry.0, now, entry.2));
            return;
        }
        if pinned.len() >= PINNED_SNAPSHOTS {
            pinned.pop_front();
        }
        pinned.push_back((generation, now, searcher.clone()));
    }
}

fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("search").join("index")
}

/// Opens the index under `data_dir` (creating it, or rebuilding it from the
/// items when its schema is older), without starting the indexer.
pub(super) fn open_index(data_dir: &Path, store: &Store) -> anyhow::Result<Shared> {
    let dir = index_dir(data_dir);
    let fields = Fields::new();
    let open = |dir: &Path| -> anyhow::Result<Index> {
        std::fs::create_dir_all(dir)?;
        let index = Index::builder()
            .schema(fields.schema.clone())
            .settings(schema::settings())
            .open_or_create(MmapDirectory::open(dir)?)?;
        // Settings are fixed when an index is created: one from before the
        // price sort is rebuilt, like one of another schema.
        anyhow::ensure!(
            schema::sorted_by_price(&index),
            "the index is not sorted by price"
        );
        schema::register_analyzers(&index);
        Ok(index)
    };
    let index = match open(&dir) {
        Ok(index) => index,
        Err(e) => {
            tracing::warn!(error = %e, "search index unreadable or of another schema; rebuilding");
            std::fs::remove_dir_all(&dir).ok();
            open(&dir)?
        }
    };
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    let searcher = reader.searcher();
    let (indexed, _) = watch::channel(0);
    let shared = Shared {
        index,
        fields,
        reader,
        // Generations start at a random point per process: cursors outlive
        // restarts (the key is stored), snapshots do not, and an old cursor
        // must not name an unrelated snapshot of a new process.
        current: RwLock::new((u64::from(rand::random::<u32>()) << 32, searcher)),
        pinned: Mutex::new(VecDeque::new()),
        indexed,
    };
    if let IndexState::Stale = shared.committed_offset() {
        // Everything the log holds up to here is in the items read now;
        // later events are applied again on top (idempotent).
        let offset = *store.event_watch().borrow();
        let mut writer = shared.index.writer_with_num_threads(1, 64 * 1024 * 1024)?;
        let count = store
            .with_trees(|trees| documents::rebuild(&mut writer, &shared.fields, trees, offset))?;
        drop(writer);
        shared.reload()?;
        tracing::info!(items = count, "search index rebuilt");
    }
    if let IndexState::Current(offset) = shared.committed_offset() {
        shared.indexed.send_replace(offset);
    }
    Ok(shared)
}

/// The per-node key that signs cursors, created on first start.
pub(super) fn cursor_key(data_dir: &Path) -> anyhow::Result<CursorKey> {
    let path = data_dir.join("search").join("cursor.key");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(CursorKey::new(key));
        }
    }
    let key: [u8; 32] = rand::random();
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, key)?;
    std::fs::rename(&temporary, &path)?;
    Ok(CursorKey::new(key))
}

/// Drops the index under `data_dir` and builds it again from the items
/// (`agora reindex`; the node must be stopped). Returns the item count.
pub fn reindex(data_dir: &Path, store: &Store) -> anyhow::Result<u64> {
    let dir = index_dir(data_dir);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let shared = open_index(data_dir, store)?;
    Ok(shared.reader.searcher().num_docs())
}

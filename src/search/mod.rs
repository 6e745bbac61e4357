//! Catalog search: a tantivy index under `<data>/search/index`, written only
//! by the indexer actor (fed from the event log), read by any request.
//!
//! - [`schema`]: fields, analyzers, item → document.
//! - [`query`]: the validated request and the query built from it (the term
//!   is cut into words, never parsed as syntax).
//! - [`collect`]: one pass for the page (search-after), total and facets.
//! - [`cursor`]: signed cursors.
//! - [`indexer`]: the writer actor, its feeder and the full rebuild.
//! - [`synonyms`]: the synonym groups.
//! - [`sample`]: a deterministic sample catalog (benchmarks, relevance check).
//!
//! Eventually consistent: a change reaches the index within the indexer's
//! commit interval. Reads never wait for the writer: they search the last
//! loaded snapshot on the blocking pool.

pub mod collect;
pub mod cursor;
mod indexer;
pub mod query;
pub mod sample;
pub mod schema;
pub mod synonyms;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, ReloadPolicy, Searcher};
use tokio::sync::{watch, Semaphore};

use collect::PageCollector;
use cursor::{CursorKey, Position};
use indexer::Payload;
pub use query::{SearchRequest, Sort};
use schema::{id_from_halves, Fields, SCHEMA_VERSION};
use synonyms::Synonyms;

use crate::storage::Store;

/// Snapshots kept for cursors (one per index generation that served a page
/// with a next page).
const PINNED_SNAPSHOTS: usize = 32;
/// How long a cursor's snapshot is kept; after that its cursor continues on
/// the newest snapshot from the same sort key.
const PINNED_FOR: Duration = Duration::from_secs(600);

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The cursor was not issued by this node for this search.
    #[error("the cursor was not issued for this search")]
    InvalidCursor,
    /// tantivy failed.
    #[error("search failed: {0}")]
    Failed(String),
}

/// One page of hits, as ids in order.
#[derive(Debug)]
pub struct Page {
    /// (item id, relevance score if sorted by relevance).
    pub hits: Vec<(String, Option<f32>)>,
    /// The next page's cursor.
    pub next_cursor: Option<String>,
    /// Every match.
    pub total: u64,
    /// Matches per category.
    pub categories: HashMap<String, u64>,
    /// Matches per brand.
    pub brands: HashMap<String, u64>,
}

/// What the index on disk holds.
pub(crate) enum IndexState {
    /// Current schema, events applied up to this offset.
    Current(u64),
    /// Built by another schema version, or never committed: rebuild.
    Stale,
}

/// State shared by readers and the indexer.
pub(crate) struct Shared {
    index: Index,
    fields: Fields,
    reader: IndexReader,
    /// (generation, snapshot): the newest loaded snapshot.
    current: RwLock<(u64, Searcher)>,
    /// Snapshots pinned by cursors.
    pinned: Mutex<VecDeque<(u64, Instant, Searcher)>>,
    /// Last event sequence number committed to the index.
    indexed: watch::Sender<u64>,
}

impl Shared {
    /// Loads the newest commit for readers.
    fn reload(&self) -> tantivy::Result<()> {
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = (current.0 + 1, searcher);
        Ok(())
    }

    fn committed_offset(&self) -> IndexState {
        let payload = self.index.load_metas().ok().and_then(|m| m.payload);
        match payload.and_then(|p| serde_json::from_str::<Payload>(&p).ok()) {
            Some(p) if p.schema == SCHEMA_VERSION => IndexState::Current(p.offset),
            _ => IndexState::Stale,
        }
    }

    fn snapshot(&self, generation: Option<u64>) -> (u64, Searcher) {
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

    fn pin(&self, generation: u64, searcher: &Searcher) {
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

/// Whether any live document holds `term` (stops at the first).
fn has_live(searcher: &Searcher, term: &tantivy::Term) -> bool {
    use tantivy::DocSet;
    for reader in searcher.segment_readers() {
        let Ok(index) = reader.inverted_index(term.field()) else {
            continue;
        };
        let Ok(Some(mut postings)) =
            index.read_postings(term, tantivy::schema::IndexRecordOption::Basic)
        else {
            continue;
        };
        let alive = reader.alive_bitset();
        let mut doc = postings.doc();
        while doc != tantivy::TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                return true;
            }
            doc = postings.advance();
        }
    }
    false
}

/// The search service. Cheap to clone.
#[derive(Clone)]
pub struct Search {
    shared: Arc<Shared>,
    synonyms: Arc<Synonyms>,
    cursor_key: CursorKey,
    stop: Arc<watch::Sender<bool>>,
    feeder: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Searches running at once: one per core. A search is pure CPU; more
    /// at once only time-slice each other (measured: p99 ~100 ms with 16
    /// concurrent HTTP searches on two cores), while a fair queue in front
    /// keeps each one's latency near its own cost.
    running: Arc<Semaphore>,
}

fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("search").join("index")
}

/// Opens the index under `data_dir` (creating it, or rebuilding it from the
/// items when its schema is older), without starting the indexer.
fn open_index(data_dir: &Path, store: &Store) -> anyhow::Result<Shared> {
    let dir = index_dir(data_dir);
    let fields = Fields::new();
    let open = |dir: &Path| -> anyhow::Result<Index> {
        std::fs::create_dir_all(dir)?;
        let index = Index::open_or_create(MmapDirectory::open(dir)?, fields.schema.clone())?;
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
            .with_trees(|trees| indexer::rebuild(&mut writer, &shared.fields, trees, offset))?;
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
fn cursor_key(data_dir: &Path) -> anyhow::Result<CursorKey> {
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

impl Search {
    /// Opens the index (rebuilding it if needed) and starts the indexer.
    /// Blocking parts run on the blocking pool.
    pub async fn start(
        data_dir: &Path,
        store: Store,
        commit_every: Duration,
    ) -> anyhow::Result<Search> {
        let dir = data_dir.to_owned();
        let opened = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                Ok((
                    open_index(&dir, &store)?,
                    Synonyms::load(&dir)?,
                    cursor_key(&dir)?,
                ))
            })
            .await??
        };
        let (shared, synonyms, cursor_key) = opened;
        let shared = Arc::new(shared);
        let (stop, stopping) = watch::channel(false);
        let feeder = tokio::spawn(indexer::feed(shared.clone(), store, commit_every, stopping));
        Ok(Search {
            shared,
            synonyms: Arc::new(synonyms),
            cursor_key,
            stop: Arc::new(stop),
            feeder: Arc::new(Mutex::new(Some(feeder))),
            running: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        })
    }

    /// Runs a search (on the blocking pool).
    pub async fn search(&self, request: SearchRequest) -> Result<Page, SearchError> {
        let permit = self.running.clone().acquire_owned().await;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            this.search_now(&request)
        })
        .await
        .map_err(|e| SearchError::Failed(e.to_string()))?
    }

    fn search_now(&self, request: &SearchRequest) -> Result<Page, SearchError> {
        let fingerprint = request.fingerprint();
        let position = match &request.cursor {
            Some(cursor) => Some(
                self.cursor_key
                    .decode(&fingerprint, cursor)
                    .ok_or(SearchError::InvalidCursor)?,
            ),
            None => None,
        };
        let (generation, searcher) = self.shared.snapshot(position.map(|p| p.generation));
        let words = self.shared.fields.words;
        // Live documents only (`doc_freq` also counts deleted ones, and
        // every update deletes the old document).
        let known = |word: &str| has_live(&searcher, &tantivy::Term::from_field_text(words, word));
        let Some(query) = query::build(&self.shared.fields, &self.synonyms, request, &known) else {
            return Ok(Page {
                hits: Vec::new(),
                next_cursor: None,
                total: 0,
                categories: HashMap::new(),
                brands: HashMap::new(),
            });
        };
        let sort = request.effective_sort();
        let collector = PageCollector {
            sort,
            after: position.map(|p| p.after),
            limit: request.size + 1,
        };
        let mut found = searcher
            .search(query.as_ref(), &collector)
            .map_err(|e| SearchError::Failed(e.to_string()))?;
        let more = found.hits.len() > request.size;
        found.hits.truncate(request.size);
        let next_cursor = match (more, found.hits.last()) {
            (true, Some(last)) => {
                self.shared.pin(generation, &searcher);
                Some(self.cursor_key.encode(
                    &fingerprint,
                    Position {
                        generation,
                        after: last.key,
                    },
                ))
            }
            _ => None,
        };
        Ok(Page {
            hits: found
                .hits
                .iter()
                .map(|hit| {
                    let score = (sort == Sort::Relevance).then_some(hit.score);
                    (id_from_halves(hit.key.hi, hit.key.lo), score)
                })
                .collect(),
            next_cursor,
            total: found.total,
            categories: found.categories,
            brands: found.brands,
        })
    }

    /// Ids of items whose names complete `text` (its words, the last as a
    /// prefix), best first.
    pub async fn complete(&self, text: String, size: usize) -> Result<Vec<String>, SearchError> {
        let permit = self.running.clone().acquire_owned().await;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let Some(query) = query::suggest(&this.shared.fields, &text) else {
                return Ok(Vec::new());
            };
            let (_, searcher) = this.shared.snapshot(None);
            let collector = PageCollector {
                sort: Sort::Relevance,
                after: None,
                limit: size,
            };
            let found = searcher
                .search(query.as_ref(), &collector)
                .map_err(|e| SearchError::Failed(e.to_string()))?;
            Ok(found
                .hits
                .iter()
                .map(|hit| id_from_halves(hit.key.hi, hit.key.lo))
                .collect())
        })
        .await
        .map_err(|e| SearchError::Failed(e.to_string()))?
    }

    /// The last event sequence number committed to the index.
    pub fn indexed(&self) -> u64 {
        *self.shared.indexed.borrow()
    }

    /// Documents in the newest snapshot.
    pub fn documents(&self) -> u64 {
        self.shared.snapshot(None).1.num_docs()
    }

    /// Stops the indexer after a final commit.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let feeder = self.feeder.lock().ok().and_then(|mut f| f.take());
        if let Some(feeder) = feeder {
            let _ = feeder.await;
        }
    }
}

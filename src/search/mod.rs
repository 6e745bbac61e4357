//! Catalog search: a tantivy index under `<data>/search/index`, written only
//! by the indexer actor (fed from the event log), read by any request.
//!
//! - [`schema`]: fields, analyzers, item → document.
//! - [`query`]: the validated request and the query built from it (the term
//!   is cut into words, never parsed as syntax).
//! - [`collect`]: one pass for the page (search-after), total and facets.
//! - [`cursor`]: signed cursors.
//! - [`index`]: the index on disk and its snapshots (open, rebuild, pins).
//! - [`indexer`]: the writer actor and the full rebuild; [`feeder`]: what
//!   feeds it the log and restarts it.
//! - [`synonyms`]: the synonym groups.
//! - [`sample`]: a deterministic sample catalog (benchmarks, relevance check).
//!
//! Eventually consistent: a change reaches the index within the indexer's
//! commit interval. Reads never wait for the writer: they search the last
//! loaded snapshot on the blocking pool.

pub mod collect;
pub mod cursor;
mod feeder;
mod index;
mod indexer;
pub mod query;
pub mod sample;
pub mod schema;
pub mod synonyms;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tantivy::Searcher;
use tokio::sync::{watch, Semaphore};

use collect::PageCollector;
use cursor::{CursorKey, Position};
pub use index::reindex;
use index::{cursor_key, open_index, Shared};
pub use query::{SearchRequest, Sort};
use schema::id_from_halves;
use synonyms::Synonyms;

use crate::storage::Store;

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
        let feeder = tokio::spawn(feeder::feed(shared.clone(), store, commit_every, stopping));
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

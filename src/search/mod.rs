//! Catalog search: a tantivy index under `<data>/search/index`, written only
//! by the indexer actor (fed from the event log), read by any request.
//!
//! - [`schema`]: fields, analyzers, item → document.
//! - [`query`]: the validated request and the query built from it (the term
//!   is cut into words, never parsed as syntax).
//! - [`collect`]: one pass for the page (search-after), total and facets.
//! - [`cursor`]: signed cursors.
//! - [`index`]: the index on disk and its snapshots (open, rebuild, pins).
//! - `documents`: item → document with its in-stock flag, the commit
//!   payload, and the full rebuild (shared by the index and the indexer).
//! - [`indexer`]: the writer actor; [`feeder`]: what feeds it the log and
//!   restarts it.
//! - [`synonyms`]: the synonym groups.
//! - [`sample`]: a deterministic sample catalog (benchmarks, relevance check).
//!
//! Eventually consistent: a change reaches the index within the indexer's
//! commit interval. Reads never wait for the writer: they search the last
//! loaded snapshot on the blocking pool.
//!
//! Results are cached per snapshot: a page is keyed by the snapshot's
//! generation, the request's fingerprint, the cursor's position and the
//! page size, so a hit is exactly what the search would find on that
//! snapshot. The indexer's next commit is a new generation, which new
//! searches use, so older entries are reachable only by cursors pinned to
//! their snapshot, until evicted. A hit is served on the caller's thread,
//! without the blocking pool.

pub mod collect;
pub mod cursor;
mod documents;
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

use quick_cache::sync::Cache;
use tantivy::Searcher;
use tokio::sync::{watch, Semaphore};

use collect::{Found, PageCollector, SortKey};
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

/// What identifies a computed page: snapshot, request, cursor position, size.
type PageKey = (u64, String, Option<SortKey>, usize);

/// Computed pages of recent snapshots.
struct PageCache {
    pages: Cache<PageKey, Arc<Found>>,
    hits: metrics::Counter,
    misses: metrics::Counter,
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
    /// `None` when turned off (`search_cache_entries = 0`).
    cache: Option<Arc<PageCache>>,
}

impl Search {
    /// Opens the index (rebuilding it if needed) and starts the indexer;
    /// keeps up to `cache_entries` computed pages (0: none). Blocking parts
    /// run on the blocking pool.
    pub async fn start(
        data_dir: &Path,
        store: Store,
        commit_every: Duration,
        cache_entries: usize,
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
            cache: (cache_entries > 0).then(|| {
                Arc::new(PageCache {
                    pages: Cache::new(cache_entries),
                    hits: metrics::counter!("agora_search_cache_total", "result" => "hit"),
                    misses: metrics::counter!("agora_search_cache_total", "result" => "miss"),
                })
            }),
        })
    }

    /// Runs a search: from the cache when this snapshot already answered
    /// it, else on the blocking pool.
    pub async fn search(&self, request: SearchRequest) -> Result<Page, SearchError> {
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
        let key: PageKey = (
            generation,
            fingerprint,
            position.map(|p| p.after),
            request.size,
        );
        // One computation per page: a request that finds another computing
        // the same page waits for its result instead of repeating it (after
        // a commit, every shopper asking a head query misses at once).
        let guard = match &self.cache {
            Some(cache) => match cache.pages.get_value_or_guard_async(&key).await {
                Ok(found) => {
                    cache.hits.increment(1);
                    return Ok(self.page(&key, &searcher, &request, &found));
                }
                Err(guard) => {
                    cache.misses.increment(1);
                    Some(guard)
                }
            },
            None => None,
        };
        let permit = self.running.clone().acquire_owned().await;
        let this = self.clone();
        let (found, page) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let found = Arc::new(this.find(&searcher, &request, key.2)?);
            let page = this.page(&key, &searcher, &request, &found);
            Ok::<_, SearchError>((found, page))
        })
        .await
        .map_err(|e| SearchError::Failed(e.to_string()))??;
        if let Some(guard) = guard {
            // Refused only if the entry was filled meanwhile: the same page.
            let _ = guard.insert(found);
        }
        Ok(page)
    }

    /// The request's matches in `searcher`: `size + 1` hits after `after`
    /// (one more tells whether a next page exists), total and facets.
    fn find(
        &self,
        searcher: &Searcher,
        request: &SearchRequest,
        after: Option<SortKey>,
    ) -> Result<Found, SearchError> {
        let words = self.shared.fields.words;
        // Live documents only (`doc_freq` also counts deleted ones, and
        // every update deletes the old document).
        let known = |word: &str| has_live(searcher, &tantivy::Term::from_field_text(words, word));
        let Some(query) = query::build(&self.shared.fields, &self.synonyms, request, &known) else {
            return Ok(Found::default());
        };
        let collector = PageCollector {
            sort: request.effective_sort(),
            after,
            limit: request.size + 1,
        };
        searcher
            .search(query.as_ref(), &collector)
            .map_err(|e| SearchError::Failed(e.to_string()))
    }

    /// The page served from `found` (computed for `key`): its hits, and a
    /// cursor after the last one (pinning the snapshot) when more follow.
    fn page(
        &self,
        key: &PageKey,
        searcher: &Searcher,
        request: &SearchRequest,
        found: &Found,
    ) -> Page {
        let (generation, fingerprint, ..) = key;
        let sort = request.effective_sort();
        let hits = &found.hits[..found.hits.len().min(request.size)];
        let next_cursor = match (found.hits.len() > request.size, hits.last()) {
            (true, Some(last)) => {
                self.shared.pin(*generation, searcher);
                Some(self.cursor_key.encode(
                    fingerprint,
                    Position {
                        generation: *generation,
                        after: last.key,
                    },
                ))
            }
            _ => None,
        };
        Page {
            hits: hits
                .iter()
                .map(|hit| {
                    let score = (sort == Sort::Relevance).then_some(hit.score);
                    (id_from_halves(hit.key.hi, hit.key.lo), score)
                })
                .collect(),
            next_cursor,
            total: found.total,
            categories: found.categories.clone(),
            brands: found.brands.clone(),
        }
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

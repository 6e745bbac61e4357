//! Catalog search: a tantivy index under `<data>/search/index`, written only
//! by the indexer actor (fed from the event log), read by any request.
//!
//! - [`schema`]: fields, analyzers, item → document.
//! - [`query`]: the validated request and the query built from it (the term
//!   is cut into words, never parsed as syntax).
//! - [`collect`]: the page (search-after, top k pruned on the sort key),
//!   the total counted up to a limit, and facets; `facets`: the columns
//!   read and the facet counts.
//! - `band`: a price range as one span of documents (the index is sorted
//!   by price).
//! - `expand`: typo and prefix words as a capped set of index terms.
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

mod band;
pub mod collect;
pub mod cursor;
mod documents;
mod expand;
mod facets;
mod feeder;
mod index;
mod indexer;
pub mod query;
pub mod sample;
pub mod schema;
pub mod synonyms;
mod words;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quick_cache::sync::Cache;
use tantivy::Searcher;
use tokio::sync::{watch, Semaphore};

use collect::{Found, Plan, SortKey, FACET_SAMPLE};
use cursor::{CursorKey, Position};
pub use expand::{MAX_EXPANSIONS, MAX_SCANNED};
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
    /// Every match while at most the search's count limit; past it, the
    /// limit (a lower bound).
    pub total: u64,
    /// Whether `total` is every match.
    pub total_exact: bool,
    /// Matches per category.
    pub categories: HashMap<String, u64>,
    /// Matches per brand.
    pub brands: HashMap<String, u64>,
}

/// Where a cursor's next page starts in the snapshot `generation`. A
/// relevance key ends with the hit's address in the cursor's snapshot:
/// when that snapshot is gone (unpinned after 10 minutes, or one of more
/// than 32), the page continues after every hit of the cursor's score.
fn after_on(request: &SearchRequest, position: Position, generation: u64) -> SortKey {
    if request.effective_sort() == Sort::Relevance && position.generation != generation {
        return SortKey {
            primary: position.after.primary,
            hi: u64::MAX,
            lo: u64::MAX,
        };
    }
    position.after
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
    /// Matches counted at most (`search_total_exact_limit`).
    count_limit: u64,
}

/// How a search service runs.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    /// Most time between a change reaching the indexer and its commit.
    pub commit_every: Duration,
    /// Computed pages kept (0: none).
    pub cache_entries: usize,
    /// Matches counted at most: `total` is exact up to it, a lower bound
    /// past it.
    pub total_exact_limit: u64,
}

impl Search {
    /// Opens the index (rebuilding it if needed) and starts the indexer.
    /// Blocking parts run on the blocking pool.
    pub async fn start(
        data_dir: &Path,
        store: Store,
        options: SearchOptions,
    ) -> anyhow::Result<Search> {
        let SearchOptions {
            commit_every,
            cache_entries,
            total_exact_limit,
        } = options;
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
            count_limit: total_exact_limit,
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
        let after = position.map(|p| after_on(&request, p, generation));
        let key: PageKey = (generation, fingerprint, after, request.size);
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
        let lexicon = expand::Lexicon { searcher };
        let Some(query) = query::build(&self.shared.fields, &self.synonyms, request, &lexicon)
        else {
            return Ok(Found::default());
        };
        let plan = Plan {
            sort: request.effective_sort(),
            after,
            limit: request.size + 1,
            count_limit: self.count_limit,
            // Never more than the count limit itself.
            facet_sample: FACET_SAMPLE.min(self.count_limit as usize),
        };
        collect::collect(searcher, query.as_ref(), &plan)
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
                    let score = (sort == Sort::Relevance).then_some(hit.score());
                    (id_from_halves(hit.id.0, hit.id.1), score)
                })
                .collect(),
            next_cursor,
            total: found.total,
            total_exact: found.exact,
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
            let (_, searcher) = this.shared.snapshot(None);
            let lexicon = expand::Lexicon {
                searcher: &searcher,
            };
            let Some(query) = query::suggest(&this.shared.fields, &lexicon, &text) else {
                return Ok(Vec::new());
            };
            let plan = Plan {
                sort: Sort::Relevance,
                after: None,
                limit: size,
                count_limit: 0,
                facet_sample: 0,
            };
            let found = collect::collect(&searcher, query.as_ref(), &plan)
                .map_err(|e| SearchError::Failed(e.to_string()))?;
            Ok(found
                .hits
                .iter()
                .map(|hit| id_from_halves(hit.id.0, hit.id.1))
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

//! Recommendations: the design's streaming pipeline in miniature.
//!
//! A consumer of the event log (the recommender) keeps incremental
//! aggregates in sled ([`model`]): popularity with time decay, "bought
//! together" counts from confirmed orders, and each buyer's affinity for
//! categories and brands. It writes each batch's changes and its offset in
//! one atomic write, so a restart resumes exactly where it stopped, and an
//! event at or below the offset is skipped, so replaying one counts
//! nothing twice.
//!
//! Checkout never waits for it: it reads only the durable log, and a
//! stalled or paused recommender only lets its lag grow. Its writes do
//! share the node's single writer, so it keeps its share small: a batch is
//! computed on the blocking pool from a snapshot (it is its tree's only
//! writer), and the write job only checks the offset and stages at most
//! [`MAX_WRITES`] precomputed writes; while catching up it pauses between
//! batches as long as each took.
//!
//! Reads ([`Recommender::recommend`], [`Recommender::related`]) rank from
//! the aggregates and check each candidate live, in one storage read per
//! chunk: only active items with stock are shown, and never what the buyer
//! bought (from the aggregates, and from their latest orders read live,
//! which the recommender may not have seen yet).
//!
//! - [`keys`]: the layout of the aggregates; [`model`]: how an event
//!   changes them; `consumer`: the consumer task, reset and rebuild;
//!   `writes`: one write (a batch of events, a re-rank chunk) computed off
//!   the writer; `candidates`: candidate lists and a buyer's profile.

mod candidates;
mod consumer;
pub mod keys;
pub mod model;
#[cfg(test)]
mod tests;
mod writes;

use candidates::{live_items, personal_candidates, recently_ordered, scan_keys, Candidate};
use consumer::{consume, has_current_format, CONSUMER};
pub use consumer::{rebuild, reset};
pub use writes::MAX_WRITES;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::domain::item::Item;
use crate::search::{Search, SearchError, SearchRequest};
use crate::storage::event_log::EventConsumer;
use crate::storage::{StorageError, Store, TreeName};
use candidates::Profile;

/// Ranked keys read per scan.
const SCAN: usize = 64;
/// Candidates checked live at most per list (inactive or sold-out ones
/// are skipped; past this the list is returned short).
const MAX_CHECKED: usize = 200;
/// Why an item is recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Often bought with the item (or with the buyer's purchases).
    BoughtTogether,
    /// Popular in a category the buyer buys from.
    Category,
    /// Popular from a brand the buyer buys.
    Brand,
    /// Popular overall.
    Popular,
    /// Similar by search (same category, brand or words).
    Similar,
}

impl Reason {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BoughtTogether => "bought_together",
            Reason::Category => "category",
            Reason::Brand => "brand",
            Reason::Popular => "popular",
            Reason::Similar => "similar",
        }
    }
}

/// How a list was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// From the buyer's own history.
    Personalized,
    /// Popular items (anonymous callers, buyers without history).
    Popular,
}

impl Strategy {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Personalized => "personalized",
            Strategy::Popular => "popular",
        }
    }
}

/// One recommended item, checked live.
#[derive(Debug, Clone)]
pub struct Pick {
    /// The item (active).
    pub item: Item,
    /// Units a buyer can get now (positive).
    pub available: i64,
    /// Why.
    pub reason: Reason,
    /// Confirmed orders holding both (bought-together picks).
    pub bought_together: Option<u64>,
}

/// Why a recommendation failed.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The similar-items search failed.
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// The recommender: its consumer and the read side. Cheap to clone.
#[derive(Clone)]
pub struct Recommender {
    store: Store,
    search: Search,
    position: Arc<AtomicU64>,
    stop: Arc<watch::Sender<bool>>,
}

impl Recommender {
    /// Opens the aggregates (rebuilding them if their layout is not this
    /// version's) and, unless `paused`, starts the consumer from its offset.
    pub async fn start(
        store: Store,
        search: Search,
        paused: bool,
    ) -> Result<Recommender, StorageError> {
        if !has_current_format(&store).await? {
            if paused {
                tracing::warn!("recommender aggregates missing or of another layout; left as they are while paused");
            } else {
                tracing::info!("recommender aggregates missing or of another layout; rebuilding from the event log");
                reset(&store).await?;
            }
        }
        let offset = store
            .read(|trees| keys::applied(trees.tree(TreeName::Recommendations)))
            .await?;
        let consumer = EventConsumer::at(store.clone(), CONSUMER, offset);
        let position = Arc::new(AtomicU64::new(consumer.position()));
        let (stop, stopping) = watch::channel(false);
        if paused {
            tracing::warn!(
                offset = consumer.position(),
                "recommender paused (recommender_paused): its lag grows until it is resumed"
            );
        } else {
            tokio::spawn(consume(store.clone(), consumer, position.clone(), stopping));
        }
        Ok(Recommender {
            store,
            search,
            position,
            stop: Arc::new(stop),
        })
    }

    /// Stops the consumer (what it wrote is durable; the rest is re-read).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// The last event applied.
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Relaxed)
    }

    /// Up to `size` picks for `user` (`None`: anonymous): personalized if
    /// the buyer has a history, else popular.
    pub async fn recommend(
        &self,
        user: Option<&str>,
        size: usize,
    ) -> Result<(Strategy, Vec<Pick>), RecommendError> {
        // Everything about the buyer in one storage read.
        let (mut seen, candidates) = match user {
            Some(user) => {
                let user = user.to_owned();
                self.store
                    .read(move |trees| {
                        let tree = trees.tree(TreeName::Recommendations);
                        let profile = Profile::read(tree, &user)?;
                        let mut seen: HashSet<String> =
                            profile.bought().into_iter().map(str::to_owned).collect();
                        seen.extend(recently_ordered(trees, &user)?);
                        let candidates = if profile.has_history {
                            Some(personal_candidates(tree, &profile, size)?)
                        } else {
                            None
                        };
                        Ok((seen, candidates))
                    })
                    .await?
            }
            None => (HashSet::new(), None),
        };
        let mut picks = Vec::with_capacity(size);
        let strategy = match candidates {
            Some(candidates) => {
                self.take_live(candidates, &mut seen, size, &mut picks)
                    .await?;
                Strategy::Personalized
            }
            None => Strategy::Popular,
        };
        self.fill_popular(&mut seen, size, &mut picks).await?;
        Ok((strategy, picks))
    }

    /// Up to `size` items bought together with `item`, most often first,
    /// then similar items from search.
    pub async fn related(&self, item: &Item, size: usize) -> Result<Vec<Pick>, RecommendError> {
        let mut seen = HashSet::from([item.id.clone()]);
        let mut picks = Vec::with_capacity(size);
        let prefix = keys::partners_prefix(&item.id);
        let partners: Vec<Candidate> = self
            .scan(prefix.clone(), None, MAX_CHECKED)
            .await?
            .into_iter()
            .filter_map(|key| {
                let count = keys::ranked_count(&prefix, &key)?;
                Some((
                    keys::ranked_item(&prefix, &key)?,
                    Reason::BoughtTogether,
                    Some(count),
                ))
            })
            .collect();
        self.take_live(partners, &mut seen, size, &mut picks)
            .await?;
        // Similar: the same words within the category, then the category,
        // then the brand.
        let searches = [
            (Some(item.name.clone()), item.category.clone(), None),
            (None, item.category.clone(), None),
            (None, None, item.brand.clone()),
        ];
        for (term, category, brand) in searches {
            if picks.len() >= size || (term.is_none() && category.is_none() && brand.is_none()) {
                continue;
            }
            let request = SearchRequest {
                term,
                category,
                brand,
                min_price: None,
                max_price: None,
                in_stock: true,
                sort: None,
                size: (size * 2 + 1).min(100),
                cursor: None,
            };
            let page = match self.search.search(request).await {
                Ok(page) => page,
                Err(e) => {
                    // What was found so far is still worth showing.
                    tracing::warn!(error = %e, "similar items not found: search failed");
                    break;
                }
            };
            let similar = page
                .hits
                .into_iter()
                .map(|(id, _)| (id, Reason::Similar, None))
                .collect();
            self.take_live(similar, &mut seen, size, &mut picks).await?;
        }
        Ok(picks)
    }

    /// Adds popular items not yet `seen` until `picks` holds `size`.
    async fn fill_popular(
        &self,
        seen: &mut HashSet<String>,
        size: usize,
        picks: &mut Vec<Pick>,
    ) -> Result<(), RecommendError> {
        let prefix = keys::popular_prefix();
        let mut after = None;
        let mut checked = 0;
        while picks.len() < size && checked < MAX_CHECKED {
            let keys = self.scan(prefix.clone(), after.take(), SCAN).await?;
            let Some(last) = keys.last().cloned() else {
                break;
            };
            checked += keys.len();
            let candidates = keys
                .iter()
                .filter_map(|key| keys::ranked_item(&prefix, key))
                .map(|id| (id, Reason::Popular, None))
                .collect();
            self.take_live(candidates, seen, size, picks).await?;
            after = Some(last);
        }
        Ok(())
    }

    /// Adds the candidates that are active and in stock, in order, skipping
    /// any `seen`, until `picks` holds `size`. Checks a chunk at a time in
    /// one storage read (straight from sled: the read cache is for the hot
    /// path, not for scans of the long tail).
    async fn take_live(
        &self,
        candidates: Vec<Candidate>,
        seen: &mut HashSet<String>,
        size: usize,
        picks: &mut Vec<Pick>,
    ) -> Result<(), RecommendError> {
        let fresh: Vec<Candidate> = candidates
            .into_iter()
            .filter(|(id, _, _)| seen.insert(id.clone()))
            .take(MAX_CHECKED)
            .collect();
        for chunk in fresh.chunks(size.max(8)) {
            if picks.len() >= size {
                break;
            }
            let ids: Vec<String> = chunk.iter().map(|(id, _, _)| id.clone()).collect();
            let live = self
                .store
                .read(move |trees| live_items(trees, &ids))
                .await?;
            for ((_, reason, bought_together), found) in chunk.iter().zip(live) {
                if picks.len() >= size {
                    break;
                }
                if let Some((item, available)) = found {
                    picks.push(Pick {
                        item,
                        available,
                        reason: *reason,
                        bought_together: *bought_together,
                    });
                }
            }
        }
        Ok(())
    }

    /// Up to `max` keys under `prefix`, after `after` if given.
    async fn scan(
        &self,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        self.store
            .read(move |trees| {
                scan_keys(trees.tree(TreeName::Recommendations), &prefix, after, max)
            })
            .await
    }
}

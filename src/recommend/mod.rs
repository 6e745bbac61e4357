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

pub mod model;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::actors::inventory::SkuStock;
use crate::domain::item::{Item, ItemStatus};
use crate::domain::order::Order;
use crate::domain::Timestamp;
use crate::search::{Search, SearchError, SearchRequest};
use crate::storage::events::{Event, EventConsumer};
use crate::storage::{StorageError, Store, TreeName};
use model::{OrderFacts, Overlay, Profile};

/// The consumer's name (in logs; its offset is kept in its own tree).
const CONSUMER: &str = "recommender";
/// Events read per batch.
const BATCH: usize = 256;
/// Most writes one batch stages: its write joins a group commit with
/// checkout's writes, and a bounded batch keeps that group short.
pub const MAX_WRITES: usize = 1_000;
/// The buyer's latest orders whose items are excluded live.
const RECENT_ORDERS: usize = 20;
/// Ranked keys read per scan.
const SCAN: usize = 64;
/// Candidates checked live at most per list (inactive or sold-out ones
/// are skipped; past this the list is returned short).
const MAX_CHECKED: usize = 200;
/// A buyer's most recent purchases whose partners are candidates.
const RECENT_PURCHASES: usize = 10;
/// Top categories and brands of a buyer that give candidates.
const TOP_AFFINITIES: usize = 3;

/// An item that may be recommended, before the live check.
type Candidate = (String, Reason, Option<u64>);

/// A candidate's score while a personal list is ranked.
struct Scored {
    score: f64,
    reason: Reason,
    bought_together: Option<u64>,
}

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
            .read(|trees| model::applied(trees.tree(TreeName::Recommendations)))
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
        let prefix = model::partners_prefix(&item.id);
        let partners: Vec<Candidate> = self
            .scan(prefix.clone(), None, MAX_CHECKED)
            .await?
            .into_iter()
            .filter_map(|key| {
                let count = model::ranked_count(&prefix, &key)?;
                Some((
                    model::ranked_item(&prefix, &key)?,
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
        let prefix = model::popular_prefix();
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
                .filter_map(|key| model::ranked_item(&prefix, key))
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

/// Candidates from a buyer's history, best first: partners of recent
/// purchases, then what is popular in their top categories and brands.
fn personal_candidates(
    tree: &sled::Tree,
    profile: &Profile,
    size: usize,
) -> Result<Vec<Candidate>, StorageError> {
    let mut scores: HashMap<String, Scored> = HashMap::new();
    let mut add = |id: String, score: f64, reason: Reason, count: Option<u64>| {
        let entry = scores.entry(id).or_insert(Scored {
            score: 0.0,
            reason,
            bought_together: None,
        });
        entry.score += score;
        if reason == Reason::BoughtTogether {
            entry.reason = reason;
            entry.bought_together = entry.bought_together.max(count);
        }
    };
    for (bought, _) in profile.purchases.iter().take(RECENT_PURCHASES) {
        let prefix = model::partners_prefix(bought);
        for key in scan_keys(tree, &prefix, None, 2 * size)? {
            if let (Some(id), Some(count)) = (
                model::ranked_item(&prefix, &key),
                model::ranked_count(&prefix, &key),
            ) {
                // A partner bought with several purchases adds up.
                add(
                    id,
                    2.0 + (count as f64).ln(),
                    Reason::BoughtTogether,
                    Some(count),
                );
            }
        }
    }
    let now = Timestamp::now();
    let lists = [
        (&profile.categories, Reason::Category, 1.0),
        (&profile.brands, Reason::Brand, 0.8),
    ];
    for (affinities, reason, weight) in lists {
        let Some(top) = affinities
            .first()
            .map(|(_, a)| model::decayed_value(*a, now))
        else {
            continue;
        };
        for (value, affinity) in affinities.iter().take(TOP_AFFINITIES) {
            let share = model::decayed_value(*affinity, now) / top.max(f64::MIN_POSITIVE);
            let prefix = match reason {
                Reason::Category => model::category_prefix(value),
                _ => model::brand_prefix(value),
            };
            let ranked = scan_keys(tree, &prefix, None, 2 * size)?;
            for (rank, key) in ranked.iter().enumerate() {
                if let Some(id) = model::ranked_item(&prefix, key) {
                    let score = weight * share / (1.0 + rank as f64 / size as f64);
                    add(id, score, reason, None);
                }
            }
        }
    }
    let mut ranked: Vec<(String, Scored)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then_with(|| a.0.cmp(&b.0)));
    Ok(ranked
        .into_iter()
        .map(|(id, s)| (id, s.reason, s.bought_together))
        .collect())
}

/// Items of the buyer's latest orders (any status): the aggregates may not
/// have seen an order just placed.
fn recently_ordered(
    trees: &crate::storage::Trees,
    user: &str,
) -> Result<Vec<String>, StorageError> {
    let mut prefix = user.as_bytes().to_vec();
    prefix.push(0);
    let mut ids = Vec::new();
    for entry in trees
        .tree(TreeName::UserOrders)
        .scan_prefix(&prefix)
        .take(RECENT_ORDERS)
    {
        let (key, _) = entry?;
        // user ‖ 0 ‖ reverse time (8) ‖ order id
        if let Some(order) = key.get(prefix.len() + 8..) {
            ids.push(String::from_utf8_lossy(order).into_owned());
        }
    }
    Ok(order_facts(trees, ids)?
        .into_values()
        .flat_map(|facts| facts.lines.into_iter().map(|(item, _)| item))
        .collect())
}

/// Up to `max` keys under `prefix`, after `after` if given.
fn scan_keys(
    tree: &sled::Tree,
    prefix: &[u8],
    after: Option<Vec<u8>>,
    max: usize,
) -> Result<Vec<Vec<u8>>, StorageError> {
    let range = match after {
        Some(after) => tree.range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
        None => tree.range(prefix.to_vec()..),
    };
    let mut keys = Vec::new();
    for entry in range {
        let (key, _) = entry?;
        if !key.starts_with(prefix) || keys.len() == max {
            break;
        }
        keys.push(key.to_vec());
    }
    Ok(keys)
}

/// Whether the aggregates are of this version's layout.
async fn has_current_format(store: &Store) -> Result<bool, StorageError> {
    store
        .read(|trees| {
            let stored = trees
                .tree(TreeName::Recommendations)
                .get(model::format_key())?;
            Ok(stored.is_some_and(|v| v.as_ref() == model::FORMAT.to_be_bytes()))
        })
        .await
}

/// Empties the aggregates (their offset with them: the consumer starts
/// again at the beginning of the log).
/// The format key goes first and comes back last, so a crash half-way is
/// seen at the next start, which resets again.
pub async fn reset(store: &Store) -> Result<(), StorageError> {
    store
        .write(|tx| {
            tx.remove(TreeName::Recommendations, model::format_key());
            tx.remove(TreeName::Recommendations, model::offset_key());
            Ok::<_, StorageError>(())
        })
        .await?;
    loop {
        let keys: Vec<Vec<u8>> = store
            .read(|trees| {
                trees
                    .tree(TreeName::Recommendations)
                    .iter()
                    .keys()
                    .take(4096)
                    .map(|k| Ok(k?.to_vec()))
                    .collect()
            })
            .await?;
        if keys.is_empty() {
            break;
        }
        let keys = Arc::new(keys);
        store
            .write(move |tx| {
                for key in keys.iter() {
                    tx.remove(TreeName::Recommendations, key.clone());
                }
                Ok::<_, StorageError>(())
            })
            .await?;
    }
    store
        .write(|tx| {
            tx.put_raw(
                TreeName::Recommendations,
                model::format_key(),
                model::FORMAT.to_be_bytes().to_vec(),
            );
            Ok::<_, StorageError>(())
        })
        .await
}

/// Rebuilds the aggregates from the whole log (the node must be stopped):
/// resets them, then applies every event. Returns the events applied.
pub async fn rebuild(store: &Store) -> Result<u64, StorageError> {
    reset(store).await?;
    let mut consumer = EventConsumer::at(store.clone(), CONSUMER, 0);
    let end = *store.event_watch().borrow();
    let mut applied = 0;
    while consumer.position() < end {
        let events = Arc::new(consumer.next_batch(BATCH).await?);
        if events.is_empty() {
            break;
        }
        let mut from = 0;
        while from < events.len() {
            from += apply_batch(store, events.clone(), from).await?;
        }
        applied += events.len() as u64;
    }
    Ok(applied)
}

/// The facts of the orders `ids` (hot tree first, then the archive).
fn order_facts(
    trees: &crate::storage::Trees,
    ids: Vec<String>,
) -> Result<HashMap<String, OrderFacts>, StorageError> {
    let mut facts = HashMap::with_capacity(ids.len());
    for id in ids {
        let order = match trees.get::<Order>(TreeName::Orders, id.as_bytes())? {
            Some(order) => Some(order),
            None => trees.get::<Order>(TreeName::OrderArchive, id.as_bytes())?,
        };
        if let Some(order) = order {
            let lines = order
                .lines
                .iter()
                .map(|l| (l.item_id.clone(), l.quantity))
                .collect();
            facts.insert(
                id,
                OrderFacts {
                    user_id: order.user_id,
                    lines,
                },
            );
        }
    }
    Ok(facts)
}

/// Each id's item if it is active and in stock, with its available units.
fn live_items(
    trees: &crate::storage::Trees,
    ids: &[String],
) -> Result<Vec<Option<(Item, i64)>>, StorageError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let item = trees
            .get::<Item>(TreeName::Items, id.as_bytes())?
            .filter(|item| item.status == ItemStatus::Active);
        let Some(item) = item else {
            out.push(None);
            continue;
        };
        let mut available = 0;
        for variant in &item.variants {
            if let Some(stock) = trees.get::<SkuStock>(TreeName::Stock, variant.id.as_bytes())? {
                available += stock.level().available;
            }
        }
        out.push((available > 0).then_some((item, available)));
    }
    Ok(out)
}

/// Applies events from the front of `events` (up to [`MAX_WRITES`] writes)
/// and moves the offset past them, in one atomic write; returns how many
/// were taken.
///
/// The changes are computed on the blocking pool from a snapshot of the
/// tree: the recommender is its only writer, so the snapshot is current.
/// The write job re-checks the stored offset (a reset in between would
/// move it) and only stages the result: the single writer does no reads
/// or computing for the recommender.
async fn apply_batch(
    store: &Store,
    events: Arc<Vec<Event>>,
    from: usize,
) -> Result<usize, StorageError> {
    let wanted = model::confirmed_orders(&events[from..]);
    let computed = store
        .read(move |trees| {
            let orders = order_facts(trees, wanted)?;
            let tree = trees.tree(TreeName::Recommendations);
            let before = model::applied(tree)?;
            let mut batch = Overlay::new(|key: &[u8]| Ok(tree.get(key)?.map(|v| v.to_vec())));
            let (taken, _) = model::apply_events(&mut batch, &events[from..], &orders, MAX_WRITES)?;
            Ok((before, taken, batch.into_writes()))
        })
        .await?;
    let (before, taken, writes) = computed;
    let writes = Arc::new(writes);
    let current = store
        .write(move |tx| {
            let offset = tx
                .get_raw(TreeName::Recommendations, &model::offset_key())?
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map_or(0, u64::from_be_bytes);
            if offset != before {
                return Ok::<_, StorageError>(false);
            }
            for (key, value) in writes.iter() {
                match value {
                    Some(value) => {
                        tx.put_raw(TreeName::Recommendations, key.clone(), value.clone())
                    }
                    None => tx.remove(TreeName::Recommendations, key.clone()),
                }
            }
            Ok(true)
        })
        .await?;
    if !current {
        return Err(StorageError::Codec {
            kind: "recommender",
            reason: "the offset moved while a batch was computed".into(),
        });
    }
    Ok(taken)
}

async fn consume(
    store: Store,
    mut consumer: EventConsumer,
    position: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    while let Some(events) = consumer.next_or_stop(BATCH, &mut stop).await {
        let catching_up = events.len() == BATCH;
        let events = Arc::new(events);
        let mut from = 0;
        while from < events.len() {
            let started = std::time::Instant::now();
            match apply_batch(&store, events.clone(), from).await {
                Ok(taken) => {
                    from += taken;
                    let last = events[from - 1].seq;
                    position.store(last, Ordering::Relaxed);
                    metrics::counter!("agora_recommender_events_total").increment(taken as u64);
                    metrics::gauge!("agora_recommender_offset").set(last as f64);
                }
                Err(e) => {
                    // Read again from the durable offset.
                    tracing::warn!(error = %e, "recommender batch not written; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    match store
                        .read(|trees| model::applied(trees.tree(TreeName::Recommendations)))
                        .await
                    {
                        Ok(offset) => consumer = EventConsumer::at(store.clone(), CONSUMER, offset),
                        Err(e) => {
                            tracing::warn!(error = %e, "recommender cannot reopen its offset")
                        }
                    }
                    break;
                }
            }
            // Behind: yield the writer as long as the batch held it, so a
            // backlog is worked off at no more than about half its pace.
            if catching_up || from < events.len() {
                let pause = started.elapsed().min(std::time::Duration::from_millis(200));
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}

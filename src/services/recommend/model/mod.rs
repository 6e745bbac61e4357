//! How one event changes the recommender's aggregates (the layout is in
//! [`super::keys`]).
//!
//! Popularity and affinity decay with a half-life of [`HALF_LIFE_DAYS`]:
//! each is kept as `ln Σ wᵢ·2^((tᵢ − epoch)/half-life)`, which orders the
//! same way at any later time, so no score is ever rewritten just because
//! time passed, and the logarithm never overflows.
//!
//! The offset lives in the same tree and moves in the same write as what
//! the events changed, and [`apply_events`] skips every event at or below
//! it: an event counts exactly once, however often it is replayed (a
//! guard by sequence number, cheaper than a marker per order). Beyond the
//! log's guarantee, a wishlist add counts once per user and item (`w`: a
//! buyer toggling an item cannot inflate it), and an item's creation seeds
//! its popularity only if the item is new.
//!
//! The decay arithmetic is in `decay.rs`; the batch's key-value view that
//! stages writes over the stored tree ([`Overlay`]) in `overlay.rs`.

use std::collections::{BTreeMap, HashMap};

mod decay;
mod overlay;

/// The epoch, for tests that place events in time.
#[cfg(test)]
pub(super) use decay::EPOCH_MS;
pub use decay::{decayed_add, decayed_value, HALF_LIFE_DAYS};
pub use overlay::{Kv, Overlay, Writes};

use super::keys::*;
use crate::domain::event::{Event, EventBody};
use crate::domain::item::{Item, ItemStatus};
use crate::domain::order::OrderStatus;
use crate::domain::Timestamp;
use crate::storage::{codec, Record, StorageError};

/// A confirmed order counts once per distinct item: `1 + ln(units)`.
const ORDER_WEIGHT: f64 = 1.0;
/// A wishlist add.
const WISH_WEIGHT: f64 = 0.5;
/// A new item's seed: a listing a few seconds old ranks like an item
/// ordered once about two weeks ago, so new items surface but do not
/// push out what sells.
const NEW_ITEM_WEIGHT: f64 = 0.25;
/// Distinct items of one order that enter "bought together" (an order of
/// n items makes n·(n−1) pairs).
const MAX_PAIRED_ITEMS: usize = 10;

/// What the recommender keeps per item.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct RecoItem {
    /// Category, lower-case.
    pub category: Option<String>,
    /// Brand, lower-case.
    pub brand: Option<String>,
    /// For sale (only active items are ranked).
    pub active: bool,
    /// Decayed popularity (ln scale, see the module docs).
    pub popularity: f64,
    /// The popularity its ranking keys carry: an order moves
    /// `popularity` at once, and the keys follow in a later [`rerank`]
    /// (so an item bought many times between two re-ranks moves its keys
    /// once).
    pub ranked: f64,
}

impl Record for RecoItem {
    const KIND: &'static str = "reco_item";
    const VERSION: u8 = 2;
}

/// A confirmed order as the recommender needs it (read from the order when
/// its `CONFIRMED` event is handled: the event names only the order).
#[derive(Debug, Clone)]
pub struct OrderFacts {
    /// The buyer.
    pub user_id: String,
    /// (item id, units) per line.
    pub lines: Vec<(String, i64)>,
}

// ---- applying events -----------------------------------------------------

fn load_item(kv: &mut impl Kv, id: &str) -> Result<Option<RecoItem>, StorageError> {
    kv.get(&item_key(id))?
        .map(|bytes| codec::decode(&bytes))
        .transpose()
}

fn rank_keys(id: &str, item: &RecoItem) -> Vec<Vec<u8>> {
    if !item.active {
        return Vec::new();
    }
    let score = desc_score(item.ranked);
    // tag ‖ score ‖ id: the score is fixed-length, so no separator.
    let mut keys = vec![[&[POPULAR][..], &score, id.as_bytes()].concat()];
    if let Some(category) = &item.category {
        keys.push([category_prefix(category).as_slice(), &score, id.as_bytes()].concat());
    }
    if let Some(brand) = &item.brand {
        keys.push([brand_prefix(brand).as_slice(), &score, id.as_bytes()].concat());
    }
    keys
}

/// Stores `new` for `id`, moving its ranking keys from `old`'s (only
/// those that differ).
fn store_item(
    kv: &mut impl Kv,
    id: &str,
    old: Option<&RecoItem>,
    new: &RecoItem,
) -> Result<(), StorageError> {
    let before = old.map(|old| rank_keys(id, old)).unwrap_or_default();
    let after = rank_keys(id, new);
    for key in &before {
        if !after.contains(key) {
            kv.remove(key.clone());
        }
    }
    for key in after {
        if !before.contains(&key) {
            kv.put(key, Vec::new());
        }
    }
    kv.put(item_key(id), codec::encode(new)?);
    Ok(())
}

/// Moves the ranking keys of `items` to their current popularity, until
/// `max_writes` writes are staged; returns the items not reached (for the
/// next call).
pub fn rerank(
    kv: &mut impl Kv,
    items: impl IntoIterator<Item = String>,
    max_writes: usize,
) -> Result<Vec<String>, StorageError> {
    let mut left = Vec::new();
    for id in items {
        if kv.staged() >= max_writes {
            left.push(id);
            continue;
        }
        let Some(old) = load_item(kv, &id)? else {
            continue;
        };
        if old.ranked.to_bits() != old.popularity.to_bits() {
            let new = RecoItem {
                ranked: old.popularity,
                ..old.clone()
            };
            store_item(kv, &id, Some(&old), &new)?;
        }
    }
    Ok(left)
}

/// Whether an item's ranking keys lag its popularity.
pub fn lags(item: &RecoItem) -> bool {
    item.active && item.ranked.to_bits() != item.popularity.to_bits()
}

fn lower(text: &Option<String>) -> Option<String> {
    text.as_ref().map(|t| t.to_lowercase())
}

fn apply_item(kv: &mut impl Kv, item: &Item, active: bool) -> Result<(), StorageError> {
    let old = load_item(kv, &item.id)?;
    let popularity = match &old {
        Some(old) => old.popularity,
        None => decayed_add(f64::NEG_INFINITY, NEW_ITEM_WEIGHT, item.created_at),
    };
    let mut new = RecoItem {
        category: lower(&item.category),
        brand: lower(&item.brand),
        active,
        popularity,
        ranked: old.as_ref().map_or(popularity, |old| old.ranked),
    };
    let same_place = old.as_ref().is_some_and(|old| {
        (&old.category, &old.brand, old.active) == (&new.category, &new.brand, new.active)
    });
    if !same_place {
        // Its keys move anyway: to where it ranks now.
        new.ranked = popularity;
    }
    if old.as_ref() != Some(&new) {
        store_item(kv, &item.id, old.as_ref(), &new)?;
    }
    Ok(())
}

/// Adds `weight` to an item's popularity, and to `user`'s affinity for its
/// category and brand.
fn observe(
    kv: &mut impl Kv,
    user: &str,
    item_id: &str,
    weight: f64,
    at: Timestamp,
) -> Result<(), StorageError> {
    // An item unknown here (its events not seen): ranked without category
    // or brand; the live check at read time decides whether it is for sale.
    let old = load_item(kv, item_id)?;
    let mut new = old.clone().unwrap_or(RecoItem {
        category: None,
        brand: None,
        active: true,
        popularity: f64::NEG_INFINITY,
        ranked: f64::NEG_INFINITY,
    });
    new.popularity = decayed_add(new.popularity, weight, at);
    if old.is_none() {
        // Ranked at once: an item unranked would not show at all.
        new.ranked = new.popularity;
    } else if lags(&new) {
        kv.defer(item_id);
    }
    store_item(kv, item_id, old.as_ref(), &new)?;
    for (kind, value) in [(CATEGORY, &new.category), (BRAND, &new.brand)] {
        if let Some(value) = value {
            let key = user_key(user, kind, value);
            let sum = decayed_add(f64_value(kv.get(&key)?), weight, at);
            kv.put(key, sum.to_be_bytes().to_vec());
        }
    }
    let history = user_key(user, b'h', "");
    if kv.get(&history)?.is_none() {
        kv.put(history, Vec::new());
    }
    Ok(())
}

fn apply_order(kv: &mut impl Kv, facts: &OrderFacts, at: Timestamp) -> Result<(), StorageError> {
    // Distinct items, first-seen order, units summed.
    let mut units: BTreeMap<&str, i64> = BTreeMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    for (item, quantity) in &facts.lines {
        let entry = units.entry(item.as_str()).or_insert(0);
        if *entry == 0 {
            distinct.push(item.as_str());
        }
        *entry = entry.saturating_add((*quantity).max(1));
    }
    let user = facts.user_id.as_str();
    for item in &distinct {
        let weight = ORDER_WEIGHT + (units[item] as f64).ln();
        observe(kv, user, item, weight, at)?;
        kv.put(user_key(user, b'p', item), at.0.to_be_bytes().to_vec());
    }
    let paired = &distinct[..distinct.len().min(MAX_PAIRED_ITEMS)];
    for a in paired {
        for b in paired.iter().filter(|b| *b != a) {
            let pair = pair_key(a, b);
            let count = u64_value(kv.get(&pair)?);
            let prefix = partners_prefix(a);
            if count > 0 {
                kv.remove([prefix.as_slice(), &desc_count(count), b.as_bytes()].concat());
            }
            kv.put(
                [prefix.as_slice(), &desc_count(count + 1), b.as_bytes()].concat(),
                Vec::new(),
            );
            kv.put(pair, (count + 1).to_be_bytes().to_vec());
        }
    }
    Ok(())
}

/// Applies, in order, the events after the stored offset, until `max_writes`
/// writes are staged, and moves the offset to the last event taken;
/// returns how many of `events` were taken (the rest are for the next
/// batch) and how many of those were new. `orders` holds the facts of the orders confirmed in the batch
/// (an order missing from it is skipped). An event whose stored records
/// cannot be decoded is skipped, with its partial writes, and logged: one
/// bad record must not stop the recommender for good.
pub fn apply_events(
    kv: &mut impl Kv,
    events: &[Event],
    orders: &HashMap<String, OrderFacts>,
    max_writes: usize,
) -> Result<(usize, usize), StorageError> {
    let offset = u64_value(kv.get(&offset_key())?);
    let mut taken = 0;
    let mut new = 0;
    let mut last = None;
    for event in events {
        if kv.staged() >= max_writes {
            break;
        }
        taken += 1;
        if event.seq <= offset {
            continue;
        }
        new += 1;
        kv.begin();
        match apply(kv, event, orders) {
            Ok(()) => {}
            Err(e @ StorageError::Codec { .. }) => {
                kv.undo();
                metrics::counter!("agora_recommender_skipped_events_total").increment(1);
                tracing::error!(seq = event.seq, error = %e, "recommender skipped an event it cannot read");
            }
            Err(e) => return Err(e),
        }
        last = Some(event.seq);
    }
    if let Some(last) = last {
        kv.put(offset_key(), last.to_be_bytes().to_vec());
    }
    Ok((taken, new))
}

/// Applies one event (whether it is new is [`apply_events`]' business).
fn apply(
    kv: &mut impl Kv,
    event: &Event,
    orders: &HashMap<String, OrderFacts>,
) -> Result<(), StorageError> {
    match &event.body {
        EventBody::ItemCreated(item) | EventBody::ItemUpdated(item) => {
            apply_item(kv, item, item.status == ItemStatus::Active)
        }
        EventBody::ItemDeactivated(item) => apply_item(kv, item, false),
        EventBody::OrderUpdated {
            order_id, status, ..
        } if *status == OrderStatus::Confirmed => match orders.get(order_id) {
            Some(facts) => apply_order(kv, facts, event.at),
            None => Ok(()),
        },
        EventBody::WishlistAdded { user_id, item_id } => {
            let marker = key(WISH, &[user_id.as_bytes(), item_id.as_bytes()]);
            if kv.get(&marker)?.is_some() {
                return Ok(());
            }
            kv.put(marker, Vec::new());
            observe(kv, user_id, item_id, WISH_WEIGHT, event.at)
        }
        EventBody::StockChanged { .. } | EventBody::OrderUpdated { .. } => Ok(()),
    }
}

/// The orders a batch confirms (whose facts [`apply_events`] needs).
pub fn confirmed_orders(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::OrderUpdated {
                order_id,
                status: OrderStatus::Confirmed,
                ..
            } => Some(order_id.clone()),
            _ => None,
        })
        .collect()
}

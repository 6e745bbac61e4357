//! The recommender's aggregates and how one event changes them.
//!
//! Everything lives in one sled tree ([`TreeName::Recommendations`]) under
//! one-byte key prefixes, so a batch of events is one write:
//!
//! ```text
//! i item                      → RecoItem {category, brand, active, popularity}
//! p desc(popularity) item     → ()   every active item, most popular first
//! c category 0 desc(pop) item → ()   the same, per category
//! b brand 0 desc(pop) item    → ()   the same, per brand (lower-case)
//! t a 0 b                     → u64  confirmed orders holding both a and b
//! r a 0 desc(count) b         → ()   a's partners, most bought-together first
//! u user 0 p item             → i64  when the user last bought the item
//! u user 0 c category         → f64  the user's affinity (ln, decayed)
//! u user 0 b brand            → f64  the same, per brand (lower-case)
//! u user 0 h                  → ()   the user has a history
//! w user 0 item               → ()   this wishlist add was counted
//! m format                    → u32  the layout's version
//! m offset                    → u64  the last event applied
//! ```
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

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::domain::item::{Item, ItemStatus};
use crate::domain::order::OrderStatus;
use crate::domain::Timestamp;
use crate::storage::events::{Event, EventBody};
use crate::storage::{codec, Record, StorageError};

/// Version of the key layout; another one is rebuilt from the log.
pub const FORMAT: u32 = 1;
/// Popularity and affinity halve in this time.
pub const HALF_LIFE_DAYS: f64 = 7.0;
/// Decay's time origin (2026-01-01T00:00:00Z).
const EPOCH_MS: i64 = 1_767_225_600_000;
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

const ITEM: u8 = b'i';
const POPULAR: u8 = b'p';
const CATEGORY: u8 = b'c';
const BRAND: u8 = b'b';
const PAIR: u8 = b't';
const PARTNERS: u8 = b'r';
const USER: u8 = b'u';
const WISH: u8 = b'w';
const META: u8 = b'm';

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
}

impl Record for RecoItem {
    const KIND: &'static str = "reco_item";
    const VERSION: u8 = 1;
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

/// Reads and staged writes of one batch.
pub trait Kv {
    /// The value under `key`, including this batch's own writes.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Stages `value` under `key`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    /// Stages the removal of `key`.
    fn remove(&mut self, key: Vec<u8>);
    /// Writes staged so far.
    fn staged(&self) -> usize;
    /// Starts one event's writes (so they can be undone alone).
    fn begin(&mut self);
    /// Drops the writes staged since [`Self::begin`].
    fn undo(&mut self);
}

/// A key's state in the overlay before an event touched it.
type Prior = (Vec<u8>, Option<Option<Vec<u8>>>);

/// A [`Kv`] that buffers a batch's writes in memory (reads see them) over
/// a reader of the stored values; [`Self::into_writes`] hands them over.
pub struct Overlay<R> {
    read: R,
    writes: HashMap<Vec<u8>, Option<Vec<u8>>>,
    journal: Vec<Prior>,
}

impl<R> Overlay<R>
where
    R: FnMut(&[u8]) -> Result<Option<Vec<u8>>, StorageError>,
{
    /// An empty batch over `read`.
    pub fn new(read: R) -> Self {
        Overlay {
            read,
            writes: HashMap::new(),
            journal: Vec::new(),
        }
    }

    /// The batch's net writes (`None` removes).
    pub fn into_writes(self) -> HashMap<Vec<u8>, Option<Vec<u8>>> {
        self.writes
    }
}

impl<R> Kv for Overlay<R>
where
    R: FnMut(&[u8]) -> Result<Option<Vec<u8>>, StorageError>,
{
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => (self.read)(key),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let prior = self.writes.insert(key.clone(), Some(value));
        self.journal.push((key, prior));
    }

    fn remove(&mut self, key: Vec<u8>) {
        let prior = self.writes.insert(key.clone(), None);
        self.journal.push((key, prior));
    }

    fn staged(&self) -> usize {
        self.writes.len()
    }

    fn begin(&mut self) {
        self.journal.clear();
    }

    fn undo(&mut self) {
        while let Some((key, prior)) = self.journal.pop() {
            match prior {
                Some(value) => self.writes.insert(key, value),
                None => self.writes.remove(&key),
            };
        }
    }
}

// ---- keys ----------------------------------------------------------------

fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(tag);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(0);
        }
        key.extend_from_slice(part);
    }
    key
}

/// 8 bytes that sort descending by `score` (any finite or infinite f64).
pub fn desc_score(score: f64) -> [u8; 8] {
    let bits = score.to_bits();
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    (!ascending).to_be_bytes()
}

/// 8 bytes that sort descending by `count`.
fn desc_count(count: u64) -> [u8; 8] {
    (u64::MAX - count).to_be_bytes()
}

fn item_key(item: &str) -> Vec<u8> {
    key(ITEM, &[item.as_bytes()])
}

/// Prefix of the global popularity ranking.
pub fn popular_prefix() -> Vec<u8> {
    vec![POPULAR]
}

/// Prefix of one category's ranking.
pub fn category_prefix(category: &str) -> Vec<u8> {
    let mut key = key(CATEGORY, &[category.as_bytes()]);
    key.push(0);
    key
}

/// Prefix of one brand's ranking (`brand` lower-case).
pub fn brand_prefix(brand: &str) -> Vec<u8> {
    let mut key = key(BRAND, &[brand.as_bytes()]);
    key.push(0);
    key
}

/// Prefix of `item`'s bought-together partners, most frequent first.
pub fn partners_prefix(item: &str) -> Vec<u8> {
    let mut key = key(PARTNERS, &[item.as_bytes()]);
    key.push(0);
    key
}

fn pair_key(a: &str, b: &str) -> Vec<u8> {
    key(PAIR, &[a.as_bytes(), b.as_bytes()])
}

/// Prefix of everything kept about `user`.
pub fn user_prefix(user: &str) -> Vec<u8> {
    let mut key = key(USER, &[user.as_bytes()]);
    key.push(0);
    key
}

fn user_key(user: &str, kind: u8, rest: &str) -> Vec<u8> {
    let mut key = user_prefix(user);
    key.push(kind);
    key.extend_from_slice(rest.as_bytes());
    key
}

/// The key of the layout's version.
pub fn format_key() -> Vec<u8> {
    key(META, &[b"format"])
}

/// The key of the last event applied.
pub fn offset_key() -> Vec<u8> {
    key(META, &[b"offset"])
}

/// The last event applied (0: none).
pub fn applied(tree: &sled::Tree) -> Result<u64, StorageError> {
    Ok(u64_value(tree.get(offset_key())?.map(|v| v.to_vec())))
}

/// The item id at the end of a ranking key under `prefix`.
pub fn ranked_item(prefix: &[u8], key: &[u8]) -> Option<String> {
    let rest = key.get(prefix.len() + 8..)?;
    String::from_utf8(rest.to_vec()).ok()
}

/// The count inside a partners key under `prefix`.
pub fn ranked_count(prefix: &[u8], key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(prefix.len()..prefix.len() + 8)?.try_into().ok()?;
    Some(u64::MAX - u64::from_be_bytes(bytes))
}

// ---- decay ---------------------------------------------------------------

fn half_lives(at: Timestamp) -> f64 {
    (at.0 - EPOCH_MS) as f64 / (HALF_LIFE_DAYS * 86_400_000.0)
}

/// `ln(e^a + e^b)`, exact at −∞.
fn log_add(a: f64, b: f64) -> f64 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    if low == f64::NEG_INFINITY {
        return high;
    }
    high + (low - high).exp().ln_1p()
}

/// A decayed sum in ln scale plus `weight` observed at `at`.
pub fn decayed_add(sum: f64, weight: f64, at: Timestamp) -> f64 {
    log_add(sum, weight.ln() + half_lives(at) * std::f64::consts::LN_2)
}

/// A decayed sum's value as of `now` (for weighing, not ordering).
pub fn decayed_value(sum: f64, now: Timestamp) -> f64 {
    (sum - half_lives(now) * std::f64::consts::LN_2).exp()
}

fn f64_value(bytes: Option<Vec<u8>>) -> f64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(f64::NEG_INFINITY, f64::from_be_bytes)
}

fn u64_value(bytes: Option<Vec<u8>>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
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
    let score = desc_score(item.popularity);
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

/// Stores `new` for `id`, moving its ranking keys from `old`'s.
fn store_item(
    kv: &mut impl Kv,
    id: &str,
    old: Option<&RecoItem>,
    new: &RecoItem,
) -> Result<(), StorageError> {
    if let Some(old) = old {
        for key in rank_keys(id, old) {
            kv.remove(key);
        }
    }
    for key in rank_keys(id, new) {
        kv.put(key, Vec::new());
    }
    kv.put(item_key(id), codec::encode(new)?);
    Ok(())
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
    let new = RecoItem {
        category: lower(&item.category),
        brand: lower(&item.brand),
        active,
        popularity,
    };
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
    });
    new.popularity = decayed_add(new.popularity, weight, at);
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

/// The orders a batch confirms (whose facts [`apply`] needs).
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

// ---- reading a user's profile --------------------------------------------

/// What the recommender knows about one buyer.
#[derive(Debug, Default)]
pub struct Profile {
    /// Any purchase or wishlist add counted.
    pub has_history: bool,
    /// Items bought, with when, newest first.
    pub purchases: Vec<(String, Timestamp)>,
    /// Category → decayed affinity (ln scale).
    pub categories: Vec<(String, f64)>,
    /// Brand (lower-case) → decayed affinity (ln scale).
    pub brands: Vec<(String, f64)>,
}

impl Profile {
    /// Items bought, for exclusion.
    pub fn bought(&self) -> HashSet<&str> {
        self.purchases.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Reads `user`'s entries (the `u user 0` range).
    pub fn read(tree: &sled::Tree, user: &str) -> Result<Profile, StorageError> {
        let prefix = user_prefix(user);
        let mut profile = Profile::default();
        for entry in tree.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let Some((&kind, rest)) = key[prefix.len()..].split_first() else {
                continue;
            };
            let rest = String::from_utf8_lossy(rest).into_owned();
            match kind {
                b'h' => profile.has_history = true,
                b'p' => {
                    let at = <[u8; 8]>::try_from(value.as_ref()).map_or(0, i64::from_be_bytes);
                    profile.purchases.push((rest, Timestamp(at)));
                }
                CATEGORY => profile
                    .categories
                    .push((rest, f64_value(Some(value.to_vec())))),
                BRAND => profile.brands.push((rest, f64_value(Some(value.to_vec())))),
                _ => {}
            }
        }
        profile
            .purchases
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for list in [&mut profile.categories, &mut profile.brands] {
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        Ok(profile)
    }
}

/// The bought-together count of `a` and `b`.
pub fn pair_count(tree: &sled::Tree, a: &str, b: &str) -> Result<u64, StorageError> {
    Ok(u64_value(tree.get(pair_key(a, b))?.map(|v| v.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::item::Variant;
    use crate::domain::order::PaymentStatus;

    impl Kv for sled::Tree {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            Ok(sled::Tree::get(self, key)?.map(|v| v.to_vec()))
        }
        fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
            self.insert(key, value).expect("insert");
        }
        fn remove(&mut self, key: Vec<u8>) {
            sled::Tree::remove(self, key).expect("remove");
        }
        fn staged(&self) -> usize {
            0
        }
        fn begin(&mut self) {}
        fn undo(&mut self) {}
    }

    fn item(id: &str, category: &str, brand: &str, at: i64) -> Item {
        Item {
            id: id.into(),
            seller_id: "seller".into(),
            name: format!("item {id}"),
            description: String::new(),
            price: 100,
            currency: "USD".into(),
            sku: None,
            brand: Some(brand.into()),
            category: Some(category.into()),
            tags: Vec::new(),
            attributes_json: "{}".into(),
            has_variants: false,
            variants: vec![Variant {
                id: id.into(),
                sku: None,
                attributes_json: "{}".into(),
                price: 100,
            }],
            status: ItemStatus::Active,
            images: Vec::new(),
            created_at: Timestamp(at),
            updated_at: Timestamp(at),
        }
    }

    fn event(seq: u64, at: i64, body: EventBody) -> Event {
        Event {
            seq,
            at: Timestamp(at),
            body,
        }
    }

    fn confirmed(seq: u64, at: i64, order: &str, user: &str) -> Event {
        event(
            seq,
            at,
            EventBody::OrderUpdated {
                order_id: order.into(),
                user_id: user.into(),
                status: OrderStatus::Confirmed,
                payment_status: PaymentStatus::Succeeded,
            },
        )
    }

    fn ranking(tree: &sled::Tree, prefix: &[u8]) -> Vec<String> {
        tree.scan_prefix(prefix)
            .map(|e| ranked_item(prefix, &e.expect("scan").0).expect("item"))
            .collect()
    }

    fn dump(tree: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        tree.iter()
            .map(|e| e.expect("iter"))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    const T0: i64 = EPOCH_MS + 300 * 86_400_000;

    fn history() -> (Vec<Event>, HashMap<String, OrderFacts>) {
        let mut orders = HashMap::new();
        let facts = |user: &str, items: &[&str]| OrderFacts {
            user_id: user.into(),
            lines: items.iter().map(|i| ((*i).to_owned(), 1)).collect(),
        };
        orders.insert("o1".to_owned(), facts("u1", &["A", "B"]));
        orders.insert("o2".to_owned(), facts("u2", &["A", "B"]));
        orders.insert("o3".to_owned(), facts("u3", &["A", "C"]));
        orders.insert("o4".to_owned(), facts("u1", &["A"]));
        let events = vec![
            event(
                1,
                T0,
                EventBody::ItemCreated(item("A", "lamps", "Lumo", T0)),
            ),
            event(
                2,
                T0,
                EventBody::ItemCreated(item("B", "bulbs", "Lumo", T0)),
            ),
            event(
                3,
                T0,
                EventBody::ItemCreated(item("C", "lamps", "Other", T0)),
            ),
            event(4, T0, EventBody::ItemCreated(item("D", "desks", "Oak", T0))),
            confirmed(5, T0 + 1_000, "o1", "u1"),
            confirmed(6, T0 + 2_000, "o2", "u2"),
            confirmed(7, T0 + 3_000, "o3", "u3"),
            confirmed(8, T0 + 4_000, "o4", "u1"),
            event(
                9,
                T0 + 5_000,
                EventBody::WishlistAdded {
                    user_id: "u4".into(),
                    item_id: "D".into(),
                },
            ),
        ];
        (events, orders)
    }

    #[test]
    fn orders_rank_popularity_pairs_and_affinity() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let mut tree = db.open_tree("reco").expect("tree");
        let (events, orders) = history();
        apply_events(&mut tree, &events, &orders, usize::MAX).expect("apply");
        assert_eq!(applied(&tree).expect("offset"), 9);
        assert_eq!(ranking(&tree, &popular_prefix()), ["A", "B", "C", "D"]);
        assert_eq!(ranking(&tree, &category_prefix("lamps")), ["A", "C"]);
        assert_eq!(ranking(&tree, &brand_prefix("lumo")), ["A", "B"]);
        let partners = partners_prefix("A");
        assert_eq!(ranking(&tree, &partners), ["B", "C"]);
        let counts: Vec<u64> = tree
            .scan_prefix(&partners)
            .map(|e| ranked_count(&partners, &e.expect("scan").0).expect("count"))
            .collect();
        assert_eq!(counts, [2, 1]);
        assert_eq!(pair_count(&tree, "B", "A").expect("count"), 2);

        let profile = Profile::read(&tree, "u1").expect("profile");
        assert!(profile.has_history);
        assert_eq!(profile.bought(), HashSet::from(["A", "B"]));
        assert_eq!(profile.purchases[0].0, "A", "newest purchase first");
        assert_eq!(profile.categories[0].0, "lamps");
        assert_eq!(profile.brands[0].0, "lumo");
        assert!(Profile::read(&tree, "u4").expect("profile").has_history);
        assert!(!Profile::read(&tree, "nobody").expect("profile").has_history);
    }

    #[test]
    fn replaying_events_changes_nothing() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let mut tree = db.open_tree("reco").expect("tree");
        let (events, orders) = history();
        assert_eq!(
            apply_events(&mut tree, &events[..6], &orders, usize::MAX)
                .expect("apply")
                .1,
            6
        );
        // Redelivered: the whole log again, then in overlapping pieces.
        assert_eq!(
            apply_events(&mut tree, &events, &orders, usize::MAX)
                .expect("apply")
                .1,
            3
        );
        let once = dump(&tree);
        for piece in [&events[..], &events[2..5], &events[8..]] {
            assert_eq!(
                apply_events(&mut tree, piece, &orders, usize::MAX)
                    .expect("apply")
                    .1,
                0
            );
        }
        assert_eq!(dump(&tree), once);
        // The same wishlist add again (re-added after a remove: a new
        // event) counts once per user and item.
        let mut again = events[8].clone();
        again.seq = 10;
        assert_eq!(
            apply_events(&mut tree, &[again], &orders, usize::MAX)
                .expect("apply")
                .1,
            1
        );
        let without_offset = |mut entries: Vec<(Vec<u8>, Vec<u8>)>| {
            entries.retain(|(k, _)| k != &offset_key());
            entries
        };
        assert_eq!(without_offset(dump(&tree)), without_offset(once));
    }

    #[test]
    fn a_batch_cut_by_its_writes_resumes_where_it_stopped() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let mut whole = db.open_tree("whole").expect("tree");
        let pieces = db.open_tree("pieces").expect("tree");
        let (events, orders) = history();
        apply_events(&mut whole, &events, &orders, usize::MAX).expect("apply");
        let mut rest = &events[..];
        let mut rounds = 0;
        while !rest.is_empty() {
            let mut batch = Overlay::new(|key: &[u8]| Ok(pieces.get(key)?.map(|v| v.to_vec())));
            let (taken, _) = apply_events(&mut batch, rest, &orders, 5).expect("apply");
            assert!(taken > 0);
            for (key, value) in batch.into_writes() {
                match value {
                    Some(value) => pieces.insert(key, value).expect("insert"),
                    None => pieces.remove(key).expect("remove"),
                };
            }
            rest = &rest[taken..];
            rounds += 1;
        }
        assert!(rounds > 2, "cut into several batches");
        assert_eq!(dump(&pieces), dump(&whole));
    }

    #[test]
    fn a_deactivated_item_leaves_every_ranking_and_a_moved_one_follows() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let mut tree = db.open_tree("reco").expect("tree");
        let (events, orders) = history();
        apply_events(&mut tree, &events, &orders, usize::MAX).expect("apply");
        let mut gone = item("A", "lamps", "Lumo", T0);
        gone.status = ItemStatus::Inactive;
        let deactivated = event(10, T0, EventBody::ItemDeactivated(gone));
        apply_events(&mut tree, &[deactivated], &orders, usize::MAX).expect("apply");
        assert_eq!(ranking(&tree, &popular_prefix()), ["B", "C", "D"]);
        assert_eq!(ranking(&tree, &category_prefix("lamps")), ["C"]);
        let moved = item("C", "desks", "Other", T0);
        let updated = event(11, T0, EventBody::ItemUpdated(moved));
        apply_events(&mut tree, &[updated], &orders, usize::MAX).expect("apply");
        assert!(ranking(&tree, &category_prefix("lamps")).is_empty());
        assert_eq!(ranking(&tree, &category_prefix("desks")), ["C", "D"]);
    }

    #[test]
    fn popularity_decays_with_time() {
        // Two orders a month ago weigh less than one today.
        let old = decayed_add(
            decayed_add(f64::NEG_INFINITY, 1.0, Timestamp(T0)),
            1.0,
            Timestamp(T0),
        );
        let new = decayed_add(f64::NEG_INFINITY, 1.0, Timestamp(T0 + 30 * 86_400_000));
        assert!(new > old);
        let now = Timestamp(T0 + 7 * 86_400_000);
        let value = decayed_value(decayed_add(f64::NEG_INFINITY, 1.0, Timestamp(T0)), now);
        assert!((value - 0.5).abs() < 1e-9, "one half-life later: {value}");
        // The ordering bytes agree with the numbers, negative ones too.
        let mut scores = [3.5, -2.0, 0.0, 1e300, -1e300, f64::NEG_INFINITY];
        let mut by_key = scores;
        by_key.sort_by_key(|s| desc_score(*s));
        scores.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(by_key, scores);
    }
}

//! Candidate lists, read from the aggregates in one storage read each: a
//! buyer's personal candidates, their latest orders, ranked keys, and the
//! live check (active, in stock) of a chunk of items.

use std::collections::{HashMap, HashSet};

use super::keys::{f64_value, user_prefix, BRAND, CATEGORY};
use super::model;
use super::writes::order_facts;
use super::{keys, Reason};
use crate::domain::item::{Item, ItemStatus};
use crate::domain::stock::SkuStock;
use crate::domain::Timestamp;
use crate::storage::{StorageError, TreeName, Trees};

/// The buyer's latest orders whose items are excluded live.
const RECENT_ORDERS: usize = 20;
/// A buyer's most recent purchases whose partners are candidates.
const RECENT_PURCHASES: usize = 10;
/// Top categories and brands of a buyer that give candidates.
const TOP_AFFINITIES: usize = 3;

/// An item that may be recommended, before the live check.
pub(super) type Candidate = (String, Reason, Option<u64>);

/// A candidate's score while a personal list is ranked.
pub(super) struct Scored {
    score: f64,
    reason: Reason,
    bought_together: Option<u64>,
}

/// Candidates from a buyer's history, best first: partners of recent
/// purchases, then what is popular in their top categories and brands.
pub(super) fn personal_candidates(
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
        let prefix = keys::partners_prefix(bought);
        for key in scan_keys(tree, &prefix, None, 2 * size)? {
            if let (Some(id), Some(count)) = (
                keys::ranked_item(&prefix, &key),
                keys::ranked_count(&prefix, &key),
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
                Reason::Category => keys::category_prefix(value),
                _ => keys::brand_prefix(value),
            };
            let ranked = scan_keys(tree, &prefix, None, 2 * size)?;
            for (rank, key) in ranked.iter().enumerate() {
                if let Some(id) = keys::ranked_item(&prefix, key) {
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
pub(super) fn recently_ordered(trees: &Trees, user: &str) -> Result<Vec<String>, StorageError> {
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
pub(super) fn scan_keys(
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

/// Each id's item if it is active and in stock, with its available units.
pub(super) fn live_items(
    trees: &Trees,
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

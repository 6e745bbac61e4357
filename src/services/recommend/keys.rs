//! The recommender's key layout: everything lives in one sled tree
//! ([`TreeName::Recommendations`](crate::storage::TreeName)) under one-byte
//! prefixes, so a batch of events is one write:
//!
//! ```text
//! i item                      → RecoItem {category, brand, active, popularity, ranked}
//! p desc(ranked) item         → ()   every active item, most popular first
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
//! Rankings sort by their fixed-length 8-byte score or count, highest
//! first ([`desc_score`], `desc_count`), so "most popular" is a prefix scan.

use crate::storage::StorageError;

/// Version of the key layout; another one is rebuilt from the log.
pub const FORMAT: u32 = 2;

pub(crate) const ITEM: u8 = b'i';
pub(super) const POPULAR: u8 = b'p';
pub(super) const CATEGORY: u8 = b'c';
pub(super) const BRAND: u8 = b'b';
pub(super) const PAIR: u8 = b't';
pub(super) const PARTNERS: u8 = b'r';
pub(super) const USER: u8 = b'u';
pub(super) const WISH: u8 = b'w';
pub(super) const META: u8 = b'm';

pub(super) fn key(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
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
pub(super) fn desc_count(count: u64) -> [u8; 8] {
    (u64::MAX - count).to_be_bytes()
}

pub(super) fn item_key(item: &str) -> Vec<u8> {
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

pub(super) fn pair_key(a: &str, b: &str) -> Vec<u8> {
    key(PAIR, &[a.as_bytes(), b.as_bytes()])
}

/// Prefix of everything kept about `user`.
pub fn user_prefix(user: &str) -> Vec<u8> {
    let mut key = key(USER, &[user.as_bytes()]);
    key.push(0);
    key
}

pub(super) fn user_key(user: &str, kind: u8, rest: &str) -> Vec<u8> {
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

pub(super) fn f64_value(bytes: Option<Vec<u8>>) -> f64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(f64::NEG_INFINITY, f64::from_be_bytes)
}

pub(super) fn u64_value(bytes: Option<Vec<u8>>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
}

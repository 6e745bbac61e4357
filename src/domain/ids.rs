//! Server-chosen identifiers.
//!
//! Every id is a ULID: 48 bits of milliseconds, then 80 random bits. The
//! top 16 of those random bits are the id's **placement key**: an id made
//! by [`new_id_in`] carries the key it is given, so an id alone is enough
//! to find the shard (and the node) that owns the entity
//! ([`crate::domain::placement`]). An id from [`new_id`] has a random key,
//! so ids made before keys were chosen still have one, deterministic shard.

use ulid::Ulid;

/// Where the placement key sits in a ULID's 128 bits: the top 16 of the
/// 80 random bits.
const KEY_SHIFT: u32 = 64;

/// A new opaque, time-ordered id (a ULID: 26 Crockford base32 characters)
/// with a random placement key.
///
/// Time order keeps sled keys that start with an id roughly in creation order,
/// which makes range scans and "newest first" listings cheap.
pub fn new_id() -> String {
    Ulid::new().to_string()
}

/// A new id, like [`new_id`], whose placement key is `key`: it still sorts
/// by time and still looks like an id.
pub fn new_id_in(key: u16) -> String {
    let fresh = Ulid::new();
    let random = (fresh.random() & !(0xFFFF_u128 << KEY_SHIFT)) | (u128::from(key) << KEY_SHIFT);
    Ulid::from_parts(fresh.timestamp_ms(), random).to_string()
}

/// A new id placed with `owner` (same placement key, so the same shard on
/// any cluster): a buyer's cart or order beside the buyer, a variant beside
/// its item. A random placement if `owner` is not an id.
pub fn new_id_beside(owner: &str) -> String {
    match placement_key(owner) {
        Some(key) => new_id_in(key),
        None => new_id(),
    }
}

/// The placement key of something that is not an id but must be placed
/// (an email address, a guest cart's token): a fixed hash of its text.
pub fn key_of_text(text: &str) -> u16 {
    // Truncation intended: any 16 bits of a good hash are as good as others.
    xxhash_rust::xxh3::xxh3_64(text.as_bytes()) as u16
}

/// The placement key an id carries; `None` if `id` is not an id.
pub fn placement_key(id: &str) -> Option<u16> {
    if !looks_like_id(id) {
        return None;
    }
    let bits = id.parse::<Ulid>().ok()?.0;
    Some((bits >> KEY_SHIFT) as u16)
}

/// Whether `candidate` has the shape of an id this server issues. Used to turn
/// garbage path segments into a plain 404 without touching storage.
pub fn looks_like_id(candidate: &str) -> bool {
    candidate.len() == 26 && candidate.parse::<Ulid>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_recognised_and_garbage_is_not() {
        assert!(looks_like_id(&new_id()));
        assert!(!looks_like_id("../../etc/passwd"));
        assert!(!looks_like_id(""));
    }

    #[test]
    fn an_id_made_in_a_key_carries_that_key_and_still_looks_like_an_id() {
        for key in [0, 1, 7, 1023, 1024, 40_000, u16::MAX] {
            let id = new_id_in(key);
            assert!(looks_like_id(&id), "{id}");
            assert_eq!(placement_key(&id), Some(key), "{id}");
        }
        assert_eq!(placement_key("not-an-id"), None);
        // The ULID spec's example: random bits 0xD676..., so key 0xD676.
        assert_eq!(placement_key("01ARZ3NDEKTSV4RRFFQ69G5FAV"), Some(54_902));
    }

    #[test]
    fn an_id_made_beside_another_shares_its_key_and_a_non_id_gets_a_random_one() {
        let user = new_id();
        let cart = new_id_beside(&user);
        assert_eq!(placement_key(&cart), placement_key(&user));
        assert!(looks_like_id(&new_id_beside("guest")));
    }

    #[test]
    fn ids_made_in_a_key_sort_by_time_and_keep_the_randomness_below_the_key() {
        let first = new_id_in(5);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id_in(5);
        assert!(first < second, "{first} then {second}");
        let (a, b) = (new_id_in(9), new_id_in(9));
        assert_ne!(a, b, "64 random bits remain");
    }
}

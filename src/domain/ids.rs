//! Server-chosen identifiers.

/// A new opaque, time-ordered id (a ULID: 26 Crockford base32 characters).
///
/// Time order keeps sled keys that start with an id roughly in creation order,
/// which makes range scans and "newest first" listings cheap.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

/// Whether `candidate` has the shape of an id this server issues. Used to turn
/// garbage path segments into a plain 404 without touching storage.
pub fn looks_like_id(candidate: &str) -> bool {
    candidate.len() == 26 && candidate.parse::<ulid::Ulid>().is_ok()
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
}

//! Search cursors: the last hit's sort key and id (search-after), the index
//! snapshot the page came from, and the search it belongs to, signed with
//! a node key so a forged or garbled cursor is refused (`INVALID_CURSOR`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::collect::SortKey;

const FORMAT: u8 = 1;
const PAYLOAD: usize = 1 + 8 + 8 + 24;
const TAG: usize = 16;

/// What a cursor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The index snapshot (generation) of the first page.
    pub generation: u64,
    /// The last hit served.
    pub after: SortKey,
}

/// Signs and checks cursors.
#[derive(Clone)]
pub struct CursorKey {
    key: [u8; 32],
}

impl CursorKey {
    /// A key from stored bytes.
    pub fn new(key: [u8; 32]) -> Self {
        CursorKey { key }
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(&full[..TAG]);
        tag
    }

    /// The cursor after `position` for the search `fingerprint`.
    pub fn encode(&self, fingerprint: &str, position: Position) -> String {
        let mut bytes = Vec::with_capacity(PAYLOAD + TAG);
        bytes.push(FORMAT);
        bytes.extend_from_slice(&position.generation.to_be_bytes());
        bytes.extend_from_slice(&digest(fingerprint));
        for part in [position.after.primary, position.after.hi, position.after.lo] {
            bytes.extend_from_slice(&part.to_be_bytes());
        }
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position in `cursor`, if this node issued it for this search.
    pub fn decode(&self, fingerprint: &str, cursor: &str) -> Option<Position> {
        if cursor.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if bytes.len() != PAYLOAD + TAG || bytes[0] != FORMAT {
            return None;
        }
        let (payload, tag) = bytes.split_at(PAYLOAD);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload);
        mac.verify_truncated_left(tag).ok()?;
        if payload[9..17] != digest(fingerprint) {
            return None;
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Some(Position {
            generation: word(1),
            after: SortKey {
                primary: word(17),
                hi: word(25),
                lo: word(33),
            },
        })
    }
}

fn digest(fingerprint: &str) -> [u8; 8] {
    let full = Sha256::digest(fingerprint.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&full[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_any_change_is_refused() {
        let key = CursorKey::new([7; 32]);
        let position = Position {
            generation: 42,
            after: SortKey {
                primary: 1,
                hi: 2,
                lo: u64::MAX,
            },
        };
        let cursor = key.encode("q", position);
        assert_eq!(key.decode("q", &cursor), Some(position));
        assert_eq!(key.decode("other search", &cursor), None);
        assert_eq!(CursorKey::new([8; 32]).decode("q", &cursor), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        bytes[20] ^= 1;
        assert_eq!(key.decode("q", &URL_SAFE_NO_PAD.encode(bytes)), None);
        assert_eq!(key.decode("q", "garbage!"), None);
        assert_eq!(key.decode("q", ""), None);
    }
}

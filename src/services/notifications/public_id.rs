//! Public notification ids and inbox cursors: the internal sequence number
//! (a global event counter) enciphered, then sealed, so a client can neither
//! read the order volume off its ids nor guess or forge another id.
//!
//! Sealing alone proves origin but leaves its payload readable, so the
//! sequence number first goes through a keyed permutation of 64-bit blocks:
//! a four-round Feistel network (Luby–Rackoff) whose round function is the
//! node's HMAC-SHA256 ([`Sealer`]) under its own purpose labels. The id is
//! deterministic (a notification keeps its id across pages, frames and
//! restarts; stored notifications need no migration) and 32 characters long.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::domain::sealed::Sealer;

/// Purpose label of a notification id.
const ID: &str = "notification-id";
/// Purpose label of a `GET /notifications` cursor.
const CURSOR: &str = "notifications-cursor";
/// Feistel rounds: four make a strong pseudo-random permutation.
const ROUNDS: u8 = 4;

/// The id clients see for the notification with sequence number `seq`.
pub fn seal_id(sealer: &Sealer, seq: u64) -> String {
    sealer.seal(ID, &encipher(sealer, seq).to_be_bytes())
}

/// The sequence number behind `id`, if this node issued it.
pub fn open_id(sealer: &Sealer, id: &str) -> Option<u64> {
    open(sealer, ID, id)
}

/// A cursor that resumes the inbox after the notification `seq`.
pub fn seal_cursor(sealer: &Sealer, seq: u64) -> String {
    sealer.seal(CURSOR, &encipher(sealer, seq).to_be_bytes())
}

/// The sequence number a cursor resumes after, if this node issued it.
pub fn open_cursor(sealer: &Sealer, cursor: &str) -> Option<u64> {
    open(sealer, CURSOR, cursor)
}

fn open(sealer: &Sealer, purpose: &str, token: &str) -> Option<u64> {
    let block: [u8; 8] = sealer.open(purpose, token)?.try_into().ok()?;
    Some(decipher(sealer, u64::from_be_bytes(block)))
}

/// The round function: 32 bits of HMAC-SHA256 over the round and half.
fn round(sealer: &Sealer, round: u8, half: u32) -> u32 {
    // The sealer exposes its MAC only inside a token: the tag is the last
    // 16 bytes of `base64url(payload ‖ tag)`, and its first 4 serve here.
    let token = sealer.seal(
        &format!("notification-id/round-{round}"),
        &half.to_be_bytes(),
    );
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .expect("a token this sealer just made is base64url");
    u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])
}

fn encipher(sealer: &Sealer, block: u64) -> u64 {
    let (mut left, mut right) = ((block >> 32) as u32, block as u32);
    for i in 0..ROUNDS {
        (left, right) = (right, left ^ round(sealer, i, right));
    }
    (u64::from(left) << 32) | u64::from(right)
}

fn decipher(sealer: &Sealer, block: u64) -> u64 {
    let (mut left, mut right) = ((block >> 32) as u32, block as u32);
    for i in (0..ROUNDS).rev() {
        (left, right) = (right ^ round(sealer, i, left), left);
    }
    (u64::from(left) << 32) | u64::from(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_hide_their_order_and_refuse_forgeries() {
        let sealer = Sealer::new([7; 32]);
        let ids: Vec<String> = (1..=50).map(|seq| seal_id(&sealer, seq)).collect();
        for (seq, id) in (1..=50).zip(&ids) {
            assert_eq!(open_id(&sealer, id), Some(seq));
            assert_eq!(seal_id(&sealer, seq), *id, "deterministic");
            assert_eq!(open_cursor(&sealer, id), None, "an id is no cursor");
        }
        // Neighbouring sequence numbers share no visible prefix or order.
        let mut sorted = ids.clone();
        sorted.sort();
        assert_ne!(sorted, ids);
        assert_ne!(ids[0][..4], ids[1][..4]);
        // Old-style hex ids, edits and other keys are refused.
        assert_eq!(open_id(&sealer, "0000000000000001"), None);
        let mut edited = ids[0].clone().into_bytes();
        edited[0] = if edited[0] == b'A' { b'B' } else { b'A' };
        assert_eq!(open_id(&sealer, &String::from_utf8(edited).unwrap()), None);
        assert_eq!(open_id(&Sealer::new([8; 32]), &ids[0]), None);
        let cursor = seal_cursor(&sealer, u64::MAX);
        assert_eq!(open_cursor(&sealer, &cursor), Some(u64::MAX));
    }
}

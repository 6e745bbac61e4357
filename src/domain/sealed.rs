//! Sealed tokens: bytes the server hands out and must get back unchanged
//! (list cursors, opaque ids), signed with a per-node key so that a forged,
//! edited or foreign token is refused instead of read.
//!
//! A token is `base64url(payload ‖ tag)`, where the tag is the first 16
//! bytes of HMAC-SHA256 over a purpose label and the payload. The label
//! keeps a cursor of one list from being accepted by another. Sealing
//! hides nothing (the payload is readable); it only proves origin.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const TAG: usize = 16;

/// Longest token [`Sealer::open`] looks at; anything longer is refused
/// before decoding.
pub const MAX_TOKEN_CHARS: usize = 512;

/// Signs and checks sealed tokens. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer with this secret key.
    pub fn new(key: [u8; 32]) -> Self {
        Sealer { key }
    }

    fn mac(&self, purpose: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// The token for `payload`, valid only for `purpose`.
    pub fn seal(&self, purpose: &str, payload: &[u8]) -> String {
        let tag = self.mac(purpose, payload).finalize().into_bytes();
        let mut bytes = Vec::with_capacity(payload.len() + TAG);
        bytes.extend_from_slice(payload);
        bytes.extend_from_slice(&tag[..TAG]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The payload of `token`, if this node sealed it for `purpose`.
    pub fn open(&self, purpose: &str, token: &str) -> Option<Vec<u8>> {
        if token.len() > MAX_TOKEN_CHARS {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let at = bytes.len().checked_sub(TAG)?;
        let tag = bytes.split_off(at);
        self.mac(purpose, &bytes).verify_truncated_left(&tag).ok()?;
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_for_its_purpose_and_key_and_unchanged() {
        let sealer = Sealer::new([3; 32]);
        let token = sealer.seal("orders", b"position");
        assert_eq!(
            sealer.open("orders", &token).as_deref(),
            Some(&b"position"[..])
        );
        assert_eq!(sealer.open("notifications", &token), None);
        assert_eq!(Sealer::new([4; 32]).open("orders", &token), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[0] ^= 1;
        assert_eq!(sealer.open("orders", &URL_SAFE_NO_PAD.encode(bytes)), None);
        assert_eq!(sealer.open("orders", "short"), None);
        assert_eq!(sealer.open("orders", ""), None);
        assert_eq!(sealer.open("orders", "!!not base64!!"), None);
        assert_eq!(
            sealer.open("orders", &"A".repeat(MAX_TOKEN_CHARS + 4)),
            None
        );
        let empty = sealer.seal("orders", b"");
        assert_eq!(sealer.open("orders", &empty).as_deref(), Some(&b""[..]));
    }
}

//! Stream keys: 256 random bits, base64url without padding (43 characters).
//!
//! The plaintext exists only in the response that creates or rotates it; storage keeps the
//! SHA-256 ([`KeyHash`]) and publishers are found by hashing what they present. `StreamKey`
//! deliberately implements neither `Serialize` nor a revealing `Debug`, so it cannot end up
//! in a log line or a stored item by accident.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A plaintext stream key.
pub struct StreamKey(String);

/// Hex SHA-256 of a stream key: safe to store and to index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(pub String);

impl StreamKey {
    /// 32 bytes from the operating system's CSPRNG.
    pub fn generate() -> Result<StreamKey, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(StreamKey(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Wraps a key presented by a publisher. Shape is checked so that garbage is refused
    /// without a storage lookup.
    pub fn parse(raw: &str) -> Option<StreamKey> {
        let ok = raw.len() == 43
            && URL_SAFE_NO_PAD
                .decode(raw)
                .map(|b| b.len() == 32)
                .unwrap_or(false);
        ok.then(|| StreamKey(raw.to_owned()))
    }

    /// The plaintext, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        let digest = Sha256::digest(self.0.as_bytes());
        KeyHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl std::fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_256_bits_and_differ() {
        let a = StreamKey::generate().expect("rng");
        let b = StreamKey::generate().expect("rng");
        assert_eq!(a.expose().len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).expect("b64").len(), 32);
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn hash_is_hex_sha256_and_stable() {
        let k = StreamKey::parse(&URL_SAFE_NO_PAD.encode([7u8; 32])).expect("valid");
        assert_eq!(k.hash(), k.hash());
        assert_eq!(k.hash().0.len(), 64);
        assert!(!k.hash().0.contains(k.expose()));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = StreamKey::generate().expect("rng");
        assert!(!format!("{k:?}").contains(k.expose()));
    }

    #[test]
    fn malformed_keys_are_refused_before_lookup() {
        assert!(StreamKey::parse("").is_none());
        assert!(StreamKey::parse("short").is_none());
        assert!(StreamKey::parse(&"+".repeat(43)).is_none());
        assert!(StreamKey::parse(&URL_SAFE_NO_PAD.encode([1u8; 31])).is_none());
    }
}

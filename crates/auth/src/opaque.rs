//! Opaque tokens — refresh tokens and API keys: 256 random bits, shown to the client once and
//! stored only as a SHA-256 hash, so a database leak does not leak usable credentials.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::Secret;

/// Prefix that makes a refresh token recognisable in logs and secret scanners.
const PREFIX: &str = "brt_";
/// Prefix of API keys; the bearer-token extractor tells keys from JWTs by it.
pub const API_KEY_PREFIX: &str = "bk_";

fn new_token(prefix: &str) -> (Secret, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{prefix}{}", hex(&bytes));
    let hash = hash_token(&token);
    (Secret::new(token), hash)
}

/// A fresh refresh token and the hash to store.
pub fn new_refresh_token() -> (Secret, String) {
    new_token(PREFIX)
}

/// A fresh API key and the hash to store.
pub fn new_api_key() -> (Secret, String) {
    new_token(API_KEY_PREFIX)
}

/// The stored form of a token or key.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, ha) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(PREFIX) && a.expose().len() == PREFIX.len() + 64);
        assert_eq!(hash_token(a.expose()), ha);
        assert_ne!(ha, a.expose());
    }
}

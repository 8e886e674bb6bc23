//! Argon2id password hashes in PHC string form, with OWASP's recommended parameters
//! (19 MiB, 2 passes, 1 lane). Verification is constant-time inside `argon2`.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::Secret;

/// Shortest accepted password, in characters.
pub const MIN_LENGTH: usize = 10;
/// Longest accepted password, in bytes (hashing cost is bounded).
pub const MAX_LENGTH: usize = 1024;

/// Why a password cannot be hashed or is not acceptable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("must be at most {MAX_LENGTH} bytes")]
    TooLong,
    #[error("is too easy to guess (a common password or a simple pattern); choose another")]
    TooCommon,
    #[error("hashing failed: {0}")]
    Hash(String),
}

fn argon2() -> Argon2<'static> {
    // Argon2's defaults are OWASP's recommendation for Argon2id: 19 MiB, 2 passes, 1 lane.
    let params = Params::DEFAULT;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks the policy and hashes `password`.
///
/// # Errors
/// [`PasswordError::TooShort`]/[`PasswordError::TooLong`] for policy violations.
pub fn hash(password: &Secret) -> Result<String, PasswordError> {
    let p = password.expose();
    if p.chars().count() < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if p.len() > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    if is_common(p) {
        return Err(PasswordError::TooCommon);
    }
    argon2()
        .hash_password(p.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// The bundled list of common passwords, one per line.
const COMMON: &str = include_str!("common_passwords.txt");

/// Whether a password is on the bundled list or is a trivial pattern: one repeated
/// character, or a run of consecutive characters (`abcdefghij`, `9876543210`).
fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    if COMMON.lines().any(|l| !l.starts_with('#') && l == lower) {
        return true;
    }
    let chars: Vec<char> = lower.chars().collect();
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])))
        .collect();
    steps.iter().all(|d| *d == 0) || steps.iter().all(|d| *d == 1) || steps.iter().all(|d| *d == -1)
}

/// Whether `password` matches the PHC `hash`. A malformed hash never matches.
pub fn verify(password: &Secret, hash: &str) -> bool {
    if password.expose().len() > MAX_LENGTH {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when an account does not exist, so a
/// login takes as long for unknown emails as for known ones.
///
/// # Errors
/// Hashing failed (it never has: the password is long, random and not common).
pub fn dummy_hash() -> Result<&'static str, PasswordError> {
    static DUMMY: std::sync::OnceLock<Result<String, PasswordError>> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| hash(&Secret::new(uuid::Uuid::new_v4().to_string())))
        .as_deref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let pw = Secret::new("correct horse battery");
        let a = hash(&pw).unwrap();
        let b = hash(&pw).unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(verify(&pw, &a));
        assert!(!verify(&Secret::new("wrong horse battery"), &a));
        assert!(!verify(&pw, "not a hash"));
    }

    #[test]
    fn common_passwords_and_patterns_are_refused() {
        for weak in [
            "Password123",
            "qwertyuiop",
            "aaaaaaaaaaaa",
            "abcdefghijkl",
            "9876543210",
            "CorrectHorseBatteryStaple",
        ] {
            assert!(
                matches!(hash(&Secret::new(weak)), Err(PasswordError::TooCommon)),
                "{weak}"
            );
        }
        assert!(hash(&Secret::new("long enough password")).is_ok());
    }

    #[test]
    fn policy() {
        assert!(matches!(
            hash(&Secret::new("short")),
            Err(PasswordError::TooShort)
        ));
        assert!(matches!(
            hash(&Secret::new("x".repeat(2000))),
            Err(PasswordError::TooLong)
        ));
    }
}

//! Brigade's identity layer: who is calling and what they may do.
//!
//! # Layout
//! - [`password`]: Argon2id hashing and verification.
//! - [`tokens`]: short-lived JWT access tokens (HS256 pinned) and the [`Principal`] they carry.
//! - [`versions`]: per-account token versions, so logout, password and role changes end
//!   existing access tokens at once (cached ≤ 1 s per process).
//! - [`opaque`]: refresh tokens and API keys, stored hashed.
//! - [`oidc`]: OpenID Connect login (authorization code + PKCE) against configured providers.
//! - [`Secret`]: a string that never prints, for passwords and tokens.

pub mod oidc;
pub mod opaque;
pub mod password;
pub mod tokens;
pub mod versions;

use std::fmt;

pub use tokens::{Principal, PrincipalKind, TokenError, TokenIssuer};
pub use versions::TokenVersions;

/// The role superusers have.
pub const ADMIN_ROLE: &str = "admin";

/// A sensitive string (password, token). `Debug` and `Display` print `[redacted]`, so it
/// cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a sensitive value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

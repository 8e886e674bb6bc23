//! Access tokens: HS256 JWTs with a short lifetime. The algorithm is pinned, so `alg: none`
//! and tokens signed with any other algorithm or key are refused. Each token names its key
//! (`kid`); after a key rotation tokens signed with the previous key still verify until
//! they expire, so nobody is logged out.
//!
//! A token also carries its account's token version (`ver`). The signature only proves the
//! token was issued; whether it is still current — no logout, password or role change since —
//! is asked of [`TokenVersions`] on every request.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::versions::TokenVersions;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The account id, or the key id for an API key.
    pub id: String,
    /// The account's email; for an API key a label for logs and audit entries
    /// (`apikey:NAME`). Never decide who is calling from it: that is [`Principal::kind`].
    pub email: String,
    pub roles: Vec<String>,
    pub kind: PrincipalKind,
}

/// What kind of credential a [`Principal`] presented: set by the code that verified it,
/// never derived from user-controlled text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person with an access token issued at `token_version` of their account.
    User { token_version: i64 },
    /// An API key, acting for the account `owner` that made it.
    ApiKey { name: String, owner: String },
}

impl Principal {
    /// Whether the principal is a superuser.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == crate::ADMIN_ROLE)
    }

    /// Whether this is a person signed in to an account (not an API key).
    pub fn is_user(&self) -> bool {
        matches!(self.kind, PrincipalKind::User { .. })
    }

    /// The account a user is, or an API key acts for.
    pub fn account_id(&self) -> &str {
        match &self.kind {
            PrincipalKind::User { .. } => &self.id,
            PrincipalKind::ApiKey { owner, .. } => owner,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    email: String,
    roles: Vec<String>,
    /// The account's token version when the token was issued; required, so tokens from
    /// before versions existed are refused.
    ver: i64,
    iat: u64,
    exp: u64,
    typ: String,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired; refresh it or log in again")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

/// Issues access tokens with the current key and verifies them with it or the previous one.
#[derive(Clone)]
pub struct TokenIssuer {
    kid: String,
    encoding: EncodingKey,
    /// `(kid, key)`: the current key first, then the previous one.
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
    ttl: Duration,
    /// Which tokens are still current; shared by clones.
    versions: Arc<TokenVersions>,
}

/// A short public name for a secret (not reversible to it).
fn key_id(secret: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TokenIssuer {
    /// A new issuer; `secret` should be at least 32 random bytes.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self::with_previous(secret, None, ttl)
    }

    /// An issuer that also accepts tokens signed with `previous` (after a rotation).
    pub fn with_previous(secret: &[u8], previous: Option<&[u8]>, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        let mut decoding = vec![(key_id(secret), DecodingKey::from_secret(secret))];
        if let Some(previous) = previous.filter(|p| *p != secret) {
            decoding.push((key_id(previous), DecodingKey::from_secret(previous)));
        }
        TokenIssuer {
            kid: key_id(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding,
            validation,
            ttl,
            versions: Arc::new(TokenVersions::new(crate::versions::CACHE_TTL)),
        }
    }

    /// The same issuer with other keys (after `brigade jwt rotate` in another process): the
    /// lifetime and the token versions are kept.
    pub fn rekeyed(&self, secret: &[u8], previous: Option<&[u8]>) -> TokenIssuer {
        TokenIssuer {
            versions: self.versions.clone(),
            ..TokenIssuer::with_previous(secret, previous, self.ttl)
        }
    }

    /// Whether this issuer signs with `secret` and also accepts exactly `previous`.
    pub fn has_keys(&self, secret: &[u8], previous: Option<&[u8]>) -> bool {
        let mut kids = vec![key_id(secret)];
        if let Some(previous) = previous.filter(|p| *p != secret) {
            kids.push(key_id(previous));
        }
        self.kid == kids[0] && self.decoding.iter().map(|(k, _)| k).eq(kids.iter())
    }

    /// The per-account token versions that tell current tokens from revoked ones.
    pub fn versions(&self) -> &TokenVersions {
        &self.versions
    }

    /// Lifetime of issued tokens.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token for `who`, a user (API keys are not tokens).
    ///
    /// # Errors
    /// [`TokenError::Invalid`] for an API key principal, or if signing fails (it does not
    /// with HS256).
    pub fn issue(&self, who: &Principal) -> Result<String, TokenError> {
        let PrincipalKind::User { token_version } = who.kind else {
            return Err(TokenError::Invalid);
        };
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = Claims {
            ver: token_version,
            sub: who.id.clone(),
            email: who.email.clone(),
            roles: who.roles.clone(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            typ: "access".into(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        encode(&header, &claims, &self.encoding).map_err(|_| TokenError::Invalid)
    }

    /// Verifies signature, algorithm and expiry. Whether the token was revoked since is
    /// [`TokenVersions::is_current`]'s question.
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::Invalid`].
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        self.verify_until(token).map(|(principal, _)| principal)
    }

    /// [`TokenIssuer::verify`], also returning when the token expires (Unix seconds): a
    /// long-lived connection ends then.
    ///
    /// # Errors
    /// As [`TokenIssuer::verify`].
    pub fn verify_until(&self, token: &str) -> Result<(Principal, u64), TokenError> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid)?
            .kid;
        let key = match kid {
            Some(kid) => self
                .decoding
                .iter()
                .find(|(k, _)| *k == kid)
                .map(|(_, key)| key),
            None => self.decoding.first().map(|(_, key)| key),
        }
        .ok_or(TokenError::Invalid)?;
        let data = decode::<Claims>(token, key, &self.validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        if data.claims.typ != "access" {
            return Err(TokenError::Invalid);
        }
        let principal = Principal {
            id: data.claims.sub,
            email: data.claims.email,
            roles: data.claims.roles,
            kind: PrincipalKind::User {
                token_version: data.claims.ver,
            },
        };
        Ok((principal, data.claims.exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Principal {
        Principal {
            id: "u1".into(),
            email: "a@b.co".into(),
            roles: vec!["admin".into()],
            kind: PrincipalKind::User { token_version: 3 },
        }
    }

    #[test]
    fn keys_are_not_tokens_and_tokens_without_a_version_are_refused() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let key = Principal {
            kind: PrincipalKind::ApiKey {
                name: "etl".into(),
                owner: "u1".into(),
            },
            ..who()
        };
        assert!(issuer.issue(&key).is_err());
        // A token signed with the right key but without `ver` (issued before versions).
        #[derive(Serialize)]
        struct Old {
            sub: String,
            email: String,
            roles: Vec<String>,
            iat: u64,
            exp: u64,
            typ: String,
        }
        let now = chrono::Utc::now().timestamp() as u64;
        let old = Old {
            sub: "u1".into(),
            email: "a@b.co".into(),
            roles: vec!["admin".into()],
            iat: now,
            exp: now + 60,
            typ: "access".into(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(issuer.kid.clone());
        let token = encode(&header, &old, &issuer.encoding).unwrap();
        assert!(matches!(issuer.verify(&token), Err(TokenError::Invalid)));
    }

    #[test]
    fn round_trip_and_forgeries() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let token = issuer.issue(&who()).unwrap();
        assert_eq!(issuer.verify(&token).unwrap(), who());
        let other = TokenIssuer::new(b"another secret another secret!!!", Duration::from_secs(60));
        assert!(other.verify(&token).is_err(), "wrong key");
        // alg=none with the same claims.
        let parts: Vec<&str> = token.split('.').collect();
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        assert!(
            issuer
                .verify(&format!("{none_header}.{}.", parts[1]))
                .is_err()
        );
        assert!(issuer.verify("garbage").is_err());
    }

    #[test]
    fn rotation_keeps_tokens_of_the_previous_key_valid() {
        let old = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let token = old.issue(&who()).unwrap();
        let rotated = TokenIssuer::with_previous(
            b"fedcba9876543210fedcba9876543210",
            Some(b"0123456789abcdef0123456789abcdef"),
            Duration::from_secs(60),
        );
        assert_eq!(
            rotated.verify(&token).unwrap(),
            who(),
            "old tokens still verify"
        );
        let fresh = rotated.issue(&who()).unwrap();
        assert!(old.verify(&fresh).is_err(), "new tokens use the new key");
        let unrelated =
            TokenIssuer::new(b"another secret another secret!!!", Duration::from_secs(60));
        assert!(unrelated.verify(&token).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(0));
        let mut claims_issuer = issuer.clone();
        claims_issuer.validation.leeway = 0;
        let token = issuer.issue(&who()).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(
            claims_issuer.verify(&token),
            Err(TokenError::Expired)
        ));
    }
}

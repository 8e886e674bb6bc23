//! OpenID Connect relying party: authorization code flow with PKCE (S256), for the providers
//! of `[auth.oidc.NAME]`.
//!
//! [`OidcClient`] fetches and caches the provider's discovery document and JWKS, builds the
//! authorization URL ([`OidcClient::start`]: fresh `state`, `nonce` and PKCE verifier),
//! exchanges the code ([`OidcClient::exchange_code`]) and verifies the ID token
//! ([`OidcClient::verify_id_token`]: RS256 only, signature against the JWKS, `iss`, `aud`,
//! `azp`, `exp`, `nonce`). Persisting the pending login and deciding who the user is belong to
//! the caller; this module only speaks the protocol.
//!
//! Providers are reached over https (rustls, the system's root certificates) or, for local
//! development and tests, plain http.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brigade_core::settings::OidcProvider;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use rand::RngCore;
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::Secret;

/// How long one request to the provider may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents and key sets are refetched after this.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the JWKS at most this often, so a flood of bad tokens cannot
/// turn into a flood of requests to the provider.
const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(5);
/// Largest discovery, JWKS or token response accepted.
const MAX_RESPONSE: usize = 1024 * 1024;
/// Clock skew tolerated on `exp`/`iat`, in seconds.
const LEEWAY_SECS: u64 = 60;

/// Why a login with a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached, or answered with something that is not the protocol.
    #[error("the identity provider could not be reached or answered badly: {0}")]
    Unreachable(String),
    /// The token endpoint refused the code (expired, reused, or a PKCE mismatch).
    #[error("the identity provider refused the authorization code: {0}")]
    CodeRejected(String),
    /// The ID token failed verification.
    #[error("the ID token is invalid: {0}")]
    InvalidToken(String),
}

/// The parts of the discovery document (OpenID Connect Discovery 1.0) Brigade uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// A login about to be sent to the provider: the URL to redirect the browser to, and the
/// values the callback needs (keep them server-side).
#[derive(Debug)]
pub struct LoginStart {
    /// The provider's authorization URL with every parameter set.
    pub url: String,
    /// The `state` parameter; store only its hash ([`crate::opaque::hash_token`]).
    pub state: Secret,
    /// The `nonce` the ID token must echo.
    pub nonce: String,
    /// The PKCE `code_verifier` for the token request.
    pub pkce_verifier: Secret,
}

/// What a verified ID token says about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`: the user's id at the provider.
    pub subject: String,
    pub email: Option<String>,
    /// `email_verified`; `false` when absent.
    pub email_verified: bool,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    azp: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: serde_json::Value,
    name: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// A value fetched from the provider, and when.
type Cached<T> = Mutex<Option<(Instant, Arc<T>)>>;

/// The relying party for one provider. Cheap to share behind an `Arc`; caches are internal.
pub struct OidcClient {
    provider: OidcProvider,
    http: reqwest::Client,
    discovery: Cached<Discovery>,
    jwks: Cached<JwkSet>,
}

impl OidcClient {
    /// A client for `provider`; nothing is fetched until it is used.
    ///
    /// # Errors
    /// [`OidcError::Unreachable`] if the HTTP client cannot be built.
    pub fn new(provider: OidcProvider) -> Result<Self, OidcError> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("brigade/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OidcError::Unreachable(format!("HTTP client: {e}")))?;
        Ok(OidcClient {
            provider,
            http,
            discovery: Mutex::new(None),
            jwks: Mutex::new(None),
        })
    }

    /// The provider's settings.
    pub fn provider(&self) -> &OidcProvider {
        &self.provider
    }

    /// The discovery document, fetched once an hour and checked to name the configured issuer.
    ///
    /// # Errors
    /// [`OidcError::Unreachable`].
    pub async fn discovery(&self) -> Result<Arc<Discovery>, OidcError> {
        if let Some(fresh) = cached(&self.discovery, CACHE_TTL) {
            return Ok(fresh);
        }
        let url = format!("{}/.well-known/openid-configuration", self.provider.issuer);
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer.trim_end_matches('/') != self.provider.issuer {
            return Err(OidcError::Unreachable(format!(
                "the discovery document names issuer `{}`, not the configured `{}`",
                doc.issuer, self.provider.issuer
            )));
        }
        http_url(&doc.authorization_endpoint)?;
        let doc = Arc::new(doc);
        store(&self.discovery, &doc);
        Ok(doc)
    }

    /// A fresh login: new `state`, `nonce` and PKCE verifier, and the authorization URL
    /// (`response_type=code`, S256 challenge) that sends the user back to `redirect_uri`.
    ///
    /// # Errors
    /// As [`OidcClient::discovery`].
    pub async fn start(&self, redirect_uri: &str) -> Result<LoginStart, OidcError> {
        let discovery = self.discovery().await?;
        let mut url = http_url(&discovery.authorization_endpoint)?;
        let (state, nonce, verifier) = (random_secret(), random_secret(), random_secret());
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.provider.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.provider.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(LoginStart {
            url: url.into(),
            state: Secret::new(state),
            nonce,
            pkce_verifier: Secret::new(verifier),
        })
    }

    /// Exchanges an authorization code for the raw ID token, proving possession of the PKCE
    /// verifier (and authenticating with the client secret when one is configured).
    ///
    /// # Errors
    /// [`OidcError::CodeRejected`] when the provider refuses the code; otherwise as
    /// [`OidcClient::discovery`].
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<Secret, OidcError> {
        let discovery = self.discovery().await?;
        let url = checked_url(&discovery.token_endpoint)?;
        let client_id = self.provider.client_id.as_str();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pkce_verifier.expose()),
            ("client_id", client_id),
        ];
        let mut request = self.http.post(url).header("accept", "application/json");
        if let Some(secret) = &self.provider.client_secret {
            let methods = &discovery.token_endpoint_auth_methods_supported;
            // client_secret_basic is the default (RFC 8414); post only when basic is not offered.
            if methods.iter().any(|m| m == "client_secret_post")
                && !methods.iter().any(|m| m == "client_secret_basic")
            {
                form.push(("client_secret", secret.expose()));
            } else {
                // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
                request =
                    request.basic_auth(form_encode(client_id), Some(form_encode(secret.expose())));
            }
        }
        let response = request.form(&form).send().await.map_err(unreachable)?;
        let status = response.status();
        let body = read_body(response).await?;
        if status.is_client_error() {
            let why = serde_json::from_slice::<TokenErrorResponse>(&body).map_or_else(
                |_| format!("HTTP {status}"),
                |e| match e.error_description {
                    Some(d) => format!("{}: {d}", e.error),
                    None => e.error,
                },
            );
            return Err(OidcError::CodeRejected(why));
        }
        if !status.is_success() {
            return Err(OidcError::Unreachable(format!(
                "the token endpoint answered HTTP {status}"
            )));
        }
        let tokens: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Unreachable(format!("token response: {e}")))?;
        tokens
            .id_token
            .map(Secret::new)
            .ok_or_else(|| OidcError::Unreachable("the token response has no id_token".into()))
    }

    /// Verifies an ID token: RS256 signature by a key of the provider's JWKS (refetched once
    /// when the token names an unknown `kid`), `iss` = the discovered issuer, `aud` contains
    /// the client id (and `azp`, if present, is it), not expired, and `nonce` = `nonce`.
    ///
    /// # Errors
    /// [`OidcError::InvalidToken`]; fetching the keys fails as [`OidcClient::discovery`].
    pub async fn verify_id_token(
        &self,
        id_token: &Secret,
        nonce: &str,
    ) -> Result<Identity, OidcError> {
        let invalid = |e: jsonwebtoken::errors::Error| OidcError::InvalidToken(e.to_string());
        let header = decode_header(id_token.expose()).map_err(invalid)?;
        if header.alg != Algorithm::RS256 {
            return Err(OidcError::InvalidToken(format!(
                "signed with {:?}; only RS256 is accepted",
                header.alg
            )));
        }
        let discovery = self.discovery().await?;
        let keys = self.keys_for(&discovery, header.kid.as_deref()).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&discovery.issuer]);
        validation.set_audience(&[&self.provider.client_id]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let mut outcome = Err(OidcError::InvalidToken(
            "the provider publishes no RS256 signing key".into(),
        ));
        for key in &keys {
            outcome = decode::<IdClaims>(id_token.expose(), key, &validation).map_err(invalid);
            if outcome.is_ok() {
                break;
            }
        }
        let claims = outcome?.claims;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(OidcError::InvalidToken(
                "the nonce does not match this login".into(),
            ));
        }
        if claims
            .azp
            .as_deref()
            .is_some_and(|azp| azp != self.provider.client_id)
        {
            return Err(OidcError::InvalidToken(
                "issued to another client (azp)".into(),
            ));
        }
        Ok(Identity {
            subject: claims.sub,
            email: claims.email,
            // Some providers send the string "true".
            email_verified: matches!(&claims.email_verified, serde_json::Value::Bool(true))
                || claims.email_verified.as_str() == Some("true"),
            name: claims.name,
        })
    }

    /// The RS256 keys that may have signed a token with `kid` (all of them without a `kid`).
    async fn keys_for(
        &self,
        discovery: &Discovery,
        kid: Option<&str>,
    ) -> Result<Vec<DecodingKey>, OidcError> {
        let set = match cached(&self.jwks, CACHE_TTL) {
            Some(set) => set,
            None => self.fetch_jwks(discovery).await?,
        };
        let mut keys = signing_keys(&set, kid);
        if keys.is_empty() && kid.is_some() && cached(&self.jwks, JWKS_REFETCH_COOLDOWN).is_none() {
            // An unknown kid usually means the provider rotated its keys.
            keys = signing_keys(&*self.fetch_jwks(discovery).await?, kid);
        }
        if keys.is_empty() {
            return Err(OidcError::InvalidToken(match kid {
                Some(kid) => format!("no RS256 signing key `{kid}` in the provider's JWKS"),
                None => "the provider's JWKS has no RS256 signing key".into(),
            }));
        }
        Ok(keys)
    }

    async fn fetch_jwks(&self, discovery: &Discovery) -> Result<Arc<JwkSet>, OidcError> {
        let set: Arc<JwkSet> = Arc::new(self.get_json(&discovery.jwks_uri).await?);
        store(&self.jwks, &set);
        Ok(set)
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let response = self
            .http
            .get(checked_url(url)?)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(OidcError::Unreachable(format!(
                "{url} answered HTTP {status}"
            )));
        }
        let body = read_body(response).await?;
        serde_json::from_slice(&body).map_err(|e| OidcError::Unreachable(format!("{url}: {e}")))
    }
}

/// The RSA signature keys of `set` matching `kid` (any, without one).
fn signing_keys(set: &JwkSet, kid: Option<&str>) -> Vec<DecodingKey> {
    let usable = |k: &&Jwk| {
        matches!(k.algorithm, AlgorithmParameters::RSA(_))
            && matches!(
                k.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            )
            && matches!(k.common.key_algorithm, None | Some(KeyAlgorithm::RS256))
            && kid.is_none_or(|kid| k.common.key_id.as_deref() == Some(kid))
    };
    set.keys
        .iter()
        .filter(usable)
        .filter_map(|k| DecodingKey::from_jwk(k).ok())
        .collect()
}

fn cached<T>(slot: &Cached<T>, max_age: Duration) -> Option<Arc<T>> {
    let guard = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard
        .as_ref()
        .filter(|(at, _)| at.elapsed() < max_age)
        .map(|(_, value)| Arc::clone(value))
}

fn store<T>(slot: &Cached<T>, value: &Arc<T>) {
    let mut guard = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *guard = Some((Instant::now(), Arc::clone(value)));
}

fn unreachable(e: reqwest::Error) -> OidcError {
    let url = e.url().map(Url::to_string).unwrap_or_default();
    OidcError::Unreachable(format!("{url}: {e}"))
}

async fn read_body(response: reqwest::Response) -> Result<Vec<u8>, OidcError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE as u64)
    {
        return Err(OidcError::Unreachable("the response is too large".into()));
    }
    let body = response.bytes().await.map_err(unreachable)?;
    if body.len() > MAX_RESPONSE {
        return Err(OidcError::Unreachable("the response is too large".into()));
    }
    Ok(body.to_vec())
}

/// A URL Brigade itself will request.
fn checked_url(url: &str) -> Result<Url, OidcError> {
    http_url(url)
}

/// An http(s) URL (the browser follows https ones).
fn http_url(url: &str) -> Result<Url, OidcError> {
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
        _ => Err(OidcError::Unreachable(format!(
            "`{url}` is not an http(s) URL"
        ))),
    }
}

/// 256 random bits, base64url without padding (43 characters): usable as `state`, `nonce`
/// and PKCE verifier (RFC 7636 allows 43–128 unreserved characters).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64url(&bytes)
}

/// The S256 PKCE challenge of a verifier: `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    base64url(&Sha256::digest(verifier.as_bytes()))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        // 1 byte → 2 characters, 2 → 3, 3 → 4 (no padding).
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn base64url_without_padding() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn secrets_are_fresh_unreserved_and_long_enough() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn form_encoding_and_urls() {
        assert_eq!(form_encode("a b:c/é"), "a%20b%3Ac%2F%C3%A9");
        assert!(checked_url("https://id.example.com/token").is_ok());
        assert!(checked_url("http://127.0.0.1:1/token").is_ok());
        assert!(http_url("javascript:alert(1)").is_err());
    }
}

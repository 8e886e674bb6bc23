//! The HTTP client the API and HTML extractors share: default headers and user agent,
//! secrets kept out of URLs shown to users (`Redactor`), and requests retried with
//! exponential backoff on connection errors, timeouts, 429 and 5xx, honouring `Retry-After`.
//!
//! The `headers` of an extract (an `Authorization`, an API key) are credentials for the
//! origin of its `url` only. Next pages come from the upstream (a `Link` header, a cursor
//! that is a whole URL, an HTML `follow` link, a redirect), so a page on another origin is
//! requested without them ([`Credentials`]), and a redirect of a request carrying them to
//! another origin is not followed. Pipeline files themselves are trusted: whoever writes
//! one can point `url` at any address the server reaches, internal ones included.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::HashSet;
use std::sync::Mutex;

use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Client, StatusCode, Url, redirect};

use super::super::{Context, Message, Sender};
use super::{
    BACKOFF_CAP, BACKOFF_START, DEFAULT_TIMEOUT_SECS, RETRIES, RETRY_AFTER_CAP, SNIPPET, encode,
};
use crate::error::PipelineError;

/// Sends `messages` in order.
///
/// # Errors
/// [`PipelineError::Cancelled`] when the receiver is gone.
pub(crate) async fn send_all(tx: &Sender, messages: Vec<Message>) -> Result<(), PipelineError> {
    for m in messages {
        tx.send(Ok(m)).await.map_err(|_| PipelineError::Cancelled)?;
    }
    Ok(())
}

pub(crate) fn extract_error(cx: &Context, message: &str) -> PipelineError {
    PipelineError::Extract(format!("extract `{}`: {message}", cx.spec.name))
}

/// `brigade/<version>`.
pub(crate) fn default_user_agent() -> String {
    format!("brigade/{}", env!("CARGO_PKG_VERSION"))
}

/// Redirects followed per request, as reqwest's default policy.
const MAX_REDIRECTS: usize = 10;

/// A client with the extract's timeout and the user agent `agent`. A request that starts
/// at `credentials`' origin (and so carries the configured headers) follows redirects only
/// within that origin: reqwest drops `Authorization` on a cross-host redirect but would
/// forward an API-key header such as `X-Api-Key`.
///
/// # Errors
/// An invalid user agent, or TLS that cannot be set up.
pub(crate) fn client(
    cx: &Context,
    agent: &str,
    credentials: &Credentials,
) -> Result<Client, PipelineError> {
    let guarded = credentials.configured.then(|| credentials.origin.clone());
    let policy = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        if let Some(origin) = &guarded
            && attempt
                .previous()
                .first()
                .is_some_and(|u| origin_of(u) == *origin)
            && origin_of(attempt.url()) != *origin
        {
            return attempt.stop();
        }
        attempt.follow()
    });
    let timeout = Duration::from_secs(cx.spec.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS).max(1));
    let agent = HeaderValue::from_str(agent).map_err(|_| {
        extract_error(
            cx,
            "`user_agent` must be printable ASCII without line breaks",
        )
    })?;
    Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(agent)
        .redirect(policy)
        .build()
        .map_err(|e| {
            extract_error(
                cx,
                &format!(
                    "cannot set up the HTTP client: {}",
                    brigade_core::report::chain(&e)
                ),
            )
        })
}

/// The extract's `headers` with `${VAR}` expanded, marked sensitive.
///
/// # Errors
/// An unset variable, or a name or value HTTP does not allow (the value is not shown).
pub(crate) fn headers(cx: &Context) -> Result<HeaderMap, PipelineError> {
    let mut map = HeaderMap::new();
    for (name, value) in &cx.spec.headers {
        let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            extract_error(cx, &format!("`headers.{name}` is not a valid header name"))
        })?;
        let mut value = HeaderValue::from_str(cx.expand(value)?.trim()).map_err(|_| {
            extract_error(
                cx,
                &format!("the value of `headers.{name}` (after ${{VAR}} expansion) has characters HTTP does not allow, such as a line break"),
            )
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

/// The headers of each request: the extract's `headers` (credentials) for the origin of its
/// `url` (scheme, host and port), and only the default `Accept` for any other origin a next
/// page leads to.
pub(crate) struct Credentials {
    /// The origin of `url`, serialized (`https://host:port`).
    origin: String,
    /// The configured headers and the default `Accept`.
    with: HeaderMap,
    /// The default `Accept` alone (or the configured one, which is no credential).
    without: HeaderMap,
    /// Whether the extract configures any header besides `Accept`.
    configured: bool,
    /// Origins already warned about, so a long crawl logs each once.
    warned: Mutex<HashSet<String>>,
}

impl Credentials {
    /// The extract's `headers` for the origin of `first`, with `accept` unless it sets one.
    ///
    /// # Errors
    /// As [`headers`].
    pub(crate) fn new(
        cx: &Context,
        first: &Url,
        accept: &'static str,
    ) -> Result<Credentials, PipelineError> {
        let mut with = headers(cx)?;
        let mut without = HeaderMap::new();
        match with.get(ACCEPT) {
            Some(value) => {
                without.insert(ACCEPT, value.clone());
            }
            None => {
                with.insert(ACCEPT, HeaderValue::from_static(accept));
                without.insert(ACCEPT, HeaderValue::from_static(accept));
            }
        }
        let configured = with.keys().any(|k| *k != ACCEPT);
        Ok(Credentials {
            origin: origin_of(first),
            with,
            without,
            configured,
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// Whether `url` is on the origin the headers were configured for.
    pub(crate) fn same_origin(&self, url: &Url) -> bool {
        origin_of(url) == self.origin
    }

    /// The headers to send to `url` (shown as `shown`); leaving the configured ones out is
    /// logged once per origin.
    pub(crate) fn for_url(&self, cx: &Context, url: &Url, shown: &str) -> &HeaderMap {
        if self.same_origin(url) {
            return &self.with;
        }
        if self.configured {
            let origin = origin_of(url);
            let first = self
                .warned
                .lock()
                .map(|mut w| w.insert(origin.clone()))
                .unwrap_or(true);
            if first {
                tracing::warn!(
                    extract = %cx.spec.name,
                    url = %shown,
                    origin = %origin,
                    configured_for = %self.origin,
                    "A next page is on another origin; requesting it without the extract's `headers`, which are sent only to the origin of `url`."
                );
            }
        }
        &self.without
    }

    /// Why a request to `url` that failed may have lacked credentials, for its error.
    fn note(&self, url: &Url, fetched: &Fetched) -> Option<String> {
        if !self.configured {
            return None;
        }
        let origin = &self.origin;
        if !self.same_origin(url) {
            return Some(format!(
                "; it was requested without the extract's `headers`, which are sent only to {origin} (the origin of `url`), not to {}",
                origin_of(url)
            ));
        }
        let location = fetched
            .headers
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l).ok())?;
        (fetched.status.is_redirection() && !self.same_origin(&location)).then(|| {
            format!(
                "; it redirects to {}, another origin, and the extract's `headers` go only to {origin}, so the redirect was not followed",
                origin_of(&location)
            )
        })
    }
}

/// `scheme://host:port` of `url` (the default port left out), what "origin" means here.
pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Masks secrets in URLs shown in lineage, logs and errors.
pub(crate) struct Redactor {
    /// (value, its `${VAR}`), longest first.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// Collects the values of the `${VAR}`s of the extract's headers (all of them) and URL
    /// (those whose name looks secret: `TOKEN`, `KEY`, `SECRET`, `PASS`...).
    pub(crate) fn new(cx: &Context) -> Redactor {
        let mut secrets: Vec<(String, String)> = Vec::new();
        let mut collect = |text: &str, all: bool| {
            for name in vars(text) {
                if !(all || secret_name(&name)) {
                    continue;
                }
                if let Some(value) = (cx.env)(&name)
                    && value.len() >= 4
                    && !secrets.iter().any(|(v, _)| *v == value)
                {
                    secrets.push((value, format!("${{{name}}}")));
                }
            }
        };
        for value in cx.spec.headers.values() {
            collect(value, true);
        }
        collect(cx.spec.url.as_deref().unwrap_or_default(), false);
        secrets.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        Redactor { secrets }
    }

    /// `url` without its password and secret query values.
    pub(crate) fn url(&self, url: &Url) -> String {
        let mut url = url.clone();
        if url.password().is_some() {
            let _ = url.set_password(None);
        }
        if url.query_pairs().any(|(k, _)| secret_name(&k)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret_name(&k) {
                        "***".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.text(url.as_str())
    }

    /// `text` with every known secret value replaced by its `${VAR}`.
    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (value, var) in &self.secrets {
            out = out.replace(value.as_str(), var);
            let encoded = encode(value);
            if encoded != *value {
                out = out.replace(&encoded, var);
            }
        }
        out
    }
}

/// The names of the `${VAR}`s in `text`.
fn vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// Whether a variable or query parameter name suggests a credential.
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "key",
        "secret",
        "pass",
        "pwd",
        "auth",
        "credential",
        "signature",
        "sig",
        "session",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// A response read to the end.
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    /// The final URL, after redirects (the base for relative links).
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    /// The body went past [`MAX_BODY`] and was not read further.
    pub(crate) too_large: bool,
}

/// The largest response body read (a page or an API response, not a download).
pub(crate) const MAX_BODY: usize = 64 * 1024 * 1024;

/// GETs `url` and reads the body, retrying connection errors, timeouts, 429 and 5xx up to
/// five times with exponential backoff (200 ms doubling, at most 10 s, plus jitter), or
/// after the server's `Retry-After` when it sends one. Other statuses, 4xx included, are
/// returned for the caller to judge. `shown` is the URL as it may appear in logs.
///
/// # Errors
/// Still failing after the retries (the message says "(transient)"), a request that cannot
/// be built, or a cancelled run.
pub(crate) async fn fetch(
    cx: &Context,
    client: &Client,
    url: &Url,
    headers: &HeaderMap,
    shown: &str,
) -> Result<Fetched, PipelineError> {
    let mut retry: u32 = 0;
    loop {
        if cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let (problem, wait) = match attempt(client, url, headers).await {
            Ok(f) if f.too_large => {
                return Err(extract_error(
                    cx,
                    &format!(
                        "GET {shown}: the response is larger than {} MiB; page through the API (`paginate`) instead",
                        MAX_BODY / (1024 * 1024)
                    ),
                ));
            }
            Ok(f) if !retryable(f.status) => return Ok(f),
            Ok(f) => (
                format!("HTTP {}: {}", f.status, snippet(&f.body)),
                retry_after(&f.headers, SystemTime::now()),
            ),
            Err(e) if e.is_timeout() => (
                format!(
                    "timed out after {} s (raise `timeout_secs` if the server is slow)",
                    cx.spec.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)
                ),
                None,
            ),
            Err(e) if e.is_connect() || e.is_request() || e.is_body() || e.is_decode() => {
                (brigade_core::report::chain(&e.without_url()), None)
            }
            Err(e) => {
                return Err(extract_error(
                    cx,
                    &format!(
                        "GET {shown} failed: {}",
                        brigade_core::report::chain(&e.without_url())
                    ),
                ));
            }
        };
        if retry >= RETRIES {
            return Err(PipelineError::Transient(format!(
                "extract `{}`: GET {shown} failed {} times, last with {problem}",
                cx.spec.name,
                retry + 1
            )));
        }
        let delay = wait.unwrap_or_else(|| backoff(retry, BACKOFF_START) + jitter());
        retry += 1;
        tracing::warn!(
            extract = %cx.spec.name,
            url = %shown,
            problem = %problem,
            retry,
            delay_ms = delay.as_millis() as u64,
            "Request failed; retrying."
        );
        pause(cx, delay).await?;
    }
}

async fn attempt(
    client: &Client,
    url: &Url,
    headers: &HeaderMap,
) -> Result<Fetched, reqwest::Error> {
    let mut response = client
        .get(url.clone())
        .headers(headers.clone())
        .send()
        .await?;
    let status = response.status();
    let final_url = response.url().clone();
    let headers = response.headers().clone();
    // Read by chunks so a huge or endless body stops at the cap instead of filling memory.
    let mut bytes = Vec::new();
    let mut too_large = false;
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() + chunk.len() > MAX_BODY {
            too_large = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        url: final_url,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        too_large,
    })
}

pub(super) fn retryable(status: StatusCode) -> bool {
    brigade_core::retry::retryable_status(status.as_u16())
}

/// The delay before retry number `retry + 1`: `start` doubled `retry` times, capped.
pub(super) fn backoff(retry: u32, start: Duration) -> Duration {
    brigade_core::retry::backoff(retry, start, BACKOFF_CAP)
}

/// Up to 100 ms, so clients retrying together drift apart.
pub(super) fn jitter() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(u64::from(nanos.wrapping_mul(2_654_435_761) % 100))
}

/// `Retry-After` in seconds or as an HTTP date, capped.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    brigade_core::retry::retry_after(value, now, RETRY_AFTER_CAP)
}

/// Sleeps `delay`, waking every 100 ms to notice a cancelled run.
///
/// # Errors
/// [`PipelineError::Cancelled`].
pub(crate) async fn pause(cx: &Context, delay: Duration) -> Result<(), PipelineError> {
    let end = tokio::time::Instant::now() + delay;
    loop {
        if cx.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let now = tokio::time::Instant::now();
        if now >= end {
            return Ok(());
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(100))).await;
    }
}

/// The error for a response from `url` that is not a success (and was not retried).
pub(crate) fn status_error(
    cx: &Context,
    url: &Url,
    shown: &str,
    fetched: &Fetched,
    credentials: &Credentials,
) -> PipelineError {
    let note = credentials.note(url, fetched).unwrap_or_default();
    let hint = match fetched.status.as_u16() {
        401 | 403 => {
            "; check the credentials in `headers` (e.g. Authorization = \"Bearer ${TOKEN}\")"
        }
        404 | 410 => "; check `url`",
        300..=399 => "; the redirect was not followed, check `url`",
        _ => "",
    };
    extract_error(
        cx,
        &format!(
            "GET {shown} returned {}: {}{note}{hint}",
            fetched.status,
            snippet(&fetched.body)
        ),
    )
}

/// The first characters of a body, on one line.
pub(crate) fn snippet(body: &str) -> String {
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "(empty body)".into();
    }
    if flat.chars().count() > SNIPPET {
        format!("{}…", flat.chars().take(SNIPPET).collect::<String>())
    } else {
        flat
    }
}

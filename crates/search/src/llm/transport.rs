//! The HTTP side shared by the chat client and the OpenAI embedder: JSON POSTs to an
//! OpenAI-compatible server, retried with exponential backoff and jitter on connection
//! errors, 429 (honouring `Retry-After`) and 5xx, all attempts under one deadline, the
//! response size capped, and the API key kept out of every error and log line.

use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Client, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

/// The largest response body read; a chat completion or a batch of embeddings is far smaller.
pub(crate) const MAX_BODY: usize = 8 * 1024 * 1024;
/// The first backoff delay, doubled after each failed attempt.
const BACKOFF_START: Duration = Duration::from_millis(200);
/// The longest backoff delay.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// The longest `Retry-After` honoured; a server asking for more gets this.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);
/// How much of a server's error message goes into ours.
const EXCERPT_CHARS: usize = 200;

/// One OpenAI-compatible server, as configured.
#[derive(Clone)]
pub(crate) struct Endpoint {
    client: Client,
    /// The base URL without its trailing slash, e.g. `http://127.0.0.1:11434/v1`.
    base: String,
    /// The base URL without credentials, for errors and logs.
    shown: String,
    api_key: Option<String>,
    timeout: Duration,
    max_retries: u32,
}

// By hand, so the API key never reaches a `{:?}`.
impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.shown)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// Why a request failed; the caller words it for its own error variant.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The deadline passed while an attempt was in flight.
    Timeout,
    /// No HTTP answer (connection refused, reset, DNS), after `attempts` tries.
    Unreachable { attempts: u32, reason: String },
    /// An error status: not retryable, or still failing after `attempts` tries.
    Status {
        status: StatusCode,
        attempts: u32,
        excerpt: String,
    },
    /// The body went past [`MAX_BODY`].
    TooLarge,
    /// A success status whose body is not the JSON expected: why, briefly.
    Malformed(String),
}

impl Failure {
    /// The message for an error about `server` (e.g. "the model at URL"), which was
    /// expected to answer `expected` (e.g. "a chat completion") within `timeout`.
    pub(crate) fn describe(&self, server: &str, expected: &str, timeout: Duration) -> String {
        let tries = |attempts: u32| {
            if attempts > 1 {
                format!(" (after {attempts} attempts)")
            } else {
                String::new()
            }
        };
        match self {
            Failure::Timeout => format!(
                "{server} did not answer within {} s",
                whole_seconds(timeout)
            ),
            Failure::Unreachable { attempts, reason } => {
                format!("{server} is unreachable{}: {reason}", tries(*attempts))
            }
            Failure::Status {
                status,
                attempts,
                excerpt,
            } => {
                let hint = match status.as_u16() {
                    401 | 403 => "; check the API key (`api_key_env`)",
                    404 => "; check `base_url` (it usually ends in /v1) and the model name",
                    _ => "",
                };
                format!(
                    "{server} answered HTTP {}{}: {excerpt}{hint}",
                    status.as_u16(),
                    tries(*attempts)
                )
            }
            Failure::TooLarge => format!(
                "{server} answered more than {} MiB, which is not {expected}",
                MAX_BODY / (1024 * 1024)
            ),
            Failure::Malformed(reason) => {
                format!("{server} answered something that is not {expected}: {reason}")
            }
        }
    }
}

/// `d` in whole seconds, rounded up so a sub-second timeout does not read "0 s".
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Endpoint {
    /// Checks `base_url` (http or https) and builds the HTTP client. An empty key counts as none.
    ///
    /// # Errors
    /// A message naming what is wrong with `base_url`, or the key when it cannot be sent.
    pub(crate) fn new(
        base_url: &str,
        api_key: Option<String>,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<Self, String> {
        let url = Url::parse(base_url.trim()).map_err(|e| {
            format!("`base_url` is not a URL ({e}); e.g. http://127.0.0.1:11434/v1")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "`base_url` must be an http or https URL, not {}:",
                url.scheme()
            ));
        }
        let mut shown = url.clone();
        // Both only fail for URLs that cannot have credentials, which have none to hide.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        let api_key = api_key.filter(|k| !k.is_empty());
        if let Some(key) = &api_key
            && reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err()
        {
            return Err("the API key contains characters that cannot be sent in a header".into());
        }
        let client = Client::builder().build().map_err(|e| {
            format!(
                "cannot build an HTTP client: {}",
                brigade_core::report::chain(&e)
            )
        })?;
        Ok(Endpoint {
            client,
            base: url.as_str().trim_end_matches('/').to_string(),
            shown: shown.as_str().trim_end_matches('/').to_string(),
            api_key,
            timeout,
            max_retries,
        })
    }

    /// The base URL as it may appear in errors and logs (no credentials).
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// The deadline of one [`Endpoint::post`], all attempts included.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body` as JSON to `{base_url}/{path}` and decodes a success into `T`.
    ///
    /// Connection errors, 429 and 5xx are retried up to `max_retries` times, after the
    /// server's `Retry-After` (capped) or an exponential backoff with jitter. Everything,
    /// waits included, stays within `timeout`: a retry that could not start before the
    /// deadline is not attempted and the last failure is returned instead.
    ///
    /// # Errors
    /// A [`Failure`], whose messages never contain the API key.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, Failure> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let deadline = Instant::now() + self.timeout;
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let Ok(outcome) = tokio::time::timeout_at(deadline, self.attempt(&url, body)).await
            else {
                return Err(Failure::Timeout);
            };
            let (failure, wait) = match outcome {
                Ok(reply) if reply.status.is_success() => return decode(&reply),
                Ok(reply) => {
                    let failure = Failure::Status {
                        status: reply.status,
                        attempts,
                        excerpt: self.excerpt(&reply.body),
                    };
                    if !retryable(reply.status) {
                        return Err(failure);
                    }
                    (failure, retry_after(&reply.headers))
                }
                Err(Attempt::TooLarge) => return Err(Failure::TooLarge),
                Err(Attempt::Http(e)) => {
                    let fatal = e.is_builder();
                    let failure = Failure::Unreachable {
                        attempts,
                        reason: brigade_core::report::chain(&e.without_url()),
                    };
                    if fatal {
                        return Err(failure);
                    }
                    (failure, None)
                }
            };
            if attempts > self.max_retries {
                return Err(failure);
            }
            let delay = wait.unwrap_or_else(|| with_jitter(backoff(attempts - 1)));
            if Instant::now() + delay >= deadline {
                return Err(failure);
            }
            tracing::warn!(
                server = %self.shown,
                path,
                problem = %failure.describe("the server", "an answer", self.timeout),
                attempt = attempts,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "OpenAI-compatible request failed; retrying."
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, url: &str, body: &serde_json::Value) -> Result<Reply, Attempt> {
        let mut request = self.client.post(url).json(body);
        if let Some(key) = &self.api_key {
            // `bearer_auth` marks the header sensitive, so it is not printed either.
            request = request.bearer_auth(key);
        }
        let mut response = request.send().await.map_err(Attempt::Http)?;
        let status = response.status();
        let headers = response.headers().clone();
        // Read by chunks so a huge or endless body stops at the cap instead of filling memory.
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(Attempt::Http)? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(Attempt::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            headers,
            body: bytes,
        })
    }

    /// A short, single-line excerpt of a server's error body, the API key masked should the
    /// server echo it back.
    fn excerpt(&self, body: &[u8]) -> String {
        let text = error_message(body);
        let text = match &self.api_key {
            Some(key) => text.replace(key.as_str(), "***"),
            None => text,
        };
        shorten(&text, EXCERPT_CHARS)
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

enum Attempt {
    Http(reqwest::Error),
    TooLarge,
}

fn decode<T: DeserializeOwned>(reply: &Reply) -> Result<T, Failure> {
    serde_json::from_slice(&reply.body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            let kind = reply
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map_or("a", |t| t.split(';').next().unwrap_or(t).trim());
            let text = shorten(&String::from_utf8_lossy(&reply.body), 60);
            if kind == "a" {
                Failure::Malformed(format!("a body that is not JSON ({text:?})"))
            } else {
                Failure::Malformed(format!("a {kind} body that is not JSON ({text:?})"))
            }
        } else {
            Failure::Malformed(e.to_string())
        }
    })
}

/// The message in an OpenAI-style error body (`{"error": {"message": ..}}`, or the common
/// variants `{"error": ".."}`, `{"message": ..}`, `{"detail": ..}`), else the body itself.
fn error_message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let found = [
            json.pointer("/error/message"),
            json.get("error"),
            json.get("message"),
            json.get("detail"),
        ]
        .into_iter()
        .flatten()
        .find_map(serde_json::Value::as_str);
        if let Some(message) = found {
            return message.to_string();
        }
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        "(no message)".to_string()
    } else {
        text.into_owned()
    }
}

/// `text` on one line, at most `max` characters (an ellipsis marks a cut).
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

fn retryable(status: StatusCode) -> bool {
    brigade_core::retry::retryable_status(status.as_u16())
}

/// The delay before retry number `retry + 1`: 200 ms doubled `retry` times, at most 5 s.
fn backoff(retry: u32) -> Duration {
    brigade_core::retry::backoff(retry, BACKOFF_START, BACKOFF_CAP)
}

/// `delay` plus up to a quarter more, so clients failing together do not retry together.
fn with_jitter(delay: Duration) -> Duration {
    let max = u64::try_from(delay.as_millis() / 4).unwrap_or(0);
    delay + Duration::from_millis(rand::random_range(0..=max))
}

/// `Retry-After` in seconds or as an HTTP date, capped.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    brigade_core::retry::retry_after(value, std::time::SystemTime::now(), RETRY_AFTER_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_200_ms_up_to_5_s() {
        let delays: Vec<u128> = (0..7).map(|r| backoff(r).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 5000, 5000]);
        let jittered = with_jitter(Duration::from_millis(400));
        assert!((400..=500).contains(&jittered.as_millis()), "{jittered:?}");
    }

    #[test]
    fn retry_after_reads_seconds_capped() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, "3600".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(RETRY_AFTER_CAP));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn error_messages_are_found_in_the_usual_shapes_and_shortened() {
        assert_eq!(
            error_message(br#"{"error": {"message": "model not found", "type": "x"}}"#),
            "model not found"
        );
        assert_eq!(error_message(br#"{"error": "bad input"}"#), "bad input");
        assert_eq!(error_message(br#"{"detail": "nope"}"#), "nope");
        assert_eq!(error_message(b"plain\ntext"), "plain\ntext");
        assert_eq!(error_message(b" "), "(no message)");
        assert_eq!(shorten("a\n b  c", 10), "a b c");
        assert_eq!(shorten(&"é".repeat(300), 200).chars().count(), 201);
    }

    #[test]
    fn base_urls_are_checked_and_credentials_hidden() {
        let t = Duration::from_secs(1);
        let e = Endpoint::new("https://user:secret@example.com/v1/", None, t, 0).unwrap();
        assert_eq!(e.shown(), "https://example.com/v1");
        assert!(!format!("{e:?}").contains("secret"));
        assert!(Endpoint::new("localhost:11434", None, t, 0).is_err());
        assert!(Endpoint::new("ftp://example.com/v1", None, t, 0).is_err());
        let e = Endpoint::new("http://x/v1", Some("sk-1".into()), t, 0).unwrap();
        assert!(!format!("{e:?}").contains("sk-1"));
        assert_eq!(
            Endpoint::new("http://x/v1", Some("a\nb".into()), t, 0).unwrap_err(),
            "the API key contains characters that cannot be sent in a header"
        );
        assert_eq!(whole_seconds(Duration::from_millis(300)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
    }

    #[tokio::test]
    async fn bodies_past_the_cap_are_refused() {
        let app = axum::Router::new().route(
            "/v1/huge",
            axum::routing::post(|| async { "x".repeat(MAX_BODY + 1) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let endpoint = Endpoint::new(
            &format!("http://{address}/v1"),
            None,
            Duration::from_secs(10),
            2,
        )
        .unwrap();
        let failure = endpoint
            .post::<serde_json::Value>("huge", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(failure, Failure::TooLarge), "{failure:?}");
        server.abort();
    }
}

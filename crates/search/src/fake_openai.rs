//! A fake OpenAI-compatible server on a real loopback socket, for tests here and downstream
//! (feature `testing`): `/v1/chat/completions` answers by citing the first numbered
//! source of the prompt, `/v1/embeddings` answers deterministic 16-dimension vectors, and
//! [`Behaviour`] makes it slow, broken or failing on demand. It records every request.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

/// The model `/v1/models` lists (chat and embeddings echo whatever model they are sent).
pub const FAKE_MODEL: &str = "fake-model";
/// Dimensions of the fake's embeddings.
pub const FAKE_DIMS: usize = 16;

/// How the fake answers, changeable while it runs with [`FakeOpenAi::set_behaviour`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Valid answers.
    Answer,
    /// Valid answers after this delay.
    Slow(Duration),
    /// 200 with `text/plain` `<html>oops`.
    Garbage,
    /// This status with an OpenAI-style error body (`Retry-After: 1` on a 429; a 401 echoes
    /// the bearer token back, as careless servers do).
    Status(u16),
    /// This many 500s, then valid answers.
    FailThenAnswer(u32),
    /// This many 429s with `Retry-After: 1`, then valid answers.
    RateLimitedThenAnswer(u32),
    /// Valid embeddings with `data` in reverse order (their `index` fields still right).
    Shuffled,
    /// Embeddings with the last one left out.
    MissingOne,
}

#[derive(Debug)]
struct Shared {
    behaviour: Behaviour,
    requests: Vec<Value>,
}

type SharedState = Arc<Mutex<Shared>>;

/// A running fake; dropping it (or [`FakeOpenAi::stop`]) closes its socket.
#[derive(Debug)]
pub struct FakeOpenAi {
    /// The API root to configure clients with: `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    shared: SharedState,
    server: JoinHandle<()>,
}

impl FakeOpenAi {
    /// Starts a fake on a free loopback port.
    ///
    /// # Panics
    /// When no loopback port can be bound (this is test support).
    pub async fn start(behaviour: Behaviour) -> FakeOpenAi {
        let shared = Arc::new(Mutex::new(Shared {
            behaviour,
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake OpenAI server binds a loopback port");
        let address = listener
            .local_addr()
            .expect("a bound socket has an address");
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "The fake OpenAI server stopped.");
            }
        });
        FakeOpenAi {
            base_url: format!("http://{address}/v1"),
            shared,
            server,
        }
    }

    /// Answers the next requests this way.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        lock(&self.shared).behaviour = behaviour;
    }

    /// Every request received, in order: `{"path", "authorization", "body"}` (the body as
    /// JSON, or as a string when it is not JSON; `authorization` null when absent).
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared).requests.clone()
    }

    /// Stops the server: new connections are refused.
    pub fn stop(self) {}
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A base URL where nothing listens (a port bound then released), to stand for a model that
/// is down.
///
/// # Panics
/// When no loopback port can be bound.
pub fn unused_base_url() -> String {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port can be bound");
    let address = listener
        .local_addr()
        .expect("a bound socket has an address");
    format!("http://{address}/v1")
}

fn lock(shared: &SharedState) -> std::sync::MutexGuard<'_, Shared> {
    // A test that panicked mid-request must not break the next ones.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What to answer once the request is recorded.
enum Plan {
    Answer(Behaviour),
    Garbage,
    Status(u16),
}

/// Records the request and decides the answer; `Slow` sleeps here, outside the lock.
async fn plan(shared: &SharedState, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> (Plan, Value) {
    let body = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |v| Value::String(v.to_string()));
    let (plan, delay) = {
        let mut shared = lock(shared);
        shared.requests.push(json!({
            "path": uri.path(),
            "authorization": authorization,
            "body": body,
        }));
        match shared.behaviour.clone() {
            Behaviour::Slow(delay) => (Plan::Answer(Behaviour::Answer), Some(delay)),
            Behaviour::Garbage => (Plan::Garbage, None),
            Behaviour::Status(status) => (Plan::Status(status), None),
            Behaviour::FailThenAnswer(n) if n > 0 => {
                shared.behaviour = Behaviour::FailThenAnswer(n - 1);
                (Plan::Status(500), None)
            }
            Behaviour::RateLimitedThenAnswer(n) if n > 0 => {
                shared.behaviour = Behaviour::RateLimitedThenAnswer(n - 1);
                (Plan::Status(429), None)
            }
            other => (Plan::Answer(other), None),
        }
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    (plan, body)
}

/// The answer for a plan other than [`Plan::Answer`], or `None` to answer normally.
fn failure(plan: &Plan, headers: &HeaderMap) -> Option<Response> {
    match plan {
        Plan::Answer(_) => None,
        Plan::Garbage => Some(([(CONTENT_TYPE, "text/plain")], "<html>oops").into_response()),
        Plan::Status(status) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = match status.as_u16() {
                401 => {
                    let token = headers
                        .get(AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or("");
                    format!("Incorrect API key provided: {token}.")
                }
                429 => "Rate limit reached, please retry later.".to_string(),
                _ => format!("The fake server answers {status} on purpose.",),
            };
            let body = axum::Json(json!({
                "error": { "message": message, "type": "fake_error", "code": status.as_u16() }
            }));
            let mut response = (status, body).into_response();
            if status == StatusCode::TOO_MANY_REQUESTS {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
            }
            Some(response)
        }
    }
}

fn bad_request(message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": "invalid_request_error" } });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn words(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
}

async fn chat_completions(
    State(shared): State<SharedState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (plan, request) = plan(&shared, &uri, &headers, &body).await;
    if let Some(response) = failure(&plan, &headers) {
        return response;
    }
    let Some(messages) = request["messages"].as_array() else {
        return bad_request("`messages` is required");
    };
    let model = request["model"].as_str().unwrap_or(FAKE_MODEL);
    let question = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let source = question
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("[1]"))
        .map(str::trim);
    let mut content = match source {
        Some(source) => format!(
            "According to [1], {}",
            source.chars().take(60).collect::<String>()
        ),
        None => "I found no numbered sources to answer from.".to_string(),
    };
    if let Some(max) = request["max_tokens"].as_u64() {
        let kept: Vec<&str> = content
            .split_whitespace()
            .take(usize::try_from(max).unwrap_or(usize::MAX))
            .collect();
        content = kept.join(" ");
    }
    let prompt_tokens: u64 = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .map(words)
        .sum();
    let completion_tokens = words(&content);
    axum::Json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
    .into_response()
}

/// A deterministic vector for `text`, not normalised (clients must do it).
fn fake_vector(text: &str) -> Vec<f32> {
    Sha256::digest(text.as_bytes())
        .chunks(2)
        .take(FAKE_DIMS)
        .map(|pair| f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 4096.0)
        .collect()
}

async fn embeddings(
    State(shared): State<SharedState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (plan, request) = plan(&shared, &uri, &headers, &body).await;
    if let Some(response) = failure(&plan, &headers) {
        return response;
    }
    let inputs: Vec<&str> = match &request["input"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => match many.iter().map(Value::as_str).collect::<Option<_>>() {
            Some(texts) => texts,
            None => return bad_request("`input` must be a string or an array of strings"),
        },
        _ => return bad_request("`input` must be a string or an array of strings"),
    };
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({ "object": "embedding", "index": index, "embedding": fake_vector(text) })
        })
        .collect();
    match plan {
        Plan::Answer(Behaviour::Shuffled) => data.reverse(),
        Plan::Answer(Behaviour::MissingOne) => {
            data.pop();
        }
        _ => {}
    }
    let tokens: u64 = inputs.iter().map(|t| words(t)).sum();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": request["model"].as_str().unwrap_or(FAKE_MODEL),
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
    .into_response()
}

async fn models(
    State(shared): State<SharedState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (plan, _) = plan(&shared, &uri, &headers, &body).await;
    if let Some(response) = failure(&plan, &headers) {
        return response;
    }
    axum::Json(json!({
        "object": "list",
        "data": [{ "id": FAKE_MODEL, "object": "model", "created": 0, "owned_by": "brigade" }],
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_its_model_and_records_requests_in_order() {
        let fake = FakeOpenAi::start(Behaviour::Answer).await;
        let http = reqwest::Client::new();
        let models: Value = http
            .get(format!("{}/models", fake.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(models["data"][0]["id"], FAKE_MODEL);
        let chat: Value = http
            .post(format!("{}/chat/completions", fake.base_url))
            .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "Hi there" }] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            chat["choices"][0]["message"]["content"],
            "I found no numbered sources to answer from."
        );
        assert_eq!(chat["usage"]["prompt_tokens"], 2);
        let paths: Vec<Value> = fake.requests().iter().map(|r| r["path"].clone()).collect();
        assert_eq!(paths, ["/v1/models", "/v1/chat/completions"]);
        assert_eq!(fake.requests()[1]["body"]["model"], "m");

        fake.set_behaviour(Behaviour::Status(503));
        let status = http
            .get(format!("{}/models", fake.base_url))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 503);
    }
}

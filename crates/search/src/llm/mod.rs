//! The client for an OpenAI-compatible chat completions API (answers for `/api/rag`):
//! [`LlmConfig`] (the `[llm]` section of `brigade.toml`), [`LlmClient::chat`] and its
//! [`Completion`]. The HTTP side (retries, one deadline, size cap, key hygiene) lives in
//! `transport`, shared with the OpenAI embedder.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::SearchError;

pub(crate) mod transport;

use transport::{Endpoint, Failure};

/// The default bound on one [`LlmClient::chat`] call, all attempts included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default number of retries after a failed attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// Where the language model is and how long to wait for it.
#[derive(Clone)]
pub struct LlmConfig {
    /// The API root, e.g. `http://127.0.0.1:11434/v1`; a trailing slash is fine.
    pub base_url: String,
    /// The model name sent with every request, e.g. `llama3.1`.
    pub model: String,
    /// Sent as `Authorization: Bearer`; never logged nor put in an error.
    pub api_key: Option<String>,
    /// The bound on one whole [`LlmClient::chat`] call, retries and waits included.
    pub timeout: Duration,
    /// Retries after a connection error, a 429 or a 5xx.
    pub max_retries: u32,
}

impl LlmConfig {
    /// A configuration without API key, with [`DEFAULT_TIMEOUT`] and [`DEFAULT_MAX_RETRIES`].
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

// By hand, so the API key never reaches a `{:?}`.
impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// One message of a chat: `role` is `system`, `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// A `system` message (instructions).
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "system".into(),
            content: content.into(),
        }
    }

    /// A `user` message (the question and its sources).
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// The model's answer and what it cost.
///
/// The token counts are the server's `usage` when it reports one; when it does not, they
/// are estimated as a quarter of the characters (of all messages for the prompt, of the
/// answer for the completion), rounded up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    /// The model that answered, as the server names it (the configured one if it does not).
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A client for one model behind an OpenAI-compatible `/chat/completions`.
#[derive(Debug, Clone)]
pub struct LlmClient {
    endpoint: Endpoint,
    model: String,
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    model: Option<String>,
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl LlmClient {
    /// Checks the configuration and builds the client; nothing is sent yet.
    ///
    /// # Errors
    /// [`SearchError::Llm`] for a `base_url` that is not an http(s) URL, an empty model, or an
    /// API key that cannot go in a header.
    pub fn new(config: LlmConfig) -> Result<Self, SearchError> {
        if config.model.trim().is_empty() {
            return Err(SearchError::llm(
                "no model configured; set `model` under [llm]",
            ));
        }
        let endpoint = Endpoint::new(
            &config.base_url,
            config.api_key,
            config.timeout,
            config.max_retries,
        )
        .map_err(|e| SearchError::llm(format!("[llm] {e}")))?;
        Ok(LlmClient {
            endpoint,
            model: config.model,
        })
    }

    /// Asks the model to continue `messages` with at most `max_tokens` tokens, at
    /// temperature 0 so the same sources give the same answer.
    ///
    /// Connection errors, 429 and 5xx are retried with backoff; the whole call, retries
    /// included, is bounded by the configured timeout.
    ///
    /// # Errors
    /// [`SearchError::LlmTimeout`] when the timeout passes; [`SearchError::Llm`] when the
    /// server is unreachable, answers an error status (with an excerpt of its message), or
    /// answers something that is not a chat completion.
    pub async fn chat(
        &self,
        messages: &[ChatMessage],
        max_tokens: u32,
    ) -> Result<Completion, SearchError> {
        let started = Instant::now();
        let body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": false,
        });
        let response: ChatResponse = self
            .endpoint
            .post("chat/completions", &body)
            .await
            .map_err(|f| self.error(&f))?;
        let completion = self.completion(response, messages)?;
        tracing::debug!(
            model = %completion.model,
            prompt_tokens = completion.prompt_tokens,
            completion_tokens = completion.completion_tokens,
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "Chat completion received."
        );
        Ok(completion)
    }

    fn completion(
        &self,
        response: ChatResponse,
        messages: &[ChatMessage],
    ) -> Result<Completion, SearchError> {
        let Some(choice) = response.choices.into_iter().next() else {
            return Err(self.error(&Failure::Malformed("`choices` is empty".into())));
        };
        let Some(text) = choice.message.content else {
            return Err(self.error(&Failure::Malformed(
                "`choices[0].message.content` is missing".into(),
            )));
        };
        let usage = response.usage.unwrap_or(Usage {
            prompt_tokens: None,
            completion_tokens: None,
        });
        let prompt_tokens = usage.prompt_tokens.unwrap_or_else(|| {
            estimate_tokens(messages.iter().map(|m| m.content.chars().count()).sum())
        });
        let completion_tokens = usage
            .completion_tokens
            .unwrap_or_else(|| estimate_tokens(text.chars().count()));
        Ok(Completion {
            text,
            model: response
                .model
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| self.model.clone()),
            prompt_tokens,
            completion_tokens,
        })
    }

    fn error(&self, failure: &Failure) -> SearchError {
        match failure {
            Failure::Timeout => {
                SearchError::LlmTimeout(transport::whole_seconds(self.endpoint.timeout()))
            }
            _ => SearchError::llm(failure.describe(
                &format!("the model at {}", self.endpoint.shown()),
                "a chat completion",
                self.endpoint.timeout(),
            )),
        }
    }
}

/// About four characters a token, for servers that do not report `usage`.
fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;

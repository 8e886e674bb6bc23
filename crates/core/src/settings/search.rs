//! `[[search.indexes]]` and `[llm]`: which documents or collection fields are indexed, how
//! they are embedded and chunked, and which OpenAI-compatible model answers questions.
//! Validated here so a typo stops `brigade serve` with the key that is wrong.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use super::Redacted;

/// `[search]`.
#[derive(Debug, Clone, Default)]
pub struct SearchSettings {
    pub indexes: Vec<IndexSettings>,
}

/// What an index reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexSource {
    /// Files matching a glob relative to the app directory (`docs/**/*.md`).
    Path(String),
    /// Records of a collection; `fields` are concatenated into the document text, the first
    /// being the title when it is short.
    Collection { name: String, fields: Vec<String> },
    /// Only documents posted to `POST /api/search/{index}/documents`.
    Api,
}

/// One `[[search.indexes]]` entry.
#[derive(Debug, Clone)]
pub struct IndexSettings {
    pub name: String,
    pub source: IndexSource,
    /// `builtin`, `local:PATH` (resolved against the app directory) or `openai:MODEL`.
    pub embedder: String,
    /// For `openai:` embedders: the server (default: `llm.base_url`).
    pub embedder_url: Option<String>,
    pub max_tokens: usize,
    pub overlap: usize,
    /// Share of hybrid ranking given to the vector list (0: keywords only, 1: vectors
    /// only). Default: 0.5 for `builtin`, 2/3 for a real model, whose vectors beat BM25.
    pub vector_weight: f64,
    /// The share of its score a hit keeps for each hit of the same document ranked above it
    /// (0.1..=1; default 0.6: results spread over documents; 1: plain chunk ranking).
    pub same_document_weight: f64,
    /// Who may search a path-backed index, in the filter language over `@request.auth`
    /// (`""` or absent: anyone). Collection-backed indexes use the collection's list rule.
    pub rule: Option<String>,
}

/// `[llm]`: the model that writes answers.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// An OpenAI-compatible API root, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    pub model: String,
    /// Read through [`LlmSettings::api_key`], which says what to do when it is missing.
    pub api_key: LlmKey,
    pub timeout: Duration,
    pub max_retries: u32,
    /// Largest answer, in tokens.
    pub max_answer_tokens: u32,
    /// Budget of the numbered sources in the prompt, in tokens.
    pub context_tokens: usize,
}

/// The `[llm] api_key_env` variable as found when the settings were read. A missing variable
/// is not a settings error: commands that never call the model (`migrate`, `superuser`, ...)
/// must work without it; the ones that build an LLM or embedding client refuse to start.
#[derive(Debug, Clone)]
pub enum LlmKey {
    /// No `api_key_env`: the server needs no key (e.g. a local Ollama).
    NotConfigured,
    /// The variable's value.
    Set(Redacted),
    /// `api_key_env` names a variable that is unset or empty.
    Missing { var: String },
}

impl LlmSettings {
    /// The API key, if one is configured.
    ///
    /// # Errors
    /// A message naming `llm.api_key_env` and the unset variable.
    pub fn api_key(&self) -> Result<Option<&Redacted>, String> {
        match &self.api_key {
            LlmKey::NotConfigured => Ok(None),
            LlmKey::Set(key) => Ok(Some(key)),
            LlmKey::Missing { var } => Err(format!(
                "llm.api_key_env names the variable `{var}`, which is not set; export it or \
                 remove api_key_env from brigade.toml"
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSearch {
    indexes: Vec<RawIndex>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawIndex {
    name: Option<String>,
    path: Option<String>,
    collection: Option<String>,
    fields: Option<Vec<String>>,
    embedder: Option<String>,
    embedder_url: Option<String>,
    chunk: Option<RawChunk>,
    vector_weight: Option<f64>,
    same_document_weight: Option<f64>,
    rule: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawChunk {
    max_tokens: Option<i64>,
    overlap: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLlm {
    base_url: Option<String>,
    model: Option<String>,
    api_key_env: Option<String>,
    timeout_s: Option<i64>,
    max_retries: Option<i64>,
    max_answer_tokens: Option<i64>,
    context_tokens: Option<i64>,
}

/// A problem as `(dotted key, message)`.
type Fault = (String, String);

fn fault(key: String, message: impl Into<String>) -> Fault {
    (key, message.into())
}

/// Validates `[search]`.
pub(super) fn search(raw: RawSearch) -> Result<SearchSettings, Fault> {
    let mut seen = HashSet::new();
    let mut indexes = Vec::new();
    for (i, index) in raw.indexes.into_iter().enumerate() {
        let key = |k: &str| format!("search.indexes[{i}].{k}");
        let name = index
            .name
            .ok_or_else(|| fault(key("name"), "is required (e.g. name = \"docs\")"))?;
        let valid = !name.is_empty()
            && name.len() <= 40
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && name.starts_with(|c: char| c.is_ascii_lowercase());
        if !valid {
            return Err(fault(
                key("name"),
                format!("`{name}` must start with a-z and use only a-z, 0-9 and `_` (at most 40)"),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(fault(key("name"), format!("`{name}` names two indexes")));
        }
        let source = match (index.path, index.collection) {
            (Some(_), Some(_)) => {
                return Err(fault(
                    key("collection"),
                    "an index reads either `path` or `collection`, not both",
                ));
            }
            (Some(path), None) => {
                if index.fields.is_some() {
                    return Err(fault(
                        key("fields"),
                        "`fields` goes with `collection`, not `path`",
                    ));
                }
                if path.trim().is_empty() {
                    return Err(fault(
                        key("path"),
                        "is empty; use a glob such as \"docs/**/*.md\"",
                    ));
                }
                glob_syntax(&path).map_err(|m| fault(key("path"), m))?;
                IndexSource::Path(path)
            }
            (None, Some(collection)) => {
                let fields = index.fields.unwrap_or_default();
                if fields.is_empty() {
                    return Err(fault(
                        key("fields"),
                        "list the text fields to index, e.g. fields = [\"title\", \"body\"]",
                    ));
                }
                IndexSource::Collection {
                    name: collection,
                    fields,
                }
            }
            (None, None) => IndexSource::Api,
        };
        let embedder = index.embedder.unwrap_or_else(|| "builtin".to_string());
        embedder_syntax(&embedder).map_err(|m| fault(key("embedder"), m))?;
        if let Some(url) = &index.embedder_url {
            http_url(url).map_err(|m| fault(key("embedder_url"), m))?;
        }
        let chunk = index.chunk.unwrap_or_default();
        let max_tokens = match chunk.max_tokens {
            None => 300,
            Some(n @ 16..=8192) => n as usize,
            Some(n) => {
                return Err(fault(
                    key("chunk.max_tokens"),
                    format!("{n} is not between 16 and 8192"),
                ));
            }
        };
        let overlap = match chunk.overlap {
            None => 40.min(max_tokens / 4),
            Some(n) if n >= 0 && (n as usize) < max_tokens / 2 => n as usize,
            Some(n) => {
                return Err(fault(
                    key("chunk.overlap"),
                    format!(
                        "{n} must be at least 0 and less than half of max_tokens ({max_tokens})"
                    ),
                ));
            }
        };
        let vector_weight = match index.vector_weight {
            None if embedder == "builtin" => 0.5,
            None => 2.0 / 3.0,
            Some(w) if (0.0..=1.0).contains(&w) => w,
            Some(w) => {
                return Err(fault(
                    key("vector_weight"),
                    format!(
                        "{w} is not between 0 (keywords only) and 1 (vectors only); 0.5 weighs them equally"
                    ),
                ));
            }
        };
        let same_document_weight = match index.same_document_weight {
            None => 0.6,
            Some(w) if (0.1..=1.0).contains(&w) => w,
            Some(w) => {
                return Err(fault(
                    key("same_document_weight"),
                    format!(
                        "{w} is not between 0.1 (best hit of each document first) and 1 (plain \
                         ranking)"
                    ),
                ));
            }
        };
        if let Some(rule) = index.rule.as_deref().filter(|r| !r.trim().is_empty()) {
            if matches!(source, IndexSource::Collection { .. }) {
                return Err(fault(
                    key("rule"),
                    "a collection index applies the collection's list rule; remove `rule` here \
                     and set that rule instead",
                ));
            }
            crate::filter::parse(rule).map_err(|e| fault(key("rule"), e.to_string()))?;
        }
        indexes.push(IndexSettings {
            name,
            source,
            embedder,
            embedder_url: index.embedder_url,
            max_tokens,
            overlap,
            vector_weight,
            same_document_weight,
            rule: index.rule,
        });
    }
    Ok(SearchSettings { indexes })
}

/// Validates `[llm]`; `vars` is the environment the API key is read from.
pub(super) fn llm(
    raw: Option<RawLlm>,
    vars: &HashMap<String, String>,
) -> Result<Option<LlmSettings>, Fault> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let key = |k: &str| format!("llm.{k}");
    let base_url = raw.base_url.ok_or_else(|| {
        fault(key("base_url"), "is required, e.g. \"http://127.0.0.1:11434/v1\" (Ollama) or \"https://api.openai.com/v1\"")
    })?;
    http_url(&base_url).map_err(|m| fault(key("base_url"), m))?;
    let model = raw
        .model
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| fault(key("model"), "is required, e.g. \"llama3.1\""))?;
    let api_key = match raw.api_key_env {
        None => LlmKey::NotConfigured,
        Some(var) if var.trim().is_empty() => {
            return Err(fault(
                key("api_key_env"),
                "is empty; name an environment variable",
            ));
        }
        Some(var) => match vars.get(&var).map(|v| v.trim()) {
            Some(v) if !v.is_empty() => LlmKey::Set(Redacted(v.to_string())),
            _ => LlmKey::Missing { var },
        },
    };
    let bounded = |k: &str, v: Option<i64>, default: i64, lo: i64, hi: i64| -> Result<i64, Fault> {
        match v {
            None => Ok(default),
            Some(n) if (lo..=hi).contains(&n) => Ok(n),
            Some(n) => Err(fault(key(k), format!("{n} is not between {lo} and {hi}"))),
        }
    };
    Ok(Some(LlmSettings {
        base_url: base_url.trim_end_matches('/').to_string(),
        model,
        api_key,
        timeout: Duration::from_secs(bounded("timeout_s", raw.timeout_s, 30, 1, 600)? as u64),
        max_retries: bounded("max_retries", raw.max_retries, 2, 0, 10)? as u32,
        max_answer_tokens: bounded("max_answer_tokens", raw.max_answer_tokens, 512, 16, 32768)?
            as u32,
        context_tokens: bounded("context_tokens", raw.context_tokens, 3000, 200, 200_000)? as usize,
    }))
}

fn http_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("`{url}` is not an http(s) URL"))
    }
}

fn embedder_syntax(embedder: &str) -> Result<(), String> {
    let ok = match embedder.split_once(':') {
        None => embedder == "builtin",
        Some(("local", path)) => !path.is_empty(),
        Some(("openai", model)) => !model.is_empty(),
        Some(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{embedder}` is not an embedder; use \"builtin\", \"local:PATH\" (a sentence-transformers \
             directory) or \"openai:MODEL\""
        ))
    }
}

fn glob_syntax(path: &str) -> Result<(), String> {
    if path.contains("..") {
        return Err(format!(
            "`{path}` climbs out with `..`; name a path inside the app directory, or an \
             absolute one"
        ));
    }
    glob::Pattern::new(path)
        .map(|_| ())
        .map_err(|e| format!("`{path}` is not a valid glob ({e}); e.g. \"docs/**/*.md\""))
}

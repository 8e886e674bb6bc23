//! The file as written: every section and key `brigade.toml` accepts, before validation.
//! `deny_unknown_fields` everywhere, so a misspelt key is an error naming it.

use std::collections::BTreeMap;

use figment::value::Value as FigValue;
use serde::Deserialize;

use super::search;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSettings {
    pub(super) database: RawDatabase,
    pub(super) server: RawServer,
    pub(super) auth: RawAuth,
    pub(super) log: RawLog,
    // Sections owned by later features; accepted so app directories written for them load.
    pub(super) rate_limit: RawRateLimit,
    pub(super) audit: RawAudit,
    pub(super) pipelines: RawPipelines,
    pub(super) mail: RawMail,
    pub(super) redis: RawRedis,
    pub(super) metrics: RawMetrics,
    pub(super) search: search::RawSearch,
    pub(super) llm: Option<search::RawLlm>,
    pub(super) endpoints: Option<FigValue>,
    pub(super) realtime: super::realtime::RawRealtime,
    #[serde(rename = "static")]
    pub(super) static_files: super::web::RawStatic,
    pub(super) channels: Vec<super::realtime::RawChannel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDatabase {
    pub(super) url: Option<String>,
    pub(super) pool_size: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) addr: Option<String>,
    pub(super) body_limit: Option<FigValue>,
    pub(super) request_timeout: Option<String>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) cors_origins: Option<Vec<String>>,
    pub(super) trusted_proxies: Option<StringList>,
}

/// A list given as a TOML array, or as one comma-separated string (environment variables).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StringList {
    List(Vec<String>),
    Text(String),
}

impl StringList {
    pub(super) fn items(self) -> Vec<String> {
        match self {
            StringList::List(items) => items,
            StringList::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    // A value: an all-digit token in the environment arrives as a number.
    pub(super) token: Option<FigValue>,
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuth {
    pub(super) allow_registration: Option<bool>,
    pub(super) access_token_ttl: Option<String>,
    pub(super) refresh_token_ttl: Option<String>,
    pub(super) api_key_max_ttl: Option<String>,
    pub(super) jwt_secret_env: Option<String>,
    pub(super) jwt_previous_secret_env: Option<String>,
    pub(super) oidc: BTreeMap<String, RawOidc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawOidc {
    pub(super) issuer: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret_env: Option<String>,
    pub(super) scopes: Option<Vec<String>>,
    pub(super) redirect_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRedis {
    pub(super) url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMail {
    pub(super) from: Option<String>,
    pub(super) outbox: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPipelines {
    pub(super) stale_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAudit {
    pub(super) retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRateLimit {
    pub(super) default: Option<String>,
    pub(super) auth: Option<String>,
    pub(super) login_failures: Option<FigValue>,
    pub(super) login_lockout: Option<String>,
    pub(super) login_lockout_max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub(super) format: Option<String>,
}

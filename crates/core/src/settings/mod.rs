//! Settings: `DIR/brigade.toml`, then `BRIGADE_<SECTION>_<KEY>` environment overrides,
//! parsed and validated once into [`Settings`]. Every problem is reported as a
//! [`SettingsError`] that names where the value came from (the file or the variable), the key
//! and what is wrong, so the CLI can print it and exit 2.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value as FigValue;

mod net;
mod raw;
mod realtime;
mod search;
mod web;
pub use net::{IpNet, canonical_ip};
use raw::{RawOidc, RawRateLimit, RawSettings, StringList};
pub use realtime::{ChannelRule, ChannelSettings, RealtimeSettings};
pub use search::{IndexSettings, IndexSource, LlmKey, LlmSettings, SearchSettings};
pub use web::StaticSettings;

/// Name of the settings file inside an app directory.
pub const SETTINGS_FILE: &str = "brigade.toml";
/// The environment variable that sets `metrics.token`.
const METRICS_TOKEN_VAR: &str = "BRIGADE_METRICS_TOKEN";
/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "BRIGADE_";
/// Sections that may be overridden from the environment, longest first so that
/// `RATE_LIMIT_DEFAULT` maps to `rate_limit.default`.
const SECTIONS: &[&str] = &[
    "rate_limit",
    "pipelines",
    "database",
    "server",
    "search",
    "redis",
    "audit",
    "auth",
    "log",
    "mail",
    "llm",
    "metrics",
    "realtime",
    "static",
];

/// A setting that cannot be used, with its provenance.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}: {}{message}", if key.is_empty() { String::new() } else { format!("key `{key}`: ") })]
pub struct SettingsError {
    /// The file path or environment variable the value came from.
    pub origin: String,
    /// Dotted key, e.g. `server.addr`; empty when the file as a whole is at fault (a TOML
    /// syntax error).
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Validated settings of one app directory.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The app directory all relative paths are resolved against.
    pub dir: PathBuf,
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub rate_limit: RateLimitSettings,
    pub audit: AuditSettings,
    pub mail: MailSettings,
    pub redis: RedisSettings,
    pub metrics: MetricsSettings,
    pub pipelines: PipelineSettings,
    pub search: SearchSettings,
    /// `None`: `/api/rag` answers extractively.
    pub llm: Option<LlmSettings>,
    /// `[realtime]` and `[[channels]]`.
    pub realtime: RealtimeSettings,
    /// `[static]`: the folder served at `/`, if any.
    pub static_files: Option<StaticSettings>,
}

/// `[metrics]`: who may read the Prometheus metrics. With neither key set, `/metrics` is
/// served to anyone on the main address, as before these settings existed.
#[derive(Debug, Clone, Default)]
pub struct MetricsSettings {
    /// A bearer token `/metrics` requires (`Authorization: Bearer TOKEN`).
    pub token: Option<Redacted>,
    /// A separate address serving `/metrics` (and only it); the main address then answers 404.
    pub listen: Option<SocketAddr>,
}

/// `[redis]`: optional; when set, rate limits are shared by every process using it.
#[derive(Debug, Clone, Default)]
pub struct RedisSettings {
    pub url: Option<String>,
}

/// `[mail]`: outgoing email (password resets). Messages are written as `.eml` files to
/// `outbox` (a development mailer; an SMTP relay can pick them up).
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub from: String,
    pub outbox: PathBuf,
}

/// `[pipelines]`: how runs in several processes share the database.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// A queued or running run whose process has not refreshed its heartbeat for this long
    /// is taken for dead: marked failed, its pipeline's lease freed (default 30 s).
    pub stale_after: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            stale_after: Duration::from_secs(30),
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// How long audit entries are kept; `None` keeps them forever.
    pub retention: Option<Duration>,
}

/// A request budget: `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

/// `[rate_limit]`: per client IP (anonymous) or per user/key; `None` disables a limit.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Every route not covered by `auth`.
    pub default: Option<Rate>,
    /// Login, register, refresh: stricter, always per client IP.
    pub auth: Option<Rate>,
    /// Failed logins per account before it is locked; `None` disables the lock.
    pub login: Option<LoginLockout>,
}

/// The per-account login budget: after `failures` wrong passwords in a row the account is
/// locked for `lockout`, and each further failure doubles the lock up to `lockout_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLockout {
    pub failures: u32,
    pub lockout: Duration,
    pub lockout_max: Duration,
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// Embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://...`).
    Postgres(String),
}

/// `[database]`.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    /// Connections in the PostgreSQL pool or SQLite read pool.
    pub pool_size: usize,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub addr: SocketAddr,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Longest time a request may take before a 503.
    pub request_timeout: Duration,
    /// How long in-flight requests may drain after SIGTERM.
    pub shutdown_grace: Duration,
    /// The URL users reach the server at, for links in emails (default: the bound address).
    pub public_url: Option<String>,
    /// Origins allowed by CORS (`*` for any); empty = no CORS headers.
    pub cors_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed; empty = the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
}

/// `[auth]`.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub allow_registration: bool,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// The longest an API key lives (`auth.api_key_max_ttl`, default 365 days): keys
    /// created without `expires_at` expire after it, later expiries are refused, and older
    /// keys stop working.
    pub api_key_max_ttl: Duration,
    /// Name of the environment variable holding the JWT signing secret.
    pub jwt_secret_env: String,
    /// The signing secret from that variable, if set (at least 32 bytes).
    pub jwt_secret: Option<Redacted>,
    /// The previous secret (`auth.jwt_previous_secret_env`), still accepted for
    /// verification so rotating the key logs nobody out.
    pub jwt_previous_secret: Option<Redacted>,
    /// `[auth.oidc.NAME]`: OpenID Connect providers users may log in with, sorted by name.
    pub oidc: Vec<OidcProvider>,
}

/// `[auth.oidc.NAME]`: one OpenID Connect provider (authorization code + PKCE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProvider {
    /// The `NAME` of the section; the provider's segment in `/api/auth/oidc/{name}`.
    pub name: String,
    /// The issuer URL (http or https, no trailing slash); discovery is fetched from
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// From the variable named by `client_secret_env`; `None` makes Brigade a public client
    /// that proves itself with PKCE only.
    pub client_secret: Option<Redacted>,
    /// Always contains `openid`.
    pub scopes: Vec<String>,
    /// The callback URL registered at the provider; default
    /// `{server.public_url}/api/auth/oidc/{name}/callback`.
    pub redirect_url: Option<String>,
}

/// A setting that must never be printed: `Debug` shows `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
}

impl Settings {
    /// Loads `dir/brigade.toml` (optional) and the process environment.
    ///
    /// # Errors
    /// A [`SettingsError`] naming the file or variable, the key and the problem.
    pub fn load(dir: &Path) -> Result<Settings, SettingsError> {
        Self::load_from(dir, std::env::vars())
    }

    /// Like [`Settings::load`], with the environment given explicitly.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_from(
        dir: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let file = dir.join(SETTINGS_FILE);
        let mut figment = Figment::new().merge(Toml::file(&file));
        let mut env_origin = HashMap::new();
        let vars: HashMap<String, String> = vars.into_iter().collect();
        for (name, value) in &vars {
            let Some(key) = name.strip_prefix(ENV_PREFIX).and_then(map_env_key) else {
                continue;
            };
            let parsed: FigValue = value.parse().unwrap_or_else(|e| match e {});
            figment = figment.merge(Serialized::default(&key, parsed));
            env_origin.insert(key, name.clone());
        }
        let origin_of = |key: &str| -> String {
            if let Some(var) = env_origin.get(key) {
                var.clone()
            } else {
                file.display().to_string()
            }
        };
        let raw: RawSettings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            SettingsError {
                origin: origin_of(&key),
                key,
                message: figment_message(&e.kind),
            }
        })?;
        let origin = |key: &str| origin_of(key);
        let fail = |key: &str, message: String| SettingsError {
            origin: origin(key),
            key: key.to_string(),
            message,
        };

        let url = match raw.database.url.as_deref() {
            None | Some("") => DatabaseUrl::Sqlite(dir.join("data").join("brigade.db")),
            Some(url) => parse_database_url(dir, url).map_err(|m| fail("database.url", m))?,
        };
        let pool_size = match raw.database.pool_size {
            None => default_pool_size(),
            Some(n @ 1..=1024) => n as usize,
            Some(n) => {
                return Err(fail(
                    "database.pool_size",
                    format!("{n} is not between 1 and 1024"),
                ));
            }
        };

        let addr_text = raw.server.addr.as_deref().unwrap_or("127.0.0.1:8090");
        let addr = addr_text.parse::<SocketAddr>().map_err(|_| {
            fail(
                "server.addr",
                format!("`{addr_text}` is not a HOST:PORT socket address (try \"127.0.0.1:8090\")"),
            )
        })?;
        let body_limit = match &raw.server.body_limit {
            None => 1024 * 1024,
            Some(v) => parse_bytes(v).map_err(|m| fail("server.body_limit", m))?,
        };
        let duration = |key: &str, value: &Option<String>, default: &str| {
            parse_duration(value.as_deref().unwrap_or(default)).map_err(|m| fail(key, m))
        };
        let server = ServerSettings {
            addr,
            body_limit,
            request_timeout: duration(
                "server.request_timeout",
                &raw.server.request_timeout,
                "30s",
            )?,
            shutdown_grace: duration("server.shutdown_grace", &raw.server.shutdown_grace, "10s")?,
            public_url: match raw.server.public_url {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Some(u.trim_end_matches('/').to_string())
                }
                Some(u) => {
                    return Err(fail(
                        "server.public_url",
                        format!("`{u}` is not an http(s) URL"),
                    ));
                }
                None => None,
            },
            cors_origins: raw.server.cors_origins.unwrap_or_default(),
            trusted_proxies: raw
                .server
                .trusted_proxies
                .map(StringList::items)
                .unwrap_or_default()
                .iter()
                .map(|p| IpNet::parse(p))
                .collect::<Result<_, _>>()
                .map_err(|m| fail("server.trusted_proxies", m))?,
        };
        let oidc = raw
            .auth
            .oidc
            .into_iter()
            .map(|(name, p)| oidc_provider(&vars, name, p).map_err(|(k, m)| fail(&k, m)))
            .collect::<Result<Vec<_>, _>>()?;
        let jwt_secret_env = raw
            .auth
            .jwt_secret_env
            .unwrap_or_else(|| "BRIGADE_JWT_SECRET".to_string());
        let jwt_previous_secret_env = raw
            .auth
            .jwt_previous_secret_env
            .unwrap_or_else(|| "BRIGADE_JWT_PREVIOUS_SECRET".to_string());
        let auth = AuthSettings {
            allow_registration: raw.auth.allow_registration.unwrap_or(false),
            access_token_ttl: duration("auth.access_token_ttl", &raw.auth.access_token_ttl, "15m")?,
            refresh_token_ttl: duration(
                "auth.refresh_token_ttl",
                &raw.auth.refresh_token_ttl,
                "30d",
            )?,
            api_key_max_ttl: duration("auth.api_key_max_ttl", &raw.auth.api_key_max_ttl, "365d")?,
            jwt_secret: secret_from(&vars, &jwt_secret_env)?,
            jwt_previous_secret: secret_from(&vars, &jwt_previous_secret_env)?,
            jwt_secret_env,
            oidc,
        };
        let format = match raw.log.format.as_deref() {
            None | Some("human") | Some("text") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(fail(
                    "log.format",
                    format!("`{other}` is not one of \"human\", \"json\""),
                ));
            }
        };
        let rate = |key: &str, value: &Option<String>, default: &str| {
            parse_rate(value.as_deref().unwrap_or(default)).map_err(|m| fail(key, m))
        };
        let rate_limit = RateLimitSettings {
            default: rate("rate_limit.default", &raw.rate_limit.default, "600/min")?,
            auth: rate("rate_limit.auth", &raw.rate_limit.auth, "10/min")?,
            login: login_lockout(&raw.rate_limit).map_err(|(k, m)| fail(&k, m))?,
        };
        let metrics = MetricsSettings {
            // The variable's raw text, so a token of digits keeps its leading zeros.
            token: match vars
                .get(METRICS_TOKEN_VAR)
                .cloned()
                .or_else(|| {
                    raw.metrics
                        .token
                        .as_ref()
                        .and_then(|v| v.as_str().map(String::from))
                })
                .map(|t| t.trim().to_string())
            {
                None => None,
                Some(t) if t.is_empty() => None,
                Some(t) if t.len() >= 16 && !t.contains(char::is_whitespace) => Some(Redacted(t)),
                Some(_) => {
                    return Err(fail(
                        "metrics.token",
                        "a metrics token is at least 16 characters without spaces; generate one \
                         with `openssl rand -hex 32`"
                            .into(),
                    ));
                }
            },
            listen: match raw.metrics.listen.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                    fail(
                        "metrics.listen",
                        format!(
                            "`{text}` is not a HOST:PORT socket address (try \"127.0.0.1:9090\")"
                        ),
                    )
                })?),
            },
        };
        if metrics.listen.is_some_and(|l| l == addr && l.port() != 0) {
            return Err(fail(
                "metrics.listen",
                "must differ from server.addr (it is a second listener)".into(),
            ));
        }
        let retention = match raw.audit.retention.as_deref().map(str::trim) {
            Some("off") | Some("forever") => None,
            other => Some(
                parse_duration(other.unwrap_or("90d")).map_err(|m| fail("audit.retention", m))?,
            ),
        };
        let stale_after = duration("pipelines.stale_after", &raw.pipelines.stale_after, "30s")?;
        if stale_after < Duration::from_secs(1) {
            return Err(fail(
                "pipelines.stale_after",
                "must be at least 1s (runs refresh their heartbeat several times within it)".into(),
            ));
        }
        if raw.endpoints.is_some() {
            return Err(fail(
                "endpoints",
                "custom SQL endpoints are not available in this version of Brigade; remove the \
                 `[endpoints]` table (it would otherwise be ignored)"
                    .to_string(),
            ));
        }
        let search = search::search(raw.search).map_err(|(k, m)| fail(&k, m))?;
        let llm = search::llm(raw.llm, &vars).map_err(|(k, m)| fail(&k, m))?;
        let realtime =
            realtime::realtime(raw.realtime, raw.channels).map_err(|(k, m)| fail(&k, m))?;
        let static_files =
            web::static_files(raw.static_files, dir).map_err(|(k, m)| fail(&k, m))?;
        Ok(Settings {
            dir: dir.to_path_buf(),
            search,
            llm,
            realtime,
            static_files,
            database: DatabaseSettings { url, pool_size },
            server,
            auth,
            log: LogSettings { format },
            rate_limit,
            metrics,
            audit: AuditSettings { retention },
            pipelines: PipelineSettings { stale_after },
            redis: RedisSettings {
                url: match raw.redis.url {
                    Some(u) if u.starts_with("redis://") => Some(u),
                    Some(u) if u.is_empty() => None,
                    Some(u) => {
                        return Err(fail(
                            "redis.url",
                            format!("`{u}` is not a redis://HOST:PORT URL"),
                        ));
                    }
                    None => None,
                },
            },
            mail: MailSettings {
                from: raw
                    .mail
                    .from
                    .unwrap_or_else(|| "Brigade <no-reply@localhost>".to_string()),
                outbox: dir.join(raw.mail.outbox.as_deref().unwrap_or("data/outbox")),
            },
        })
    }
}

/// Parses `600/min`, `10/s`, `1000/h`, `5000/day`; `off` (or `0`) disables the limit.
pub fn parse_rate(text: &str) -> Result<Option<Rate>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" {
        return Ok(None);
    }
    let bad =
        || format!("`{text}` is not a rate (examples: \"600/min\", \"10/s\", \"1000/h\", \"off\")");
    let (count, unit) = t.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let period = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        "d" | "day" => Duration::from_secs(86_400),
        _ => return Err(bad()),
    };
    Ok((count > 0).then_some(Rate { count, period }))
}

/// `rate_limit.login_failures` (a count, or `off`/0), `login_lockout` and `login_lockout_max`;
/// errors are `(dotted key, message)`.
fn login_lockout(raw: &RawRateLimit) -> Result<Option<LoginLockout>, (String, String)> {
    let key = "rate_limit.login_failures";
    let failures = match &raw.login_failures {
        None => 5,
        Some(v) => match (
            // TOML integers are signed; environment values parse as unsigned.
            v.to_i128()
                .or_else(|| v.to_u128().and_then(|n| i128::try_from(n).ok())),
            v.as_str().map(str::trim),
        ) {
            (Some(n), _) => u32::try_from(n)
                .map_err(|_| (key.to_string(), format!("{n} is not a count of failures")))?,
            (None, Some(t)) if t.eq_ignore_ascii_case("off") => 0,
            (None, text) => text.and_then(|t| t.parse::<u32>().ok()).ok_or_else(|| {
                (
                    key.to_string(),
                    "expected a number of failed logins (e.g. 5) or \"off\"".to_string(),
                )
            })?,
        },
    };
    let duration = |k: &str, v: &Option<String>, default: &str| {
        parse_duration(v.as_deref().unwrap_or(default)).map_err(|m| (format!("rate_limit.{k}"), m))
    };
    let lockout = duration("login_lockout", &raw.login_lockout, "1m")?;
    let lockout_max = duration("login_lockout_max", &raw.login_lockout_max, "1h")?;
    if failures == 0 {
        return Ok(None);
    }
    if lockout.is_zero() {
        return Err((
            "rate_limit.login_lockout".into(),
            "must be longer than 0 (set rate_limit.login_failures = \"off\" to disable)".into(),
        ));
    }
    if lockout_max < lockout {
        return Err((
            "rate_limit.login_lockout_max".into(),
            "must be at least rate_limit.login_lockout".into(),
        ));
    }
    Ok(Some(LoginLockout {
        failures,
        lockout,
        lockout_max,
    }))
}

/// A signing secret from the environment: unset is fine (one is generated and stored),
/// too short is an error.
fn secret_from(
    vars: &HashMap<String, String>,
    name: &str,
) -> Result<Option<Redacted>, SettingsError> {
    match vars.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) if v.len() >= 32 => Ok(Some(Redacted(v.to_string()))),
        Some(_) => Err(SettingsError {
            origin: name.to_string(),
            key: name.to_string(),
            message:
                "a JWT secret must be at least 32 bytes; generate one with `openssl rand -hex 32`"
                    .into(),
        }),
    }
}

/// Validates one `[auth.oidc.NAME]` section; errors are `(dotted key, message)`.
fn oidc_provider(
    vars: &HashMap<String, String>,
    name: String,
    raw: RawOidc,
) -> Result<OidcProvider, (String, String)> {
    let key = |k: &str| format!("auth.oidc.{name}.{k}");
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_name {
        return Err((
            format!("auth.oidc.{name}"),
            "a provider name is 1-64 characters of a-z, 0-9, `-` and `_` (it appears in URLs)"
                .into(),
        ));
    }
    let http_url = |k: &str, v: Option<String>| -> Result<Option<String>, (String, String)> {
        match v.map(|u| u.trim().trim_end_matches('/').to_string()) {
            None => Ok(None),
            Some(u)
                if (u.starts_with("http://") || u.starts_with("https://"))
                    && u.len() > "https://".len()
                    && !u.contains(char::is_whitespace) =>
            {
                Ok(Some(u))
            }
            Some(u) => Err((key(k), format!("`{u}` is not an http(s) URL"))),
        }
    };
    let issuer = http_url("issuer", raw.issuer)?.ok_or_else(|| {
        (
            key("issuer"),
            "required: the provider's issuer URL, e.g. \"https://accounts.example.com\"".into(),
        )
    })?;
    let client_id = match raw.client_id.map(|c| c.trim().to_string()) {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err((
                key("client_id"),
                "required: the client id registered at the provider".into(),
            ));
        }
    };
    let client_secret = match raw.client_secret_env {
        None => None,
        Some(var) => match vars.get(&var).map(|v| v.trim()) {
            Some(v) if !v.is_empty() => Some(Redacted(v.to_string())),
            _ => {
                return Err((
                    key("client_secret_env"),
                    format!(
                        "the environment variable `{var}` is not set; set it, or remove the key \
                         to log in as a public client (PKCE only)"
                    ),
                ));
            }
        },
    };
    let scopes = raw
        .scopes
        .unwrap_or_else(|| ["openid", "email", "profile"].map(String::from).to_vec());
    if !scopes.iter().any(|s| s == "openid") {
        return Err((key("scopes"), "must include \"openid\"".into()));
    }
    if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
        return Err((
            key("scopes"),
            "scopes are non-empty words without spaces".into(),
        ));
    }
    let redirect_url = http_url("redirect_url", raw.redirect_url)?;
    Ok(OidcProvider {
        name,
        issuer,
        client_id,
        client_secret,
        scopes,
        redirect_url,
    })
}

fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().max(2) * 2)
}

/// `server_addr` → `server.addr`; keys outside the known sections are not settings.
fn map_env_key(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    SECTIONS.iter().find_map(|section| {
        let rest = key.strip_prefix(section)?.strip_prefix('_')?;
        (!rest.is_empty()).then(|| format!("{section}.{rest}"))
    })
}

fn parse_database_url(dir: &Path, url: &str) -> Result<DatabaseUrl, String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("`sqlite://` needs a file path, e.g. \"sqlite://data/brigade.db\"".into());
        }
        let path = PathBuf::from(path);
        return Ok(DatabaseUrl::Sqlite(if path.is_absolute() {
            path
        } else {
            dir.join(path)
        }));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(url.to_string()));
    }
    Err(format!(
        "`{url}` is not supported; use \"sqlite://PATH\" or \"postgres://USER@HOST:PORT/DB\""
    ))
}

/// Parses `90s`, `15m`, `2h`, `30d`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!(
            "`{text}` is not a duration (examples: \"500ms\", \"30s\", \"15m\", \"2h\", \"30d\")"
        )
    })?;
    let secs = |mult: u64| n.checked_mul(mult).map(Duration::from_secs);
    let d = match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => None,
    };
    d.ok_or_else(|| {
        format!(
            "`{text}` is not a duration (examples: \"500ms\", \"30s\", \"15m\", \"2h\", \"30d\")"
        )
    })
}

fn parse_bytes(v: &FigValue) -> Result<usize, String> {
    if let Some(n) = v.to_u128() {
        return usize::try_from(n).map_err(|_| "too large".to_string());
    }
    let text = v
        .as_str()
        .ok_or("expected a size such as \"1MiB\" or a number of bytes")?;
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. \"1MiB\")"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return Err(format!("`{text}` is not a size (e.g. \"1MiB\")")),
    };
    n.checked_mul(mult).ok_or_else(|| "too large".to_string())
}

#[cfg(test)]
mod tests;

/// Figment's message for `kind`, without its doubled quoting of lists ("expected `one of
/// `a`, `b``").
fn figment_message(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match kind {
        Kind::UnknownField(field, expected) => {
            format!(
                "unknown key `{field}`; the keys here are {}",
                list(expected)
            )
        }
        Kind::UnknownVariant(variant, expected) => {
            format!(
                "unknown value `{variant}`; expected one of {}",
                list(expected)
            )
        }
        other => other.to_string(),
    }
}

//! Pipeline files (`pipelines/*.toml`): their shape, parsed strictly (an unknown key is an
//! error, not a silent no-op), and validated before anything runs. Every error names the
//! file, the line and the key. See API.md, section Pipelines, for the format.

mod expect;
mod locate;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ConfigError;
pub use locate::line_of;
pub use validate::format_of;

/// A source kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    File,
    Http,
    Html,
    Sql,
}

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Ndjson,
    Json,
    Parquet,
}

/// How an extract writes its bronze table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Write {
    Append,
    Replace,
    Merge,
}

/// What to do with a row that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BadRows {
    /// Stop the step, naming file and line.
    #[default]
    Fail,
    /// Keep the row's text, the line and the reason in `<table>__rejected`.
    Quarantine,
    /// Count and log it.
    Skip,
}

/// Incremental loading by a cursor column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    pub cursor: String,
}

/// How an HTTP source's pages follow each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaginationKind {
    /// `?page=N`, from `start` (default 1).
    Page,
    /// `?offset=N&limit=size`, from `start` (default 0).
    Offset,
    /// The next cursor read from each response at `next`.
    Cursor,
    /// RFC 8288 `Link: <...>; rel="next"`.
    LinkHeader,
}

/// Pagination of an HTTP source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paginate {
    pub kind: PaginationKind,
    /// First page number or offset (default 1 for pages, 0 for offsets).
    pub start: Option<i64>,
    /// Page size for `offset` (the `{limit}` placeholder and the step).
    pub size: Option<i64>,
    /// Where the next cursor is in each response, e.g. `meta.next` (kind `cursor`).
    pub next: Option<String>,
}

/// Where a run's failure is reported.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnFailure {
    pub webhook: String,
}

/// Which events a `[[notify]]` target receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    /// A run failed (its error and failing step are in the payload).
    Failure,
    /// A run succeeded.
    Success,
    /// A scheduled run did not happen: the pipeline file was invalid, the run was refused,
    /// or no process was up at the firing time.
    Missed,
    /// An extract's newest data passed its `freshness` warn or error age.
    Freshness,
}

impl NotifyEvent {
    /// The `event` of the webhook payload.
    pub fn payload_name(self) -> &'static str {
        match self {
            NotifyEvent::Failure => "run_failed",
            NotifyEvent::Success => "run_succeeded",
            NotifyEvent::Missed => "run_missed",
            NotifyEvent::Freshness => "source_stale",
        }
    }
}

fn default_notify_events() -> Vec<NotifyEvent> {
    vec![
        NotifyEvent::Failure,
        NotifyEvent::Missed,
        NotifyEvent::Freshness,
    ]
}

/// One `[[notify]]`: a webhook and the events it receives (POSTed as JSON with the reason).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    pub webhook: String,
    /// Default: failure, missed and freshness.
    #[serde(default = "default_notify_events")]
    pub on: Vec<NotifyEvent>,
}

/// `[trigger]`: events that start a run, beside (or instead of) the cron `schedule`. Both
/// are watched by `brigade serve`; each event starts one run however many processes share
/// the database.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// Run after each successful run of these pipelines.
    #[serde(default)]
    pub after: Vec<String>,
    /// Run when a file matching a `file` extract's `path` appears or changes (once its
    /// size and modification time held still for one `poll`).
    #[serde(default)]
    pub files: bool,
    /// How often files are looked at; default 10s.
    pub poll: Option<String>,
}

impl Triggers {
    /// The file polling interval; validated on load.
    pub fn poll(&self) -> std::time::Duration {
        self.poll
            .as_deref()
            .and_then(|t| brigade_core::settings::parse_duration(t).ok())
            .unwrap_or(std::time::Duration::from_secs(10))
    }
}

/// `freshness = { warn_after = "6h", error_after = "1d" }` of an extract: how old its newest
/// row may get (by `field`, default the `_loaded_at` every bronze row carries).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    pub warn_after: Option<String>,
    pub error_after: Option<String>,
    /// A timestamp column of the bronze table; default `_loaded_at`.
    pub field: Option<String>,
}

impl Freshness {
    /// `(warn, error)` ages; validated on load, so unparsable values are `None`.
    pub fn limits(&self) -> (Option<std::time::Duration>, Option<std::time::Duration>) {
        let parse = |v: &Option<String>| {
            v.as_deref()
                .and_then(|t| brigade_core::settings::parse_duration(t).ok())
        };
        (parse(&self.warn_after), parse(&self.error_after))
    }

    /// The column whose newest value is the data's age.
    pub fn field(&self) -> &str {
        self.field.as_deref().unwrap_or("_loaded_at")
    }
}

/// A file extract's published source: the archive at `url` (its SHA-256 checked) holds the
/// file at `path` as `member`, one entry per nested archive, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Download {
    pub url: String,
    pub sha256: String,
    #[serde(default)]
    pub member: Vec<String>,
}

/// One `[[extract]]`: a source landing in one bronze table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    pub name: String,
    pub from: SourceKind,
    pub description: Option<String>,
    // file
    pub path: Option<String>,
    pub format: Option<Format>,
    pub null_values: Option<Vec<String>>,
    pub delimiter: Option<String>,
    pub header: Option<bool>,
    pub sample_rows: Option<usize>,
    /// Where to fetch `path` from when it is missing.
    pub download: Option<Download>,
    // http, html
    pub url: Option<String>,
    pub records: Option<String>,
    pub paginate: Option<Paginate>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout_secs: Option<u64>,
    pub max_pages: Option<u32>,
    pub item: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    pub follow: Option<String>,
    pub delay_ms: Option<u64>,
    pub user_agent: Option<String>,
    pub robots: Option<bool>,
    // sql
    pub connection: Option<String>,
    pub query: Option<String>,
    // loading
    #[serde(default)]
    pub primary_key: Vec<String>,
    pub incremental: Option<Incremental>,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    pub write: Option<Write>,
    #[serde(default)]
    pub on_bad_row: BadRows,
    /// How old the newest data may get before it is reported stale.
    pub freshness: Option<Freshness>,
    /// Labels for `--select tag:NAME`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Data tests over the bronze table after each load.
    #[serde(default)]
    pub expect: Vec<Expect>,
}

/// Materialization of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Materialized {
    #[default]
    Table,
    View,
    Incremental,
    /// Slowly changing dimension, type 2: every version of every `unique_key` row, with
    /// `valid_from` and `valid_to` (NULL for the current one).
    Snapshot,
}

/// What a snapshot does when a key disappears from its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HardDeletes {
    /// Keep the last version current (dbt's default).
    #[default]
    Ignore,
    /// Close the current version (`valid_to` = the run's time).
    Invalidate,
}

/// The layer of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Bronze,
    #[default]
    Silver,
    Gold,
}

impl Layer {
    /// The name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
        }
    }
}

/// What an expectation does with failing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFail {
    #[default]
    Warn,
    Drop,
    Fail,
}

/// Schema contract of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Contract {
    #[default]
    Evolve,
    Freeze,
}

/// A built-in data test (dbt's generic tests), set with `test = ".."` in an expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinTest {
    /// No two rows share `column` (one column or several).
    Unique,
    /// `column` is never NULL.
    NotNull,
    /// `column` is NULL or one of `values`.
    AcceptedValues,
    /// Every non-NULL `column` is found in `to = "node.column"`.
    Relationships,
    /// The table has between `min` and `max` rows.
    RowCount,
    /// `expression`, a SQL boolean over the whole table (`sum(amount) > 0`), is true.
    Expression,
}

impl BuiltinTest {
    /// The name in files and default test names.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinTest::Unique => "unique",
            BuiltinTest::NotNull => "not_null",
            BuiltinTest::AcceptedValues => "accepted_values",
            BuiltinTest::Relationships => "relationships",
            BuiltinTest::RowCount => "row_count",
            BuiltinTest::Expression => "expression",
        }
    }

    /// Whether it checks each row on its own (and so can drop or quarantine rows).
    pub fn is_row_level(self) -> bool {
        matches!(self, BuiltinTest::NotNull | BuiltinTest::AcceptedValues)
    }
}

/// One `[[model.expect]]` or `[[extract.expect]]`: a row check (`check = "SQL boolean"`) or a
/// built-in test (`test = "unique"`, with `column` and the test's own keys).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Required with `check`; a built-in test defaults to `TEST_COLUMN` (e.g. `unique_id`).
    #[serde(default)]
    pub name: String,
    /// A SQL boolean every row must satisfy.
    pub check: Option<String>,
    /// A built-in test.
    pub test: Option<BuiltinTest>,
    /// The column(s) a built-in test is about.
    pub column: Option<Key>,
    /// `accepted_values`: the allowed values.
    pub values: Option<Vec<serde_json::Value>>,
    /// `relationships`: `node.column` the column must be found in.
    pub to: Option<String>,
    /// `row_count` bounds.
    pub min: Option<u64>,
    pub max: Option<u64>,
    /// `expression`: a SQL boolean over the table.
    pub expression: Option<String>,
    /// Default `warn` for a `check`, `fail` for a built-in test (dbt's severity error).
    pub on_fail: Option<OnFail>,
}

impl Expect {
    /// What a failure does.
    pub fn action(&self) -> OnFail {
        self.on_fail.unwrap_or(if self.test.is_some() {
            OnFail::Fail
        } else {
            OnFail::Warn
        })
    }

    /// The `node` and `column` of `to = "node.column"`.
    pub fn to_parts(&self) -> Option<(&str, &str)> {
        self.to.as_deref().and_then(|t| t.split_once('.'))
    }
}

/// A key of one or several columns, written `"id"` or `["a", "b"]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Key {
    One(String),
    Many(Vec<String>),
}

impl Key {
    /// The columns.
    pub fn columns(&self) -> Vec<String> {
        match self {
            Key::One(c) => vec![c.clone()],
            Key::Many(cs) => cs.clone(),
        }
    }
}

/// One `[[model]]`: SQL run inside the store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    #[serde(default)]
    pub layer: Layer,
    pub description: Option<String>,
    /// A model file relative to the app directory.
    pub sql: Option<String>,
    /// Inline SQL.
    pub query: Option<String>,
    #[serde(default)]
    pub materialized: Materialized,
    pub unique_key: Option<Key>,
    /// Snapshots: the columns whose change makes a new version (default: all but the key).
    pub check_cols: Option<Vec<String>>,
    /// Snapshots: a timestamp column; a newer value makes a new version valid from it
    /// (instead of comparing columns).
    pub updated_at: Option<String>,
    /// Snapshots: what a key missing from the source does to its current version.
    pub hard_deletes: Option<HardDeletes>,
    #[serde(default)]
    pub expose: bool,
    #[serde(default)]
    pub contract: Contract,
    #[serde(default)]
    pub expect: Vec<Expect>,
    /// Read rule of the exposed collection (filter language; default: superusers only).
    pub list_rule: Option<String>,
    /// Labels for `--select tag:NAME`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The model's SQL text (from `sql` or `query`), filled in on load.
    #[serde(skip)]
    pub text: String,
    /// Where the SQL came from, for messages.
    #[serde(skip)]
    pub origin: String,
}

/// A parsed, validated pipeline.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    #[serde(default)]
    pub name: String,
    pub description: Option<String>,
    pub schedule: Option<String>,
    #[serde(default)]
    pub retries: u32,
    /// First retry delay in milliseconds, doubled each time (default 1000).
    pub retry_backoff_ms: Option<u64>,
    pub on_failure: Option<OnFailure>,
    /// Webhooks for run outcomes, missed schedules and stale sources.
    #[serde(default)]
    pub notify: Vec<Notify>,
    /// Steps that may run at once on PostgreSQL (independent extracts and models);
    /// default 4. SQLite runs one step at a time (one writer).
    pub threads: Option<usize>,
    /// Events that start a run: another pipeline's success, new files.
    pub trigger: Option<Triggers>,
    /// Run parameters with their defaults (`[vars]`): `{{ var('name') }}` in models and
    /// `${var.name}` wherever extracts expand `${VAR}`; a run may override them.
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
    /// `brigade serve` runs the pipeline at start when it never succeeded (demos, fresh
    /// environments).
    #[serde(default)]
    pub run_on_start: bool,
    /// Roles (of accounts and API keys) that may read this pipeline's tables — outputs,
    /// quarantine and rejected rows — read-only through `/api/tables`. Superusers always may.
    #[serde(default)]
    pub readers: Vec<String>,
    #[serde(default)]
    pub extract: Vec<Extract>,
    #[serde(default)]
    pub model: Vec<Model>,
    /// The pipeline file, relative to the app directory.
    #[serde(skip)]
    pub file: String,
    /// The dependency graph, computed on load.
    #[serde(skip)]
    pub graph: crate::dag::Graph,
    /// The app's `macros/*.sql`, read on load when the pipeline has models.
    #[serde(skip)]
    pub macros: std::sync::Arc<Vec<crate::macros::MacroFile>>,
}

impl Pipeline {
    /// Parses and validates `text`, the content of `file` (relative to `dir`, the app
    /// directory, which model files are read from).
    ///
    /// # Errors
    /// The first problem found, with file, line and key.
    pub fn parse(dir: &Path, file: &str, text: &str) -> Result<Pipeline, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let mut pipeline: Pipeline =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let key = e.path().to_string();
                let inner = e.into_inner();
                // The line the error starts on: newlines before it, plus one.
                let line = inner.span().map_or(0, |span| {
                    text[..span.start.min(text.len())].matches('\n').count() + 1
                });
                let key = if key == "." { String::new() } else { key };
                ConfigError::new(file, line, &key, inner.message().trim().to_string())
            })?;
        pipeline.file = file.to_string();
        if pipeline.name.is_empty() {
            pipeline.name = Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        validate::pipeline(dir, text, &mut pipeline)?;
        Ok(pipeline)
    }

    /// The `[vars]` defaults as JSON values.
    pub fn var_defaults(&self) -> BTreeMap<String, serde_json::Value> {
        self.vars
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => serde_json::Value::from(s.clone()),
                    toml::Value::Integer(i) => serde_json::Value::from(*i),
                    toml::Value::Float(f) => serde_json::Value::from(*f),
                    toml::Value::Boolean(b) => serde_json::Value::from(*b),
                    other => serde_json::Value::from(other.to_string()),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The extract or model called `name`.
    pub fn node(&self, name: &str) -> Option<Node<'_>> {
        self.extract
            .iter()
            .find(|e| e.name == name)
            .map(Node::Extract)
            .or_else(|| self.model.iter().find(|m| m.name == name).map(Node::Model))
    }
}

/// An extract or a model.
#[derive(Debug, Clone, Copy)]
pub enum Node<'a> {
    Extract(&'a Extract),
    Model(&'a Model),
}

/// A pipeline file that did not load. It is disabled (never run, never scheduled) while the
/// other pipelines keep running; the API, the CLI, the log and the
/// `pipeline_invalid_files` metric report it until it is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The pipeline's name: the file's `name` when it can be read, else the file stem.
    pub name: String,
    /// The file, relative to the app directory.
    pub file: String,
    pub error: ConfigError,
}

/// The pipelines of an app directory: those that loaded, and the files that did not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Valid pipelines, sorted by name.
    pub pipelines: Vec<Pipeline>,
    /// Invalid files, sorted by file name.
    pub broken: Vec<Broken>,
}

impl Catalog {
    /// The invalid file of pipeline `name`, if that is why it is missing.
    pub fn broken(&self, name: &str) -> Option<&Broken> {
        self.broken.iter().find(|b| b.name == name)
    }
}

/// Loads every `pipelines/*.toml` of the app directory `dir`. One invalid file (or a second
/// file declaring a name already taken) disables only itself.
///
/// # Errors
/// Only when the `pipelines` folder exists but cannot be read.
pub fn load_dir(dir: &Path) -> Result<Catalog, ConfigError> {
    let folder = dir.join("pipelines");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&folder) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Catalog::default()),
        Err(e) => return Err(ConfigError::new("pipelines", 0, "", e.to_string())),
    };
    files.sort();
    let mut catalog = Catalog::default();
    for path in files {
        let file = format!(
            "pipelines/{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                catalog.broken.push(Broken {
                    name: stem,
                    error: ConfigError::new(&file, 0, "", format!("cannot read: {e}")),
                    file,
                });
                continue;
            }
        };
        let loaded = Pipeline::parse(dir, &file, &text).and_then(|pipeline| {
            match catalog.pipelines.iter().find(|p| p.name == pipeline.name) {
                Some(other) => Err(ConfigError::new(
                    &file,
                    line_of(&text, "name"),
                    "name",
                    format!(
                        "pipeline `{}` is already defined in {}; rename one of them",
                        pipeline.name, other.file
                    ),
                )),
                None => Ok(pipeline),
            }
        });
        match loaded {
            Ok(pipeline) => catalog.pipelines.push(pipeline),
            Err(error) => catalog.broken.push(Broken {
                name: declared_name(&text).unwrap_or(stem),
                file,
                error,
            }),
        }
    }
    catalog.pipelines.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(catalog)
}

/// The top-level `name = "…"` of a file that may not parse as a whole.
fn declared_name(text: &str) -> Option<String> {
    text.lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            let value = value.trim().strip_prefix('"')?;
            (key.trim() == "name").then(|| value.split('"').next().unwrap_or("").to_string())
        })
        .filter(|n| !n.is_empty())
}

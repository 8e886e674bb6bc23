//! Extractors: each reads one source and streams typed rows to the loader through a small
//! bounded channel, so memory stays flat whatever the source's size. An extractor first
//! sends the columns it found, then batches of rows; it may send the columns again when a
//! later record brings a new one. Bad rows are rejected or quarantined per `on_bad_row`.
//!
//! - [`file`]: CSV, NDJSON and JSON files, globs, gzip.
//! - [`http`]: JSON APIs with pagination and retries.
//! - [`html`]: pages scraped with CSS selectors.
//! - [`sql`]: a query against another database.
//! - [`cursor`]: which rows an incremental load takes, and why it skips the others.
//! - `download`: a file extract's data fetched from its published archive when missing.
//! - [`infer`]: column types from samples; [`shape`]: JSON records to typed rows.

pub mod cursor;
mod download;
pub mod file;
pub mod html;
pub mod http;
pub mod infer;
pub mod shape;
pub mod sql;
#[cfg(test)]
pub(crate) mod test_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use brigade_store::Row;
use brigade_store::warehouse::{Column, ColumnType};
use tokio::sync::mpsc;

pub use cursor::{CursorFilter, Skipped};

use crate::error::PipelineError;
use crate::spec::{BadRows, Extract};

/// Rows per batch sent to the loader.
pub const BATCH_ROWS: usize = 4096;

/// What an extractor sends.
#[derive(Debug)]
pub enum Message {
    /// The data columns (again, extended, when a new one appears).
    Columns(Vec<Column>),
    /// Rows in the order of the last `Columns` (shorter rows: the rest is NULL).
    Rows { source: String, rows: Vec<Row> },
    /// Rows that did not parse, when `on_bad_row = "quarantine"`.
    Rejected(Vec<Rejected>),
    /// The end, with the largest cursor value seen (incremental extracts).
    Done {
        cursor: Option<serde_json::Value>,
        summary: Summary,
    },
}

/// What an extract tells the step report besides its rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// The keys of the rows loaded at the largest cursor value (see [`cursor`]).
    pub boundary: Option<Vec<String>>,
    /// Rows read but not loaded, by reason.
    pub skipped: Skipped,
    /// Things a user should know about this load (an empty file, say).
    pub notes: Vec<String>,
}

/// A row that did not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub source: String,
    /// 1-based line (files) or record number (APIs).
    pub line: u64,
    pub error: String,
    /// The row's text, as read.
    pub raw: String,
}

/// Everything an extractor gets.
#[derive(Clone)]
pub struct Context {
    /// The app directory (file paths are relative to it).
    pub dir: PathBuf,
    pub spec: Extract,
    /// The cursor of the last load (incremental extracts), `None` for a full load.
    pub since: Option<serde_json::Value>,
    /// A backfill: only rows with `from <= cursor < to` (incremental extracts).
    pub range: Option<(serde_json::Value, serde_json::Value)>,
    /// The keys the last load took at `since` (see [`cursor`]); `None` when not known.
    pub boundary: Option<Vec<String>>,
    /// The columns of the bronze table when it exists: a column the source gives no value
    /// to type (a header-only file) keeps its type.
    pub existing: Option<Vec<Column>>,
    /// Resolves `${VAR}` in URLs, headers and connections.
    pub env: crate::Env,
    pub cancelled: Arc<AtomicBool>,
}

impl Context {
    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Replaces `${VAR}` with the environment's value.
    ///
    /// # Errors
    /// Names the unset variable.
    pub fn expand(&self, text: &str) -> Result<String, PipelineError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = &after[..end];
            let value = (self.env)(name).ok_or_else(|| {
                PipelineError::Extract(format!(
                    "extract `{}`: environment variable `{name}` is not set",
                    self.spec.name
                ))
            })?;
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Type overrides by (normalized) column name.
    pub fn overrides(&self) -> Vec<(String, ColumnType)> {
        self.spec
            .columns
            .iter()
            .filter_map(|(k, v)| ColumnType::parse(v).map(|t| (normalize(k), t)))
            .collect()
    }
}

/// The channel an extractor sends on.
pub type Sender = mpsc::Sender<Result<Message, PipelineError>>;

/// Starts the extractor of `cx.spec` and returns what it sends.
pub fn start(cx: Context) -> mpsc::Receiver<Result<Message, PipelineError>> {
    let (tx, rx) = mpsc::channel(4);
    match cx.spec.from {
        crate::spec::SourceKind::File => {
            tokio::spawn(async move {
                if let Some(d) = cx.spec.download.clone()
                    && let Err(e) = download::ensure(&cx, &d).await
                {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                tokio::task::spawn_blocking(move || {
                    let result = file::run(&cx, &tx);
                    if let Err(e) = result {
                        let _ = tx.blocking_send(Err(e));
                    }
                });
            });
        }
        crate::spec::SourceKind::Http => {
            tokio::spawn(async move {
                if let Err(e) = http::run(&cx, &tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
        crate::spec::SourceKind::Html => {
            tokio::spawn(async move {
                if let Err(e) = html::run(&cx, &tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
        crate::spec::SourceKind::Sql => {
            tokio::spawn(async move {
                if let Err(e) = sql::run(&cx, &tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
    }
    rx
}

/// A source column name as a table column: lowercase ASCII letters, digits and `_`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_underscore = true;
    for ch in name.trim().chars() {
        let c = if ch.is_ascii_alphanumeric() {
            ch.to_ascii_lowercase()
        } else {
            '_'
        };
        if c == '_' && last_underscore {
            continue;
        }
        last_underscore = c == '_';
        out.push(c);
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() || out.as_bytes()[0].is_ascii_digit() {
        out.insert_str(0, "c_");
    }
    out.chars().take(56).collect()
}

/// Normalizes `names`, making repeats unique (`a`, `a_2`, ...).
pub fn normalize_all<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let base = normalize(name);
        let mut candidate = base.clone();
        let mut n = 2;
        while out.contains(&candidate) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        out.push(candidate);
    }
    out
}

/// Collects rows into batches and rejected rows per the extract's policy.
pub struct Batcher {
    pub rows: Vec<Row>,
    pub rejected: Vec<Rejected>,
    pub policy: BadRows,
    pub cursor: Option<CursorFilter>,
    /// Bad rows skipped (`on_bad_row = "skip"`).
    pub skipped: u64,
    /// Backfill bounds for the cursor filter, once the columns are known.
    pub range: Option<(serde_json::Value, serde_json::Value)>,
    /// The last load's boundary keys and the primary key, for the cursor filter.
    pub boundary: Option<Vec<String>>,
    pub primary_key: Vec<String>,
    pub notes: Vec<String>,
    name: String,
}

impl Batcher {
    /// A batcher for extract `name` with `policy`.
    pub fn new(name: &str, policy: BadRows) -> Self {
        Batcher {
            rows: Vec::with_capacity(BATCH_ROWS),
            rejected: Vec::new(),
            policy,
            cursor: None,
            skipped: 0,
            range: None,
            boundary: None,
            primary_key: Vec::new(),
            notes: Vec::new(),
            name: name.to_string(),
        }
    }

    /// A batcher for the extract of `cx` (its bad-row policy, backfill range, boundary).
    pub fn for_context(cx: &Context) -> Self {
        Batcher {
            range: cx.range.clone(),
            boundary: cx.boundary.clone(),
            primary_key: cx.spec.primary_key.clone(),
            ..Batcher::new(&cx.spec.name, cx.spec.on_bad_row)
        }
    }

    /// Starts filtering on the incremental cursor `name` once the `columns` are known.
    ///
    /// # Errors
    /// The cursor is not among the columns.
    pub fn start_cursor(
        &mut self,
        name: &str,
        columns: &[Column],
        since: Option<&serde_json::Value>,
    ) -> Result<(), String> {
        self.cursor = Some(
            CursorFilter::new(name, columns, since)?
                .with_boundary(self.boundary.as_deref(), &self.primary_key, columns)
                .with_range(self.range.as_ref(), columns),
        );
        Ok(())
    }

    /// Adds a parsed row (dropped when it is not past the cursor).
    pub fn row(&mut self, row: Row) {
        if let Some(cursor) = &mut self.cursor
            && !cursor.keep(&row)
        {
            return;
        }
        self.rows.push(row);
    }

    /// Handles a row that did not parse.
    ///
    /// # Errors
    /// With `on_bad_row = "fail"`, the row's place and problem.
    pub fn bad(&mut self, rejected: Rejected) -> Result<(), PipelineError> {
        match self.policy {
            BadRows::Fail => Err(PipelineError::Extract(format!(
                "extract `{}`: {} line {}: {} (set on_bad_row = \"quarantine\" or \"skip\" to load the other rows)",
                self.name, rejected.source, rejected.line, rejected.error
            ))),
            BadRows::Skip => {
                self.skipped += 1;
                if self.skipped <= 5 {
                    tracing::warn!(extract = %self.name, source = %rejected.source, line = rejected.line, error = %rejected.error, "Skipped a bad row.");
                }
                Ok(())
            }
            BadRows::Quarantine => {
                self.rejected.push(rejected);
                Ok(())
            }
        }
    }

    /// Whether a batch is ready.
    pub fn full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS || self.rejected.len() >= BATCH_ROWS
    }

    /// Takes the pending messages.
    pub fn drain(&mut self, source: &str) -> Vec<Message> {
        let mut out = Vec::new();
        if !self.rows.is_empty() {
            out.push(Message::Rows {
                source: source.to_string(),
                rows: std::mem::replace(&mut self.rows, Vec::with_capacity(BATCH_ROWS)),
            });
        }
        if !self.rejected.is_empty() {
            out.push(Message::Rejected(std::mem::take(&mut self.rejected)));
        }
        out
    }

    /// The final message.
    pub fn done(&self) -> Message {
        let mut skipped = self.cursor.as_ref().map(|c| c.skipped).unwrap_or_default();
        skipped.bad_row = self.skipped;
        Message::Done {
            cursor: self.cursor.as_ref().and_then(CursorFilter::max_json),
            summary: Summary {
                boundary: self.cursor.as_ref().and_then(CursorFilter::boundary),
                skipped,
                notes: self.notes.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_source_column_names() {
        assert_eq!(normalize("Departure Time (UTC)"), "departure_time_utc");
        assert_eq!(normalize("2020"), "c_2020");
        assert_eq!(normalize("__x__"), "x");
        assert_eq!(normalize(""), "c_");
        assert_eq!(normalize_all(["A", "a", "a"]), ["a", "a_2", "a_3"]);
    }
}

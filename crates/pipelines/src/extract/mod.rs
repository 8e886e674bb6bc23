//! Extractors: each reads one source and streams typed rows to the loader through a small
//! bounded channel, so memory stays flat whatever the source's size. An extractor first
//! sends the columns it found, then batches of rows; it may send the columns again when a
//! later record brings a new one. Bad rows are rejected or quarantined per `on_bad_row`.
//!
//! - [`file`]: CSV, NDJSON and JSON files, globs, gzip.
//! - [`http`]: JSON APIs with pagination and retries.
//! - [`html`]: pages scraped with CSS selectors.
//! - [`sql`]: a query against another database.
//! - [`infer`]: column types from samples; [`shape`]: JSON records to typed rows.

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

use brigade_core::value::Value;
use brigade_store::conn::Row;
use brigade_store::warehouse::{Column, ColumnType};
use tokio::sync::mpsc;

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
    Done { cursor: Option<serde_json::Value> },
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
            tokio::task::spawn_blocking(move || {
                let result = file::run(&cx, &tx);
                if let Err(e) = result {
                    let _ = tx.blocking_send(Err(e));
                }
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

/// Filters rows past the incremental cursor and tracks the largest value.
#[derive(Debug, Clone)]
pub struct CursorFilter {
    index: usize,
    since: Option<Value>,
    /// Backfill bounds: `from <= cursor < to`.
    range: Option<(Value, Value)>,
    pub max: Option<Value>,
}

impl CursorFilter {
    /// A filter on column `name` of `columns`, keeping rows after `since`.
    ///
    /// # Errors
    /// The cursor column is not among the columns.
    pub fn new(
        name: &str,
        columns: &[Column],
        since: Option<&serde_json::Value>,
    ) -> Result<CursorFilter, String> {
        let index = columns.iter().position(|c| c.name == name).ok_or_else(|| {
            format!(
                "the incremental cursor `{name}` is not a column of the source (columns: {})",
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let since = since.map(|s| infer::json_to(s, columns[index].ty).unwrap_or(Value::Null));
        Ok(CursorFilter {
            index,
            since: since.filter(|v| *v != Value::Null),
            range: None,
            max: None,
        })
    }

    /// Restricts the filter to `from <= cursor < to` (a backfill).
    pub fn with_range(
        mut self,
        range: Option<&(serde_json::Value, serde_json::Value)>,
        columns: &[Column],
    ) -> Self {
        let ty = columns[self.index].ty;
        self.range = range.map(|(from, to)| {
            (
                infer::json_to(from, ty).unwrap_or(Value::Null),
                infer::json_to(to, ty).unwrap_or(Value::Null),
            )
        });
        self
    }

    /// Whether `row` is past the cursor; updates the maximum.
    pub fn keep(&mut self, row: &Row) -> bool {
        let Some(value) = row.get(self.index).filter(|v| **v != Value::Null) else {
            // Rows without a cursor value cannot be placed; incremental loads skip them.
            return false;
        };
        if let Some(since) = &self.since
            && compare(value, since) != Some(std::cmp::Ordering::Greater)
        {
            return false;
        }
        if let Some((from, to)) = &self.range
            && (compare(value, from) == Some(std::cmp::Ordering::Less)
                || compare(value, to) != Some(std::cmp::Ordering::Less))
        {
            return false;
        }
        if self
            .max
            .as_ref()
            .is_none_or(|m| compare(value, m) == Some(std::cmp::Ordering::Greater))
        {
            self.max = Some(value.clone());
        }
        true
    }

    /// The largest value kept, as JSON for the state table.
    pub fn max_json(&self) -> Option<serde_json::Value> {
        self.max.as_ref().map(Value::to_json)
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Collects rows into batches and rejected rows per the extract's policy.
pub struct Batcher {
    pub rows: Vec<Row>,
    pub rejected: Vec<Rejected>,
    pub policy: BadRows,
    pub cursor: Option<CursorFilter>,
    pub skipped: u64,
    /// Backfill bounds for the cursor filter, once the columns are known.
    pub range: Option<(serde_json::Value, serde_json::Value)>,
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
            name: name.to_string(),
        }
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
        Message::Done {
            cursor: self.cursor.as_ref().and_then(CursorFilter::max_json),
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

    #[test]
    fn cursor_keeps_rows_past_the_last_value() {
        let cols = vec![Column {
            name: "t".into(),
            ty: ColumnType::Integer,
        }];
        let mut f = CursorFilter::new("t", &cols, Some(&serde_json::json!(5))).unwrap();
        assert!(!f.keep(&vec![Value::Int(5)]));
        assert!(f.keep(&vec![Value::Int(7)]));
        assert!(f.keep(&vec![Value::Int(6)]));
        assert!(!f.keep(&vec![Value::Null]));
        assert_eq!(f.max_json(), Some(serde_json::json!(7)));
        assert!(CursorFilter::new("nope", &cols, None).is_err());
        let range = (serde_json::json!(10), serde_json::json!(20));
        let mut b = CursorFilter::new("t", &cols, None)
            .unwrap()
            .with_range(Some(&range), &cols);
        let kept: Vec<i64> = [9, 10, 15, 20, 21]
            .into_iter()
            .filter(|n| b.keep(&vec![Value::Int(*n)]))
            .collect();
        assert_eq!(kept, [10, 15], "from <= cursor < to");
    }
}

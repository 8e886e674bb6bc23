//! Helpers shared by the extractor tests: contexts from TOML and collected messages.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use brigade_store::Row;
use brigade_store::warehouse::Column;
use tokio::sync::mpsc;

use crate::error::PipelineError;
use crate::extract::{Context, Message, Rejected, Sender};
use crate::spec::Extract;

/// A context for the `[[extract]]` body `toml`.
pub(crate) fn context(
    toml: &str,
    dir: &Path,
    since: Option<serde_json::Value>,
    env: &[(&str, &str)],
) -> Context {
    let spec: Extract = toml::from_str(toml).expect("extract TOML");
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Context {
        dir: dir.to_path_buf(),
        spec,
        since,
        range: None,
        boundary: None,
        existing: None,
        env: Arc::new(move |name| env.get(name).cloned()),
        cancelled: Arc::new(AtomicBool::new(false)),
    }
}

/// What an extractor sent, by kind.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) columns: Vec<Column>,
    pub(crate) column_messages: usize,
    pub(crate) rows: Vec<Row>,
    /// The source of each row.
    pub(crate) sources: Vec<String>,
    pub(crate) rejected: Vec<Rejected>,
    pub(crate) done: Option<Option<serde_json::Value>>,
    pub(crate) summary: crate::extract::Summary,
}

impl Collected {
    /// The values of column `name`, as JSON.
    pub(crate) fn column(&self, name: &str) -> Vec<serde_json::Value> {
        let i = self
            .columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.columns));
        self.rows
            .iter()
            .map(|r| r.get(i).map_or(serde_json::Value::Null, |v| v.to_json()))
            .collect()
    }
}

/// Runs an extractor to the end and collects what it sent; `Done` must come last.
pub(crate) async fn collect<F>(cx: Context, run: F) -> Result<Collected, PipelineError>
where
    F: AsyncFnOnce(&Context, &Sender) -> Result<(), PipelineError>,
{
    let (tx, mut rx) = mpsc::channel(64);
    let producer = async move {
        let result = run(&cx, &tx).await;
        drop(tx);
        result
    };
    let consumer = async {
        let mut got = Collected::default();
        while let Some(m) = rx.recv().await {
            assert!(got.done.is_none(), "a message after Done: {m:?}");
            match m.expect("extractors send errors by returning them") {
                Message::Columns(c) => {
                    got.columns = c;
                    got.column_messages += 1;
                }
                Message::Rows { source, rows } => {
                    assert!(!got.columns.is_empty(), "rows before columns");
                    got.sources.extend(rows.iter().map(|_| source.clone()));
                    got.rows.extend(rows);
                }
                Message::Rejected(r) => got.rejected.extend(r),
                Message::Done { cursor, summary } => {
                    got.done = Some(cursor);
                    got.summary = summary;
                }
            }
        }
        got
    };
    let (result, got) = tokio::join!(producer, consumer);
    result?;
    assert!(got.done.is_some(), "no Done message");
    Ok(got)
}

/// Starts the extractor of `cx` as a run does ([`crate::extract::start`]) and collects what
/// it sent; the first error ends it.
pub(crate) async fn collect_started(cx: Context) -> Result<Collected, PipelineError> {
    let mut rx = crate::extract::start(cx);
    let mut got = Collected::default();
    while let Some(m) = rx.recv().await {
        match m? {
            Message::Columns(c) => {
                got.columns = c;
                got.column_messages += 1;
            }
            Message::Rows { source, rows } => {
                got.sources.extend(rows.iter().map(|_| source.clone()));
                got.rows.extend(rows);
            }
            Message::Rejected(r) => got.rejected.extend(r),
            Message::Done { cursor, summary } => {
                got.done = Some(cursor);
                got.summary = summary;
            }
        }
    }
    assert!(got.done.is_some(), "no Done message");
    Ok(got)
}

/// Serves `app` on 127.0.0.1 (a real socket) and returns its base URL.
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// Serves `app` on `ip` (another loopback address is another origin) and returns its base URL.
pub(crate) async fn serve_on(ip: &str, app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

//! Source freshness, as dbt users know it: each extract may declare how old its newest data
//! may get (`freshness = { warn_after = "6h", error_after = "1d" }`, measured on `_loaded_at`
//! or a `field` of the bronze table). `GET /api/pipelines/{name}` and
//! `brigade pipeline freshness NAME` show it; `brigade serve` checks every minute, exports
//! `pipeline_source_age_seconds` and `pipeline_source_freshness` (0 pass, 1 warn, 2 error)
//! and notifies the `freshness` webhooks once per stale episode, however many processes run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use brigade_store::Store;
use serde::Serialize;
use serde_json::json;

use crate::alerts::{self, Alert};
use crate::spec::{NotifyEvent, Pipeline};

/// How often `serve` checks.
const INTERVAL: Duration = Duration::from_secs(60);

/// Where an extract stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Error,
    /// Never loaded, or the check itself failed (see `error`).
    Unknown,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Error => "error",
            Status::Unknown => "unknown",
        }
    }
}

/// The freshness of one extract.
#[derive(Debug, Clone, Serialize)]
pub struct SourceFreshness {
    pub extract: String,
    /// The column measured.
    pub field: String,
    pub status: Status,
    /// The newest value of `field` (RFC 3339).
    pub newest: Option<String>,
    pub age_seconds: Option<u64>,
    pub warn_after: Option<String>,
    pub error_after: Option<String>,
    /// Why the status is `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Checks every extract of `pipeline` that declares `freshness`.
pub async fn check(store: &Store, pipeline: &Pipeline) -> Vec<SourceFreshness> {
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for e in &pipeline.extract {
        let Some(f) = &e.freshness else { continue };
        let (warn, error) = f.limits();
        let mut report = SourceFreshness {
            extract: e.name.clone(),
            field: f.field().to_string(),
            status: Status::Unknown,
            newest: None,
            age_seconds: None,
            warn_after: f.warn_after.clone(),
            error_after: f.error_after.clone(),
            error: None,
        };
        match store.warehouse().newest_timestamp(&e.name, f.field()).await {
            Ok(Some(newest)) => {
                let age = (now - newest).to_std().unwrap_or(Duration::ZERO);
                report.newest = Some(brigade_core::time::format_datetime(newest));
                report.age_seconds = Some(age.as_secs());
                report.status = if error.is_some_and(|limit| age > limit) {
                    Status::Error
                } else if warn.is_some_and(|limit| age > limit) {
                    Status::Warn
                } else {
                    Status::Pass
                };
            }
            Ok(None) => report.error = Some("no data loaded yet".into()),
            Err(err) => report.error = Some(err.to_string()),
        }
        out.push(report);
    }
    out
}

/// The worst status of `reports` (`None` when no extract declares freshness).
pub fn worst(reports: &[SourceFreshness]) -> Option<Status> {
    reports
        .iter()
        .map(|r| r.status)
        .filter(|s| *s != Status::Unknown)
        .max()
        .or_else(|| reports.first().map(|_| Status::Unknown))
}

/// Wakes the watcher early: a run just finished, so sources may have changed.
static RUN_FINISHED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells the watcher of this process that a run finished (no-op without a watcher).
pub fn poke() {
    RUN_FINISHED.notify_one();
}

/// Checks every pipeline once a minute and after every run, forever (run beside the
/// scheduler).
pub async fn watch(runner: Arc<crate::Runner>) {
    let mut last: HashMap<(String, String), Status> = HashMap::new();
    loop {
        for p in runner.pipelines().iter() {
            for r in check(runner.store(), p).await {
                record(runner.store(), p, &r, &mut last).await;
            }
        }
        let _ = tokio::time::timeout(INTERVAL, RUN_FINISHED.notified()).await;
    }
}

/// Exports `r` as metrics and notifies when the extract turned stale.
async fn record(
    store: &Store,
    p: &Pipeline,
    r: &SourceFreshness,
    last: &mut HashMap<(String, String), Status>,
) {
    let labels = [("pipeline", p.name.clone()), ("extract", r.extract.clone())];
    if let Some(age) = r.age_seconds {
        metrics::gauge!("pipeline_source_age_seconds", &labels).set(age as f64);
    }
    let level = match r.status {
        Status::Pass => 0.0,
        Status::Warn => 1.0,
        Status::Error => 2.0,
        Status::Unknown => return,
    };
    metrics::gauge!("pipeline_source_freshness", &labels).set(level);
    let before = last.insert((p.name.clone(), r.extract.clone()), r.status);
    if !matches!(r.status, Status::Warn | Status::Error) || before == Some(r.status) {
        return;
    }
    let newest = r.newest.clone().unwrap_or_default();
    tracing::warn!(pipeline = %p.name, extract = %r.extract, status = r.status.name(), newest = %newest, "A source is stale.");
    // One notification per stale episode and level across every process: the claim is
    // keyed by the newest data, which changes when fresh data arrives.
    let key = format!("freshness:{}:{}:{}", p.name, r.extract, r.status.name());
    match store.runs().claim_schedule(&key, &newest).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::error!(pipeline = %p.name, error = %e, "Could not record a freshness notification.");
            return;
        }
    }
    let limit = match r.status {
        Status::Error => r.error_after.as_deref(),
        _ => r.warn_after.as_deref(),
    }
    .unwrap_or_default();
    let alert = Alert {
        event: NotifyEvent::Freshness,
        pipeline: p.name.clone(),
        reason: format!(
            "extract `{}` of `{}` is stale ({}): its newest data ({} = {newest}) is older than {limit}; check the source, then run `brigade pipeline run {}`",
            r.extract,
            p.name,
            r.status.name(),
            r.field,
            p.name
        ),
        run: None,
        detail: json!({ "freshness": r }),
    };
    alerts::send(p, &alert).await;
}

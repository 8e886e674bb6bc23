//! The shapes of runs and steps as stored and as the API returns them (API.md, Pipelines),
//! and the progress events `/api/runs/{id}/events` streams.

use brigade_store::warehouse::{ExpectationOutcome, RunRecord, RunStatus, StepStatus, TestOutcome};
use serde::{Deserialize, Serialize};

use crate::extract::Skipped;

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    /// `extract` or `model`.
    pub kind: String,
    /// `bronze`, `silver` or `gold`.
    pub layer: String,
    pub status: StepStatus,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_dropped: u64,
    pub duration_ms: u64,
    pub expectations: Vec<ExpectationReport>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Tries so far (1 unless retried).
    #[serde(default)]
    pub attempts: u32,
    /// Source rows that did not parse (`on_bad_row`).
    #[serde(default)]
    pub rows_rejected: u64,
    /// Source rows read but not loaded, by reason (extension to API.md).
    #[serde(default, skip_serializing_if = "Skipped::is_empty")]
    pub rows_skipped: Skipped,
    /// What a user should know about the step, e.g. "0 rows: file data/x.csv is empty"
    /// (extension to API.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The result of one expectation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectationReport {
    pub name: String,
    /// `passed`, `warned`, `dropped` or `failed`.
    pub status: String,
    pub failing_rows: u64,
    /// The column a built-in test is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Up to five failing rows or values of a failed or warned test, as JSON text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<String>,
}

impl From<&ExpectationOutcome> for ExpectationReport {
    fn from(e: &ExpectationOutcome) -> Self {
        ExpectationReport {
            name: e.name.clone(),
            status: e.status.to_string(),
            failing_rows: e.failing_rows,
            column: None,
            sample: Vec::new(),
        }
    }
}

impl From<&TestOutcome> for ExpectationReport {
    fn from(t: &TestOutcome) -> Self {
        ExpectationReport {
            name: t.name.clone(),
            status: t.status.to_string(),
            failing_rows: t.failing_rows,
            column: t.column.clone(),
            sample: t.sample.clone(),
        }
    }
}

/// Options a run was started with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Rebuild every table and forget incremental cursors.
    #[serde(default)]
    pub full_refresh: bool,
    /// Run only from this step on (a retry of a failed run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_step: Option<String>,
    /// The run this one retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    /// Reload a cursor range of the incremental extracts (`from <= cursor < to`), replacing
    /// those rows (merging them on `primary_key` when there is one); cursors stay as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
    /// Values for the pipeline's `[vars]` (the others keep their defaults).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, serde_json::Value>,
    /// Why an event trigger started the run ("run X of `ingest` succeeded", "new or
    /// changed files: ...").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// dbt-style selectors of the steps to run (all when empty): `name`, `+name`, `name+`,
    /// `tag:NAME`; see [`crate::select`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<String>,
    /// Selectors of steps not to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl RunOptions {
    /// The pipeline's `[vars]` defaults overridden by this run's values.
    pub fn effective_vars(
        &self,
        pipeline: &crate::Pipeline,
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut vars = pipeline.var_defaults();
        vars.extend(self.vars.clone());
        vars
    }
}

/// A cursor range to reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backfill {
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

/// A run as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    pub id: String,
    pub pipeline: String,
    pub status: RunStatus,
    pub trigger: String,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub full_refresh: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The selectors the run was started with; `steps` lists only the selected steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    pub steps: Vec<StepReport>,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        let options: RunOptions = serde_json::from_value(r.options).unwrap_or_default();
        RunView {
            id: r.id,
            pipeline: r.pipeline,
            status: r.status,
            trigger: r.trigger,
            created: r.created,
            started: r.started,
            finished: r.finished,
            error: r.error,
            full_refresh: options.full_refresh,
            retry_of: options.retry_of,
            backfill: options.backfill,
            vars: options.vars,
            cause: options.cause,
            select: options.select,
            exclude: options.exclude,
            steps: serde_json::from_value(r.steps).unwrap_or_default(),
        }
    }
}

/// A progress event of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run waits: another run of its pipeline (maybe in another process) holds the
    /// pipeline's lease. Sent when the run starts waiting and when the holder changes.
    Queued {
        run_id: String,
        pipeline: String,
        /// The run holding the lease.
        waiting_for: String,
        /// The process running it, e.g. `brigade pipeline run (pid 4242 on build-1)`.
        holder: String,
    },
    RunStarted {
        run_id: String,
        pipeline: String,
        steps: Vec<String>,
    },
    StepStarted {
        run_id: String,
        step: String,
        attempt: u32,
    },
    /// Rows loaded so far by an extract step.
    Progress {
        run_id: String,
        step: String,
        rows: u64,
        rows_per_s: f64,
    },
    StepFinished {
        run_id: String,
        step: Box<StepReport>,
    },
    RunFinished {
        run_id: String,
        status: RunStatus,
        error: Option<String>,
    },
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Queued { .. } => "queued",
            Event::RunStarted { .. } => "run_started",
            Event::StepStarted { .. } => "step_started",
            Event::Progress { .. } => "progress",
            Event::StepFinished { .. } => "step_finished",
            Event::RunFinished { .. } => "run_finished",
        }
    }
}

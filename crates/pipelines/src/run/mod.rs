//! The runner: executes a pipeline's nodes in dependency order, one store transaction per
//! step, with per-step retries, cancellation, progress events and run records that survive
//! restarts. `brigade serve` (scheduler and API) and `brigade pipeline run` share it.

mod execute;
pub mod liveness;
pub mod report;
mod sql_line;
mod steps;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use brigade_store::Store;
use brigade_store::warehouse::{RunStatus, StepStatus};
use tokio::sync::broadcast;

pub use report::{Event, ExpectationReport, RunOptions, RunView, StepReport};

use crate::spec::Pipeline;

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("pipeline `{0}` not found")]
    UnknownPipeline(String),
    #[error("run `{0}` not found")]
    UnknownRun(String),
    /// A run option that does not fit the pipeline or the run.
    #[error("{message}")]
    Invalid {
        /// The option: `from_step`, `backfill`, `run_id`.
        field: &'static str,
        message: String,
    },
    /// A pipeline or model file is invalid (files are read again at every run).
    #[error("{0}")]
    Config(#[from] crate::ConfigError),
    /// Tables the run would write belong to a collection, the system or another pipeline;
    /// nothing ran.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    TablesTaken(Vec<brigade_store::warehouse::Taken>),
    #[error(transparent)]
    Store(#[from] brigade_store::StoreError),
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Api,
    Cli,
    /// Another pipeline succeeded (`[trigger] after`).
    Pipeline,
    /// New or changed files (`[trigger] files`).
    Files,
}

impl Trigger {
    /// The name in run records.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
            Trigger::Pipeline => "pipeline",
            Trigger::Files => "files",
        }
    }
}

struct Active {
    cancelled: Arc<AtomicBool>,
    /// Why it was cancelled, when not by a request (`stopped by SIGTERM`).
    reason: Arc<Mutex<Option<String>>>,
    events: broadcast::Sender<Event>,
}

/// How this process takes part in runs shared with other processes.
#[derive(Debug, Clone)]
pub struct Process {
    /// What this process is, as other processes see it (`brigade serve`).
    pub role: &'static str,
    /// A queued or running run whose heartbeat is older than this counts as dead
    /// (`[pipelines] stale_after`).
    pub stale_after: Duration,
}

pub use crate::Env;

/// Receives every event of a run (the CLI's progress bars).
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// Runs the pipelines of one app directory.
pub struct Runner {
    store: Arc<Store>,
    dir: PathBuf,
    pipelines: RwLock<Arc<Vec<Pipeline>>>,
    /// Pipeline files that did not load (disabled until fixed).
    broken: RwLock<Arc<Vec<crate::Broken>>>,
    env: Env,
    active: Mutex<HashMap<String, Active>>,
    /// One run per pipeline at a time in this process; later runs wait `queued`. Across
    /// processes the pipeline's lease in the store does the same.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This process, as recorded on its runs and leases.
    holder: liveness::Holder,
    stale_after: Duration,
    /// Set once this process stops: runs it starts from now on are cancelled at once.
    stopping: Mutex<Option<String>>,
    /// Steps running at once in this process, over all its runs: half the PostgreSQL pool
    /// (so heartbeats and the API always find a connection); one on SQLite.
    step_slots: Arc<tokio::sync::Semaphore>,
}

impl Runner {
    /// A runner over `catalog` (already loaded from `dir`).
    pub fn new(
        store: Arc<Store>,
        dir: &Path,
        catalog: crate::Catalog,
        env: Env,
        process: Process,
    ) -> Arc<Runner> {
        report_broken(&[], &catalog.broken);
        let slots = match store.dialect() {
            brigade_store::Dialect::Sqlite => 1,
            brigade_store::Dialect::Postgres => (store.pool_size() / 2).max(1),
        };
        Arc::new(Runner {
            store,
            dir: dir.to_path_buf(),
            pipelines: RwLock::new(Arc::new(catalog.pipelines)),
            broken: RwLock::new(Arc::new(catalog.broken)),
            env,
            active: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            holder: liveness::Holder::this_process(process.role),
            stale_after: process.stale_after,
            stopping: Mutex::new(None),
            step_slots: Arc::new(tokio::sync::Semaphore::new(slots)),
        })
    }

    /// Environment lookups of this runner.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The app directory (file paths of extracts are relative to it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store runs write to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// All pipelines, by name.
    pub fn pipelines(&self) -> Arc<Vec<Pipeline>> {
        self.pipelines.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// Pipeline files that did not load, as of the last reload.
    pub fn broken(&self) -> Arc<Vec<crate::Broken>> {
        self.broken.read().map(|b| b.clone()).unwrap_or_default()
    }

    /// Reads the pipeline files again: new, changed and removed pipelines, models and
    /// schedules take effect. An invalid file disables only its own pipeline (logged once
    /// when it breaks and when it is fixed); the others keep running.
    ///
    /// # Errors
    /// Only when the `pipelines` folder cannot be read; the pipelines stay as they were.
    pub fn reload(&self) -> Result<(), crate::ConfigError> {
        let fresh = crate::spec::load_dir(&self.dir)?;
        if let Ok(mut pipelines) = self.pipelines.write() {
            *pipelines = Arc::new(fresh.pipelines);
        }
        if let Ok(mut broken) = self.broken.write() {
            report_broken(&broken, &fresh.broken);
            *broken = Arc::new(fresh.broken);
        }
        Ok(())
    }

    /// The pipeline called `name`.
    pub fn pipeline(&self, name: &str) -> Option<Pipeline> {
        self.pipelines().iter().find(|p| p.name == name).cloned()
    }

    /// How long a run may go without a heartbeat before it counts as dead.
    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    /// How often a run refreshes its heartbeat and checks for cancellation requests: several
    /// times within `stale_after`.
    fn tick(&self) -> Duration {
        (self.stale_after / 5).clamp(Duration::from_millis(200), Duration::from_secs(2))
    }

    /// Marks the queued or running runs of `pipeline` (of every pipeline when `None`) whose
    /// process died as failed and frees their leases, so they can be retried: those whose
    /// heartbeat is older than `stale_after`, unless their process is still running on this
    /// host (one long SQLite statement holds up its heartbeat) or in this process. Returns
    /// how many.
    ///
    /// # Errors
    /// The store's.
    pub async fn sweep(&self, pipeline: Option<&str>) -> Result<u64, brigade_store::StoreError> {
        let before = brigade_core::time::format_datetime(
            chrono::Utc::now() - chrono::Duration::from_std(self.stale_after).unwrap_or_default(),
        );
        let mut failed = 0;
        for run in self.store.runs().stale(pipeline, &before).await? {
            let ours = self
                .active
                .lock()
                .map(|a| a.contains_key(&run.id))
                .unwrap_or(false);
            let holder = run.holder.as_deref().and_then(liveness::Holder::parse);
            if ours || holder.as_ref().map(liveness::Holder::alive) == Some(liveness::Alive::Yes) {
                continue;
            }
            let error = format!(
                "the process running it stopped responding (last heartbeat {}{}); retry it or start a new run",
                run.heartbeat.as_deref().unwrap_or("never"),
                holder.map(|h| format!(", {h}")).unwrap_or_default(),
            );
            if self
                .store
                .runs()
                .fail_stale(&run.id, &before, &error)
                .await?
            {
                tracing::warn!(run = %run.id, pipeline = %run.pipeline, error = %error, "Marked a run whose process stopped responding as failed.");
                failed += 1;
            }
        }
        Ok(failed)
    }

    /// Sweeps dead runs of every pipeline every `stale_after / 2` (the server's background
    /// loop), until the task is dropped.
    pub async fn sweep_forever(self: Arc<Self>) {
        let every = (self.stale_after / 2).max(Duration::from_secs(1));
        loop {
            if let Err(e) = self.sweep(None).await {
                tracing::warn!(error = %e, "Could not look for runs whose process stopped.");
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Records a queued run of `name` and starts it in the background; returns its id.
    ///
    /// # Errors
    /// Unknown pipeline or run to retry, or the store's.
    pub async fn start(
        self: &Arc<Self>,
        name: &str,
        trigger: Trigger,
        options: RunOptions,
    ) -> Result<String, StartError> {
        let (pipeline, record) = self.prepare(name, trigger, &options).await?;
        let runner = self.clone();
        let id = record.id.clone();
        tokio::spawn(async move {
            runner.execute(pipeline, record, options, None).await;
        });
        Ok(id)
    }

    /// Runs `name` to the end in this task, calling `observe` with every event.
    ///
    /// # Errors
    /// Unknown pipeline, or the store's when the run cannot be recorded. A failed run is
    /// not an error: it comes back with `status = "failed"`.
    pub async fn run(
        self: &Arc<Self>,
        name: &str,
        trigger: Trigger,
        options: RunOptions,
        observe: Option<Observer>,
    ) -> Result<RunView, StartError> {
        let (pipeline, record) = self.prepare(name, trigger, &options).await?;
        Ok(self.execute(pipeline, record, options, observe).await)
    }

    /// Starts a new run of a failed or cancelled run's pipeline from its first unfinished
    /// step.
    ///
    /// # Errors
    /// Unknown run, or a run that did not fail.
    pub async fn retry(self: &Arc<Self>, run_id: &str) -> Result<RunOptions, StartError> {
        let mut run = self
            .store
            .runs()
            .get(run_id)
            .await?
            .ok_or_else(|| StartError::UnknownRun(run_id.to_string()))?;
        if run.status.is_active() && self.sweep(Some(&run.pipeline)).await? > 0 {
            // Its process died: the sweep just marked it failed.
            run = self
                .store
                .runs()
                .get(run_id)
                .await?
                .ok_or_else(|| StartError::UnknownRun(run_id.to_string()))?;
        }
        if !matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(StartError::Invalid {
                field: "run_id",
                message: format!(
                    "run `{run_id}` is {}; only failed or cancelled runs can be retried",
                    run.status
                ),
            });
        }
        let view = RunView::from(run);
        let from = view
            .steps
            .iter()
            .find(|s| s.status != StepStatus::Succeeded)
            .map(|s| s.name.clone());
        Ok(RunOptions {
            full_refresh: view.full_refresh,
            from_step: from,
            retry_of: Some(view.id),
            backfill: view.backfill,
            vars: view.vars,
            cause: None,
            select: view.select,
            exclude: view.exclude,
        })
    }

    /// Asks a run to stop: at once when this process runs it, else through the store (the
    /// process running it checks every few seconds). Extracts stop between batches; a
    /// model's statement finishes first. Nothing half-written is published either way.
    ///
    /// # Errors
    /// The store's.
    pub async fn cancel(&self, run_id: &str) -> Result<(), brigade_store::StoreError> {
        if let Ok(active) = self.active.lock()
            && let Some(a) = active.get(run_id)
        {
            a.cancelled.store(true, Ordering::Relaxed);
        }
        self.store.runs().request_cancel(run_id).await
    }

    /// Asks every run of this process to stop (the server is shutting down). Extracts stop
    /// between batches and publish nothing; a model finishes its statement.
    pub fn cancel_all(&self) {
        self.cancel_all_because("the run was cancelled: the server is shutting down");
    }

    /// Like [`Runner::cancel_all`], recording `reason` as the runs' error (`stopped by
    /// SIGTERM`). Runs this process would start afterwards are cancelled too.
    pub fn cancel_all_because(&self, reason: &str) {
        if let Ok(mut stopping) = self.stopping.lock() {
            stopping.get_or_insert_with(|| reason.to_string());
        }
        if let Ok(active) = self.active.lock() {
            for a in active.values() {
                if let Ok(mut r) = a.reason.lock() {
                    r.get_or_insert_with(|| reason.to_string());
                }
                a.cancelled.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Waits up to `grace` for this process's runs to stop, then marks those still going as
    /// failed, so no run is left `running` by a stopped server.
    pub async fn drain(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let left: Vec<String> = self
                .active
                .lock()
                .map(|a| a.keys().cloned().collect())
                .unwrap_or_default();
            if left.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                for id in left {
                    tracing::warn!(run = %id, "A pipeline run did not stop within the shutdown grace period.");
                    let _ = self
                        .store
                        .runs()
                        .interrupt(
                            &id,
                            "the server stopped before the run finished; start it again",
                        )
                        .await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Progress events of a run this process is executing.
    pub fn subscribe(&self, run_id: &str) -> Option<broadcast::Receiver<Event>> {
        self.active
            .lock()
            .ok()?
            .get(run_id)
            .map(|a| a.events.subscribe())
    }
}

/// Logs files that broke or were fixed since `before`, and sets the `pipeline_invalid_files`
/// gauge (alert on it being above zero: a broken file's schedule does not fire).
fn report_broken(before: &[crate::Broken], now: &[crate::Broken]) {
    for b in now.iter().filter(|b| !before.contains(b)) {
        tracing::error!(pipeline = %b.name, file = %b.file, error = %b.error, "A pipeline file is invalid: this pipeline is disabled (not run, not scheduled) until the file is fixed; the others keep running.");
    }
    for b in before
        .iter()
        .filter(|b| !now.iter().any(|n| n.file == b.file))
    {
        tracing::info!(pipeline = %b.name, file = %b.file, "A pipeline file is valid again.");
    }
    metrics::gauge!("pipeline_invalid_files").set(now.len() as f64);
}

/// A run's `vars` must be declared under the pipeline's `[vars]` and be scalars.
fn check_vars(
    pipeline: &Pipeline,
    vars: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<(), StartError> {
    for (name, value) in vars {
        if !pipeline.vars.contains_key(name) {
            let declared: Vec<&str> = pipeline.vars.keys().map(String::as_str).collect();
            return Err(StartError::Invalid {
                field: "vars",
                message: format!(
                    "pipeline `{}` declares no var `{name}` (declared: {}); add it under [vars] with a default",
                    pipeline.name,
                    if declared.is_empty() {
                        "none".to_string()
                    } else {
                        declared.join(", ")
                    }
                ),
            });
        }
        if !(value.is_string() || value.is_number() || value.is_boolean()) {
            return Err(StartError::Invalid {
                field: "vars",
                message: format!("vars.{name} must be a string, a number or a boolean"),
            });
        }
    }
    Ok(())
}

//! The runner: executes a pipeline's nodes in dependency order, one store transaction per
//! step, with per-step retries, cancellation, progress events and run records that survive
//! restarts. `brigade serve` (scheduler and API) and `brigade pipeline run` share it.

pub mod report;
mod steps;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use brigade_store::Store;
use brigade_store::warehouse::RunRecord;
use tokio::sync::broadcast;

pub use report::{Event, ExpectationReport, RunOptions, RunView, StepReport};

use crate::error::PipelineError;
use crate::spec::{Node, Pipeline};

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
    #[error(transparent)]
    Store(#[from] brigade_store::StoreError),
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Api,
    Cli,
}

impl Trigger {
    /// The name in run records.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
        }
    }
}

struct Active {
    cancelled: Arc<AtomicBool>,
    events: broadcast::Sender<Event>,
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
    /// One run per pipeline at a time in this process; later runs wait `queued`.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Runner {
    /// A runner over `catalog` (already loaded from `dir`).
    pub fn new(store: Arc<Store>, dir: &Path, catalog: crate::Catalog, env: Env) -> Arc<Runner> {
        report_broken(&[], &catalog.broken);
        Arc::new(Runner {
            store,
            dir: dir.to_path_buf(),
            pipelines: RwLock::new(Arc::new(catalog.pipelines)),
            broken: RwLock::new(Arc::new(catalog.broken)),
            env,
            active: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        })
    }

    /// Environment lookups of this runner.
    pub fn env(&self) -> &Env {
        &self.env
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

    /// Marks runs whose process died as failed: on SQLite (one process) every unfinished
    /// run, on PostgreSQL those without a heartbeat for a minute.
    ///
    /// # Errors
    /// The store's.
    pub async fn recover(&self) -> Result<u64, brigade_store::StoreError> {
        let cutoff = match self.store.dialect() {
            brigade_store::sql::Dialect::Sqlite => {
                chrono::Utc::now() + chrono::Duration::seconds(1)
            }
            brigade_store::sql::Dialect::Postgres => {
                chrono::Utc::now() - chrono::Duration::seconds(60)
            }
        };
        let n = self
            .store
            .runs_fail_stale(&brigade_core::time::format_datetime(cutoff))
            .await?;
        if n > 0 {
            tracing::warn!(
                runs = n,
                "Marked runs interrupted by a stopped process as failed."
            );
        }
        Ok(n)
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
        let run = self
            .store
            .run_get(run_id)
            .await?
            .ok_or_else(|| StartError::UnknownRun(run_id.to_string()))?;
        if !matches!(run.status.as_str(), "failed" | "cancelled") {
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
            .find(|s| s.status != "succeeded")
            .map(|s| s.name.clone());
        Ok(RunOptions {
            full_refresh: view.full_refresh,
            from_step: from,
            retry_of: Some(view.id),
            backfill: view.backfill,
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
        self.store.run_request_cancel(run_id).await
    }

    /// Asks every run of this process to stop (the server is shutting down). Extracts stop
    /// between batches and publish nothing; a model finishes its statement.
    pub fn cancel_all(&self) {
        if let Ok(active) = self.active.lock() {
            for a in active.values() {
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
                        .run_interrupt(
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

    async fn prepare(
        &self,
        name: &str,
        trigger: Trigger,
        options: &RunOptions,
    ) -> Result<(Pipeline, RunRecord), StartError> {
        // Files are read again at every run, so edits to models take effect without a
        // restart; parsing takes milliseconds.
        self.reload()?;
        let pipeline = self.pipeline(name).ok_or_else(|| {
            match self.broken().iter().find(|b| b.name == name) {
                // A disabled pipeline says why.
                Some(broken) => StartError::Config(broken.error.clone()),
                None => StartError::UnknownPipeline(name.to_string()),
            }
        })?;
        let selected = crate::select::resolve(&pipeline.graph, &options.select, &options.exclude)
            .map_err(|e| StartError::Invalid {
            field: e.field,
            message: e.message,
        })?;
        if let Some(step) = &options.from_step {
            if pipeline.node(step).is_none() {
                return Err(StartError::Invalid {
                    field: "from_step",
                    message: format!("pipeline `{name}` has no step `{step}`"),
                });
            }
            if !selected.contains(step) {
                return Err(StartError::Invalid {
                    field: "from_step",
                    message: format!("step `{step}` is not among the selected steps"),
                });
            }
        }
        if let Some(backfill) = &options.backfill {
            for (key, value) in [("from", &backfill.from), ("to", &backfill.to)] {
                if !(value.is_number() || value.is_string()) {
                    return Err(StartError::Invalid {
                        field: "backfill",
                        message: format!(
                            "backfill.{key} must be a cursor value: a number or a string"
                        ),
                    });
                }
            }
            if !pipeline.extract.iter().any(|e| e.incremental.is_some()) {
                return Err(StartError::Invalid {
                    field: "backfill",
                    message: format!("pipeline `{name}` has no incremental extract to backfill"),
                });
            }
        }
        // Steps outside the selection are not part of the run at all.
        let steps: Vec<StepReport> = pipeline
            .graph
            .nodes
            .iter()
            .filter(|n| selected.contains(&n.name))
            .map(|n| StepReport {
                name: n.name.clone(),
                kind: n.kind.to_string(),
                layer: n.layer.to_string(),
                status: "pending".into(),
                rows_in: 0,
                rows_out: 0,
                rows_dropped: 0,
                duration_ms: 0,
                expectations: Vec::new(),
                error: None,
                attempts: 0,
                rows_rejected: 0,
            })
            .collect();
        let record = RunRecord {
            id: brigade_core::ids::new_id(),
            pipeline: pipeline.name.clone(),
            status: "queued".into(),
            trigger: trigger.name().into(),
            options: serde_json::to_value(options).unwrap_or_default(),
            created: brigade_core::time::now(),
            started: None,
            finished: None,
            error: None,
            steps: serde_json::to_value(&steps).unwrap_or_default(),
        };
        self.store.run_insert(&record).await?;
        let (events, _) = broadcast::channel(256);
        if let Ok(mut active) = self.active.lock() {
            active.insert(
                record.id.clone(),
                Active {
                    cancelled: Arc::new(AtomicBool::new(false)),
                    events,
                },
            );
        }
        Ok((pipeline, record))
    }

    async fn execute(
        self: &Arc<Self>,
        pipeline: Pipeline,
        mut record: RunRecord,
        options: RunOptions,
        observe: Option<Observer>,
    ) -> RunView {
        let lock = self
            .locks
            .lock()
            .map(|mut l| l.entry(pipeline.name.clone()).or_default().clone())
            .unwrap_or_default();
        let _serial = lock.lock().await;
        let (cancelled, events) = match self.active.lock().ok().and_then(|a| {
            a.get(&record.id)
                .map(|a| (a.cancelled.clone(), a.events.clone()))
        }) {
            Some(x) => x,
            None => (Arc::new(AtomicBool::new(false)), broadcast::channel(1).0),
        };
        if let Ok(true) = self.store.run_cancel_requested(&record.id).await {
            cancelled.store(true, Ordering::Relaxed);
        }
        let emit = move |e: Event| {
            if let Some(observe) = &observe {
                observe(&e);
            }
            let _ = events.send(e);
        };
        let targets: Vec<String> = pipeline
            .graph
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect();
        if let Err(e) = self.store.drop_staging(&targets).await {
            tracing::warn!(error = %e, "Could not drop staging tables of earlier runs.");
        }
        let mut steps: Vec<StepReport> =
            serde_json::from_value(record.steps.clone()).unwrap_or_default();
        record.status = "running".into();
        record.started = Some(brigade_core::time::now());
        self.save(&mut record, &steps).await;
        emit(Event::RunStarted {
            run_id: record.id.clone(),
            pipeline: pipeline.name.clone(),
            steps: steps.iter().map(|s| s.name.clone()).collect(),
        });
        let heartbeat = self.heartbeat(&record.id, &cancelled);
        let mut failure: Option<(String, PipelineError)> = None;
        let mut reached = options.from_step.is_none();
        for i in 0..steps.len() {
            let name = steps[i].name.clone();
            if !reached && options.from_step.as_deref() == Some(name.as_str()) {
                reached = true;
            }
            if !reached || failure.is_some() {
                steps[i].status = "skipped".into();
                continue;
            }
            if cancelled.load(Ordering::Relaxed) {
                steps[i].status = "cancelled".into();
                failure.get_or_insert((name, PipelineError::Cancelled));
                continue;
            }
            steps[i].status = "running".into();
            self.save(&mut record, &steps).await;
            match self
                .step(
                    &pipeline, &record.id, &options, &mut steps, i, &cancelled, &emit,
                )
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    steps[i].status = if matches!(e, PipelineError::Cancelled) {
                        "cancelled".into()
                    } else {
                        "failed".into()
                    };
                    steps[i].error = Some(e.to_string());
                    failure = Some((name, e));
                }
            }
            self.save(&mut record, &steps).await;
            emit(Event::StepFinished {
                run_id: record.id.clone(),
                step: steps[i].clone(),
            });
        }
        heartbeat.abort();
        record.finished = Some(brigade_core::time::now());
        match &failure {
            None => record.status = "succeeded".into(),
            Some((_, PipelineError::Cancelled)) => {
                record.status = "cancelled".into();
                record.error = Some("the run was cancelled".into());
            }
            Some((step, e)) => {
                record.status = "failed".into();
                record.error = Some(format!("step `{step}` failed: {e}"));
            }
        }
        self.save(&mut record, &steps).await;
        metrics::counter!("pipeline_runs_total", "pipeline" => pipeline.name.clone(), "status" => record.status.clone()).increment(1);
        emit(Event::RunFinished {
            run_id: record.id.clone(),
            status: record.status.clone(),
            error: record.error.clone(),
        });
        if let Ok(mut active) = self.active.lock() {
            active.remove(&record.id);
        }
        let view = RunView::from(record);
        crate::freshness::poke();
        if view.status != "cancelled" {
            crate::alerts::send(&pipeline, &crate::alerts::for_run(&view)).await;
        }
        view
    }

    #[allow(clippy::too_many_arguments)]
    async fn step(
        &self,
        pipeline: &Pipeline,
        run_id: &str,
        options: &RunOptions,
        steps: &mut [StepReport],
        i: usize,
        cancelled: &Arc<AtomicBool>,
        emit: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<(), PipelineError> {
        let name = steps[i].name.clone();
        let node = pipeline
            .node(&name)
            .ok_or_else(|| PipelineError::Extract(format!("no step `{name}`")))?;
        let backoff = pipeline.retry_backoff_ms.unwrap_or(1000);
        let mut attempt = 0;
        loop {
            attempt += 1;
            steps[i].status = "running".into();
            steps[i].attempts = attempt;
            steps[i].error = None;
            emit(Event::StepStarted {
                run_id: run_id.to_string(),
                step: name.clone(),
                attempt,
            });
            let snapshot = steps.to_vec();
            let steps_after = move |r: &StepReport| {
                let mut all = snapshot.clone();
                all[i] = r.clone();
                serde_json::to_value(all).unwrap_or_default()
            };
            let cx = steps::StepContext {
                store: &self.store,
                dir: &self.dir,
                pipeline,
                run_id,
                options,
                env: &self.env,
                cancelled,
                emit,
                steps_after: &steps_after,
            };
            let started = std::time::Instant::now();
            let mut report = steps[i].clone();
            let result = match node {
                Node::Extract(e) => steps::extract(&cx, e, &mut report).await,
                Node::Model(m) => steps::model(&cx, m, &mut report).await,
            };
            report.duration_ms = started.elapsed().as_millis() as u64;
            steps[i] = report;
            metrics::histogram!("pipeline_step_duration_seconds", "pipeline" => pipeline.name.clone(), "step" => name.clone())
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    metrics::counter!("pipeline_rows_total", "pipeline" => pipeline.name.clone(), "step" => name.clone())
                        .increment(steps[i].rows_out);
                    return Ok(());
                }
                Err(e)
                    if attempt <= pipeline.retries
                        && retryable(&e)
                        && !cancelled.load(Ordering::Relaxed) =>
                {
                    let delay = backoff.saturating_mul(1 << (attempt - 1).min(10));
                    tracing::warn!(pipeline = %pipeline.name, step = %name, attempt, error = %e, delay_ms = delay, "Step failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn save(&self, record: &mut RunRecord, steps: &[StepReport]) {
        record.steps = serde_json::to_value(steps).unwrap_or_default();
        if let Err(e) = self.store.run_update(record).await {
            tracing::error!(run = %record.id, error = %e, "Could not record the run's progress.");
        }
    }

    /// Keeps the run's heartbeat fresh (so other processes know it is alive) and picks up
    /// cancellation requests made through another process.
    fn heartbeat(&self, run_id: &str, cancelled: &Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let id = run_id.to_string();
        let cancelled = cancelled.clone();
        tokio::spawn(async move {
            let mut tick: u32 = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                tick += 1;
                if tick.is_multiple_of(8) {
                    let _ = store.run_heartbeat(&id).await;
                }
                if let Ok(true) = store.run_cancel_requested(&id).await {
                    cancelled.store(true, Ordering::Relaxed);
                }
            }
        })
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

/// Retrying helps with sources and connections, not with mistakes in SQL, files or data.
fn retryable(e: &PipelineError) -> bool {
    match e {
        PipelineError::Config(_) | PipelineError::Check(_) | PipelineError::Cancelled => false,
        PipelineError::Store(s) => matches!(
            s,
            brigade_store::StoreError::Unavailable(_) | brigade_store::StoreError::Internal(_)
        ),
        // Network trouble, timeouts, 5xx/429 after the extractor's own retries; not a bad row
        // or a missing file, which fail the same way every time.
        PipelineError::Extract(_) => e.is_transient(),
    }
}

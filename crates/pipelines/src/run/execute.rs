//! Executing a run: preparing it (lease, record, plan), walking its nodes in dependency
//! order with per-step retries and cancellation, and saving what happened. Split from
//! [`super`] so the runner's public surface (start, retry, cancel, drain) reads on its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brigade_store::warehouse::{RunRecord, RunStatus, StepStatus};
use tokio::sync::broadcast;

use super::{
    Active, Event, Observer, RunOptions, RunView, Runner, StartError, StepReport, Trigger,
    check_vars, liveness, steps,
};
use crate::spec::{Node, Pipeline};

use crate::error::PipelineError;

impl Runner {
    pub(super) async fn prepare(
        &self,
        name: &str,
        trigger: Trigger,
        options: &RunOptions,
    ) -> Result<(Pipeline, RunRecord), StartError> {
        // Files are read again at every run, so edits to models take effect without a
        // restart; parsing takes milliseconds.
        self.reload()?;
        // Runs of this pipeline whose process died are failed first, so their lease does not
        // hold this one up.
        if let Err(e) = self.sweep(Some(name)).await {
            tracing::warn!(error = %e, "Could not look for runs whose process stopped.");
        }
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
        check_vars(&pipeline, &options.vars)?;
        // Before the first step: a node named like a collection, a system table or another
        // pipeline's table would replace it (and cascade through its foreign keys).
        let targets: Vec<String> = pipeline
            .graph
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect();
        let taken = self
            .store
            .warehouse()
            .table_owners(&pipeline.name, &targets)
            .await?;
        if !taken.is_empty() {
            return Err(StartError::TablesTaken(taken));
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
                status: StepStatus::Pending,
                rows_in: 0,
                rows_out: 0,
                rows_dropped: 0,
                duration_ms: 0,
                expectations: Vec::new(),
                error: None,
                attempts: 0,
                rows_rejected: 0,
                rows_skipped: Default::default(),
                notes: Vec::new(),
            })
            .collect();
        let record = RunRecord {
            id: brigade_core::ids::new_id(),
            pipeline: pipeline.name.clone(),
            status: RunStatus::Queued,
            trigger: trigger.name().into(),
            options: serde_json::to_value(options).unwrap_or_default(),
            created: brigade_core::time::now(),
            started: None,
            finished: None,
            error: None,
            steps: serde_json::to_value(&steps).unwrap_or_default(),
        };
        self.store.runs().insert(&record).await?;
        self.store
            .runs()
            .set_holder(&record.id, &self.holder.stored())
            .await?;
        let (events, _) = broadcast::channel(256);
        let stopping = self.stopping.lock().ok().and_then(|s| s.clone());
        if let Ok(mut active) = self.active.lock() {
            active.insert(
                record.id.clone(),
                Active {
                    cancelled: Arc::new(AtomicBool::new(stopping.is_some())),
                    reason: Arc::new(Mutex::new(stopping)),
                    events,
                },
            );
        }
        Ok((pipeline, record))
    }

    pub(super) async fn execute(
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
        let (cancelled, reason, events) = match self.active.lock().ok().and_then(|a| {
            a.get(&record.id)
                .map(|a| (a.cancelled.clone(), a.reason.clone(), a.events.clone()))
        }) {
            Some(x) => x,
            None => (
                Arc::new(AtomicBool::new(false)),
                Arc::default(),
                broadcast::channel(1).0,
            ),
        };
        let leased = Arc::new(AtomicBool::new(false));
        let heartbeat = self.heartbeat(&record.id, &cancelled, &reason, &leased);
        if let Ok(true) = self.store.runs().cancel_requested(&record.id).await {
            cancelled.store(true, Ordering::Relaxed);
        }
        let emit: Arc<dyn Fn(Event) + Send + Sync> = Arc::new(move |e: Event| {
            if let Some(observe) = &observe {
                observe(&e);
            }
            let _ = events.send(e);
        });
        let _serial = tokio::select! {
            serial = lock.lock() => Some(serial),
            () = until(&cancelled) => None,
        };
        if !cancelled.load(Ordering::Relaxed) {
            self.take_lease(&pipeline.name, &record.id, &cancelled, &*emit)
                .await;
            leased.store(!cancelled.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let targets: Vec<String> = pipeline
            .graph
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect();
        // Only the lease holder may: a run cancelled while it waited would drop the staging
        // tables of the run it waited for.
        if leased.load(Ordering::Relaxed)
            && let Err(e) = self.store.warehouse().drop_staging(&targets).await
        {
            tracing::warn!(error = %e, "Could not drop staging tables of earlier runs.");
        }
        let mut steps: Vec<StepReport> =
            serde_json::from_value(record.steps.clone()).unwrap_or_default();
        record.status = RunStatus::Running;
        record.started = Some(brigade_core::time::now());
        let began = std::time::Instant::now();
        self.save(&mut record, &steps).await;
        if record.trigger != Trigger::Cli.name() {
            tracing::info!(run = %record.id, pipeline = %pipeline.name, trigger = %record.trigger, steps = steps.len(), "Pipeline run started.");
        }
        emit(Event::RunStarted {
            run_id: record.id.clone(),
            pipeline: pipeline.name.clone(),
            steps: steps.iter().map(|s| s.name.clone()).collect(),
        });
        let threads = self.threads(&pipeline);
        // The steps each step reads, among this run's steps (a selection may leave some
        // out: their tables are read as they are).
        let deps: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                pipeline
                    .graph
                    .nodes
                    .iter()
                    .find(|n| n.name == s.name)
                    .map(|n| {
                        n.depends_on
                            .iter()
                            .filter_map(|d| steps.iter().position(|x| &x.name == d))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        // Which steps this run executes: all, or those from `from_step` on.
        let first = options
            .from_step
            .as_deref()
            .and_then(|f| steps.iter().position(|s| s.name == f))
            .unwrap_or(0);
        let to_run: Vec<bool> = (0..steps.len()).map(|i| i >= first).collect();
        for (i, step) in steps.iter_mut().enumerate() {
            if !to_run[i] {
                step.status = StepStatus::Skipped;
            }
        }
        let current = Arc::new(Mutex::new(steps.clone()));
        let pipeline = Arc::new(pipeline);
        let options = Arc::new(options);
        let mut failure: Option<(String, PipelineError)> = None;
        let mut started = vec![false; steps.len()];
        let mut done = vec![false; steps.len()];
        let mut in_flight = futures::stream::FuturesUnordered::new();
        loop {
            // Start every step whose inputs are built, up to `threads` at a time, in
            // graph order; after a failure or a cancel, start nothing more.
            while failure.is_none() && !cancelled.load(Ordering::Relaxed) {
                let ready = (0..steps.len()).find(|&i| {
                    to_run[i] && !started[i] && deps[i].iter().all(|&d| !to_run[d] || done[d])
                });
                let Some(i) = ready.filter(|_| in_flight.len() < threads) else {
                    break;
                };
                started[i] = true;
                steps[i].status = StepStatus::Running;
                if let Ok(mut c) = current.lock() {
                    c[i] = steps[i].clone();
                }
                self.save(&mut record, &steps).await;
                // Each step is a task of its own, so steps progress while this loop waits
                // for the store.
                let runner = self.clone();
                let (current, pipeline, options) =
                    (current.clone(), pipeline.clone(), options.clone());
                let (cancelled, emit) = (cancelled.clone(), emit.clone());
                let run_id = record.id.clone();
                let task = tokio::spawn(async move {
                    // Closed never: the semaphore lives as long as the runner.
                    let _slot = runner.step_slots.clone().acquire_owned().await.ok();
                    runner
                        .step(
                            &pipeline, &run_id, &options, &current, i, &cancelled, &*emit,
                        )
                        .await
                });
                in_flight.push(async move { (i, task.await) });
            }
            let Some((i, joined)) = futures::StreamExt::next(&mut in_flight).await else {
                break;
            };
            let (report, result) = joined.unwrap_or_else(|e| {
                // The step's task panicked: the step failed, the run goes on to its end.
                let error = PipelineError::Extract(format!("the step stopped unexpectedly: {e}"));
                (steps[i].clone(), Err(error))
            });
            steps[i] = report;
            match result {
                Ok(()) => done[i] = true,
                Err(e) => {
                    steps[i].status = if matches!(e, PipelineError::Cancelled) {
                        StepStatus::Cancelled
                    } else {
                        StepStatus::Failed
                    };
                    steps[i].error = Some(e.to_string());
                    failure.get_or_insert((steps[i].name.clone(), e));
                }
            }
            if let Ok(mut c) = current.lock() {
                c[i] = steps[i].clone();
            }
            self.save(&mut record, &steps).await;
            emit(Event::StepFinished {
                run_id: record.id.clone(),
                step: Box::new(steps[i].clone()),
            });
        }
        drop(in_flight);
        // Steps that never started: skipped after a failure, cancelled after a cancel.
        let was_cancelled = cancelled.load(Ordering::Relaxed);
        for i in (0..steps.len()).filter(|&i| to_run[i] && !started[i]) {
            if failure.is_none() && was_cancelled {
                failure = Some((steps[i].name.clone(), PipelineError::Cancelled));
            }
            steps[i].status =
                if was_cancelled && matches!(failure, Some((_, PipelineError::Cancelled))) {
                    StepStatus::Cancelled
                } else {
                    StepStatus::Skipped
                };
        }
        heartbeat.abort();
        record.finished = Some(brigade_core::time::now());
        match &failure {
            None => record.status = RunStatus::Succeeded,
            Some((_, PipelineError::Cancelled)) => {
                record.status = RunStatus::Cancelled;
                record.error = Some(
                    reason
                        .lock()
                        .ok()
                        .and_then(|r| r.clone())
                        .unwrap_or_else(|| "the run was cancelled".into()),
                );
            }
            Some((step, e)) => {
                record.status = RunStatus::Failed;
                record.error = Some(format!("step `{step}` failed: {e}"));
            }
        }
        self.save(&mut record, &steps).await;
        log_outcome(&record, &steps, began.elapsed());
        if leased.load(Ordering::Relaxed)
            && let Err(e) = self
                .store
                .runs()
                .lease_release(&pipeline.name, &record.id)
                .await
        {
            // It goes stale and is taken over after `stale_after`.
            tracing::warn!(run = %record.id, error = %e, "Could not release the pipeline's lease.");
        }
        metrics::counter!("pipeline_runs_total", "pipeline" => pipeline.name.clone(), "status" => record.status.as_str()).increment(1);
        emit(Event::RunFinished {
            run_id: record.id.clone(),
            status: record.status,
            error: record.error.clone(),
        });
        if let Ok(mut active) = self.active.lock() {
            active.remove(&record.id);
        }
        let view = RunView::from(record);
        crate::freshness::poke();
        if view.status != RunStatus::Cancelled {
            crate::alerts::send(&pipeline, &crate::alerts::for_run(&view)).await;
        }
        view
    }

    /// Runs step `i` with its retries; returns its report and outcome. `current` holds
    /// every step's latest report: the record committed with the step's data is built
    /// from it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn step(
        &self,
        pipeline: &Pipeline,
        run_id: &str,
        options: &RunOptions,
        current: &Mutex<Vec<StepReport>>,
        i: usize,
        cancelled: &Arc<AtomicBool>,
        emit: &(dyn Fn(Event) + Send + Sync),
    ) -> (StepReport, Result<(), PipelineError>) {
        let mut report = current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)[i]
            .clone();
        let name = report.name.clone();
        let Some(node) = pipeline.node(&name) else {
            return (
                report,
                Err(PipelineError::Extract(format!("no step `{name}`"))),
            );
        };
        let backoff = pipeline.retry_backoff_ms.unwrap_or(1000);
        let mut attempt = 0;
        loop {
            attempt += 1;
            report.status = StepStatus::Running;
            report.attempts = attempt;
            report.error = None;
            emit(Event::StepStarted {
                run_id: run_id.to_string(),
                step: name.clone(),
                attempt,
            });
            // The run's steps as they stand when this step commits, with this one done.
            let steps_after = |r: &StepReport| {
                let mut all = current.lock().map(|c| c.clone()).unwrap_or_default();
                if let Some(slot) = all.get_mut(i) {
                    *slot = r.clone();
                }
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
            let result = match node {
                Node::Extract(e) => steps::extract(&cx, e, &mut report).await,
                Node::Model(m) => steps::model(&cx, m, &mut report).await,
            };
            report.duration_ms = started.elapsed().as_millis() as u64;
            metrics::histogram!("pipeline_step_duration_seconds", "pipeline" => pipeline.name.clone(), "step" => name.clone())
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    metrics::counter!("pipeline_rows_total", "pipeline" => pipeline.name.clone(), "step" => name.clone())
                        .increment(report.rows_out);
                    return (report, Ok(()));
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
                Err(e) => return (report, Err(e)),
            }
        }
    }

    /// How many steps of `pipeline` run at once: its `threads` (default 4) on PostgreSQL,
    /// at most half the connection pool so the API always finds a connection; one on
    /// SQLite, whose single writer would serialise them anyway.
    pub(super) fn threads(&self, pipeline: &Pipeline) -> usize {
        match self.store.dialect() {
            brigade_store::Dialect::Sqlite => 1,
            brigade_store::Dialect::Postgres => {
                let wanted = pipeline.threads.unwrap_or(4).max(1);
                match self.store.pool_size() {
                    0 => 1,
                    pool => wanted.min((pool / 2).max(1)),
                }
            }
        }
    }

    pub(super) async fn save(&self, record: &mut RunRecord, steps: &[StepReport]) {
        record.steps = serde_json::to_value(steps).unwrap_or_default();
        if let Err(e) = self.store.runs().update(record).await {
            tracing::error!(run = %record.id, error = %e, "Could not record the run's progress.");
        }
    }

    /// Waits until run `run_id` holds the lease of `pipeline` (or is cancelled), sweeping
    /// runs whose process died meanwhile. Announces each run it waits for.
    pub(super) async fn take_lease(
        &self,
        pipeline: &str,
        run_id: &str,
        cancelled: &Arc<AtomicBool>,
        emit: &(dyn Fn(Event) + Send + Sync),
    ) {
        let mut waiting_for: Option<String> = None;
        loop {
            match self
                .store
                .runs()
                .lease_take(pipeline, run_id, &self.holder.stored())
                .await
            {
                Ok(brigade_store::warehouse::LeaseClaim::Taken) => return,
                Ok(brigade_store::warehouse::LeaseClaim::Held(lease)) => {
                    // An empty holder: the lease was freed between two statements.
                    if !lease.run_id.is_empty()
                        && waiting_for.as_deref() != Some(lease.run_id.as_str())
                    {
                        let holder = liveness::describe(&lease.holder);
                        tracing::info!(run = %run_id, pipeline, waiting_for = %lease.run_id, holder = %holder, "Waiting for another run of the pipeline to finish.");
                        emit(Event::Queued {
                            run_id: run_id.to_string(),
                            pipeline: pipeline.to_string(),
                            waiting_for: lease.run_id.clone(),
                            holder,
                        });
                        waiting_for = Some(lease.run_id);
                    }
                }
                Err(e) => {
                    tracing::warn!(run = %run_id, error = %e, "Could not take the pipeline's lease; trying again.");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.tick()) => {}
                () = until(cancelled) => return,
            }
            if let Err(e) = self.sweep(Some(pipeline)).await {
                tracing::warn!(error = %e, "Could not look for runs whose process stopped.");
            }
        }
    }

    /// Keeps the run's heartbeat (and its lease's, once `leased`) fresh so other processes
    /// know it is alive, and picks up cancellation requests made through another process.
    /// A run that finds itself no longer queued or running, or no longer holding its lease,
    /// was taken for dead by another process: it stops without publishing.
    pub(super) fn heartbeat(
        &self,
        run_id: &str,
        cancelled: &Arc<AtomicBool>,
        reason: &Arc<Mutex<Option<String>>>,
        leased: &Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let id = run_id.to_string();
        let cancelled = cancelled.clone();
        let reason = reason.clone();
        let leased = leased.clone();
        let tick = self.tick();
        let stale_after = self.stale_after;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                if let Ok(false) = store.runs().beat(&id, leased.load(Ordering::Relaxed)).await {
                    if let Ok(mut r) = reason.lock() {
                        r.get_or_insert_with(|| {
                            format!(
                                "the run was stopped: its heartbeat was older than stale_after ({}s) and another process took it for dead",
                                stale_after.as_secs_f64()
                            )
                        });
                    }
                    cancelled.store(true, Ordering::Relaxed);
                }
                if let Ok(true) = store.runs().cancel_requested(&id).await {
                    cancelled.store(true, Ordering::Relaxed);
                }
            }
        })
    }
}

/// Resolves once `flag` is set (polled: cancellation is rare and a few ms late is fine).
async fn until(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Retrying helps with sources and connections, not with mistakes in SQL, files or data.
fn retryable(e: &PipelineError) -> bool {
    match e {
        PipelineError::Config(_) | PipelineError::Check(_) | PipelineError::Cancelled => false,
        PipelineError::Store(s) => matches!(
            s,
            brigade_store::StoreError::Unavailable { .. }
                | brigade_store::StoreError::Internal { .. }
        ),
        // Network trouble, timeouts, 5xx/429 after the extractor's own retries; not a bad row
        // or a missing file, which fail the same way every time.
        PipelineError::Transient(_) => true,
        PipelineError::Extract(_) => false,
    }
}

/// The server log's line for a finished run: what it wrote and how long it took, or why it
/// stopped and how to run it again. The command line prints its own summary instead.
fn log_outcome(record: &RunRecord, steps: &[StepReport], took: std::time::Duration) {
    if record.trigger == Trigger::Cli.name() {
        return;
    }
    let rows: u64 = steps
        .iter()
        .filter(|s| s.status == StepStatus::Succeeded)
        .map(|s| s.rows_out)
        .sum();
    let seconds = format!("{:.2}", took.as_secs_f64());
    let error = record.error.as_deref().unwrap_or_default();
    match record.status {
        RunStatus::Succeeded => {
            tracing::info!(run = %record.id, pipeline = %record.pipeline, rows, seconds, "Pipeline run succeeded.");
        }
        RunStatus::Cancelled => {
            tracing::warn!(run = %record.id, pipeline = %record.pipeline, reason = %error, seconds, "Pipeline run cancelled.");
        }
        _ => {
            tracing::error!(
                run = %record.id,
                pipeline = %record.pipeline,
                error = %error,
                seconds,
                retry = %format!("brigade pipeline run {} (or POST /api/pipelines/{}/runs)", record.pipeline, record.pipeline),
                "Pipeline run failed."
            );
        }
    }
}

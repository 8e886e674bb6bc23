//! The two kinds of steps: an extract (source → staging → bronze table, with its cursor)
//! and a model (rendered SQL → staging → expectations → table or view). Each publishes in
//! one store transaction that also records the step, so a step is done exactly when its
//! data is.

use std::sync::Arc;
use std::time::Instant;

use brigade_core::value::Value;
use brigade_store::Store;
use brigade_store::warehouse::{
    Expose, Finish, Materialize, ModelPlan, RejectedRows, StateUpdate, WriteMode,
};

use super::report::{Event, ExpectationReport, RunOptions, StepReport};
use crate::datatest;
use crate::error::PipelineError;
use crate::extract::{self, Message};
use crate::spec::{Contract, Extract, Materialized, Model, Pipeline, Write};
use crate::template;

/// What a step needs from its run.
pub(super) struct StepContext<'a> {
    pub store: &'a Arc<Store>,
    pub dir: &'a std::path::Path,
    pub pipeline: &'a Pipeline,
    pub run_id: &'a str,
    pub options: &'a RunOptions,
    pub env: &'a crate::Env,
    pub cancelled: &'a Arc<std::sync::atomic::AtomicBool>,
    pub emit: &'a (dyn Fn(Event) + Send + Sync),
    /// The run's steps with this one marked succeeded, filled in by the step before it
    /// publishes, so the record commits with the data.
    pub steps_after: &'a (dyn Fn(&StepReport) -> serde_json::Value + Send + Sync),
}

/// How an extract writes its table.
pub(super) fn write_mode(e: &Extract, full_refresh: bool) -> WriteMode {
    if full_refresh {
        return WriteMode::Replace;
    }
    match e.write {
        Some(Write::Append) => WriteMode::Append,
        Some(Write::Replace) => WriteMode::Replace,
        Some(Write::Merge) => WriteMode::Merge(e.primary_key.clone()),
        None if !e.primary_key.is_empty() => WriteMode::Merge(e.primary_key.clone()),
        // Incremental loads add what is new; a keyless full read is a snapshot.
        None if e.incremental.is_some() => WriteMode::Append,
        None => WriteMode::Replace,
    }
}

/// Loads one extract into its bronze table.
pub(super) async fn extract(
    cx: &StepContext<'_>,
    e: &Extract,
    report: &mut StepReport,
) -> Result<(), PipelineError> {
    let backfill = cx
        .options
        .backfill
        .as_ref()
        .filter(|_| e.incremental.is_some())
        .map(|b| (b.from.clone(), b.to.clone()));
    let since = match (&e.incremental, cx.options.full_refresh, &backfill) {
        (Some(_), false, None) => cx.store.pipeline_state(&cx.pipeline.name, &e.name).await?,
        _ => None,
    };
    let mut rx = extract::start(extract::Context {
        dir: cx.dir.to_path_buf(),
        spec: e.clone(),
        since,
        range: backfill.clone(),
        env: cx.env.clone(),
        cancelled: cx.cancelled.clone(),
    });
    let mode = match (
        &backfill,
        &e.incremental,
        write_mode(e, cx.options.full_refresh),
    ) {
        (Some((from, to)), Some(inc), WriteMode::Append | WriteMode::Replace) => {
            WriteMode::ReplaceRange {
                column: crate::extract::normalize(&inc.cursor),
                from: crate::extract::infer::from_json(from).1,
                to: crate::extract::infer::from_json(to).1,
            }
        }
        (_, _, mode) => mode,
    };
    let loaded_at = brigade_core::time::now();
    let started = Instant::now();
    let mut staging = None;
    let mut width = 0;
    let mut rejected: Vec<(String, i64, String, String)> = Vec::new();
    let mut last_progress = Instant::now();
    // The first batch is recorded at once (a run visibly loads), then every second.
    let mut last_saved: Option<Instant> = None;
    let result: Result<Option<serde_json::Value>, PipelineError> = async {
        while let Some(message) = rx.recv().await {
            match message? {
                Message::Columns(columns) => match &mut staging {
                    None => {
                        width = columns.len();
                        staging = Some(
                            cx.store
                                .begin_load(&e.name, &columns, cx.run_id, &mode)
                                .await?,
                        );
                    }
                    Some(s) => {
                        let new = &columns[width.min(columns.len())..];
                        s.add_columns(new).await?;
                        width = columns.len();
                    }
                },
                Message::Rows { source, mut rows } => {
                    let Some(s) = staging.as_mut() else {
                        return Err(PipelineError::Extract(format!(
                            "extract `{}`: rows before columns",
                            e.name
                        )));
                    };
                    for row in &mut rows {
                        row.resize(width, Value::Null);
                    }
                    s.write(rows, [&loaded_at, cx.run_id, &source]).await?;
                    report.rows_in = s.rows();
                    report.rows_out = s.rows();
                    if last_saved.is_none_or(|t| t.elapsed().as_secs() >= 1) {
                        // `GET /api/runs/{id}` shows the rows loaded so far.
                        last_saved = Some(Instant::now());
                        let mut now = report.clone();
                        now.status = "running".into();
                        let _ = cx
                            .store
                            .run_set_steps(cx.run_id, &(cx.steps_after)(&now))
                            .await;
                    }
                    if last_progress.elapsed().as_millis() >= 250 {
                        last_progress = Instant::now();
                        (cx.emit)(Event::Progress {
                            run_id: cx.run_id.to_string(),
                            step: e.name.clone(),
                            rows: s.rows(),
                            rows_per_s: s.rows() as f64 / started.elapsed().as_secs_f64().max(1e-6),
                        });
                    }
                }
                Message::Rejected(rows) => {
                    report.rows_rejected += rows.len() as u64;
                    rejected.extend(rows.into_iter().map(|r| {
                        (
                            r.source,
                            i64::try_from(r.line).unwrap_or(i64::MAX),
                            r.error,
                            r.raw,
                        )
                    }));
                }
                Message::Done { cursor } => return Ok(cursor),
            }
            if cx.cancelled.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(PipelineError::Cancelled);
            }
        }
        Err(PipelineError::Extract(format!(
            "extract `{}` stopped unexpectedly",
            e.name
        )))
    }
    .await;
    let cursor = match result {
        Ok(cursor) => cursor,
        Err(err) => {
            drop(rx);
            if let Some(s) = staging {
                s.discard().await;
            }
            return Err(err);
        }
    };
    let Some(staging) = staging else {
        return Err(PipelineError::Extract(format!(
            "extract `{}` sent no columns",
            e.name
        )));
    };
    let state = match (&e.incremental, cursor) {
        // A backfill reloads the past; the cursor keeps pointing at the newest load.
        (Some(_), Some(_)) if backfill.is_some() => None,
        (Some(_), Some(cursor)) => Some(StateUpdate {
            pipeline: cx.pipeline.name.clone(),
            node: e.name.clone(),
            cursor,
        }),
        _ => None,
    };
    report.status = "succeeded".into();
    report.duration_ms = started.elapsed().as_millis() as u64;
    let finish = Finish {
        rejected: (!rejected.is_empty()).then(|| RejectedRows {
            table: format!("{}__rejected", e.name),
            run_id: cx.run_id.to_string(),
            rows: rejected,
        }),
        state,
        run_steps: Some((cx.run_id.to_string(), (cx.steps_after)(report))),
    };
    let tests = e
        .expect
        .iter()
        .map(datatest::data_test)
        .collect::<Result<Vec<_>, _>>()?;
    match staging.publish(&mode, finish, &tests).await {
        Ok(published) => {
            report.expectations = published
                .tests
                .iter()
                .map(ExpectationReport::from)
                .collect();
            match published.failure {
                Some(failure) => {
                    report.status = "running".into();
                    Err(PipelineError::Check(format!(
                        "extract `{}`: {failure}; nothing was loaded",
                        e.name
                    )))
                }
                None => Ok(()),
            }
        }
        Err(err) => {
            report.status = "running".into();
            Err(err.into())
        }
    }
}

/// Builds one model.
pub(super) async fn model(
    cx: &StepContext<'_>,
    m: &Model,
    report: &mut StepReport,
) -> Result<(), PipelineError> {
    let started = Instant::now();
    let exists = cx.store.table_columns(&m.name).await?.is_some();
    let names: Vec<String> = cx
        .pipeline
        .graph
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let env = cx.env.clone();
    let lookup = move |name: &str| env(name);
    let rendered = template::render(
        &m.text,
        &template::Context {
            nodes: &names,
            this: &m.name,
            incremental: m.materialized == Materialized::Incremental
                && exists
                && !cx.options.full_refresh,
            env: &lookup,
            macros: &cx.pipeline.macros,
        },
    )
    .map_err(|e| {
        let file = e.file.as_deref().unwrap_or(&m.origin);
        PipelineError::Config(crate::ConfigError::new(file, e.line, "", e.message))
    })?;
    let plan = ModelPlan {
        pipeline: cx.pipeline.name.clone(),
        run_id: cx.run_id.to_string(),
        target: m.name.clone(),
        sql: rendered.sql,
        materialize: match m.materialized {
            Materialized::Table => Materialize::Table,
            Materialized::View => Materialize::View,
            Materialized::Incremental => Materialize::Incremental {
                unique_key: m
                    .unique_key
                    .as_ref()
                    .map(|k| k.columns())
                    .unwrap_or_default(),
            },
        },
        full_refresh: cx.options.full_refresh,
        expectations: m
            .expect
            .iter()
            .filter_map(|x| {
                datatest::row_check(x)
                    .map(|check| check.map(|c| (x.name.clone(), c, datatest::action(x))))
                    .transpose()
            })
            .collect::<Result<_, _>>()?,
        tests: datatest::table_tests(&m.expect)?,
        freeze: m.contract == Contract::Freeze,
        expose: m.expose.then(|| Expose {
            pipeline: cx.pipeline.name.clone(),
            key: m
                .unique_key
                .as_ref()
                .map(|k| k.columns())
                .unwrap_or_default(),
            rule: m.list_rule.clone(),
        }),
    };
    // The step record that commits with the table says it succeeded; the runner stores the
    // counts right after.
    let mut optimistic = report.clone();
    optimistic.status = "succeeded".into();
    let steps_after = (cx.steps_after)(&optimistic);
    let outcome = cx
        .store
        .materialize(
            &plan,
            Finish {
                run_steps: Some((cx.run_id.to_string(), steps_after)),
                ..Finish::default()
            },
        )
        .await
        .map_err(|e| match e {
            brigade_store::StoreError::Unprocessable(message) => PipelineError::Check(format!(
                "model `{}` ({}): the database refused its SQL: {message}",
                m.name, m.origin
            )),
            other => other.into(),
        })?;
    report.rows_in = outcome.rows_in;
    report.rows_out = outcome.rows_out;
    report.rows_dropped = outcome.rows_dropped;
    report.expectations = outcome
        .expectations
        .iter()
        .map(ExpectationReport::from)
        .chain(outcome.tests.iter().map(ExpectationReport::from))
        .collect();
    report.duration_ms = started.elapsed().as_millis() as u64;
    for x in &outcome.expectations {
        if x.failing_rows > 0 {
            metrics::counter!(
                "expectation_failures_total",
                "pipeline" => cx.pipeline.name.clone(),
                "model" => m.name.clone(),
                "expectation" => x.name.clone(),
                "status" => x.status,
            )
            .increment(1);
        }
    }
    if let Some(failure) = outcome.failure {
        return Err(PipelineError::Check(failure));
    }
    report.status = "succeeded".into();
    Ok(())
}

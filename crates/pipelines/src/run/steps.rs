//! The two kinds of steps: an extract (source → staging → bronze table, with its cursor)
//! and a model (rendered SQL → staging → expectations → table or view). Each publishes in
//! one store transaction that also records the step, so a step is done exactly when its
//! data is.

use std::sync::Arc;
use std::time::Instant;

use brigade_core::value::Value;
use brigade_store::Store;
use brigade_store::warehouse::{
    Expose, Finish, Materialize, ModelPlan, RejectedRows, SnapshotSpec, StateUpdate, StepStatus,
    WriteMode,
};

use super::report::{Event, ExpectationReport, RunOptions, StepReport};
use crate::datatest;
use crate::error::PipelineError;
use crate::extract::{self, Message};
use crate::spec::{Contract, Extract, HardDeletes, Materialized, Model, Pipeline, Write};
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
    // A rebuild of a keyed table keeps one row per key, like the merges that built it.
    let replace = if e.primary_key.is_empty() {
        WriteMode::Replace
    } else {
        WriteMode::Rebuild(e.primary_key.clone())
    };
    if full_refresh {
        return replace;
    }
    match e.write {
        Some(Write::Append) => WriteMode::Append,
        Some(Write::Replace) => replace,
        Some(Write::Merge) => WriteMode::Merge(e.primary_key.clone()),
        None if !e.primary_key.is_empty() => WriteMode::Merge(e.primary_key.clone()),
        // Incremental loads add what is new; a keyless full read is a snapshot.
        None if e.incremental.is_some() => WriteMode::Append,
        None => replace,
    }
}

/// `env` that also resolves `${var.NAME}` to the run's vars.
fn with_vars(
    env: &crate::Env,
    vars: std::collections::BTreeMap<String, serde_json::Value>,
) -> crate::Env {
    let env = env.clone();
    Arc::new(move |name: &str| match name.strip_prefix("var.") {
        Some(var) => vars.get(var).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        None => env(name),
    })
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
        (Some(_), false, None) => {
            cx.store
                .runs()
                .pipeline_state(&cx.pipeline.name, &e.name)
                .await?
        }
        _ => None,
    };
    let boundary = match since {
        Some(_) => {
            cx.store
                .runs()
                .pipeline_boundary(&cx.pipeline.name, &e.name)
                .await?
        }
        None => None,
    };
    let existing = cx.store.warehouse().table_columns(&e.name).await?;
    let mut rx = extract::start(extract::Context {
        dir: cx.dir.to_path_buf(),
        spec: e.clone(),
        since,
        range: backfill.clone(),
        boundary,
        existing: existing.clone().filter(|_| !cx.options.full_refresh),
        env: with_vars(cx.env, cx.options.effective_vars(cx.pipeline)),
        cancelled: cx.cancelled.clone(),
    });
    let mode = match (
        &backfill,
        &e.incremental,
        write_mode(e, cx.options.full_refresh),
    ) {
        (
            Some((from, to)),
            Some(inc),
            WriteMode::Append | WriteMode::Replace | WriteMode::Rebuild(_),
        ) => WriteMode::ReplaceRange {
            column: crate::extract::normalize(&inc.cursor),
            from: crate::extract::infer::from_json(from).1,
            to: crate::extract::infer::from_json(to).1,
        },
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
    let result: Result<(Option<serde_json::Value>, extract::Summary), PipelineError> = async {
        while let Some(message) = rx.recv().await {
            match message? {
                Message::Columns(columns) => match &mut staging {
                    None => {
                        width = columns.len();
                        staging = Some(
                            cx.store
                                .warehouse()
                                .begin_load(&cx.pipeline.name, &e.name, &columns, cx.run_id, &mode)
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
                        now.status = StepStatus::Running;
                        let _ = cx
                            .store
                            .runs()
                            .set_steps(cx.run_id, &(cx.steps_after)(&now))
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
                Message::Done { cursor, summary } => return Ok((cursor, summary)),
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
    let (cursor, summary) = match result {
        Ok(done) => done,
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
    report.rows_skipped = summary.skipped;
    report.notes = summary.notes;
    if summary.skipped.null_cursor > 0
        && let Some(inc) = &e.incremental
    {
        let n = summary.skipped.null_cursor;
        let rows = if n == 1 { "1 row has" } else { "rows have" };
        let rows = if n == 1 {
            rows.to_string()
        } else {
            format!("{n} {rows}")
        };
        report.notes.push(format!(
            "{rows} no value in the cursor column `{}` and {} not loaded (an incremental load cannot place it)",
            inc.cursor,
            if n == 1 { "was" } else { "were" }
        ));
    }
    let state = match (&e.incremental, cursor) {
        // A backfill reloads the past; the cursor keeps pointing at the newest load.
        (Some(_), Some(_)) if backfill.is_some() => None,
        (Some(_), Some(cursor)) => Some(StateUpdate {
            pipeline: cx.pipeline.name.clone(),
            node: e.name.clone(),
            cursor,
            boundary: summary.boundary.unwrap_or_default(),
        }),
        _ => None,
    };
    // An empty source changes no table: with no columns there is nothing to write (an
    // existing table stays untouched), and no rows do not make a new table (as in dlt,
    // tables come from data).
    let untouched =
        width == 0 || (staging.rows() == 0 && existing.is_none() && rejected.is_empty());
    if untouched && existing.is_none() {
        report.notes.push(format!(
            "table `{}` was not created: the source had no rows",
            e.name
        ));
    }
    report.status = StepStatus::Succeeded;
    report.duration_ms = started.elapsed().as_millis() as u64;
    let finish = Finish {
        rejected: (!rejected.is_empty()).then(|| RejectedRows {
            table: format!("{}__rejected", e.name),
            run_id: cx.run_id.to_string(),
            rows: rejected,
        }),
        state,
        run_steps: Some((cx.run_id.to_string(), (cx.steps_after)(report))),
        leased_by: Some(cx.run_id.to_string()),
    };
    let tests = e
        .expect
        .iter()
        .map(datatest::data_test)
        .collect::<Result<Vec<_>, _>>()?;
    if untouched {
        staging.discard().await;
        return match cx.store.runs().pipeline_finish(finish).await {
            Ok(()) => Ok(()),
            Err(err) => {
                report.status = StepStatus::Running;
                Err(err.into())
            }
        };
    }
    match staging.publish(&mode, finish, &tests).await {
        Ok(published) => {
            // Rows that repeated a key are not in the table: count what is.
            report.rows_dropped = report.rows_in.saturating_sub(published.rows);
            report.rows_out = published.rows;
            report.expectations = published
                .tests
                .iter()
                .map(ExpectationReport::from)
                .collect();
            match published.failure {
                Some(failure) => {
                    report.status = StepStatus::Running;
                    Err(PipelineError::Check(format!(
                        "extract `{}`: {failure}; nothing was loaded",
                        e.name
                    )))
                }
                None => Ok(()),
            }
        }
        Err(err) => {
            report.status = StepStatus::Running;
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
    let exists = cx.store.warehouse().table_columns(&m.name).await?.is_some();
    let names: Vec<String> = cx
        .pipeline
        .graph
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let env = cx.env.clone();
    let lookup = move |name: &str| env(name);
    let vars = cx.options.effective_vars(cx.pipeline);
    let rendered = template::render(
        &m.text,
        &template::Context {
            nodes: &names,
            this: &m.name,
            incremental: m.materialized == Materialized::Incremental
                && exists
                && !cx.options.full_refresh,
            env: &lookup,
            vars: &vars,
            macros: &cx.pipeline.macros,
        },
    )
    .map_err(|e| {
        let file = e.file.as_deref().unwrap_or(&m.origin);
        PipelineError::Config(crate::ConfigError::new(file, e.line, "", e.message))
    })?;
    // The graph was built from the defaults of `[vars]` and `env_var`: a ref only this run's
    // values reach was not waited for (and may be mid-build in a parallel step).
    let known: Vec<&String> = cx
        .pipeline
        .graph
        .nodes
        .iter()
        .find(|n| n.name == m.name)
        .map(|n| n.depends_on.iter().collect())
        .unwrap_or_default();
    if let Some(unplanned) = rendered.refs.iter().find(|r| !known.contains(r)) {
        return Err(PipelineError::Config(crate::ConfigError::new(
            &m.origin,
            0,
            "",
            format!(
                "model `{}` refers to `{unplanned}` only with this run's vars or environment, so the run did not build it first; make the ref unconditional (e.g. outside the {{% if %}})",
                m.name
            ),
        )));
    }
    // Templates can emit text the file check could not see: check what will run.
    let end = crate::statement::single_query(&rendered.sql, false).map_err(|e| {
        PipelineError::Config(crate::ConfigError::new(
            &m.origin,
            0,
            "",
            format!(
                "model `{}`: the rendered SQL is not one query: {}",
                m.name, e.message
            ),
        ))
    })?;
    let plan = ModelPlan {
        pipeline: cx.pipeline.name.clone(),
        run_id: cx.run_id.to_string(),
        target: m.name.clone(),
        // Without a trailing `;` or comment, so the store can wrap it.
        sql: rendered.sql[..end].to_string(),
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
            Materialized::Snapshot => Materialize::Snapshot(SnapshotSpec {
                unique_key: m
                    .unique_key
                    .as_ref()
                    .map(|k| k.columns())
                    .unwrap_or_default(),
                check_cols: m.check_cols.clone(),
                updated_at: m.updated_at.clone(),
                invalidate_hard_deletes: m.hard_deletes == Some(HardDeletes::Invalidate),
            }),
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
    optimistic.status = StepStatus::Succeeded;
    let steps_after = (cx.steps_after)(&optimistic);
    let outcome = cx
        .store
        .warehouse()
        .materialize(
            &plan,
            Finish {
                run_steps: Some((cx.run_id.to_string(), steps_after)),
                leased_by: Some(cx.run_id.to_string()),
                ..Finish::default()
            },
        )
        .await
        .map_err(|e| match e {
            brigade_store::StoreError::Unprocessable(message) => {
                // A line of the model's own file (not of the rendered, wrapped statement).
                let place = match super::sql_line::line_of_error(&message, &m.text) {
                    Some(line) if m.query.is_none() => format!("{}:{line}", m.origin),
                    Some(line) => format!("{}, line {line} of its query", m.origin),
                    None => m.origin.clone(),
                };
                PipelineError::Check(format!(
                    "model `{}` ({place}): the database refused its SQL: {message}",
                    m.name
                ))
            }
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
    if m.materialized == Materialized::Snapshot {
        tracing::info!(
            pipeline = %cx.pipeline.name,
            snapshot = %m.name,
            new_versions = outcome.rows_out,
            closed_versions = outcome.versions_closed,
            "Snapshot updated."
        );
    }
    report.status = StepStatus::Succeeded;
    Ok(())
}

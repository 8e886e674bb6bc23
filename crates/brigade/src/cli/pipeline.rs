//! `brigade pipeline list | run | retry | test | graph`: pipelines from the command line, with a
//! progress bar per step and a summary table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use brigade_core::settings::Settings;
use brigade_pipelines::run::report::Backfill;
use brigade_pipelines::run::{Event, RunView, StartError};
use brigade_pipelines::{Catalog, RunOptions, Runner, Trigger};
use brigade_store::Store;
use brigade_store::warehouse::{RunStatus, StepStatus};
use clap::{Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum PipelineCommand {
    /// List the pipelines of the app directory with their schedules and last runs.
    #[command(after_help = "Example:\n  brigade pipeline list --dir examples/flights")]
    List,
    /// Run a pipeline now and wait for it, with progress per step.
    #[command(
        after_help = "Examples:\n  brigade pipeline run flights --dir examples/flights\n  brigade pipeline run flights --full-refresh --dir examples/flights\n  brigade pipeline run flights --from silver_flights --dir examples/flights\n  brigade pipeline run flights --select +gold_carrier_month --exclude gold_weather_impact --dir examples/flights\n  brigade pipeline run events --backfill-from 2013-06-01 --backfill-to 2013-07-01 --dir myapp   # an incremental pipeline of yours\n  brigade pipeline run daily --var day=2013-06-01 --dir myapp   # a pipeline with [vars] day\n\nExit code 1 when the run fails; the summary names the step and the reason. While another\nrun of the pipeline (in any process) is going, this one waits for it. Ctrl-C or SIGTERM\ncancels the run (nothing half-written is published) and exits 130 or 143."
    )]
    Run {
        /// The pipeline's name (its file stem unless the file sets `name`).
        name: String,
        /// Rebuild every table from scratch and forget incremental cursors.
        #[arg(long)]
        full_refresh: bool,
        /// Start at this step (earlier steps are skipped).
        #[arg(long, value_name = "STEP")]
        from: Option<String>,
        /// Backfill: reload the incremental extracts' rows with cursor >= FROM (with
        /// --backfill-to); their cursors stay where they are.
        #[arg(long, value_name = "FROM", requires = "backfill_to")]
        backfill_from: Option<String>,
        /// Backfill: ... and cursor < TO.
        #[arg(long, value_name = "TO", requires = "backfill_from")]
        backfill_to: Option<String>,
        /// Set a var of the pipeline's `[vars]` for this run (`{{ var('NAME') }}` in models,
        /// `${var.NAME}` in extracts); repeat for several. Numbers and true/false keep
        /// their type.
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// Run only these steps (repeatable): NAME, +NAME (with its ancestors), NAME+ (with
        /// its descendants), +NAME+, 2+NAME, NAME+1, tag:NAME.
        #[arg(long, short = 's', value_name = "SELECTOR")]
        select: Vec<String>,
        /// Leave these steps out (repeatable; same selectors as --select).
        #[arg(long, value_name = "SELECTOR")]
        exclude: Vec<String>,
    },
    /// Run a failed or cancelled run again from the step that did not finish.
    #[command(
        after_help = "Example:\n  brigade pipeline retry 01934c1e-7d7a-7c1b-9a51-3f0e2b6c9d10 --dir examples/flights"
    )]
    Retry {
        /// The id of the run to retry (`brigade pipeline runs NAME` lists them).
        run_id: String,
    },
    /// List the recent runs of a pipeline.
    #[command(after_help = "Example:\n  brigade pipeline runs flights --dir examples/flights")]
    Runs {
        name: String,
        /// How many runs to show.
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
    /// Check how old each extract's newest data is against its `freshness` limits.
    #[command(
        after_help = "Example:\n  brigade pipeline freshness flights --dir examples/flights\n\nEach extract with `freshness = { warn_after = \"6h\", error_after = \"1d\" }` is PASS,\nWARN, ERROR or UNKNOWN (never loaded). Exit code 1 when any is ERROR, so a CI job or a\ncron monitor can alert on it."
    )]
    Freshness { name: String },
    /// Run the data tests (`[[model.expect]]`, `[[extract.expect]]`) against the current
    /// tables, loading nothing.
    #[command(
        after_help = "Examples:\n  brigade pipeline test flights --dir examples/flights\n  brigade pipeline test flights --select gold_carrier_month --dir examples/flights\n\nPrints PASS, WARN or FAIL per test with the failing values. Exit code 1 when a test\nfails (or cannot run), 2 when a selector matches nothing."
    )]
    Test {
        name: String,
        /// Test only these steps' tables (same selectors as `run --select`).
        #[arg(long, short = 's', value_name = "SELECTOR")]
        select: Vec<String>,
        /// Leave these steps out.
        #[arg(long, value_name = "SELECTOR")]
        exclude: Vec<String>,
    },
    /// Print the dependency graph of a pipeline (Graphviz dot or Mermaid).
    #[command(
        after_help = "Examples:\n  brigade pipeline graph flights --dir examples/flights | dot -Tsvg > flights.svg\n  brigade pipeline graph flights --format mermaid --dir examples/flights"
    )]
    Graph {
        name: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum GraphFormat {
    Dot,
    Mermaid,
}

/// Loads the app's pipeline files. An invalid file disables only its own pipeline: naming
/// that pipeline is a usage error (exit 2) that shows the file's error; the others work.
pub(crate) fn load(settings: &Settings) -> Result<Catalog, Failure> {
    brigade_pipelines::load_dir(&settings.dir).map_err(|e| Failure::Usage(e.to_string()))
}

pub(crate) async fn run(settings: Settings, cmd: PipelineCommand) -> Result<(), Failure> {
    let catalog = load(&settings)?;
    let pipelines = &catalog.pipelines;
    let find = |name: &str| {
        pipelines
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| {
                if let Some(b) = catalog.broken(name) {
                    return Failure::Usage(format!(
                        "pipeline `{name}` is disabled: its file is invalid: {}",
                        b.error
                    ));
                }
                let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
                Failure::Usage(format!(
                    "no pipeline `{name}` in {}/pipelines (found: {})",
                    settings.dir.display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })
    };
    // A pipeline that does not exist or whose file is invalid is refused before the
    // database is opened.
    if let PipelineCommand::Run { name, .. }
    | PipelineCommand::Runs { name, .. }
    | PipelineCommand::Freshness { name } = &cmd
    {
        find(name)?;
    }
    if let PipelineCommand::Graph { name, format } = &cmd {
        let p = find(name)?;
        match format {
            GraphFormat::Dot => print!("{}", p.graph.to_dot(&p.name)),
            GraphFormat::Mermaid => print!("{}", p.graph.to_mermaid()),
        }
        return Ok(());
    }
    let store = Arc::new(
        Store::open(&settings)
            .await
            .context("opening the database")?,
    );
    store.migrate_up().await.context("applying migrations")?;
    let runner = Runner::new(
        store.clone(),
        &settings.dir,
        catalog.clone(),
        Arc::new(|name: &str| std::env::var(name).ok()),
        brigade_pipelines::Process {
            role: "brigade pipeline run",
            stale_after: settings.pipelines.stale_after,
        },
    );
    let result = match cmd {
        PipelineCommand::Graph { .. } => Ok(()),
        PipelineCommand::List => list(&runner).await,
        PipelineCommand::Freshness { name } => freshness(&store, &find(&name)?).await,
        PipelineCommand::Test {
            name,
            select,
            exclude,
        } => super::pipeline_test::run(&store, &find(&name)?, &select, &exclude).await,
        PipelineCommand::Runs { name, limit } => {
            find(&name)?;
            runs(&store, &name, limit).await
        }
        PipelineCommand::Run {
            name,
            full_refresh,
            from,
            backfill_from,
            backfill_to,
            vars,
            select,
            exclude,
        } => {
            let pipeline = find(&name)?;
            let vars = vars
                .into_iter()
                .map(|(k, v)| typed_var(&pipeline, &k, v).map(|v| (k, v)))
                .collect::<Result<_, _>>()?;
            let cursor = |s: String| {
                s.parse::<i64>()
                    .map_or_else(|_| serde_json::Value::String(s), Into::into)
            };
            let backfill = match (backfill_from, backfill_to) {
                (Some(from), Some(to)) => Some(Backfill {
                    from: cursor(from),
                    to: cursor(to),
                }),
                _ => None,
            };
            let options = RunOptions {
                full_refresh,
                from_step: from,
                retry_of: None,
                backfill,
                vars,
                cause: None,
                select,
                exclude,
            };
            execute(&runner, &name, options).await
        }
        PipelineCommand::Retry { run_id } => {
            let options = runner.retry(&run_id).await.map_err(start_failure)?;
            let name = store
                .runs()
                .get(&run_id)
                .await
                .context("reading the run")?
                .map(|r| r.pipeline)
                .unwrap_or_default();
            execute(&runner, &name, options).await
        }
    };
    store.close().await;
    result
}

/// `NAME=VALUE` of `--var`, split; the value is typed by [`typed_var`].
fn parse_var(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE, e.g. --var day=2013-06-01"))?;
    Ok((name.trim().to_string(), value.to_string()))
}

/// A `--var` value typed like the var's declared default: `007` stays text for a text var,
/// `15` is a number for a number var. An undeclared var stays text (the run refuses it).
fn typed_var(
    pipeline: &brigade_pipelines::Pipeline,
    name: &str,
    text: String,
) -> Result<serde_json::Value, Failure> {
    let bad = |kind: &str| {
        Failure::Usage(format!(
            "--var {name}={text}: `{name}` is a {kind} var (its default in [vars]); give a {kind}"
        ))
    };
    Ok(match pipeline.var_defaults().get(name) {
        Some(serde_json::Value::Number(n)) if n.is_i64() => {
            text.parse::<i64>().map_err(|_| bad("integer"))?.into()
        }
        Some(serde_json::Value::Number(_)) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .ok_or_else(|| bad("number"))?,
        Some(serde_json::Value::Bool(_)) => {
            text.parse::<bool>().map_err(|_| bad("true/false"))?.into()
        }
        _ => text.into(),
    })
}

fn start_failure(e: StartError) -> Failure {
    match e {
        StartError::Store(e) => Failure::Runtime(e.into()),
        other => Failure::Usage(other.to_string()),
    }
}

async fn list(runner: &Arc<Runner>) -> Result<(), Failure> {
    let pipelines = runner.pipelines();
    let broken = runner.broken();
    if pipelines.is_empty() && broken.is_empty() {
        println!("No pipelines: add a pipelines/NAME.toml file (see `brigade init`).");
        return Ok(());
    }
    println!("PIPELINE                 SCHEDULE          STEPS  LAST RUN   FINISHED");
    for p in pipelines.iter() {
        let last = runner
            .store()
            .runs()
            .list(Some(&p.name), 1, 0)
            .await
            .context("reading runs")?
            .pop();
        let (status, finished) = last.map_or(("-".to_string(), String::new()), |r| {
            (r.status.to_string(), r.finished.unwrap_or_default())
        });
        println!(
            "{:<24} {:<16} {:>6}  {:<10} {}",
            p.name,
            p.schedule.as_deref().unwrap_or("-"),
            p.graph.nodes.len(),
            status,
            finished
        );
    }
    for b in broken.iter() {
        println!("{:<24} {:<16} {:>6}  {:<10}", b.name, "-", "-", "INVALID");
        eprintln!("  {}", b.error);
    }
    Ok(())
}

async fn freshness(store: &Store, pipeline: &brigade_pipelines::Pipeline) -> Result<(), Failure> {
    use brigade_pipelines::freshness::{Status, check};
    let reports = check(store, pipeline).await;
    if reports.is_empty() {
        println!(
            "No extract of `{}` declares freshness: add e.g. freshness = {{ warn_after = \"6h\", error_after = \"1d\" }} to an [[extract]].",
            pipeline.name
        );
        return Ok(());
    }
    println!(
        "EXTRACT                  STATUS   AGE          NEWEST                     WARN AFTER  ERROR AFTER"
    );
    for r in &reports {
        let status = match r.status {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Error => "ERROR",
            Status::Unknown => "UNKNOWN",
        };
        let age = r.age_seconds.map_or_else(|| "-".to_string(), human_age);
        println!(
            "{:<24} {:<8} {:<12} {:<26} {:<11} {}",
            r.extract,
            status,
            age,
            r.newest.as_deref().unwrap_or("-"),
            r.warn_after.as_deref().unwrap_or("-"),
            r.error_after.as_deref().unwrap_or("-")
        );
        if let Some(error) = &r.error {
            eprintln!("  {}: {error}", r.extract);
        }
    }
    if reports.iter().any(|r| r.status == Status::Error) {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "a source of `{}` is past its error_after age",
            pipeline.name
        )));
    }
    Ok(())
}

/// `93784` → `1d 2h 3m`.
fn human_age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

async fn runs(store: &Store, name: &str, limit: i64) -> Result<(), Failure> {
    let runs = store
        .runs()
        .list(Some(name), limit, 0)
        .await
        .context("reading runs")?;
    if runs.is_empty() {
        println!("`{name}` has not run yet: brigade pipeline run {name}");
    }
    for r in runs {
        let view = RunView::from(r);
        println!(
            "{}  {:<9} {:<8} {}  {}",
            view.id,
            view.status,
            view.trigger,
            view.created,
            view.error.unwrap_or_default()
        );
    }
    Ok(())
}

async fn execute(runner: &Arc<Runner>, name: &str, options: RunOptions) -> Result<(), Failure> {
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner:.cyan} {prefix:<28} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let open: Arc<Mutex<HashMap<String, ProgressBar>>> = Arc::default();
    let observe = {
        let open = open.clone();
        move |event: &Event| {
            let Ok(mut open) = open.lock() else { return };
            match event {
                Event::Queued {
                    pipeline,
                    waiting_for,
                    holder,
                    ..
                } => bars.suspend(|| {
                    eprintln!(
                        "waiting for run {waiting_for} of pipeline {pipeline} held by {holder} ..."
                    );
                }),
                Event::StepStarted { step, attempt, .. } => {
                    let bar = open.entry(step.clone()).or_insert_with(|| {
                        let bar = bars.add(ProgressBar::new_spinner());
                        bar.set_style(style.clone());
                        bar.set_prefix(step.clone());
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bar
                    });
                    bar.set_message(if *attempt > 1 {
                        format!("retry {attempt}…")
                    } else {
                        "running…".to_string()
                    });
                }
                Event::Progress {
                    step,
                    rows,
                    rows_per_s,
                    ..
                } => {
                    if let Some(bar) = open.get(step) {
                        bar.set_message(format!(
                            "{} rows  {}/s",
                            group(*rows),
                            group(*rows_per_s as u64)
                        ));
                    }
                }
                Event::StepFinished { step, .. } => {
                    if let Some(bar) = open.get(&step.name) {
                        let mark = if step.status == StepStatus::Succeeded {
                            "✔"
                        } else {
                            "✘"
                        };
                        bar.finish_with_message(format!(
                            "{mark} {} rows in {:.2}s",
                            group(step.rows_out),
                            step.duration_ms as f64 / 1000.0
                        ));
                    }
                }
                _ => {}
            }
        }
    };
    let stop = super::stop::Stop::watch(runner.clone());
    let view = runner
        .run(name, Trigger::Cli, options, Some(Arc::new(observe)))
        .await
        .map_err(start_failure)?;
    summary(&view);
    if let Some(signal) = stop.received() {
        return Err(Failure::Signal {
            code: signal.exit_code(),
            message: format!(
                "run {} {}: {}",
                view.id,
                view.status,
                view.error.unwrap_or_default()
            ),
        });
    }
    if view.status == RunStatus::Succeeded {
        Ok(())
    } else {
        Err(Failure::Runtime(anyhow::anyhow!(
            "run {} {}: {}",
            view.id,
            view.status,
            view.error.unwrap_or_default()
        )))
    }
}

fn summary(view: &RunView) {
    println!();
    println!(
        "{:<28} {:<6} {:<6} {:<10} {:>10} {:>10} {:>8} {:>9}",
        "STEP", "KIND", "LAYER", "STATUS", "ROWS IN", "ROWS OUT", "DROPPED", "SECONDS"
    );
    for s in &view.steps {
        println!(
            "{:<28} {:<6} {:<6} {:<10} {:>10} {:>10} {:>8} {:>9.2}",
            s.name,
            if s.kind == "extract" { "load" } else { "model" },
            s.layer,
            s.status,
            group(s.rows_in),
            group(s.rows_out),
            group(s.rows_dropped),
            s.duration_ms as f64 / 1000.0
        );
        for x in s.expectations.iter().filter(|x| x.status != "passed") {
            println!(
                "    expectation {:<24} {:<8} {} rows",
                x.name,
                x.status,
                group(x.failing_rows)
            );
            if !x.sample.is_empty() {
                println!(
                    "      {}e.g. {}",
                    x.column
                        .as_deref()
                        .map_or_else(String::new, |c| format!("column {c}: ")),
                    x.sample.join(", ")
                );
            }
        }
        if s.rows_rejected > 0 {
            println!(
                "    {} rejected source rows kept in {}__rejected",
                group(s.rows_rejected),
                s.name
            );
        }
        let skipped = &s.rows_skipped;
        for (n, why) in [
            (skipped.below_cursor, "below the incremental cursor"),
            (
                skipped.boundary_duplicate,
                "at the cursor and loaded before",
            ),
            (skipped.null_cursor, "with no cursor value"),
            (skipped.outside_range, "outside the backfill range"),
            (skipped.bad_row, "bad, skipped (on_bad_row = \"skip\")"),
        ] {
            if n > 0 {
                println!("    {} source rows skipped: {why}", group(n));
            }
        }
        for note in &s.notes {
            println!("    note: {note}");
        }
    }
    println!();
    match &view.error {
        Some(e) => println!("Run {} {}: {e}", view.id, view.status),
        None => println!("Run {} {}.", view.id, view.status),
    }
}

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

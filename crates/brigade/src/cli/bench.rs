//! `brigade bench pipeline NAME` (`brigade bench search` lives in `bench_search`): times full rebuilds of a pipeline in this process and prints
//! per-step medians, rows/s and the peak RSS — the quick, local version of
//! `bench/pipeline.sh` (which also runs the peer tools; see BENCHMARKS.md).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use brigade_core::settings::Settings;
use brigade_pipelines::{RunOptions, Runner, Trigger};
use brigade_store::Store;
use clap::Subcommand;

use super::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Rebuild a pipeline from scratch several times and report medians per step.
    #[command(
        after_help = "Example:\n  brigade bench pipeline flights --runs 5 --dir examples/flights\n\nEach run is a --full-refresh run recorded like any other (trigger cli). The REST load\nbenchmark and the comparison with sqlite3, pandas, dlt and dbt are bench/load.sh and\nbench/pipeline.sh in the repository (BENCHMARKS.md)."
    )]
    Pipeline {
        name: String,
        /// How many runs to time.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
    },
    /// Score search indexes on questions with known answering pages (recall@5, MRR@10 per
    /// mode and question kind) and time their queries.
    #[command(
        after_help = "Example:\n  brigade bench search --questions eval/postgresql-docs/questions.jsonl --dir /tmp/pgdocs\n\nbench/search.sh builds the PostgreSQL manual app and runs this for each embedder."
    )]
    Search {
        /// Indexes to score (default: every index of brigade.toml).
        #[arg(long = "index", value_name = "INDEX")]
        indexes: Vec<String>,
        /// JSONL questions: {"id", "question", "pages": [file names], "kind"}.
        #[arg(long, value_name = "FILE")]
        questions: std::path::PathBuf,
        /// Run each query this many times for the latency percentiles.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Also write the scores as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
    },
}

pub(crate) async fn run(settings: Settings, cmd: BenchCommand) -> Result<(), Failure> {
    let (name, runs) = match cmd {
        BenchCommand::Pipeline { name, runs } => (name, runs),
        BenchCommand::Search {
            indexes,
            questions,
            repeat,
            json,
        } => return super::bench_search::run(settings, indexes, questions, repeat, json).await,
    };
    let pipelines = super::pipeline::load(&settings)?;
    if let Some(b) = pipelines.broken(&name) {
        return Err(Failure::Usage(format!(
            "pipeline `{name}` is invalid: {}",
            b.error
        )));
    }
    if !pipelines.pipelines.iter().any(|p| p.name == name) {
        return Err(Failure::Usage(format!(
            "no pipeline `{name}` in {}/pipelines",
            settings.dir.display()
        )));
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
        pipelines,
        Arc::new(|name: &str| std::env::var(name).ok()),
        brigade_pipelines::Process {
            role: "brigade bench",
            stale_after: settings.pipelines.stale_after,
        },
    );
    let mut walls = Vec::new();
    let mut steps: Vec<(String, Vec<f64>, u64)> = Vec::new();
    for i in 1..=runs {
        let started = Instant::now();
        let view = runner
            .run(
                &name,
                Trigger::Cli,
                RunOptions {
                    full_refresh: true,
                    ..RunOptions::default()
                },
                None,
            )
            .await
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))?;
        let wall = started.elapsed().as_secs_f64();
        if view.status != brigade_store::warehouse::RunStatus::Succeeded {
            store.close().await;
            return Err(Failure::Runtime(anyhow::anyhow!(
                "run {i} {}: {}",
                view.status,
                view.error.unwrap_or_default()
            )));
        }
        println!("run {i}/{runs}: {wall:.2} s");
        walls.push(wall);
        for s in &view.steps {
            let seconds = s.duration_ms as f64 / 1000.0;
            match steps.iter_mut().find(|(n, _, _)| *n == s.name) {
                Some((_, times, _)) => times.push(seconds),
                None => steps.push((s.name.clone(), vec![seconds], s.rows_out)),
            }
        }
    }
    store.close().await;
    println!();
    println!(
        "{:<28} {:>10} {:>12} {:>14}",
        "STEP", "ROWS", "MEDIAN S", "ROWS/S"
    );
    for (step, mut times, rows) in steps {
        let m = median(&mut times);
        let rate = if m > 0.0 { rows as f64 / m } else { 0.0 };
        println!("{step:<28} {rows:>10} {m:>12.3} {rate:>14.0}");
    }
    let best = walls.iter().cloned().fold(f64::INFINITY, f64::min);
    println!();
    println!(
        "pipeline `{name}`: {runs} full rebuilds, median {:.2} s, best {best:.2} s, peak RSS {}",
        median(&mut walls),
        peak_rss().unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The process's peak resident memory (Linux `VmHWM`).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(format!("{:.0} MiB", kb as f64 / 1024.0))
}

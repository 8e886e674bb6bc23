//! Cron schedules (UTC): parsing, next firing times, and the scheduler loop inside
//! `brigade serve`. Each firing is claimed in the store before it runs, so with several
//! processes on one PostgreSQL a scheduled run starts exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde_json::json;

use brigade_store::warehouse::RunStatus;

use crate::Pipeline;
use crate::alerts::Alert;
use crate::spec::NotifyEvent;

/// Parses a 5-field (or 6-field, with seconds) cron expression.
///
/// # Errors
/// Why the expression is invalid.
pub fn parse(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| {
            format!(
                "`{expr}` is not a valid cron expression (5 fields, or 6 with seconds, UTC): {e}"
            )
        })
}

/// The first firing strictly after `after`.
pub fn next_after(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

/// The next firing of `pipeline`'s schedule from now, RFC 3339; `None` without a schedule.
pub fn next_run(pipeline: &crate::Pipeline) -> Option<String> {
    let cron = parse(pipeline.schedule.as_deref()?).ok()?;
    next_after(&cron, Utc::now()).map(brigade_core::time::format_datetime)
}

/// Starts the pipelines with `run_on_start` that never succeeded and are not running, once
/// across processes. A run that failed or was cancelled (the server stopped during it) is
/// tried again at the next start.
pub async fn run_on_start(runner: &Arc<crate::Runner>) {
    for p in runner.pipelines().iter().filter(|p| p.run_on_start) {
        let runs = match runner.store().runs().list(Some(&p.name), 100, 0).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::error!(pipeline = %p.name, error = %e, "Could not read runs; run_on_start skipped.");
                continue;
            }
        };
        if runs
            .iter()
            .any(|r| r.status == RunStatus::Succeeded || r.status.is_active())
        {
            continue;
        }
        // Claimed like a firing before any real one, numbered by the runs so far, so several
        // processes start it once and a later start may try again.
        let fire = format!("0000-01-01T00:00:00.000Z#{:06}", runs.len());
        match runner.store().runs().claim_schedule(&p.name, &fire).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(pipeline = %p.name, error = %e, "Could not claim the run_on_start run.");
                continue;
            }
        }
        if runs.is_empty() {
            tracing::info!(pipeline = %p.name, "Running a pipeline that never ran (run_on_start).");
        } else {
            tracing::info!(pipeline = %p.name, earlier_runs = runs.len(), "Running a pipeline again: it has not succeeded yet (run_on_start).");
        }
        if let Err(e) = runner
            .start(
                &p.name,
                crate::Trigger::Schedule,
                crate::RunOptions::default(),
            )
            .await
        {
            tracing::error!(pipeline = %p.name, error = %e, "Could not start the pipeline.");
        }
    }
}

/// How often the scheduler reads the pipeline files again when no firing is due sooner.
const RESCAN: Duration = Duration::from_secs(30);

/// Runs the scheduled pipelines of `runner` until the task is aborted, and beside them the
/// source freshness checks ([`crate::freshness::watch`]) and the sweep that fails runs whose
/// process stopped ([`crate::Runner::sweep`]). The pipeline files are read again
/// at least every 30 s, so a new or changed `schedule` needs no restart. Firings missed
/// while no process was up are not caught up (like cron) but notified as `missed` once the
/// scheduler starts again; start a run through the API or the CLI instead.
pub async fn run(runner: Arc<crate::Runner>) {
    let watch = crate::freshness::watch(runner.clone());
    let triggers = crate::triggers::watch(runner.clone());
    let sweep = runner.clone().sweep_forever();
    tokio::join!(schedule(runner), watch, triggers, sweep);
}

async fn schedule(runner: Arc<crate::Runner>) {
    let mut after = Utc::now();
    let mut unreadable = false;
    // The last valid definition of every pipeline: a pipeline whose file breaks keeps its
    // firing times, and each firing it misses is reported instead of silently skipped.
    let mut known: HashMap<String, Pipeline> = HashMap::new();
    let mut first = true;
    loop {
        match runner.reload() {
            Ok(()) => unreadable = false,
            // Invalid files are reported by the runner; only an unreadable folder lands
            // here.
            Err(e) if !unreadable => {
                unreadable = true;
                tracing::error!(error = %e, "Cannot read the pipelines folder; schedules stay as they were until it can be read.");
            }
            Err(_) => {}
        }
        let broken = runner.broken();
        known.retain(|name, _| broken.iter().any(|b| &b.name == name));
        for p in runner.pipelines().iter() {
            known.insert(p.name.clone(), p.clone());
        }
        let schedules: Vec<(String, Cron)> = known
            .values()
            .filter_map(|p| Some((p.name.clone(), parse(p.schedule.as_deref()?).ok()?)))
            .collect();
        if first {
            first = false;
            for (name, cron) in &schedules {
                if let Some(p) = known.get(name) {
                    missed_while_down(&runner, p, cron, after).await;
                }
            }
        }
        let next = schedules
            .iter()
            .filter_map(|(_, cron)| next_after(cron, after))
            .min();
        let now = Utc::now();
        let rescan = now + chrono::Duration::from_std(RESCAN).unwrap_or_default();
        match next {
            Some(at) if at <= rescan => {
                tokio::time::sleep((at - now).to_std().unwrap_or(Duration::ZERO)).await;
                for (name, cron) in &schedules {
                    if next_after(cron, after) == Some(at)
                        && let Some(p) = known.get(name)
                    {
                        fire(&runner, p, at).await;
                    }
                }
                after = at;
            }
            _ => {
                tokio::time::sleep(RESCAN).await;
                // Nothing was due before the rescan.
                after = after.max(now);
            }
        }
    }
}

/// Claims the firing of `p` at `at` and starts the run when this process won it. A firing
/// that cannot start (an invalid file, a refused run) is a missed run: logged, counted and
/// notified.
async fn fire(runner: &Arc<crate::Runner>, p: &Pipeline, at: DateTime<Utc>) {
    let name = &p.name;
    let fire = brigade_core::time::format_datetime(at);
    match runner.store().runs().claim_schedule(name, &fire).await {
        Ok(true) => {
            tracing::info!(pipeline = %name, at = %fire, "Starting a scheduled run.");
            if let Err(e) = runner
                .start(name, crate::Trigger::Schedule, crate::RunOptions::default())
                .await
            {
                let reason = format!(
                    "the run scheduled at {fire} did not start: {e}; fix it, then run `brigade pipeline run {name}`"
                );
                missed(p, &fire, "refused", reason).await;
            }
        }
        Ok(false) => {
            tracing::debug!(pipeline = %name, at = %fire, "Another process took this firing.")
        }
        Err(e) => {
            let reason = format!("the firing at {fire} could not be claimed in the database: {e}");
            missed(p, &fire, "store", reason).await;
        }
    }
}

/// At start: notifies the newest firing of `p` that passed while no process was up (after
/// the last claimed one, before `now`), once across processes.
async fn missed_while_down(
    runner: &Arc<crate::Runner>,
    p: &Pipeline,
    cron: &Cron,
    now: DateTime<Utc>,
) {
    let last = match runner.store().runs().schedule_last_fire(&p.name).await {
        Ok(Some(last)) => last,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(pipeline = %p.name, error = %e, "Could not read the last scheduled firing.");
            return;
        }
    };
    // `run_on_start` claims the dawn of time; that is not a schedule.
    let Some(last_at) = DateTime::parse_from_rfc3339(&last)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp() > 0)
    else {
        return;
    };
    let mut newest = None;
    let mut count = 0u32;
    let mut at = last_at;
    while let Some(next) = next_after(cron, at).filter(|t| *t < now) {
        newest = Some(next);
        count += 1;
        at = next;
        if count >= 10_000 {
            break;
        }
    }
    let Some(newest) = newest else { return };
    let fire = brigade_core::time::format_datetime(newest);
    if !matches!(
        runner.store().runs().claim_schedule(&p.name, &fire).await,
        Ok(true)
    ) {
        return;
    }
    let reason = format!(
        "{count} scheduled run(s) did not happen, the last at {fire}: no Brigade process was running (last claimed firing {last}); run it now with `brigade pipeline run {}`",
        p.name
    );
    missed(p, &fire, "no_process", reason).await;
}

async fn missed(p: &Pipeline, fire: &str, why: &'static str, reason: String) {
    tracing::error!(pipeline = %p.name, at = %fire, reason = %reason, "A scheduled run did not happen.");
    metrics::counter!("pipeline_missed_runs_total", "pipeline" => p.name.clone(), "reason" => why)
        .increment(1);
    let alert = Alert {
        event: NotifyEvent::Missed,
        pipeline: p.name.clone(),
        reason,
        run: None,
        detail: json!({ "scheduled_at": fire, "schedule": p.schedule }),
    };
    crate::alerts::send(p, &alert).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_five_and_six_fields() {
        let c = parse("0 3 * * *").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-01-01T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            next_after(&c, t).unwrap().to_rfc3339(),
            "2026-01-02T03:00:00+00:00"
        );
        assert!(parse("*/5 * * * * *").is_ok());
        assert!(parse("61 * * * *").is_err());
        assert!(parse("not cron").is_err());
    }
}

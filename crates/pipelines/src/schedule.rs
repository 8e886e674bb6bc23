//! Cron schedules (UTC): parsing, next firing times, and the scheduler loop inside
//! `brigade serve`. Each firing is claimed in the store before it runs, so with several
//! processes on one PostgreSQL a scheduled run starts exactly once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

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

/// Starts the pipelines with `run_on_start` that never succeeded (once across processes).
pub async fn run_on_start(runner: &Arc<crate::Runner>) {
    for p in runner.pipelines().iter().filter(|p| p.run_on_start) {
        let succeeded = match runner.store().runs_list(Some(&p.name), 100, 0).await {
            Ok(runs) => runs.iter().any(|r| r.status == "succeeded"),
            Err(e) => {
                tracing::error!(pipeline = %p.name, error = %e, "Could not read runs.");
                continue;
            }
        };
        // Claimed like a firing at the dawn of time, so several processes start it once.
        if !succeeded
            && matches!(
                runner
                    .store()
                    .claim_schedule(&p.name, "0000-01-01T00:00:00.000Z")
                    .await,
                Ok(true)
            )
        {
            tracing::info!(pipeline = %p.name, "Running a pipeline that never ran (run_on_start).");
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
}

/// How often the scheduler reads the pipeline files again when no firing is due sooner.
const RESCAN: Duration = Duration::from_secs(30);

/// Runs the scheduled pipelines of `runner` until the task is aborted. The pipeline files
/// are read again at least every 30 s, so a new or changed `schedule` needs no restart.
/// Firings missed while no process was up are not caught up (like cron); start a run
/// through the API instead.
pub fn spawn(runner: Arc<crate::Runner>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut after = Utc::now();
        let mut broken = false;
        loop {
            match runner.reload() {
                Ok(()) => broken = false,
                // Invalid files are reported by the runner; only an unreadable folder lands
                // here.
                Err(e) if !broken => {
                    broken = true;
                    tracing::error!(error = %e, "Cannot read the pipelines folder; schedules stay as they were until it can be read.");
                }
                Err(_) => {}
            }
            let schedules: Vec<(String, Cron)> = runner
                .pipelines()
                .iter()
                .filter_map(|p| Some((p.name.clone(), parse(p.schedule.as_deref()?).ok()?)))
                .collect();
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
                        if next_after(cron, after) == Some(at) {
                            fire(&runner, name, at).await;
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
    })
}

/// Claims the firing of `name` at `at` and starts the run when this process won it.
async fn fire(runner: &Arc<crate::Runner>, name: &str, at: DateTime<Utc>) {
    let fire = brigade_core::time::format_datetime(at);
    match runner.store().claim_schedule(name, &fire).await {
        Ok(true) => {
            tracing::info!(pipeline = %name, at = %fire, "Starting a scheduled run.");
            if let Err(e) = runner
                .start(name, crate::Trigger::Schedule, crate::RunOptions::default())
                .await
            {
                tracing::error!(pipeline = %name, error = %e, "Could not start a scheduled run.");
            }
        }
        Ok(false) => {
            tracing::debug!(pipeline = %name, at = %fire, "Another process took this firing.")
        }
        Err(e) => tracing::error!(pipeline = %name, error = %e, "Could not claim a scheduled run."),
    }
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

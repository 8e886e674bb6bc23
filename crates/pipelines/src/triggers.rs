//! Event triggers (`[trigger]` of a pipeline file), watched inside `brigade serve` beside
//! the cron scheduler: `after = ["ingest"]` runs a pipeline after each successful run of
//! another (started by any process, the CLI included), `files = true` runs it when a file
//! matching one of its `file` extracts appears or changes. What each trigger last acted on
//! lives in the store and advances by compare-and-swap, so however many processes share a
//! PostgreSQL database, one event starts one run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::alerts::Alert;
use crate::run::{RunOptions, Runner, Trigger};
use crate::spec::{NotifyEvent, Pipeline, SourceKind};

/// How often `after` triggers look for new upstream successes.
const TICK: Duration = Duration::from_secs(2);

/// What the files trigger of one pipeline saw at its last poll.
struct FilesWatch {
    last: Option<Snapshot>,
    next_poll: Instant,
}

/// Every matching file's `size:mtime`, by path relative to the app directory.
type Snapshot = BTreeMap<String, String>;

/// Watches the triggers of `runner`'s pipelines until the task is aborted.
pub async fn watch(runner: Arc<Runner>) {
    // Upstream successes before this process started were seen (or not) by earlier ones.
    let started = brigade_core::time::now();
    let mut files: HashMap<String, FilesWatch> = HashMap::new();
    // What was logged once: an unknown upstream, a pipeline on a cycle.
    let mut warned: HashSet<(String, String)> = HashSet::new();
    let mut warned_cycle: HashSet<String> = HashSet::new();
    loop {
        let pipelines = runner.pipelines();
        let looping = cycles(&pipelines);
        for p in pipelines.iter() {
            let Some(t) = &p.trigger else { continue };
            if looping.contains(&p.name) && warned_cycle.insert(p.name.clone()) {
                tracing::error!(pipeline = %p.name, "trigger.after forms a cycle between pipelines (each would start the other forever); its `after` trigger is off until the cycle is broken.");
            }
            for upstream in t.after.iter().filter(|_| !looping.contains(&p.name)) {
                if !pipelines.iter().any(|u| &u.name == upstream)
                    && !runner.broken().iter().any(|b| &b.name == upstream)
                {
                    if warned.insert((p.name.clone(), upstream.clone())) {
                        tracing::warn!(pipeline = %p.name, upstream = %upstream, "trigger.after names a pipeline that does not exist; it never fires.");
                    }
                    continue;
                }
                if let Err(e) = after(&runner, p, upstream, &started).await {
                    tracing::error!(pipeline = %p.name, upstream = %upstream, error = %e, "Could not check an `after` trigger.");
                }
            }
            if t.files {
                let watch = files.entry(p.name.clone()).or_insert(FilesWatch {
                    last: None,
                    next_poll: Instant::now(),
                });
                if Instant::now() >= watch.next_poll {
                    watch.next_poll = Instant::now() + t.poll();
                    if let Err(e) = poll_files(&runner, p, watch).await {
                        tracing::error!(pipeline = %p.name, error = %e, "Could not check a `files` trigger.");
                    }
                }
            }
        }
        files.retain(|name, _| {
            pipelines
                .iter()
                .any(|p| &p.name == name && p.trigger.as_ref().is_some_and(|t| t.files))
        });
        tokio::time::sleep(TICK).await;
    }
}

/// The pipelines on a cycle of `after` triggers (a after b, b after a).
fn cycles(pipelines: &[Pipeline]) -> HashSet<String> {
    let after = |name: &str| -> Vec<String> {
        pipelines
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.trigger.as_ref())
            .map(|t| t.after.clone())
            .unwrap_or_default()
    };
    let mut looping = HashSet::new();
    for p in pipelines {
        // Does following `after` from p lead back to p?
        let mut seen: HashSet<String> = HashSet::new();
        let mut stack = after(&p.name);
        while let Some(next) = stack.pop() {
            if next == p.name {
                looping.insert(p.name.clone());
                break;
            }
            if seen.insert(next.clone()) {
                stack.extend(after(&next));
            }
        }
    }
    looping
}

/// Starts `p` when `upstream` succeeded since the trigger last fired.
async fn after(
    runner: &Arc<Runner>,
    p: &Pipeline,
    upstream: &str,
    started: &str,
) -> Result<(), brigade_store::StoreError> {
    let store = runner.store();
    let source = format!("after:{upstream}");
    let seen = match store.runs().trigger_seen(&p.name, &source).await? {
        Some(seen) => seen,
        None => {
            // First look: what succeeded before this process started is the baseline; a
            // success since then fires below.
            let baseline = store
                .runs()
                .last_succeeded(upstream, Some(started))
                .await?
                .map(|(id, _)| id)
                .unwrap_or_default();
            store
                .runs()
                .trigger_advance(&p.name, &source, None, &baseline)
                .await?;
            match store.runs().trigger_seen(&p.name, &source).await? {
                Some(seen) => seen,
                None => return Ok(()),
            }
        }
    };
    let Some((run, _)) = store.runs().last_succeeded(upstream, None).await? else {
        return Ok(());
    };
    if run == seen
        || !store
            .runs()
            .trigger_advance(&p.name, &source, Some(&seen), &run)
            .await?
    {
        return Ok(());
    }
    let cause = format!("run {run} of `{upstream}` succeeded");
    start(runner, p, Trigger::Pipeline, cause).await;
    Ok(())
}

/// Looks at the files of `p`'s `file` extracts; starts `p` when some are new or changed
/// and held still since the previous poll (a file still being written waits a poll).
async fn poll_files(
    runner: &Arc<Runner>,
    p: &Pipeline,
    watch: &mut FilesWatch,
) -> Result<(), brigade_store::StoreError> {
    let dir = runner.dir().to_path_buf();
    let patterns: Vec<String> = p
        .extract
        .iter()
        .filter(|e| e.from == SourceKind::File)
        .filter_map(|e| e.path.clone())
        .collect();
    let now = tokio::task::spawn_blocking(move || snapshot(&dir, &patterns))
        .await
        .unwrap_or_default();
    let store = runner.store();
    let Some(seen_text) = store.runs().trigger_seen(&p.name, "files").await? else {
        // First look ever: the files already there are the baseline.
        let text = serde_json::to_string(&now).unwrap_or_default();
        store
            .runs()
            .trigger_advance(&p.name, "files", None, &text)
            .await?;
        watch.last = Some(now);
        return Ok(());
    };
    let stable = watch.last.as_ref() == Some(&now);
    watch.last = Some(now.clone());
    if !stable {
        return Ok(());
    }
    let seen: Snapshot = serde_json::from_str(&seen_text).unwrap_or_default();
    if seen == now {
        return Ok(());
    }
    let arrived: Vec<&String> = now
        .iter()
        .filter(|(path, stamp)| seen.get(*path) != Some(stamp))
        .map(|(path, _)| path)
        .collect();
    let text = serde_json::to_string(&now).unwrap_or_default();
    if !store
        .runs()
        .trigger_advance(&p.name, "files", Some(&seen_text), &text)
        .await?
        || arrived.is_empty()
    {
        // Another process took this change, or files were only removed.
        return Ok(());
    }
    let mut cause = format!(
        "new or changed files: {}",
        arrived
            .iter()
            .take(5)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if arrived.len() > 5 {
        cause.push_str(&format!(" (+{} more)", arrived.len() - 5));
    }
    start(runner, p, Trigger::Files, cause).await;
    Ok(())
}

/// The files matching `patterns` (relative to `dir` unless absolute) with size and mtime.
fn snapshot(dir: &Path, patterns: &[String]) -> Snapshot {
    let mut out = Snapshot::new();
    for pattern in patterns {
        // An invalid glob fails the extract itself, with its reason; here it matches nothing.
        for path in crate::extract::file::matching(dir, pattern).unwrap_or_default() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let shown = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.insert(shown, format!("{}:{mtime}", meta.len()));
        }
    }
    out
}

/// Starts a triggered run; one that cannot start is logged and notified as missed.
async fn start(runner: &Arc<Runner>, p: &Pipeline, trigger: Trigger, cause: String) {
    tracing::info!(pipeline = %p.name, trigger = trigger.name(), cause = %cause, "A trigger starts a pipeline run.");
    let options = RunOptions {
        cause: Some(cause.clone()),
        ..RunOptions::default()
    };
    if let Err(e) = runner.start(&p.name, trigger, options).await {
        let reason = format!("{cause}, but the run could not start: {e}");
        tracing::error!(pipeline = %p.name, reason = %reason, "A triggered run did not happen.");
        metrics::counter!("pipeline_missed_runs_total", "pipeline" => p.name.clone(), "reason" => "refused")
            .increment(1);
        let alert = Alert {
            event: NotifyEvent::Missed,
            pipeline: p.name.clone(),
            reason,
            run: None,
            detail: json!({ "trigger": trigger.name() }),
        };
        crate::alerts::send(p, &alert).await;
    }
}

#[cfg(test)]
mod tests {
    use super::cycles;

    #[test]
    fn after_cycles_are_found() {
        let p = |name: &str, after: &str| {
            let text = if after.is_empty() {
                format!(
                    "name = \"{name}\"\n[[model]]\nname = \"m_{name}\"\nquery = \"SELECT 1 AS n\"\n"
                )
            } else {
                format!(
                    "name = \"{name}\"\n[trigger]\nafter = [\"{after}\"]\n[[model]]\nname = \"m_{name}\"\nquery = \"SELECT 1 AS n\"\n"
                )
            };
            crate::Pipeline::parse(
                std::path::Path::new("/nonexistent"),
                "pipelines/x.toml",
                &text,
            )
            .unwrap()
        };
        let found = cycles(&[
            p("a", "b"),
            p("b", "c"),
            p("c", "a"),
            p("d", "a"),
            p("e", ""),
        ]);
        let mut found: Vec<_> = found.into_iter().collect();
        found.sort();
        assert_eq!(found, ["a", "b", "c"]);
    }
}

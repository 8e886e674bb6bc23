//! Notifications: a pipeline's `[[notify]]` webhooks (and the older `on_failure`) receive
//! run outcomes, scheduled runs that did not happen, and stale sources, each as one JSON
//! POST that says what happened and why. Delivery is retried three times and logged; a
//! webhook that stays down never blocks a run.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::run::RunView;
use crate::spec::{NotifyEvent, Pipeline};

/// What happened.
#[derive(Debug, Clone)]
pub struct Alert {
    pub event: NotifyEvent,
    pub pipeline: String,
    /// One sentence: why, and what to do.
    pub reason: String,
    /// The run, for run outcomes.
    pub run: Option<RunView>,
    /// Event-specific detail (the missed firing time, the stale extract and its age).
    pub detail: Value,
}

impl Alert {
    /// The JSON body POSTed to webhooks.
    pub fn payload(&self) -> Value {
        let mut body = json!({
            "event": self.event.payload_name(),
            "pipeline": self.pipeline,
            "reason": self.reason,
            "at": brigade_core::time::now(),
        });
        if let Some(run) = &self.run {
            body["run"] = serde_json::to_value(run).unwrap_or_default();
        }
        if let (Value::Object(extra), Some(body)) = (&self.detail, body.as_object_mut()) {
            for (k, v) in extra {
                body.insert(k.clone(), v.clone());
            }
        }
        body
    }
}

/// The webhook URLs of `pipeline` that receive `event`.
pub fn targets(pipeline: &Pipeline, event: NotifyEvent) -> Vec<String> {
    let mut urls: Vec<String> = pipeline
        .notify
        .iter()
        .filter(|n| n.on.contains(&event))
        .map(|n| n.webhook.clone())
        .collect();
    if event == NotifyEvent::Failure
        && let Some(on_failure) = &pipeline.on_failure
        && !urls.contains(&on_failure.webhook)
    {
        urls.push(on_failure.webhook.clone());
    }
    urls
}

/// The alert for a finished run: failure or success.
pub fn for_run(run: &RunView) -> Alert {
    let (event, reason) = match run.status {
        brigade_store::warehouse::RunStatus::Succeeded => (
            NotifyEvent::Success,
            format!("run {} of `{}` succeeded", run.id, run.pipeline),
        ),
        _ => (
            NotifyEvent::Failure,
            format!(
                "run {} of `{}` {}: {}; retry it with `brigade pipeline retry {}` or POST /api/pipelines/{}/runs",
                run.id,
                run.pipeline,
                run.status,
                run.error.as_deref().unwrap_or("no reason recorded"),
                run.id,
                run.pipeline
            ),
        ),
    };
    Alert {
        event,
        pipeline: run.pipeline.clone(),
        reason,
        run: Some(run.clone()),
        detail: Value::Null,
    }
}

/// Sends `alert` to every webhook of `pipeline` that wants it.
pub async fn send(pipeline: &Pipeline, alert: &Alert) {
    let urls = targets(pipeline, alert.event);
    if urls.is_empty() {
        return;
    }
    let Some(client) = client() else {
        tracing::error!(pipeline = %alert.pipeline, "Cannot send notifications: no HTTP client could be built.");
        return;
    };
    let body = alert.payload();
    for url in urls {
        deliver(client, &url, &body, &alert.pipeline).await;
    }
}

async fn deliver(client: &reqwest::Client, url: &str, body: &Value, pipeline: &str) {
    let event = body["event"].as_str().unwrap_or_default();
    for attempt in 0..3u32 {
        match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(pipeline, event, url, "Sent a pipeline notification.");
                metrics::counter!("pipeline_notifications_total", "event" => event.to_string(), "outcome" => "sent").increment(1);
                return;
            }
            Ok(r) => {
                tracing::warn!(pipeline, event, url, status = %r.status(), "A notification webhook refused the notification.")
            }
            Err(e) => {
                tracing::warn!(pipeline, event, url, error = %e, "A notification webhook is unreachable.")
            }
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt + 1))).await;
    }
    metrics::counter!("pipeline_notifications_total", "event" => event.to_string(), "outcome" => "failed").increment(1);
    tracing::error!(
        pipeline,
        event,
        url,
        "Gave up sending a notification after 3 attempts."
    );
}

fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(
                    |e| tracing::error!(error = %e, "Cannot build the notification HTTP client."),
                )
                .ok()
        })
        .as_ref()
}

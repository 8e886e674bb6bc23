//! `/api/pipelines` and `/api/runs`: list pipelines, start, inspect, follow (SSE) and cancel
//! runs. Superusers only: pipelines read files and write tables.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use brigade_pipelines::run::{Event, RunView, StartError};
use brigade_pipelines::{RunOptions, Trigger};
use bytes::Bytes;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Routes;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::RunStartedView;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/api/pipelines", list_pipelines)
        .get("/api/pipelines/{name}", get_pipeline)
        .get("/api/pipelines/{name}/runs", list_runs)
        .post("/api/pipelines/{name}/runs", start_run)
        .get("/api/pipelines/{name}/lineage", lineage)
        .get("/api/runs/{id}", get_run)
        .get("/api/runs/{id}/events", run_events)
        .post("/api/runs/{id}/cancel", cancel_run)
}

async fn list_pipelines(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let runner = state.runner();
    // New and edited pipeline files show up without a restart; a broken one is listed as
    // `invalid` with its error, and the others are unaffected.
    runner.reload()?;
    let mut out = Vec::new();
    for p in runner.pipelines().iter() {
        let freshness = brigade_pipelines::freshness::check(state.store(), p).await;
        out.push(json!({
            "name": p.name,
            "status": "valid",
            "file": p.file,
            "description": p.description,
            "schedule": p.schedule,
            "next_run": brigade_pipelines::schedule::next_run(p),
            "last_run": newest_run(&state, &p.name).await?,
            "freshness": brigade_pipelines::freshness::worst(&freshness),
        }));
    }
    for b in runner.broken().iter() {
        out.push(invalid(b, newest_run(&state, &b.name).await?));
    }
    Ok(Json(Value::Array(out)))
}

/// A disabled pipeline: its file and why it did not load.
fn invalid(b: &brigade_pipelines::Broken, last_run: Value) -> Value {
    json!({
        "name": b.name,
        "status": "invalid",
        "file": b.file,
        "error": {
            "file": b.error.file,
            "line": b.error.line,
            "key": b.error.key,
            "message": b.error.message,
            "detail": b.error.to_string(),
        },
        "schedule": null,
        "next_run": null,
        "last_run": last_run,
    })
}

fn unknown_pipeline(name: &str) -> ApiError {
    ApiError::not_found(format!("pipeline `{name}` not found"))
}

/// The pipeline called `name`, or 404.
fn find_pipeline(state: &AppState, name: &str) -> Result<brigade_pipelines::Pipeline, ApiError> {
    state
        .runner()
        .pipeline(name)
        .ok_or_else(|| unknown_pipeline(name))
}

/// `{id, status, finished}` of the newest run of `name`, or null.
async fn newest_run(state: &AppState, name: &str) -> Result<Value, ApiError> {
    let last = state.store().runs().list(Some(name), 1, 0).await?.pop();
    Ok(last.map_or(
        Value::Null,
        |r| json!({ "id": r.id, "status": r.status, "finished": r.finished }),
    ))
}

async fn get_pipeline(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let runner = state.runner();
    if runner.pipeline(&name).is_none()
        && let Some(b) = runner.broken().iter().find(|b| b.name == name)
    {
        return Ok(Json(invalid(b, newest_run(&state, &b.name).await?)));
    }
    let p = find_pipeline(&state, &name)?;
    Ok(Json(json!({
        "name": p.name,
        "status": "valid",
        "description": p.description,
        "file": p.file,
        "schedule": p.schedule,
        "next_run": brigade_pipelines::schedule::next_run(&p),
        "retries": p.retries,
        "trigger": p.trigger.as_ref().map(|t| json!({
            "after": t.after,
            "files": t.files,
            "poll": t.poll,
        })),
        "vars": p.var_defaults(),
        "nodes": p.graph.nodes,
        "last_run": newest_run(&state, &p.name).await?,
        "freshness": brigade_pipelines::freshness::check(state.store(), &p).await,
    })))
}

async fn lineage(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let p = find_pipeline(&state, &name)?;
    let lineage = brigade_pipelines::lineage::of(&p, state.store(), state.runner().env()).await;
    Ok(Json(
        serde_json::to_value(lineage).map_err(ApiError::internal)?,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    full_refresh: bool,
    /// Start at this step (a manual retry).
    #[serde(default)]
    from_step: Option<String>,
    /// Reload `{"from": .., "to": ..}` of the incremental extracts' cursors.
    #[serde(default)]
    backfill: Option<brigade_pipelines::run::report::Backfill>,
    #[serde(default)]
    vars: std::collections::BTreeMap<String, Value>,
    /// dbt-style selectors of the steps to run (extension to API.md).
    #[serde(default)]
    select: Vec<String>,
    /// Selectors of steps to leave out (extension to API.md).
    #[serde(default)]
    exclude: Vec<String>,
}

async fn start_run(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<RunStartedView>), ApiError> {
    // The body is optional: an empty POST starts a plain run.
    let body: StartBody = match crate::body::optional_object(&headers, &body)? {
        None => StartBody::default(),
        Some(map) => {
            // serde reads a struct from an array too: `backfill` is an object.
            if map
                .get("backfill")
                .is_some_and(|b| !b.is_null() && !b.is_object())
            {
                return Err(ApiError::field(
                    "backfill",
                    "expected {\"from\": .., \"to\": ..}",
                ));
            }
            serde_json::from_value(Value::Object(map)).map_err(|e| {
                let field = e.to_string();
                let key = field
                    .split('`')
                    .nth(1)
                    .filter(|_| field.starts_with("unknown field"))
                    .unwrap_or("body")
                    .to_string();
                ApiError::field(
                    &key,
                    format!("expected {{\"full_refresh\": bool, \"from_step\": string, \"backfill\": {{\"from\": .., \"to\": ..}}, \"vars\": {{\"name\": value}}, \"select\": [selector], \"exclude\": [selector]}}: {e}"),
                )
            })?
        }
    };
    let options = RunOptions {
        full_refresh: body.full_refresh,
        from_step: body.from_step,
        retry_of: None,
        backfill: body.backfill,
        vars: body.vars,
        cause: None,
        select: body.select,
        exclude: body.exclude,
    };
    let id = state
        .runner()
        .start(&name, Trigger::Api, options)
        .await
        .map_err(start_error)?;
    Ok((StatusCode::ACCEPTED, Json(RunStartedView { run_id: id })))
}

fn start_error(e: StartError) -> ApiError {
    match e {
        StartError::UnknownPipeline(name) => unknown_pipeline(&name),
        StartError::UnknownRun(id) => ApiError::not_found(format!("run `{id}` not found")),
        // A selector that matches no step is well-formed but cannot be run: 422, naming it.
        StartError::Invalid { field, message } if matches!(field, "select" | "exclude") => {
            ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                ..ApiError::field(field, message)
            }
        }
        StartError::Invalid { field, message } => ApiError::field(field, message),
        StartError::Config(e) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        e @ StartError::TablesTaken(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        StartError::Store(e) => e.into(),
    }
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    page: Option<i64>,
    #[serde(alias = "perPage")]
    per_page: Option<i64>,
}

async fn list_runs(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    find_pipeline(&state, &name)?;
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(20);
    if page < 1 {
        return Err(ApiError::field("page", "must be 1 or more"));
    }
    if !(1..=200).contains(&per_page) {
        return Err(ApiError::field("per_page", "must be between 1 and 200"));
    }
    let runs = state
        .store()
        .runs()
        .list(Some(&name), per_page, (page - 1).saturating_mul(per_page))
        .await?;
    let items: Vec<RunView> = runs.into_iter().map(RunView::from).collect();
    Ok(Json(
        json!({ "page": page, "per_page": per_page, "items": items }),
    ))
}

async fn find_run(state: &AppState, id: &str) -> Result<RunView, ApiError> {
    state
        .store()
        .runs()
        .get(id)
        .await?
        .map(RunView::from)
        .ok_or_else(|| ApiError::not_found(format!("run `{id}` not found")))
}

async fn get_run(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(find_run(&state, &id).await?))
}

async fn cancel_run(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let run = find_run(&state, &id).await?;
    if !run.status.is_active() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("run `{id}` is already {}", run.status),
        ));
    }
    state.runner().cancel(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": id, "status": "cancelling" })),
    ))
}

fn sse(name: &str, data: &impl serde::Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// Streams a run: a `run` snapshot first, then its events until it finishes. Runs executing
/// in another process (or finished ones) are followed by polling their record.
async fn run_events(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let snapshot = find_run(&state, &id).await?;
    let live = state.runner().subscribe(&id);
    let stream = async_stream(state, id, snapshot, live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn async_stream(
    state: AppState,
    id: String,
    snapshot: RunView,
    live: Option<tokio::sync::broadcast::Receiver<Event>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    state
        .tasks()
        .clone()
        .service("run event stream", async move {
            if tx.send(sse("run", &snapshot)).await.is_err() || !snapshot.status.is_active() {
                return;
            }
            if let Some(mut live) = live {
                loop {
                    match live.recv().await {
                        Ok(event) => {
                            let last = matches!(event, Event::RunFinished { .. });
                            if tx.send(sse(event.name(), &event)).await.is_err() || last {
                                break;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    }
                }
            }
            // Another process runs it, or we missed the end: follow the record.
            loop {
                let Ok(Some(run)) = state.store().runs().get(&id).await else {
                    break;
                };
                let view = RunView::from(run);
                let finished = !view.status.is_active();
                if tx.send(sse("run", &view)).await.is_err() || finished {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

//! `POST /api/batch`: several record writes in one transaction, all or nothing.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brigade_store::{BatchOp, BatchOutcome};
use serde_json::{Map, Value, json};

use super::Routes;
use crate::audit::RequestMeta;
use crate::error::ApiError;
use crate::extract::{Caller, JsonObject};
use crate::state::AppState;
use crate::views::BatchResultView;
use brigade_store::AuditAction;

/// Most writes accepted in one batch.
const MAX_REQUESTS: usize = 1000;

pub(super) fn routes() -> Routes {
    Routes::new().post("/api/batch", run_batch)
}

async fn run_batch(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Json<Vec<BatchResultView>>, ApiError> {
    let Some(Value::Array(requests)) = body.get("requests") else {
        return Err(ApiError::field(
            "requests",
            "expected an array of {method, url, body}",
        ));
    };
    if requests.is_empty() || requests.len() > MAX_REQUESTS {
        return Err(ApiError::field(
            "requests",
            format!("send between 1 and {MAX_REQUESTS} requests"),
        ));
    }
    let ops = requests
        .iter()
        .enumerate()
        .map(|(i, r)| parse_request(r).map_err(|e| e.prefixed(&format!("requests.{i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let counts = batch_counts(&ops);
    let outcomes = state
        .store()
        .write(ops, &caller.access())
        .await
        .map_err(|(i, e)| ApiError::from(e).prefixed(&format!("requests.{i}")))?;
    // One entry per batch, with counts: an entry per operation let one caller fill the
    // audit queue with a few requests.
    state.audit().record(
        &meta,
        AuditAction::RecordBatch,
        caller.actor(),
        None,
        json!({"operations": outcomes.len(), "collections": counts}),
    );
    let results = outcomes
        .into_iter()
        .map(|o| match o {
            BatchOutcome::Created(r) => BatchResultView {
                status: 201,
                body: Some(r),
            },
            BatchOutcome::Updated(r) => BatchResultView {
                status: 200,
                body: Some(r),
            },
            BatchOutcome::Deleted => BatchResultView {
                status: 204,
                body: None,
            },
        })
        .collect();
    Ok(Json(results))
}

/// Operations per collection and kind: `{"posts": {"create": 2, "delete": 1}}`.
fn batch_counts(ops: &[BatchOp]) -> Map<String, Value> {
    let mut counts: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for op in ops {
        let (collection, kind) = match op {
            BatchOp::Create { collection, .. } => (collection, "create"),
            BatchOp::Update { collection, .. } => (collection, "update"),
            BatchOp::Delete { collection, .. } => (collection, "delete"),
        };
        *counts
            .entry(collection.as_str())
            .or_default()
            .entry(kind)
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(c, kinds)| (c.to_string(), json!(kinds)))
        .collect()
}

fn parse_request(r: &Value) -> Result<BatchOp, ApiError> {
    let method = r
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_uppercase();
    let url = r
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::field("url", "required"))?;
    let path = url.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (collection, id) = match parts.as_slice() {
        ["api", "collections", c, "records"] => (c.to_string(), None),
        ["api", "collections", c, "records", id] => (c.to_string(), Some(id.to_string())),
        _ => {
            return Err(ApiError::field(
                "url",
                "expected /api/collections/{name}/records[/{id}]",
            ));
        }
    };
    let body = || -> Result<Map<String, Value>, ApiError> {
        match r.get("body") {
            Some(Value::Object(m)) => Ok(m.clone()),
            _ => Err(ApiError::field("body", "expected a JSON object")),
        }
    };
    match (method.as_str(), id) {
        ("POST", None) => Ok(BatchOp::Create {
            collection,
            body: body()?,
        }),
        ("PATCH", Some(id)) => Ok(BatchOp::Update {
            collection,
            id,
            body: body()?,
        }),
        ("DELETE", Some(id)) => Ok(BatchOp::Delete { collection, id }),
        _ => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            ..ApiError::field(
                "method",
                "use POST on .../records, PATCH or DELETE on .../records/{id}",
            )
        }),
    }
}

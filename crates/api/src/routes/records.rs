//! `/api/collections/{name}/records[/{id}]`: list with filter/sort/paging/fields/expand,
//! read, create, patch and delete, each under the collection's rules for the caller.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brigade_store::query::ListParams;
use brigade_store::{Page, Record};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Routes;
use crate::audit::RequestMeta;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Caller, JsonObject};
use crate::state::AppState;
use brigade_store::AuditAction;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/api/collections/{name}/records", list_records)
        .post("/api/collections/{name}/records", create_record)
        .get("/api/collections/{name}/records/{id}", read_record)
        .patch("/api/collections/{name}/records/{id}", update_record)
        .delete("/api/collections/{name}/records/{id}", delete_record)
}

/// Query parameters of list requests.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    filter: Option<String>,
    sort: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
    #[serde(alias = "perPage")]
    per_page_camel: Option<String>,
    skip_total: Option<String>,
    fields: Option<String>,
    expand: Option<String>,
}

/// Converts the query into the store's parameters.
pub(crate) fn list_params(q: ListQuery) -> ListParams {
    ListParams {
        filter: q.filter,
        sort: q.sort,
        page: q.page,
        per_page: q.per_page.or(q.per_page_camel),
        skip_total: q.skip_total,
        fields: q.fields,
        expand: q.expand,
    }
}

#[derive(Debug, Default, Deserialize)]
struct ReadQuery {
    fields: Option<String>,
    expand: Option<String>,
}

async fn list_records(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    Ok(Json(
        state
            .store()
            .list_records(&name, &list_params(q), &caller.access())
            .await?,
    ))
}

async fn read_record(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((name, id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> Result<Json<Record>, ApiError> {
    Ok(Json(
        state
            .store()
            .get_record(
                &name,
                &id,
                q.fields.as_deref(),
                q.expand.as_deref(),
                &caller.access(),
            )
            .await?,
    ))
}

async fn create_record(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<Record>), ApiError> {
    let record = state
        .store()
        .create_record(&name, &body, &caller.access())
        .await?;
    let target = format!(
        "{name}/{}",
        record
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    );
    state.audit().record(
        &meta,
        AuditAction::RecordCreate,
        caller.actor(),
        Some(target),
        Value::Null,
    );
    Ok((StatusCode::CREATED, Json(record)))
}

async fn update_record(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: Caller,
    ApiPath((name, id)): ApiPath<(String, String)>,
    JsonObject(body): JsonObject,
) -> Result<Json<Record>, ApiError> {
    let record = state
        .store()
        .update_record(&name, &id, &body, &caller.access())
        .await?;
    let fields: Vec<&String> = body.keys().collect();
    state.audit().record(
        &meta,
        AuditAction::RecordUpdate,
        caller.actor(),
        Some(format!("{name}/{id}")),
        json!({"fields": fields}),
    );
    Ok(Json(record))
}

async fn delete_record(
    State(state): State<AppState>,
    meta: RequestMeta,
    caller: Caller,
    ApiPath((name, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .store()
        .delete_record(&name, &id, &caller.access())
        .await?;
    state.audit().record(
        &meta,
        AuditAction::RecordDelete,
        caller.actor(),
        Some(format!("{name}/{id}")),
        Value::Null,
    );
    Ok(StatusCode::NO_CONTENT)
}

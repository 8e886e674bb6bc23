//! `/api/tables`: every table pipelines wrote — bronze loads, silver and gold models,
//! quarantine and rejected rows — read-only, with the records API's filters, sorting and
//! paging, so a load can be checked without opening the database.
//!
//! Superusers read every table; accounts and API keys read the tables of pipelines whose
//! file grants one of their roles (`readers = ["analyst"]`). A table whose pipeline file is
//! gone is left to superusers.

use axum::Json;
use axum::extract::State;
use brigade_pipelines::Pipeline;
use brigade_store::Page;
use brigade_store::warehouse::WarehouseTable;
use serde_json::{Value, json};

use super::Routes;
use super::records::{ListQuery, list_params};
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::state::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/api/tables", list_tables)
        .get("/api/tables/{name}", get_table)
        .get("/api/tables/{name}/records", list_rows)
}

/// Who may read which pipeline's tables.
enum Reader {
    Superuser,
    Roles(Vec<String>),
}

impl Reader {
    /// The caller as a reader: 401 when anonymous.
    fn of(caller: &Caller) -> Result<Reader, ApiError> {
        match &caller.0 {
            None => Err(ApiError::unauthorized(
                "Send `Authorization: Bearer <token>` (a superuser, or an account or API key \
                 with a role a pipeline's `readers` grants).",
            )),
            Some(p) if p.is_admin() => Ok(Reader::Superuser),
            Some(p) => Ok(Reader::Roles(p.roles.clone())),
        }
    }

    fn may_read(&self, table: &WarehouseTable, pipelines: &[Pipeline]) -> bool {
        match self {
            Reader::Superuser => true,
            Reader::Roles(roles) => pipelines
                .iter()
                .find(|p| p.name == table.pipeline)
                .is_some_and(|p| p.readers.iter().any(|r| roles.contains(r))),
        }
    }
}

/// The layer of the node that writes `table`, from its pipeline's graph.
fn layer(table: &WarehouseTable, pipelines: &[Pipeline]) -> Value {
    pipelines
        .iter()
        .find(|p| p.name == table.pipeline)
        .and_then(|p| p.graph.nodes.iter().find(|n| n.name == table.node))
        .map_or(Value::Null, |n| Value::String(n.layer.into()))
}

fn summary(table: &WarehouseTable, pipelines: &[Pipeline]) -> Value {
    json!({
        "name": table.name,
        "pipeline": table.pipeline,
        "node": table.node,
        "layer": layer(table, pipelines),
        "role": table.role,
        "view": table.view,
    })
}

async fn list_tables(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let reader = Reader::of(&caller)?;
    let pipelines = state.runner().pipelines();
    let items: Vec<Value> = state
        .store()
        .warehouse()
        .tables()
        .await?
        .iter()
        .filter(|t| reader.may_read(t, &pipelines))
        .map(|t| summary(t, &pipelines))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// The table called `name` if the caller may read it: 404 when there is none, 403 when
/// the caller's roles are not among its pipeline's `readers`.
async fn readable(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<(WarehouseTable, std::sync::Arc<Vec<Pipeline>>), ApiError> {
    let reader = Reader::of(caller)?;
    let table = state
        .store()
        .warehouse()
        .table(name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no warehouse table named `{name}`; GET /api/tables lists them"
            ))
        })?;
    let pipelines = state.runner().pipelines();
    if !reader.may_read(&table, &pipelines) {
        return Err(ApiError::forbidden(format!(
            "table `{name}` of pipeline `{}` is readable by superusers and the roles its \
             pipeline file lists in `readers`",
            table.pipeline
        )));
    }
    Ok((table, pipelines))
}

async fn get_table(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let (table, pipelines) = readable(&state, &caller, &name).await?;
    let columns = state.store().warehouse().browse_columns(&table).await?;
    let mut out = summary(&table, &pipelines);
    out["columns"] = json!(columns);
    Ok(Json(out))
}

async fn list_rows(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let (table, _) = readable(&state, &caller, &name).await?;
    Ok(Json(
        state
            .store()
            .warehouse()
            .browse_table(&table, &list_params(q), &caller.access())
            .await?,
    ))
}

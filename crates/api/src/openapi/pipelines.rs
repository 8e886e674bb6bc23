//! The pipeline and run routes, superusers only.

use serde_json::{Map, Value, json};

use super::op::{Access, op, path_item, path_param, schema_ref};

pub(super) fn add(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    add_schemas(schemas);
    let name = || path_param("name", "The pipeline's name");
    let id = || path_param("id", "The run's id");
    let selectors = json!({"type": "array", "items": {"type": "string"},
        "description": "dbt-style selectors: NAME, +NAME, NAME+, N+NAME, NAME+N, tag:NAME"});
    let files = "The pipeline files are invalid";
    paths.insert(
        "/api/pipelines".into(),
        path_item([(
            "get",
            op(
                "pipelines",
                "list_pipelines",
                "Pipelines with schedule, last run and freshness; invalid files with their error",
            )
            .access(Access::Admin)
            .ok(
                200,
                "The pipelines",
                json!({"type": "array", "items": schema_ref("PipelineSummary")}),
            )
            .error(422, files)
            .build(),
        )]),
    );
    paths.insert(
        "/api/pipelines/{name}".into(),
        path_item([(
            "get",
            op(
                "pipelines",
                "get_pipeline",
                "A pipeline: nodes, trigger, vars, freshness",
            )
            .access(Access::Admin)
            .param(name())
            .ok(
                200,
                "The pipeline (or, for an invalid file, its error)",
                schema_ref("Pipeline"),
            )
            .error(404, "Unknown pipeline")
            .build(),
        )]),
    );
    paths.insert("/api/pipelines/{name}/runs".into(), path_item([
        ("get", super::op::paging(op("pipelines", "list_runs", "Runs of a pipeline, newest first").access(Access::Admin).param(name()), 200)
            .ok(200, "A page of runs", json!({"type": "object", "required": ["items", "page", "per_page"], "properties": {
                "items": {"type": "array", "items": schema_ref("Run")}, "page": {"type": "integer"}, "per_page": {"type": "integer"}}}))
            .error(404, "Unknown pipeline").build()),
        ("post", op("pipelines", "start_run", "Start a run (queued while another run of the pipeline holds its lease)").access(Access::Admin)
            .param(name())
            .body(json!({"type": "object", "additionalProperties": false, "properties": {
                "full_refresh": {"type": "boolean"}, "from_step": {"type": ["string", "null"]},
                "backfill": {"type": ["object", "null"], "required": ["from", "to"], "additionalProperties": false, "properties": {"from": {}, "to": {}}},
                "vars": {"type": "object", "description": "Values of the pipeline's [vars]"},
                "select": selectors, "exclude": selectors}}), false)
            .ok(202, "Started or queued", schema_ref("RunStarted"))
            .error(400, "An invalid option or var")
            .error(404, "Unknown pipeline")
            .error(409, "A table the run would write belongs to a collection, a system table or another pipeline")
            .error(422, "The pipeline's files are invalid, or a selector matches nothing")
            .build()),
    ]));
    paths.insert("/api/pipelines/{name}/test".into(), path_item([("post",
        op("pipelines", "test_pipeline", "Run the pipeline's data tests against the current tables (loads nothing)").access(Access::Admin)
            .param(name())
            .body(json!({"type": "object", "additionalProperties": false, "properties": {"select": selectors, "exclude": selectors}}), false)
            .ok(200, "Failing tests are data, not an error", json!({"type": "object", "properties": {
                "pipeline": {"type": "string"}, "status": {"type": "string", "enum": ["passed", "warned", "failed"]},
                "nodes": {"type": "array", "items": {"type": "object"}}}}))
            .error(404, "Unknown pipeline")
            .error(422, "The pipeline's files are invalid, or a selector matches nothing")
            .build())]));
    paths.insert(
        "/api/pipelines/{name}/lineage".into(),
        path_item([(
            "get",
            op("pipelines", "lineage", "Column lineage of every model")
                .access(Access::Admin)
                .param(name())
                .ok(
                    200,
                    "Nodes with their columns' sources",
                    json!({"type": "object"}),
                )
                .error(404, "Unknown pipeline")
                .build(),
        )]),
    );
    paths.insert(
        "/api/runs/{id}".into(),
        path_item([(
            "get",
            op(
                "pipelines",
                "get_run",
                "A run: steps, rows, expectations and tests",
            )
            .access(Access::Admin)
            .param(id())
            .ok(200, "The run", schema_ref("Run"))
            .error(404, "Unknown run")
            .build(),
        )]),
    );
    let mut events = op(
        "pipelines",
        "run_events",
        "Progress of a run as server-sent events",
    )
    .access(Access::Admin)
    .param(id())
    .media(
        200,
        "`run` snapshots and step events until the run ends",
        "text/event-stream",
        json!({"type": "string"}),
    )
    .error(404, "Unknown run")
    .build();
    events["security"] = json!([{"bearer": []}, {"apiKey": []}, {"queryToken": []}]);
    paths.insert("/api/runs/{id}/events".into(), path_item([("get", events)]));
    paths.insert(
        "/api/runs/{id}/cancel".into(),
        path_item([(
            "post",
            op(
                "pipelines",
                "cancel_run",
                "Cancel a run (nothing half-written is published)",
            )
            .access(Access::Admin)
            .param(id())
            .ok(202, "Cancellation requested", schema_ref("RunCancelling"))
            .error(404, "Unknown run")
            .error(409, "The run already ended")
            .build(),
        )]),
    );
}

fn add_schemas(schemas: &mut Map<String, Value>) {
    let nullable_time = json!({"type": ["string", "null"], "format": "date-time"});
    let last_run = json!({"type": ["object", "null"], "properties": {
        "id": {"type": "string"}, "status": {"type": "string"}, "finished": nullable_time}});
    let error = json!({"type": "object", "properties": {
        "file": {"type": ["string", "null"]}, "line": {"type": ["integer", "null"]}, "key": {"type": ["string", "null"]},
        "message": {"type": "string"}, "detail": {"type": "string"}}});
    schemas.insert(
        "PipelineSummary".into(),
        json!({"type": "object", "required": ["name", "status", "file"], "properties": {
        "name": {"type": "string"}, "status": {"type": "string", "enum": ["valid", "invalid"]},
        "file": {"type": ["string", "null"]}, "description": {"type": ["string", "null"]},
        "schedule": {"type": ["string", "null"]}, "next_run": nullable_time, "last_run": last_run,
        "freshness": {}, "error": error}}),
    );
    schemas.insert("Pipeline".into(), json!({"type": "object", "required": ["name", "status"], "properties": {
        "name": {"type": "string"}, "status": {"type": "string", "enum": ["valid", "invalid"]},
        "description": {"type": ["string", "null"]}, "file": {"type": ["string", "null"]},
        "schedule": {"type": ["string", "null"]}, "next_run": nullable_time, "retries": {"type": "integer"},
        "trigger": {"type": ["object", "null"]}, "vars": {"type": "object"},
        "nodes": {"type": "array", "items": {"type": "object"}}, "last_run": last_run, "freshness": {}, "error": error}}));
    schemas.insert("Run".into(), json!({"type": "object", "required": ["id", "pipeline", "status", "trigger", "created", "started", "finished", "full_refresh", "steps"], "properties": {
        "id": {"type": "string"}, "pipeline": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
        "trigger": {"type": "string"}, "created": {"type": "string", "format": "date-time"},
        "started": nullable_time, "finished": nullable_time, "error": {"type": "string"},
        "full_refresh": {"type": "boolean"}, "retry_of": {"type": "string"},
        "backfill": {"type": "object"}, "vars": {"type": "object"}, "cause": {"type": "string"},
        "select": {"type": "array", "items": {"type": "string"}}, "exclude": {"type": "array", "items": {"type": "string"}},
        "steps": {"type": "array", "items": {"type": "object"}}}}));
}

/// `/api/tables`: pipeline tables read-only, for superusers and the roles a pipeline's
/// `readers` grants.
pub(super) fn tables(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    let name = || path_param("name", "The table's name");
    let refused = "Neither a superuser nor holding a role the table's pipeline lists in `readers`";
    schemas.insert("WarehouseTable".into(), json!({"type": "object",
        "required": ["name", "pipeline", "node", "layer", "role", "view"], "properties": {
        "name": {"type": "string"}, "pipeline": {"type": "string"}, "node": {"type": "string"},
        "layer": {"type": ["string", "null"], "enum": ["bronze", "silver", "gold", null],
            "description": "null when the pipeline file is gone"},
        "role": {"type": "string", "enum": ["output", "quarantine", "rejected"]},
        "view": {"type": "boolean"},
        "columns": {"type": "array", "items": {"type": "object", "required": ["name", "type"], "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "enum": ["text", "integer", "number", "bool", "datetime", "json"]}}}}}}));
    paths.insert(
        "/api/tables".into(),
        path_item([(
            "get",
            op(
                "tables",
                "list_tables",
                "The pipeline tables the caller may read: outputs, quarantine and rejected rows",
            )
            .access(Access::Signed)
            .ok(
                200,
                "The tables",
                json!({"type": "object", "required": ["items"],
                "properties": {"items": {"type": "array", "items": schema_ref("WarehouseTable")}}}),
            )
            .build(),
        )]),
    );
    paths.insert(
        "/api/tables/{name}".into(),
        path_item([(
            "get",
            op(
                "tables",
                "get_table",
                "A pipeline table with its columns and the types they read as",
            )
            .access(Access::Signed)
            .param(name())
            .ok(200, "The table", schema_ref("WarehouseTable"))
            .error(403, refused)
            .error(404, "Unknown table")
            .build(),
        )]),
    );
    let rows = super::op::paging(
        op("tables", "list_table_rows", "Rows of a pipeline table, with filters, sorting and paging").access(Access::Signed).param(name()),
        500)
        .query("filter", "Filter expression over the table's columns", json!({"type": "string"}))
        .query("sort", "Comma-separated columns, '-' for descending (default: every column in order)", json!({"type": "string"}))
        .query("skip_total", "Leave total_items and total_pages null (faster)", json!({"type": "boolean", "default": false}))
        .query("fields", "Comma-separated columns to return", json!({"type": "string"}))
        .ok(200, "A page of rows", json!({
            "type": "object", "required": ["items", "page", "per_page", "total_items", "total_pages"],
            "properties": {
                "items": {"type": "array", "items": {"type": "object"}},
                "page": {"type": "integer"}, "per_page": {"type": "integer"},
                "total_items": {"type": ["integer", "null"]}, "total_pages": {"type": ["integer", "null"]}}}))
        .error(403, refused)
        .error(404, "Unknown table")
        .build();
    paths.insert(
        "/api/tables/{name}/records".into(),
        path_item([("get", rows)]),
    );
}

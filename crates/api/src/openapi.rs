//! The OpenAPI 3.1 document of the live API, collections included. It is rebuilt from the
//! schema cache on each request (cheap), so it always matches the current collections.
//! Written as JSON directly: every path of a collection is generated from runtime data.
//!
//! It is built for its reader ([`Audience`]): anonymous callers and ordinary users do not
//! learn of collections they can neither list nor view (both rules superuser-only), of the
//! operations whose rule is superuser-only, nor of the superuser-only routes (schema
//! changes, search documents). Superusers see everything.

use std::collections::HashSet;
use std::sync::Arc;

use brigade_core::schema::{Collection, FieldType};
use serde_json::{Map, Value, json};

/// Who reads the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Every collection, operation and route.
    Superuser,
    /// Anonymous callers and users without the `admin` role: what rules may let them do.
    Public,
}

/// Whether `audience` may learn of collection `c`: a rule other than superuser-only
/// (`null`) on list or view.
pub(crate) fn shows(audience: Audience, c: &Collection) -> bool {
    audience == Audience::Superuser || c.rules.list.is_some() || c.rules.view.is_some()
}

/// The OpenAPI document for `collections` and search `indexes`, as `audience` may see it
/// (`indexes` are already the ones it may see).
pub(crate) fn document(
    collections: &[Arc<Collection>],
    indexes: &[String],
    audience: Audience,
) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert("Problem".into(), problem_schema());
    let hidden: HashSet<&str> = collections
        .iter()
        .filter(|c| !shows(audience, c))
        .map(|c| c.name.as_str())
        .collect();
    for c in collections {
        if hidden.contains(c.name.as_str()) {
            continue;
        }
        let (record, input) = record_schemas(c, &hidden);
        let name = &c.name;
        schemas.insert(format!("{name}Record"), record);
        schemas.insert(format!("{name}Input"), input);
        let record_ref = json!({"$ref": format!("#/components/schemas/{name}Record")});
        let input_ref = json!({"$ref": format!("#/components/schemas/{name}Input")});
        let tag = json!([name]);
        paths.insert(
            format!("/api/collections/{name}/records"),
            json!({
                "get": {
                    "tags": tag, "summary": format!("List {name} records"), "operationId": format!("list_{name}"),
                    "parameters": list_parameters(),
                    "responses": {
                        "200": {"description": "A page of records", "content": {"application/json": {"schema": {
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": record_ref},
                                "page": {"type": "integer"}, "per_page": {"type": "integer"},
                                "total_items": {"type": ["integer", "null"]}, "total_pages": {"type": ["integer", "null"]}
                            }
                        }}}},
                        "400": problem("Invalid filter, sort, fields, expand or paging"),
                        "401": problem("Missing or invalid token"), "404": problem("Unknown collection")
                    }
                },
                "post": {
                    "tags": tag, "summary": format!("Create a {name} record"), "operationId": format!("create_{name}"),
                    "requestBody": {"required": true, "content": {"application/json": {"schema": input_ref}}},
                    "responses": {
                        "201": {"description": "Created", "content": {"application/json": {"schema": record_ref}}},
                        "400": problem("Invalid fields"), "409": problem("Unique value taken"),
                        "413": problem("Body too large"), "415": problem("Not JSON")
                    }
                }
            }),
        );
        let id_param =
            json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
        paths.insert(
            format!("/api/collections/{name}/records/{{id}}"),
            json!({
                "parameters": id_param,
                "get": {"tags": tag, "summary": format!("Read a {name} record"), "operationId": format!("read_{name}"),
                    "parameters": [query_param("fields", "Comma-separated keys to return"), query_param("expand", "Relations to expand, e.g. author.team")],
                    "responses": {"200": {"description": "The record", "content": {"application/json": {"schema": record_ref}}}, "404": problem("No such record")}},
                "patch": {"tags": tag, "summary": format!("Update a {name} record"), "operationId": format!("update_{name}"),
                    "requestBody": {"required": true, "content": {"application/json": {"schema": input_ref}}},
                    "responses": {"200": {"description": "The updated record", "content": {"application/json": {"schema": record_ref}}},
                        "400": problem("Invalid fields"), "404": problem("No such record"), "409": problem("Unique value taken")}},
                "delete": {"tags": tag, "summary": format!("Delete a {name} record"), "operationId": format!("delete_{name}"),
                    "responses": {"204": {"description": "Deleted"}, "404": problem("No such record"), "409": problem("Still referenced")}}
            }),
        );
        if let Some(pipeline) = &c.pipeline {
            // Pipeline tables are read-only: only the reads are part of the API.
            for path in [
                format!("/api/collections/{name}/records"),
                format!("/api/collections/{name}/records/{{id}}"),
            ] {
                if let Some(Value::Object(ops)) = paths.get_mut(&path) {
                    ops.retain(|op, _| op == "get" || op == "parameters");
                    ops.insert(
                        "description".into(),
                        format!("Read-only: the table is maintained by pipeline `{pipeline}`.")
                            .into(),
                    );
                }
            }
        }
    }
    if audience == Audience::Public {
        for c in collections
            .iter()
            .filter(|c| !hidden.contains(c.name.as_str()))
        {
            keep_allowed_operations(&mut paths, c);
        }
    }
    if audience == Audience::Superuser {
        schema_paths(&mut paths);
        pipeline_paths(&mut paths);
    }
    paths.insert("/api/batch".into(), json!({
        "post": {"tags": ["records"], "summary": "Several writes in one transaction",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "requests": {"type": "array", "items": {"type": "object", "required": ["method", "url"], "properties": {
                    "method": {"enum": ["POST", "PATCH", "DELETE"]}, "url": {"type": "string"}, "body": {"type": "object"}}}}}}}}},
            "responses": {"200": {"description": "One result per request"}, "400": problem("A request is invalid; nothing was written")}}
    }));
    paths.insert("/api/auth/login".into(), json!({
        "post": {"tags": ["auth"], "summary": "Log in with email and password", "security": [],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["email", "password"],
                "properties": {"email": {"type": "string"}, "password": {"type": "string"}}}}}},
            "responses": {"200": {"description": "Tokens"}, "401": problem("Wrong email or password")}}
    }));
    paths.insert("/api/auth/me".into(), json!({"get": {"tags": ["auth"], "summary": "The current user", "responses": {"200": {"description": "The user"}, "401": problem("Not logged in")}}}));
    paths.insert("/healthz".into(), json!({"get": {"tags": ["operations"], "security": [], "summary": "Process is alive", "responses": {"200": {"description": "ok"}}}}));
    paths.insert("/readyz".into(), json!({"get": {"tags": ["operations"], "security": [], "summary": "Database reachable and migrations applied", "responses": {"200": {"description": "ready"}, "503": problem("Not ready")}}}));
    if !indexes.is_empty() {
        search_paths(&mut paths, indexes, audience);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Brigade", "version": env!("CARGO_PKG_VERSION"),
            "description": "Collections, records, auth and operations of this Brigade app. Errors are RFC 9457 problem+json."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        },
        "security": [{"bearer": []}]
    })
}

/// Drops the operations of `c` whose rule is superuser-only, and paths left without any.
fn keep_allowed_operations(paths: &mut Map<String, Value>, c: &Collection) {
    let name = &c.name;
    let rules = &c.rules;
    let allowed = [
        (
            format!("/api/collections/{name}/records"),
            "get",
            rules.list.is_some(),
        ),
        (
            format!("/api/collections/{name}/records"),
            "post",
            rules.create.is_some(),
        ),
        (
            format!("/api/collections/{name}/records/{{id}}"),
            "get",
            rules.view.is_some(),
        ),
        (
            format!("/api/collections/{name}/records/{{id}}"),
            "patch",
            rules.update.is_some(),
        ),
        (
            format!("/api/collections/{name}/records/{{id}}"),
            "delete",
            rules.delete.is_some(),
        ),
    ];
    for (path, op, allowed) in allowed {
        if let Some(Value::Object(ops)) = paths.get_mut(&path)
            && !allowed
        {
            ops.remove(op);
        }
    }
    for path in [
        format!("/api/collections/{name}/records"),
        format!("/api/collections/{name}/records/{{id}}"),
    ] {
        let empty = paths
            .get(&path)
            .and_then(Value::as_object)
            .is_some_and(|ops| {
                !ops.keys()
                    .any(|k| matches!(k.as_str(), "get" | "post" | "patch" | "delete"))
            });
        if empty {
            paths.remove(&path);
        }
    }
}

/// The schema routes (`/api/collections`), superusers only.
fn schema_paths(paths: &mut Map<String, Value>) {
    paths.insert("/api/collections".into(), json!({
        "get": {"tags": ["schema"], "summary": "List collections", "responses": {"200": {"description": "Collections"}}},
        "post": {"tags": ["schema"], "summary": "Create a collection (recorded as a migration)",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"201": {"description": "Created"}, "400": problem("Invalid definition"), "409": problem("Name taken")}}
    }));
    paths.insert("/api/collections/{name}".into(), json!({
        "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
        "get": {"tags": ["schema"], "summary": "Read a collection", "responses": {"200": {"description": "The collection"}, "404": problem("Unknown")}},
        "patch": {"tags": ["schema"], "summary": "Change fields, indexes or rules (recorded as a migration)",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": {"description": "The collection"}, "400": problem("Invalid"), "422": problem("Type change")}},
        "delete": {"tags": ["schema"], "summary": "Drop a collection", "responses": {"204": {"description": "Dropped"}}}
    }));
}

/// The pipeline and run routes, superusers only.
fn pipeline_paths(paths: &mut Map<String, Value>) {
    let name =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let selectors = json!({"type": "array", "items": {"type": "string"},
        "description": "dbt-style selectors: NAME, +NAME, NAME+, N+NAME, NAME+N, tag:NAME"});
    paths.insert("/api/pipelines".into(), json!({
        "get": {"tags": ["pipelines"], "summary": "Pipelines with schedule, last run and freshness; invalid files with their error",
            "responses": {"200": {"description": "Pipelines"}}}
    }));
    paths.insert("/api/pipelines/{name}".into(), json!({
        "parameters": name,
        "get": {"tags": ["pipelines"], "summary": "A pipeline: nodes, trigger, vars, freshness",
            "responses": {"200": {"description": "The pipeline"}, "404": problem("Unknown pipeline")}}
    }));
    paths.insert("/api/pipelines/{name}/runs".into(), json!({
        "parameters": name,
        "get": {"tags": ["pipelines"], "summary": "Runs of a pipeline, newest first",
            "parameters": [query_param("page", "Page number, from 1"), query_param("perPage", "Runs per page")],
            "responses": {"200": {"description": "A page of runs"}, "404": problem("Unknown pipeline")}},
        "post": {"tags": ["pipelines"], "summary": "Start a run (queued while another run of the pipeline holds its lease)",
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "full_refresh": {"type": "boolean"}, "from_step": {"type": "string"},
                "backfill": {"type": "object", "properties": {"from": {}, "to": {}}},
                "vars": {"type": "object", "description": "Values of the pipeline's [vars]"},
                "select": selectors, "exclude": selectors}}}}},
            "responses": {"202": {"description": "{run_id}"}, "400": problem("An invalid option or var"),
                "404": problem("Unknown pipeline"), "409": problem("A table the run would write belongs to a collection, a system table or another pipeline"),
                "422": problem("The pipeline's files are invalid, or a selector matches nothing")}}
    }));
    paths.insert("/api/pipelines/{name}/test".into(), json!({
        "parameters": name,
        "post": {"tags": ["pipelines"], "summary": "Run the pipeline's data tests against the current tables (loads nothing)",
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "select": selectors, "exclude": selectors}}}}},
            "responses": {"200": {"description": "{pipeline, status, nodes: [{node, kind, tests}]}"},
                "404": problem("Unknown pipeline"), "422": problem("Invalid files, or a selector matches nothing")}}
    }));
    paths.insert("/api/pipelines/{name}/lineage".into(), json!({
        "parameters": name,
        "get": {"tags": ["pipelines"], "summary": "Column lineage of every model",
            "responses": {"200": {"description": "Nodes with their columns' sources"}, "404": problem("Unknown pipeline")}}
    }));
    paths.insert(
        "/api/runs/{id}".into(),
        json!({
            "parameters": id,
            "get": {"tags": ["pipelines"], "summary": "A run: steps, rows, expectations and tests",
                "responses": {"200": {"description": "The run"}, "404": problem("Unknown run")}}
        }),
    );
    paths.insert("/api/runs/{id}/events".into(), json!({
        "parameters": id,
        "get": {"tags": ["pipelines"], "summary": "Progress of a run as server-sent events",
            "responses": {"200": {"description": "text/event-stream"}, "404": problem("Unknown run")}}
    }));
    paths.insert("/api/runs/{id}/cancel".into(), json!({
        "parameters": id,
        "post": {"tags": ["pipelines"], "summary": "Cancel a run (nothing half-written is published)",
            "responses": {"202": {"description": "Cancellation requested"}, "404": problem("Unknown run"),
                "409": problem("The run already ended")}}
    }));
}

/// `/api/search/{index}`, its documents and `/api/rag/{index}`, for the indexes of brigade.toml
/// (the document routes for superusers only).
fn search_paths(paths: &mut Map<String, Value>, indexes: &[String], audience: Audience) {
    let index = json!({"name": "index", "in": "path", "required": true, "schema": {"type": "string", "enum": indexes}});
    let source = json!({"type": "object", "properties": {"document_id": {"type": "string"}, "title": {"type": "string"},
        "path_or_url": {"type": "string"}, "chunk": {"type": "integer"}}});
    paths.insert("/api/search/{index}".into(), json!({
        "parameters": [index],
        "get": {"tags": ["search"], "summary": "Search an index by keywords, meaning or both (weighted reciprocal rank fusion); hits spread over documents",
            "parameters": [
                {"name": "q", "in": "query", "required": true, "schema": {"type": "string", "maxLength": 2000}},
                {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}},
                {"name": "mode", "in": "query", "schema": {"enum": ["hybrid", "vector", "keyword"], "default": "hybrid"}},
                query_param("filter", "Filter on the documents (id, title, path, kind and metadata keys, bare or as metadata.KEY) or the collection's fields")],
            "responses": {"200": {"description": "Hits, best first", "content": {"application/json": {"schema": {"type": "object", "properties": {
                "hits": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "score": {"type": "number"},
                    "text": {"type": "string"}, "source": source, "highlights": {"type": "array", "items": {"type": "string"}},
                    "heading": {"type": "string"}}}}}}}}},
                "400": problem("Invalid q, k, mode or filter"), "401": problem("The index's rule needs a login"), "404": problem("Unknown index")}}
    }));
    if audience == Audience::Superuser {
        document_paths(paths, &index);
    }
    paths.insert("/api/rag/{index}".into(), json!({
        "parameters": [index],
        "post": {"tags": ["search"], "summary": "Answer a question from the index, with its sources",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["question"],
                "properties": {"question": {"type": "string", "maxLength": 2000}, "k": {"type": "integer", "minimum": 1, "maximum": 20}}}}}},
            "responses": {"200": {"description": "The answer", "content": {"application/json": {"schema": {"type": "object", "properties": {
                "answer": {"type": "string"}, "mode": {"enum": ["generative", "extractive"]},
                "sources": {"type": "array", "items": {"type": "object", "properties": {"document_id": {"type": "string"}, "title": {"type": "string"},
                    "path_or_url": {"type": "string"}, "snippet": {"type": "string"}, "score": {"type": "number"}}}},
                "model": {"type": "string"}, "usage": {"type": "object", "properties": {"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}}},
                "latency_ms": {"type": "integer"}, "cached": {"type": "boolean"}}}}}},
                "400": problem("Invalid question or k"), "404": problem("Unknown index"),
                "502": problem("The language model failed"), "504": problem("The language model timed out")}}
    }));
}

/// The routes that write and list an index's documents, superusers only.
fn document_paths(paths: &mut Map<String, Value>, index: &Value) {
    paths.insert("/api/search/{index}/documents".into(), json!({
        "parameters": [index],
        "get": {"tags": ["search"], "summary": "List the index's documents (superusers)",
            "parameters": [query_param("page", "Page, from 1"), query_param("per_page", "1 to 500")],
            "responses": {"200": {"description": "A page of documents"}, "404": problem("Unknown index")}},
        "post": {"tags": ["search"], "summary": "Ingest documents (superusers); unchanged ones are skipped",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                "id": {"type": "string"}, "title": {"type": "string"}, "text": {"type": "string"}, "content_base64": {"type": "string"},
                "format": {"enum": ["markdown", "text", "html", "pdf"]}, "path_or_url": {"type": "string"}, "metadata": {"type": "object"}}}}}},
            "responses": {"201": {"description": "Indexed"}, "200": {"description": "Unchanged"}, "400": problem("Invalid document"),
                "422": problem("The document cannot be parsed")}}
    }));
    paths.insert("/api/search/{index}/documents/{id}".into(), json!({
        "parameters": [index, {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "delete": {"tags": ["search"], "summary": "Delete a document (superusers)",
            "responses": {"204": {"description": "Deleted"}, "404": problem("No such document")}}
    }));
}

fn problem(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn problem_schema() -> Value {
    json!({"type": "object", "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "errors": {"type": "object", "additionalProperties": {"type": "string"}}}})
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
}

fn list_parameters() -> Value {
    json!([
        query_param("filter", "Filter expression, e.g. status = 'active' && views >= 10"),
        query_param("sort", "Comma-separated fields, '-' for descending, e.g. -created,title"),
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
        {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 30}},
        {"name": "skip_total", "in": "query", "schema": {"type": "boolean", "default": false}},
        query_param("fields", "Comma-separated keys to return"),
        query_param("expand", "Relations to expand, e.g. author,author.team"),
    ])
}

fn field_schema(kind: FieldType, c: &Collection, name: &str, hidden: &HashSet<&str>) -> Value {
    match kind {
        FieldType::Text => json!({"type": "string"}),
        FieldType::Integer => json!({"type": "integer", "format": "int64"}),
        FieldType::Number => json!({"type": "number"}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldType::Json => json!({}),
        FieldType::Email => json!({"type": "string", "format": "email"}),
        FieldType::Url => json!({"type": "string", "format": "uri"}),
        FieldType::Select => {
            json!({"type": "string", "enum": c.field(name).and_then(|f| f.options.values.clone()).unwrap_or_default()})
        }
        FieldType::Relation => {
            let target = c
                .field(name)
                .and_then(|f| f.options.collection.clone())
                .unwrap_or_default();
            let description = if hidden.contains(target.as_str()) {
                "id of a related record".to_string()
            } else {
                format!("id of a `{target}` record")
            };
            json!({"type": "string", "description": description})
        }
    }
}

/// The record and input schemas of `c`; relations to `hidden` collections do not name them.
fn record_schemas(c: &Collection, hidden: &HashSet<&str>) -> (Value, Value) {
    let mut props = Map::new();
    props.insert("id".into(), json!({"type": "string"}));
    props.insert(
        "created".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    props.insert(
        "updated".into(),
        json!({"type": "string", "format": "date-time"}),
    );
    let mut input_props = Map::new();
    let mut required = Vec::new();
    for f in &c.fields {
        let schema = field_schema(f.kind, c, &f.name, hidden);
        props.insert(f.name.clone(), schema.clone());
        input_props.insert(f.name.clone(), schema);
        if f.required {
            required.push(Value::String(f.name.clone()));
        }
    }
    let record = json!({"type": "object", "properties": props});
    let input = json!({"type": "object", "properties": input_props, "required": required, "additionalProperties": false});
    (record, input)
}

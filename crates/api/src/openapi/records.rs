//! The records routes of each collection (`/api/collections/{name}/records[/{id}]`) and the
//! schemas of its records: `{name}Record` (a response), `{name}Input` (a create) and
//! `{name}Patch` (an update). A field that is not required is nullable in all three: a
//! record without a value sends `null`.

use std::collections::HashSet;
use std::sync::Arc;

use brigade_core::schema::{Collection, FieldType};
use serde_json::{Map, Value, json};

use super::op::{Access, Op, op, path_item, path_param, schema_ref};

/// The collection of accounts: a relation to it holds the id of an account.
const ACCOUNTS: &str = "users";

/// The two records paths of `c` and its three schemas (`{name}Record`, `{name}Input`,
/// `{name}Patch`); relations to `hidden` collections do not name them. A `superuser` sees
/// every operation, others those whose rule is not superuser-only.
pub(super) fn add(
    paths: &mut Map<String, Value>,
    schemas: &mut Map<String, Value>,
    c: &Collection,
    find: &dyn Fn(&str) -> Option<Arc<Collection>>,
    hidden: &HashSet<&str>,
    superuser: bool,
) {
    let name = &c.name;
    schemas.insert("JsonValue".into(), json_value_schema());
    schemas.insert(format!("{name}Record"), record_schema(c, hidden));
    schemas.insert(format!("{name}Input"), input_schema(c, hidden, true));
    schemas.insert(format!("{name}Patch"), input_schema(c, hidden, false));
    let record = schema_ref(&format!("{name}Record"));
    let id = || path_param("id", "The record's id");
    let access = Access::Optional;
    let list = op(
        name,
        &format!("list_{name}"),
        &format!("List {name} records"),
    )
    .access(access);
    let list = list_params(list)
        .query("fields", "Comma-separated keys to return", super::projection::fields(c))
        .query("expand", "Relations to expand", super::projection::expand(c, find, hidden))
        .ok(200, "A page of records", json!({
            "type": "object", "required": ["items", "page", "per_page", "total_items", "total_pages"],
            "properties": {
                "items": {"type": "array", "items": record},
                "page": {"type": "integer"}, "per_page": {"type": "integer"},
                "total_items": {"type": ["integer", "null"], "description": "null with skip_total"},
                "total_pages": {"type": ["integer", "null"], "description": "null with skip_total"}
            }
        }))
        .error(403, "The list rule refused the caller")
        .error(404, "Unknown collection")
        .build();
    // What a schema cannot check: that a relation names a record that exists.
    let relations = match c.fields.iter().any(|f| f.kind == FieldType::Relation) {
        true => "A relation field names no record of its collection (or no account)",
        false => "The body is malformed or a field is invalid (see `errors`)",
    };
    let create = op(
        name,
        &format!("create_{name}"),
        &format!("Create a {name} record"),
    )
    .access(access)
    .body(schema_ref(&format!("{name}Input")), true)
    .error(400, relations)
    .ok(201, "Created", record.clone())
    .error(403, "The create rule refused the caller")
    .error(404, "Unknown collection")
    .error(
        405,
        "The collection is maintained by a pipeline (read-only)",
    )
    .error(409, "A unique value is taken")
    .build();
    let read = op(
        name,
        &format!("read_{name}"),
        &format!("Read a {name} record"),
    )
    .access(access)
    .param(id())
    .query(
        "fields",
        "Comma-separated keys to return",
        super::projection::fields(c),
    )
    .query(
        "expand",
        "Relations to expand",
        super::projection::expand(c, find, hidden),
    )
    .ok(200, "The record", record.clone())
    .error(403, "The view rule refused the caller")
    .error(404, "Unknown collection or record")
    .build();
    let update = op(
        name,
        &format!("update_{name}"),
        &format!("Update a {name} record"),
    )
    .access(access)
    .param(id())
    .body(schema_ref(&format!("{name}Patch")), true)
    .error(400, relations)
    .ok(200, "The updated record", record)
    .error(403, "The update rule refused the caller")
    .error(404, "Unknown collection or record")
    .error(
        405,
        "The collection is maintained by a pipeline (read-only)",
    )
    .error(409, "A unique value is taken")
    .build();
    let delete = op(
        name,
        &format!("delete_{name}"),
        &format!("Delete a {name} record"),
    )
    .access(access)
    .param(id())
    .empty(204, "Deleted")
    .error(403, "The delete rule refused the caller")
    .error(404, "Unknown collection or record")
    .error(
        405,
        "The collection is maintained by a pipeline (read-only)",
    )
    .error(
        409,
        "The record is still referenced by a relation without cascade_delete",
    )
    .build();
    let rules = &c.rules;
    // A pipeline table is read-only: only its reads are part of the API.
    let writable = c.pipeline.is_none();
    let mut many = vec![("get", list, rules.list.is_some())];
    many.push(("post", create, writable && rules.create.is_some()));
    let one = vec![
        ("get", read, rules.view.is_some()),
        ("patch", update, writable && rules.update.is_some()),
        ("delete", delete, writable && rules.delete.is_some()),
    ];
    for (path, ops) in [
        (format!("/api/collections/{name}/records"), many),
        (format!("/api/collections/{name}/records/{{id}}"), one),
    ] {
        let kept: Vec<(&'static str, Value)> = ops
            .into_iter()
            .filter(|(m, _, allowed)| (superuser || *allowed) && (writable || matches!(*m, "get")))
            .map(|(m, o, _)| (m, o))
            .collect();
        if kept.is_empty() {
            continue;
        }
        let mut item = path_item(kept);
        if let Some(pipeline) = &c.pipeline {
            item["description"] =
                format!("Read-only: the table is maintained by pipeline `{pipeline}`.").into();
        }
        paths.insert(path, item);
    }
}

/// The schema of one field's value; `nullable` adds `null`.
fn field_schema(c: &Collection, name: &str, kind: FieldType, hidden: &HashSet<&str>) -> Value {
    let field = c.field(name);
    let options = field.map(|f| &f.options);
    let mut schema = match kind {
        FieldType::Text => json!({"type": "string", "pattern": NO_NUL}),
        FieldType::Integer => {
            json!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX})
        }
        FieldType::Number => json!({"type": "number"}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldType::Json => schema_ref("JsonValue"),
        FieldType::Email => json!({"type": "string", "format": "email"}),
        FieldType::Url => json!({"type": "string", "format": "uri"}),
        FieldType::Select => {
            let values = options.and_then(|o| o.values.clone()).unwrap_or_default();
            json!({"type": "string", "enum": values})
        }
        FieldType::Relation => {
            let target = options
                .and_then(|o| o.collection.clone())
                .unwrap_or_default();
            let description = if target == ACCOUNTS {
                "The id of an account (`users`: see `GET /api/users` and `GET /api/auth/me`)"
                    .to_string()
            } else if hidden.contains(target.as_str()) {
                "The id of a related record".to_string()
            } else {
                format!("The id of a `{target}` record")
            };
            json!({"type": "string", "pattern": ID_PATTERN, "description": description})
        }
    };
    let required = field.is_some_and(|f| f.required);
    if required && schema["type"] == "string" {
        schema["minLength"] = json!(1);
    }
    let (min, max) = (options.and_then(|o| o.min), options.and_then(|o| o.max));
    match kind {
        // The tighter of the field's bounds and the type's.
        FieldType::Integer => {
            if let Some(min) = min.filter(|m| *m > i64::MIN as f64) {
                schema["minimum"] = json!(min);
            }
            if let Some(max) = max.filter(|m| *m < i64::MAX as f64) {
                schema["maximum"] = json!(max);
            }
        }
        FieldType::Number => {
            if let Some(min) = min {
                schema["minimum"] = json!(min);
            }
            if let Some(max) = max {
                schema["maximum"] = json!(max);
            }
        }
        // A text's bounds are on its length in characters.
        FieldType::Text => {
            if let Some(min) = min.filter(|m| *m > 0.0) {
                schema["minLength"] = json!(min.ceil() as u64);
            }
            if let Some(max) = max {
                schema["maxLength"] = json!(max.max(0.0).floor() as u64);
            }
        }
        _ => {}
    }
    schema
}

/// Strings the store keeps: no NUL (PostgreSQL cannot store it; SQLite ends a string there).
const NO_NUL: &str = "^[^\\u0000]*$";
/// A record id as the server takes one ([`brigade_core::ids::is_plausible_id`]).
const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// `JsonValue`: what a `json` field holds, recursively: no NUL in any string or key, and
/// numbers that survive PostgreSQL's jsonb (between -1e300 and 1e300).
fn json_value_schema() -> Value {
    let this = schema_ref("JsonValue");
    json!({"description": "Any JSON value without NUL characters, with numbers between -1e300 and 1e300",
        "anyOf": [
            {"type": ["null", "boolean"]},
            {"type": "number", "minimum": -1e300, "maximum": 1e300},
            {"type": "string", "pattern": NO_NUL},
            {"type": "array", "items": this},
            {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": this}]})
}

/// `schema` that also admits `null`.
fn nullable(mut schema: Value) -> Value {
    match schema.get("type").cloned() {
        Some(Value::String(t)) => {
            schema["type"] = json!([t, "null"]);
            if let Some(Value::Array(values)) = schema.get_mut("enum") {
                values.push(Value::Null);
            }
            schema
        }
        // `json` fields take any value, null included.
        _ => schema,
    }
}

fn record_schema(c: &Collection, hidden: &HashSet<&str>) -> Value {
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
    for f in &c.fields {
        let schema = field_schema(c, &f.name, f.kind, hidden);
        let schema = if f.required { schema } else { nullable(schema) };
        props.insert(f.name.clone(), schema);
    }
    props.insert(
        "expand".into(),
        json!({"type": "object", "description": "The records of the relations named in `expand`, by field",
            "additionalProperties": {"type": "object"}}),
    );
    json!({"type": "object", "properties": props,
        "description": "Keys left out by `fields` are absent; fields without a value are null"})
}

/// The body of a create (`required` fields listed) or an update (every field optional).
fn input_schema(c: &Collection, hidden: &HashSet<&str>, create: bool) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in &c.fields {
        let schema = field_schema(c, &f.name, f.kind, hidden);
        let schema = match (f.required, f.kind) {
            (true, _) => schema,
            (false, FieldType::Text | FieldType::Json) => nullable(schema),
            // An empty string clears an optional field of any other type, as null does.
            (false, _) => {
                json!({"anyOf": [schema, {"type": "string", "maxLength": 0}, {"type": "null"}]})
            }
        };
        props.insert(f.name.clone(), schema);
        if f.required && create && f.default.is_none() {
            required.push(Value::String(f.name.clone()));
        }
    }
    if create {
        props.insert(
            "id".into(),
            json!({"type": ["string", "null"], "pattern": ID_PATTERN,
            "description": "The new record's id; generated when absent"}),
        );
    }
    // A record read back may be sent again: its system keys are ignored.
    for key in ["created", "updated", "expand"] {
        props.insert(key.into(), json!({"description": "Ignored"}));
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// The parameters a collection list shares with the audit log (whose keys are fixed; a
/// collection adds `fields` and `expand` built from its own fields).
pub(super) fn list_params(op: Op) -> Op {
    super::op::paging(op, 500)
        .query(
            "filter",
            "Filter expression, e.g. status = 'active' && views >= 10",
            json!({"type": "string"}),
        )
        .query(
            "sort",
            "Comma-separated fields, '-' for descending, e.g. -created,title",
            json!({"type": "string"}),
        )
        .query(
            "skip_total",
            "Leave total_items and total_pages null (faster)",
            json!({"type": "boolean", "default": false}),
        )
}

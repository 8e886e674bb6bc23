//! Validation of collection definitions sent to `POST`/`PATCH /api/collections`, and the
//! migration operations a schema change is recorded as.
//!
//! Errors name the JSON path of the offending value (`fields.2.type`), so a client can point
//! at the exact input that is wrong.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::input::coerce;
use super::{Collection, Field, FieldOptions, FieldType, RESERVED_FIELD_NAMES, Rules, short_id};
use crate::errors::FieldErrors;
use crate::schema::names::{NAME_RULE, is_valid_name, reserved_collection_name};

/// One step of a schema migration file (`migrations/*.json`). Definitions are complete, so
/// replaying the files on an empty database of either backend rebuilds the same schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Create a collection's table, indexes and metadata.
    CreateCollection { collection: Collection },
    /// Bring a collection to this definition: fields are matched by `id`, so a changed
    /// name is a rename, a new id an added column and a missing id a dropped one.
    UpdateCollection { collection: Collection },
    /// Drop a collection and its records.
    DeleteCollection { name: String },
    /// Hand-written SQL: `sql` for both backends, or `sqlite`/`postgres` per dialect.
    Sql {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sql: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sqlite: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postgres: Option<String>,
    },
}

/// The content of one migration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub operations: Vec<Operation>,
}

/// Why a definition cannot be applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DefinitionError {
    /// Malformed input, per JSON path.
    #[error("invalid collection definition: {}", .0.summary())]
    Invalid(FieldErrors),
    /// Well-formed, but not a change we can carry out (e.g. changing a field's type).
    #[error("{0}")]
    Unprocessable(String),
}

/// What the validator needs to know about other collections.
pub trait SchemaLookup {
    /// The collection named `name`, compared case-insensitively.
    fn find(&self, name: &str) -> Option<&Collection>;
}

impl SchemaLookup for Vec<Collection> {
    fn find(&self, name: &str) -> Option<&Collection> {
        self.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

const TOP_LEVEL: &[&str] = &[
    "name", "fields", "indexes", "rules", "id", "created", "updated",
];

/// Validates a new collection.
///
/// # Errors
/// [`DefinitionError::Invalid`] with one message per offending JSON path.
pub fn parse_new_collection(
    body: &Json,
    others: &dyn SchemaLookup,
    now: &str,
) -> Result<Collection, DefinitionError> {
    let obj = as_object(body)?;
    let mut errors = unknown_keys(obj, TOP_LEVEL);
    let name = match obj.get("name") {
        Some(Json::String(n)) if is_valid_name(n) => {
            if let Some(reason) = reserved_collection_name(n) {
                return Err(DefinitionError::Invalid(FieldErrors::one(
                    "name",
                    format!("`{n}` cannot name a collection: {reason}"),
                )));
            }
            if others.find(n).is_some() {
                return Err(DefinitionError::Invalid(FieldErrors::one(
                    "name",
                    format!("a collection named `{n}` already exists"),
                )));
            }
            n.clone()
        }
        Some(Json::String(_)) => {
            errors.add(
                "name",
                format!("collection names {NAME_RULE}; `_` prefixes are reserved"),
            );
            String::new()
        }
        _ => {
            errors.add("name", "required: a string");
            String::new()
        }
    };
    let fields = parse_fields(obj.get("fields"), &[], &name, others, &mut errors);
    let indexes = parse_indexes(obj.get("indexes"), &fields, &mut errors);
    let rules = parse_rules(obj.get("rules"), &mut errors);
    errors.into_result().map_err(DefinitionError::Invalid)?;
    Ok(Collection {
        id: short_id('c', 12),
        name,
        fields,
        indexes,
        rules,
        created: now.into(),
        updated: now.into(),
        pipeline: None,
        system_columns: true,
    })
}

/// Validates a PATCH of `current`: `fields` (when present) is the complete new list.
///
/// # Errors
/// [`DefinitionError::Invalid`] for malformed input; [`DefinitionError::Unprocessable`] for
/// a type change or a rename of the collection.
pub fn parse_collection_patch(
    current: &Collection,
    body: &Json,
    others: &dyn SchemaLookup,
    now: &str,
) -> Result<Collection, DefinitionError> {
    let obj = as_object(body)?;
    let mut errors = unknown_keys(obj, TOP_LEVEL);
    if let Some(name) = obj.get("name")
        && name.as_str() != Some(current.name.as_str())
    {
        return Err(DefinitionError::Unprocessable(
            "renaming a collection is not supported; create a new collection and copy the records"
                .into(),
        ));
    }
    // A type change is refused as such, before its default is checked against the new type.
    for item in obj
        .get("fields")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let old = item
            .get("id")
            .and_then(Json::as_str)
            .and_then(|id| current.field_by_id(id));
        let new_type = item
            .get("type")
            .and_then(Json::as_str)
            .and_then(FieldType::parse);
        if let (Some(old), Some(new_type)) = (old, new_type)
            && old.kind != new_type
        {
            return Err(DefinitionError::Unprocessable(format!(
                "field `{}` cannot change type from {} to {}; add a new field and copy the values",
                old.name,
                old.kind.as_str(),
                new_type.as_str()
            )));
        }
    }
    let mut next = current.clone();
    if obj.contains_key("fields") {
        next.fields = parse_fields(
            obj.get("fields"),
            &current.fields,
            &current.name,
            others,
            &mut errors,
        );
    }
    if obj.contains_key("indexes") {
        next.indexes = parse_indexes(obj.get("indexes"), &next.fields, &mut errors);
    } else {
        // Keep indexes whose fields survive (renames follow the field).
        next.indexes = current
            .indexes
            .iter()
            .filter_map(|ix| {
                ix.iter()
                    .map(|n| {
                        current
                            .field(n)
                            .and_then(|f| next.field_by_id(&f.id))
                            .map(|f| f.name.clone())
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .collect();
    }
    if obj.contains_key("rules") {
        next.rules = parse_rules(obj.get("rules"), &mut errors);
    }
    errors.into_result().map_err(DefinitionError::Invalid)?;
    next.updated = now.into();
    Ok(next)
}

fn as_object(body: &Json) -> Result<&Map<String, Json>, DefinitionError> {
    body.as_object()
        .ok_or_else(|| DefinitionError::Invalid(FieldErrors::one("body", "expected a JSON object")))
}

fn unknown_keys(obj: &Map<String, Json>, allowed: &[&str]) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for key in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.add(key.clone(), "unknown key");
    }
    errors
}

const FIELD_KEYS: &[&str] = &[
    "id", "name", "type", "required", "unique", "default", "options",
];

fn parse_fields(
    value: Option<&Json>,
    existing: &[Field],
    collection: &str,
    others: &dyn SchemaLookup,
    errors: &mut FieldErrors,
) -> Vec<Field> {
    let Some(Json::Array(items)) = value else {
        if value.is_some() {
            errors.add("fields", "expected an array of fields");
        }
        return Vec::new();
    };
    if items.len() > 500 {
        errors.add("fields", "at most 500 fields");
        return Vec::new();
    }
    let mut fields: Vec<Field> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |k: &str| format!("fields.{i}.{k}");
        let Some(obj) = item.as_object() else {
            errors.add(format!("fields.{i}"), "expected an object");
            continue;
        };
        for key in obj.keys().filter(|k| !FIELD_KEYS.contains(&k.as_str())) {
            errors.add(at(key), "unknown key");
        }
        let id = match obj.get("id") {
            None | Some(Json::Null) => short_id('f', 8),
            Some(Json::String(id)) if existing.iter().any(|f| &f.id == id) => id.clone(),
            Some(_) => {
                errors.add(
                    at("id"),
                    "no existing field has this id; omit `id` to add a field",
                );
                continue;
            }
        };
        let name = match obj.get("name") {
            Some(Json::String(n)) if !is_valid_name(n) => {
                errors.add(at("name"), format!("field names {NAME_RULE}"));
                continue;
            }
            Some(Json::String(n))
                if RESERVED_FIELD_NAMES.contains(&n.to_ascii_lowercase().as_str()) =>
            {
                errors.add(at("name"), format!("`{n}` is reserved"));
                continue;
            }
            Some(Json::String(n)) if fields.iter().any(|f| f.name.eq_ignore_ascii_case(n)) => {
                errors.add(at("name"), format!("duplicate field name `{n}`"));
                continue;
            }
            Some(Json::String(n)) => n.clone(),
            _ => {
                errors.add(at("name"), "required: a string");
                continue;
            }
        };
        let Some(kind) = obj
            .get("type")
            .and_then(Json::as_str)
            .and_then(FieldType::parse)
        else {
            errors.add(
                at("type"),
                format!("required: one of {}", FieldType::ALL.join(", ")),
            );
            continue;
        };
        let flag = |key: &str, errors: &mut FieldErrors| match obj.get(key) {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => {
                errors.add(at(key), "expected true or false");
                false
            }
        };
        let required = flag("required", errors);
        let unique = flag("unique", errors);
        let options: FieldOptions = match obj.get("options") {
            None | Some(Json::Null) => FieldOptions::default(),
            // serde reads a struct from an array too (`[["a"]]` as `values`): only objects.
            Some(v) if !v.is_object() => {
                errors.add(at("options"), "expected an object");
                continue;
            }
            Some(v) => match serde_json::from_value(v.clone()) {
                Ok(o) => o,
                Err(e) => {
                    errors.add(at("options"), e.to_string());
                    continue;
                }
            },
        };
        let mut field = Field {
            id,
            name,
            kind,
            required,
            unique,
            default: None,
            options,
        };
        check_options(&field, i, collection, others, errors);
        if let Some(default) = obj.get("default").filter(|d| !d.is_null()) {
            if kind == FieldType::Relation {
                errors.add(at("default"), "relation fields cannot have a default");
            } else {
                match coerce(&field, default) {
                    Ok(_) => field.default = Some(default.clone()),
                    Err(message) => errors.add(at("default"), message),
                }
            }
        }
        if unique && kind == FieldType::Json {
            errors.add(at("unique"), "json fields cannot be unique");
        }
        fields.push(field);
    }
    fields
}

fn check_options(
    field: &Field,
    i: usize,
    collection: &str,
    others: &dyn SchemaLookup,
    errors: &mut FieldErrors,
) {
    let at = |k: &str| format!("fields.{i}.options.{k}");
    let o = &field.options;
    match field.kind {
        FieldType::Select => match &o.values {
            Some(values) if !values.is_empty() && values.iter().all(|v| !v.is_empty()) => {}
            _ => errors.add(
                at("values"),
                "select fields need a non-empty list of non-empty strings",
            ),
        },
        FieldType::Relation => match o.collection.as_deref() {
            // A relation to accounts (an owner field); see `ACCOUNTS_COLLECTION`.
            Some(super::ACCOUNTS_COLLECTION) => {}
            Some(target) if target == collection => {}
            Some(target) if others.find(target).is_some() => {}
            Some(target) => errors.add(at("collection"), format!("no collection named `{target}`")),
            None => errors.add(
                at("collection"),
                "relation fields need the target collection",
            ),
        },
        _ => {}
    }
    if o.values.is_some() && field.kind != FieldType::Select {
        errors.add(at("values"), "only select fields take `values`");
    }
    if (o.collection.is_some() || o.cascade_delete) && field.kind != FieldType::Relation {
        errors.add(
            at("collection"),
            "only relation fields take `collection` and `cascade_delete`",
        );
    }
    if let (Some(min), Some(max)) = (o.min, o.max)
        && min > max
    {
        errors.add(at("min"), "min is greater than max");
    }
}

fn parse_indexes(
    value: Option<&Json>,
    fields: &[Field],
    errors: &mut FieldErrors,
) -> Vec<Vec<String>> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        errors.add("indexes", "expected an array of arrays of field names");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, ix) in items.iter().enumerate() {
        let names: Option<Vec<String>> = ix
            .as_array()
            .and_then(|a| a.iter().map(|n| n.as_str().map(str::to_string)).collect());
        match names {
            Some(names) if !names.is_empty() && names.len() <= 16 => {
                let all_known = names.iter().all(|n| {
                    fields.iter().any(|f| &f.name == n)
                        || super::SYSTEM_FIELDS.contains(&n.as_str())
                });
                if all_known {
                    out.push(names);
                } else {
                    errors.add(
                        format!("indexes.{i}"),
                        "names a field the collection does not have",
                    );
                }
            }
            _ => errors.add(
                format!("indexes.{i}"),
                "expected a non-empty array of field names",
            ),
        }
    }
    out
}

fn parse_rules(value: Option<&Json>, errors: &mut FieldErrors) -> Rules {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Rules::default();
    };
    // serde reads a struct from an array too (`[null, ""]` as list and view): only objects.
    if !value.is_object() {
        errors.add(
            "rules",
            "expected an object of rules (list, view, create, update, delete)",
        );
        return Rules::default();
    }
    let rules: Rules = match serde_json::from_value(value.clone()) {
        Ok(r) => r,
        Err(e) => {
            errors.add("rules", e.to_string());
            return Rules::default();
        }
    };
    for (name, rule) in [
        ("list", &rules.list),
        ("view", &rules.view),
        ("create", &rules.create),
        ("update", &rules.update),
        ("delete", &rules.delete),
    ] {
        if let Some(rule) = rule.as_deref().filter(|r| !r.trim().is_empty())
            && let Err(e) = crate::filter::parse(rule)
        {
            errors.add(format!("rules.{name}"), e.to_string());
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn none() -> Vec<Collection> {
        Vec::new()
    }

    #[test]
    fn valid_collection_gets_ids_and_defaults() {
        let body = json!({"name": "posts", "fields": [
            {"name": "title", "type": "text", "required": true},
            {"name": "status", "type": "select", "options": {"values": ["draft", "live"]}, "default": "draft"}
        ], "indexes": [["status", "created"]]});
        let c = parse_new_collection(&body, &none(), "t").unwrap();
        assert!(c.id.starts_with('c'));
        assert_eq!(c.fields.len(), 2);
        assert!(c.fields[0].required);
        assert_eq!(c.fields[1].default, Some(json!("draft")));
    }

    #[test]
    fn rules_and_options_are_objects() {
        let body = json!({"name": "posts", "rules": [null, ""]});
        let Err(DefinitionError::Invalid(e)) = parse_new_collection(&body, &none(), "t") else {
            panic!("an array of rules is refused");
        };
        assert_eq!(e.iter().next().map(|(k, _)| k.as_str()), Some("rules"));
        let body = json!({"name": "posts", "fields": [
            {"name": "s", "type": "select", "options": [["a"]]}]});
        let Err(DefinitionError::Invalid(e)) = parse_new_collection(&body, &none(), "t") else {
            panic!("an array of options is refused");
        };
        assert!(e.iter().any(|(k, _)| k == "fields.0.options"));
    }

    #[test]
    fn errors_name_the_json_path() {
        let body = json!({"name": "x; DROP", "fields": [
            {"name": "ok", "type": "text"}, {"name": "id", "type": "text"}, {"name": "n", "type": "float"},
            {"name": "s", "type": "select"}, {"name": "r", "type": "relation", "options": {"collection": "nope"}}
        ]});
        let Err(DefinitionError::Invalid(e)) = parse_new_collection(&body, &none(), "t") else {
            panic!("expected invalid");
        };
        let keys: Vec<_> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "fields.1.name",
                "fields.2.type",
                "fields.3.options.values",
                "fields.4.options.collection",
                "name"
            ]
        );
    }

    #[test]
    fn patch_renames_by_id_and_refuses_type_changes() {
        let body = json!({"name": "posts", "fields": [{"name": "title", "type": "text"}, {"name": "views", "type": "integer"}],
            "indexes": [["views"]]});
        let c = parse_new_collection(&body, &none(), "t").unwrap();
        let title_id = c.fields[0].id.clone();
        let patch = json!({"fields": [{"id": title_id, "name": "headline", "type": "text"}, {"name": "body", "type": "text"}]});
        let next = parse_collection_patch(&c, &patch, &none(), "t2").unwrap();
        assert_eq!(next.fields[0].id, title_id);
        assert_eq!(next.fields[0].name, "headline");
        assert_eq!(next.fields.len(), 2);
        assert!(next.indexes.is_empty(), "index on dropped field is gone");
        let bad = json!({"fields": [{"id": title_id, "name": "title", "type": "integer"}]});
        assert!(matches!(
            parse_collection_patch(&c, &bad, &none(), "t"),
            Err(DefinitionError::Unprocessable(_))
        ));
    }
}

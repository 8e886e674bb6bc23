//! The schemas of collection definitions: `Collection` (an answer), `CollectionInput` (the
//! body of a create) and `CollectionPatch` (the body of an update). The bodies say what
//! [`brigade_core::schema::definition`] checks as far as JSON Schema can: names by the same
//! pattern and reserved words, closed objects at every level, and `null` wherever the server
//! reads it as absent. What depends on other data (a relation's target collection, a field
//! `id` of the collection being changed, the index names of its fields, a default valid for
//! its field's type, a rule's filter syntax) is in the descriptions, and is checked by the
//! server.

use brigade_core::schema::{
    ACCOUNTS_COLLECTION, FieldType, NAME_PATTERN, NAME_RULE, RESERVED_COLLECTION_PREFIXES,
    RESERVED_FIELD_NAMES,
};
use serde_json::{Map, Value, json};

/// Adds `Collection`, `CollectionInput` and `CollectionPatch`.
pub(super) fn add(schemas: &mut Map<String, Value>) {
    let rule = json!({"type": ["string", "null"], "description": "null: superusers only; \"\": anyone; otherwise a filter"});
    let field_types: Vec<&str> = FieldType::ALL.to_vec();
    let rules = json!({"type": "object", "properties": {"list": rule, "view": rule, "create": rule, "update": rule, "delete": rule}});
    let field = json!({"type": "object", "required": ["name", "type"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "type": {"type": "string", "enum": field_types},
        "required": {"type": "boolean"}, "unique": {"type": "boolean"}, "default": {},
        "options": {"type": "object", "properties": {
            "values": {"type": "array", "items": {"type": "string"}},
            "collection": {"type": "string", "description": "The related collection; `users` relates to accounts"},
            "cascade_delete": {"type": "boolean"},
            "min": {"type": "number"}, "max": {"type": "number"}}}}});
    schemas.insert("Collection".into(), json!({"type": "object",
        "required": ["id", "name", "fields", "indexes", "rules", "created", "updated"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "fields": {"type": "array", "items": field},
        "indexes": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        "rules": rules,
        "created": {"type": "string", "format": "date-time"}, "updated": {"type": "string", "format": "date-time"},
        "pipeline": {"type": "string", "description": "The pipeline maintaining the table (read-only)"}}}));
    schemas.insert(
        "CollectionInput".into(),
        body(
            json!({"type": "string", "pattern": collection_name_pattern(),
                "description": format!("A collection name {NAME_RULE}; not `{ACCOUNTS_COLLECTION}`, and not starting with {}",
                    RESERVED_COLLECTION_PREFIXES.iter().map(|(p, _)| format!("`{p}`")).collect::<Vec<_>>().join(" or "))}),
            true,
        ),
    );
    schemas.insert(
        "CollectionPatch".into(),
        body(
            json!({"type": "string", "description": "The collection's name; a rename is refused (422)"}),
            false,
        ),
    );
}

/// The body of a create (`name` required) or an update; `fields` is the complete list.
fn body(name: Value, create: bool) -> Value {
    let rule = json!({"type": ["string", "null"], "description": "null: superusers only; \"\": anyone; otherwise a filter expression"});
    let ignored = json!({"description": "Ignored (a collection read back may be sent again)"});
    let mut schema = json!({"type": "object", "additionalProperties": false, "properties": {
        "name": name,
        "fields": {"type": "array", "maxItems": 500, "items": field_input(),
            "description": "The complete list of fields; on an update a field keeps its data by sending its `id`"},
        "indexes": {"type": ["array", "null"], "items": {"type": "array", "minItems": 1, "maxItems": 16,
            "items": {"type": "string"}}, "description": "Each index is a list of the collection's field names (or id, created, updated)"},
        "rules": {"type": ["object", "null"], "additionalProperties": false,
            "description": "Absent or null rules are superuser-only",
            "properties": {"list": rule, "view": rule, "create": rule, "update": rule, "delete": rule}},
        "id": ignored, "created": ignored, "updated": ignored}});
    if create {
        schema["required"] = json!(["name"]);
    }
    schema
}

/// One field of a definition.
fn field_input() -> Value {
    let field_types: Vec<&str> = FieldType::ALL.to_vec();
    json!({"type": "object", "required": ["name", "type"], "additionalProperties": false, "properties": {
        "id": {"type": ["string", "null"], "description": "On an update: the id of an existing field (a rename keeps its data); absent for a new field"},
        "name": {"type": "string", "pattern": field_name_pattern(),
            "description": format!("A field name {NAME_RULE}; not {}, and unique in the collection",
                RESERVED_FIELD_NAMES.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))},
        "type": {"type": "string", "enum": field_types},
        "required": {"type": ["boolean", "null"]}, "unique": {"type": ["boolean", "null"]},
        "default": {"description": "A value of the field's type (not for relations)"},
        "options": {"type": ["object", "null"], "additionalProperties": false, "properties": {
            "values": {"type": ["array", "null"], "items": {"type": "string"}, "description": "`select`: the allowed values (required, not empty)"},
            "collection": {"type": ["string", "null"], "description": "`relation`: an existing collection, or `users` for accounts (required)"},
            "cascade_delete": {"type": "boolean"},
            "min": {"type": ["number", "null"]}, "max": {"type": ["number", "null"]}}}}})
}

/// `word` in any case: `pg_` → `[pP][gG]_`.
fn any_case(word: &str) -> String {
    word.chars()
        .map(|c| match c.is_ascii_alphabetic() {
            true => format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()),
            false => c.to_string(),
        })
        .collect()
}

/// A valid name that is none of `words` and starts with none of `prefixes`, in any case.
fn name_pattern(words: &[&str], prefixes: &[&str]) -> String {
    let barred: Vec<String> = words
        .iter()
        .map(|w| format!("{}$", any_case(w)))
        .chain(prefixes.iter().map(|p| any_case(p)))
        .collect();
    format!("^(?!{}){NAME_PATTERN}$", barred.join("|"))
}

fn collection_name_pattern() -> String {
    let prefixes: Vec<&str> = RESERVED_COLLECTION_PREFIXES
        .iter()
        .map(|(p, _)| *p)
        .collect();
    name_pattern(&[ACCOUNTS_COLLECTION], &prefixes)
}

fn field_name_pattern() -> String {
    name_pattern(RESERVED_FIELD_NAMES, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_barred_in_any_case() {
        assert_eq!(
            collection_name_pattern(),
            "^(?![uU][sS][eE][rR][sS]$|[sS][qQ][lL][iI][tT][eE]_|[pP][gG]_)[A-Za-z][A-Za-z0-9_]{0,62}$"
        );
        assert!(field_name_pattern().starts_with("^(?![iI][dD]$|[cC][rR][eE][aA][tT][eE][dD]$|"));
    }
}

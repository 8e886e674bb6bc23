//! Validation of record bodies: every value is checked against its field and turned into a
//! typed [`Value`] before the store sees it. Messages say what was expected.

use serde_json::{Map, Value as Json};

use super::{Collection, Field, FieldType};
use crate::errors::FieldErrors;
use crate::ids::is_plausible_id;
use crate::value::Value;

/// Whether a body creates a record or patches one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// Validated input: `(field name, value)` in the collection's field order, plus a
/// client-chosen id on create.
#[derive(Debug, Clone, Default)]
pub struct RecordInput {
    pub id: Option<String>,
    pub values: Vec<(String, Value)>,
}

/// Validates a record body against `collection`.
///
/// On create, absent fields take their default (or null); on update only the sent fields
/// are returned. `created`, `updated` and `expand` are ignored so clients may send back a
/// record they read.
///
/// # Errors
/// One message per offending field: unknown fields, wrong types, missing required values.
pub fn validate_record(
    collection: &Collection,
    body: &Map<String, Json>,
    mode: Mode,
) -> Result<RecordInput, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut input = RecordInput::default();
    for (key, value) in body {
        match key.as_str() {
            "created" | "updated" | "expand" => {}
            "id" => match (mode, value) {
                (Mode::Create, Json::String(id)) if is_plausible_id(id) => {
                    input.id = Some(id.clone())
                }
                (Mode::Create, Json::Null) => {}
                (Mode::Create, _) => {
                    errors.add("id", "must be 1 to 64 letters, digits, `-` or `_`")
                }
                (Mode::Update, _) => errors.add("id", "cannot be changed"),
            },
            _ if collection.field(key).is_none() => {
                errors.add(
                    key.clone(),
                    format!("unknown field; `{}` has no field `{key}`", collection.name),
                );
            }
            _ => {}
        }
    }
    for field in &collection.fields {
        let sent = body.get(&field.name);
        let value = match (sent, mode) {
            (Some(v), _) => match coerce(field, v) {
                Ok(v) => v,
                Err(message) => {
                    errors.add(field.name.clone(), message);
                    continue;
                }
            },
            (None, Mode::Create) => match &field.default {
                Some(d) => coerce(field, d).unwrap_or(Value::Null),
                None => Value::Null,
            },
            (None, Mode::Update) => continue,
        };
        let blank =
            matches!(&value, Value::Null) || matches!(&value, Value::Text(s) if s.is_empty());
        if field.required && blank {
            errors.add(field.name.clone(), "required: cannot be null or empty");
            continue;
        }
        input.values.push((field.name.clone(), value));
    }
    errors.into_result().map(|()| input)
}

/// Checks one JSON value against `field` and returns its typed form.
///
/// # Errors
/// A message saying what the field expects.
pub fn coerce(field: &Field, value: &Json) -> Result<Value, String> {
    if contains_nul(value) {
        return Err("must not contain NUL (\\u0000) characters".into());
    }
    let empty_is_null = !matches!(field.kind, FieldType::Text | FieldType::Json);
    match value {
        Json::Null => {
            return Ok(if field.kind == FieldType::Json {
                Value::Json(Json::Null)
            } else {
                Value::Null
            });
        }
        Json::String(s) if s.is_empty() && empty_is_null => return Ok(Value::Null),
        _ => {}
    }
    let opts = &field.options;
    match field.kind {
        FieldType::Text => {
            let s = value.as_str().ok_or("expected a string")?;
            let len = s.chars().count() as f64;
            if opts.min.is_some_and(|m| len < m) || opts.max.is_some_and(|m| len > m) {
                return Err(format!(
                    "length must be between {} and {}",
                    fmt_bound(opts.min),
                    fmt_bound(opts.max)
                ));
            }
            Ok(Value::Text(s.to_string()))
        }
        FieldType::Integer => {
            let n = match value {
                Json::Number(n) => n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                }),
                _ => None,
            }
            .ok_or("expected an integer")?;
            check_range(n as f64, field)?;
            Ok(Value::Int(n))
        }
        FieldType::Number => {
            let n = value
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or("expected a number")?;
            check_range(n, field)?;
            Ok(Value::Float(n))
        }
        FieldType::Bool => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| "expected true or false".into()),
        FieldType::Datetime => value
            .as_str()
            .and_then(crate::time::normalize_datetime)
            .map(Value::Text)
            .ok_or_else(|| "expected an RFC 3339 date-time, e.g. \"2026-11-22T20:49:26Z\"".into()),
        FieldType::Json if has_huge_number(value) => {
            Err("numbers in JSON values must lie between -1e300 and 1e300".into())
        }
        FieldType::Json => Ok(Value::Json(value.clone())),
        FieldType::Email => {
            let s = value.as_str().ok_or("expected an email address")?;
            if is_email(s) {
                Ok(Value::Text(s.to_string()))
            } else {
                Err("expected an email address".into())
            }
        }
        FieldType::Url => {
            let s = value.as_str().ok_or("expected an http(s) URL")?;
            if is_url(s) {
                Ok(Value::Text(s.to_string()))
            } else {
                Err("expected an http(s) URL".into())
            }
        }
        FieldType::Select => {
            let s = value.as_str().ok_or("expected a string")?;
            let values = opts.values.as_deref().unwrap_or_default();
            if values.iter().any(|v| v == s) {
                Ok(Value::Text(s.to_string()))
            } else {
                Err(format!("must be one of: {}", values.join(", ")))
            }
        }
        FieldType::Relation => match value.as_str() {
            Some(id) if is_plausible_id(id) => Ok(Value::Text(id.to_string())),
            _ => Err("expected the id of a record (a string)".into()),
        },
    }
}

/// Whether any string (or object key) inside `value` contains U+0000, which PostgreSQL
/// cannot store in text or jsonb and SQLite treats as a terminator.
fn contains_nul(value: &Json) -> bool {
    match value {
        Json::String(s) => s.contains('\0'),
        Json::Array(items) => items.iter().any(contains_nul),
        Json::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Whether a number inside `value` is too large to survive a round trip through
/// PostgreSQL's jsonb (which prints it as a 300-digit integer) on every backend alike.
fn has_huge_number(value: &Json) -> bool {
    match value {
        Json::Number(n) => n.as_f64().is_some_and(|f| f.abs() > 1e300),
        Json::Array(items) => items.iter().any(has_huge_number),
        Json::Object(map) => map.values().any(has_huge_number),
        _ => false,
    }
}

fn fmt_bound(b: Option<f64>) -> String {
    b.map_or_else(|| "-".to_string(), |b| b.to_string())
}

fn check_range(n: f64, field: &Field) -> Result<(), String> {
    let o = &field.options;
    if o.min.is_some_and(|m| n < m) || o.max.is_some_and(|m| n > m) {
        return Err(format!(
            "must be between {} and {}",
            fmt_bound(o.min),
            fmt_bound(o.max)
        ));
    }
    Ok(())
}

/// Whether `s` is a plausible email address (one `@`, a dotted domain, no spaces).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

fn is_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty()
                && s.len() <= 2048
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldOptions;
    use serde_json::json;

    fn field(kind: FieldType) -> Field {
        Field {
            id: "f1".into(),
            name: "f".into(),
            kind,
            required: false,
            unique: false,
            default: None,
            options: FieldOptions::default(),
        }
    }

    #[test]
    fn coercion_per_type() {
        assert_eq!(
            coerce(&field(FieldType::Integer), &json!(3)),
            Ok(Value::Int(3))
        );
        assert!(coerce(&field(FieldType::Integer), &json!(1.5)).is_err());
        assert!(coerce(&field(FieldType::Integer), &json!("1")).is_err());
        assert_eq!(
            coerce(&field(FieldType::Number), &json!(1)),
            Ok(Value::Float(1.0))
        );
        assert!(coerce(&field(FieldType::Bool), &json!(1)).is_err());
        assert!(coerce(&field(FieldType::Email), &json!("a@b.co")).is_ok());
        assert!(coerce(&field(FieldType::Email), &json!("nope")).is_err());
        assert!(coerce(&field(FieldType::Url), &json!("https://x.org/a")).is_ok());
        assert!(coerce(&field(FieldType::Url), &json!("javascript:alert(1)")).is_err());
        assert_eq!(
            coerce(
                &field(FieldType::Datetime),
                &json!("2024-01-01T00:00:00+01:00")
            ),
            Ok(Value::Text("2023-12-31T23:00:00.000Z".into()))
        );
        assert_eq!(
            coerce(&field(FieldType::Email), &json!("")),
            Ok(Value::Null)
        );
        assert_eq!(
            coerce(&field(FieldType::Text), &json!("")),
            Ok(Value::Text(String::new()))
        );
    }
}

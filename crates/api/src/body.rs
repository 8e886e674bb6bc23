//! Closed JSON object bodies: the auth and account routes take a fixed set of keys, and the
//! OpenAPI document says so (`additionalProperties: false`). A key outside the set is a 400
//! that names the key, rather than being ignored: a misspelt `pasword` must not look like a
//! request that worked. Arrays and other non-objects are refused by [`crate::extract::JsonObject`]
//! before these helpers run (serde would otherwise read `["a", "b"]` as a struct).

use brigade_auth::Secret;
use brigade_core::errors::FieldErrors;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// An optional JSON object body (the pipeline routes): `None` when the body is empty or
/// whitespace, the object otherwise; anything else is a 400 (415 unless sent as JSON).
pub(crate) fn optional_object(
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Option<Map<String, Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    crate::extract::require_json(headers)?;
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(ApiError::field("body", "expected a JSON object")),
        Err(e) => Err(ApiError::field("body", format!("malformed JSON: {e}"))),
    }
}

/// `Ok` when every key of `body` is one of `allowed`; otherwise a 400 naming each other key.
pub(crate) fn closed(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    let mut errors = FieldErrors::new();
    let expected = allowed
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    for key in body.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.add(key.clone(), format!("unknown key; expected {expected}"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(errors))
    }
}

/// The string at `key`, which is required.
pub(crate) fn string(body: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    match body.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(ApiError::field(key, "required: a string")),
    }
}

/// The string at `key` (a password or token), which is required.
pub(crate) fn secret(body: &Map<String, Value>, key: &str) -> Result<Secret, ApiError> {
    string(body, key).map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    #[test]
    fn unknown_keys_are_named() {
        let body = object(json!({"email": "a@b.c", "pasword": "x", "extra": 1}));
        let err = closed(&body, &["email", "password"]).unwrap_err();
        let errors = err.errors.expect("field errors");
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["extra", "pasword"]);
        assert!(closed(&object(json!({"email": "a"})), &["email", "password"]).is_ok());
    }

    #[test]
    fn strings_are_required() {
        let body = object(json!({"email": 5}));
        assert!(string(&body, "email").is_err());
        assert!(string(&body, "password").is_err());
        assert_eq!(
            string(&object(json!({"email": "x"})), "email").unwrap(),
            "x"
        );
    }
}

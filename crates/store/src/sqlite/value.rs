//! Binding [`Value`]s to SQLite and decoding SQLite values per [`ColType`], plus the mapping
//! of SQLite constraint errors to user-facing conflicts.

use brigade_core::value::Value;
use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::conn::ColType;
use crate::error::StoreError;

/// A borrowed value as a SQLite parameter.
pub(super) struct Bind<'a>(pub(super) &'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(rusqlite::types::Value::Real(*f)),
            Value::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(*b))),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Json(j) => ToSqlOutput::Owned(rusqlite::types::Value::Text(j.to_string())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Decodes one column as `t`.
pub(super) fn decode(v: ValueRef<'_>, t: ColType) -> Value {
    match (v, t) {
        (ValueRef::Null, ColType::Json) => Value::Json(serde_json::Value::Null),
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(i), ColType::Bool) => Value::Bool(i != 0),
        (ValueRef::Integer(i), ColType::Float) => Value::Float(i as f64),
        (ValueRef::Integer(i), ColType::Text) => Value::Text(i.to_string()),
        (ValueRef::Integer(i), _) => Value::Int(i),
        (ValueRef::Real(f), ColType::Int) if f.fract() == 0.0 => Value::Int(f as i64),
        (ValueRef::Real(f), ColType::Text) => Value::Text(f.to_string()),
        (ValueRef::Real(f), _) => Value::Float(f),
        (ValueRef::Text(b), ColType::Blob) => Value::Blob(b.to_vec()),
        (ValueRef::Text(b), ColType::Json) => {
            let s = String::from_utf8_lossy(b);
            serde_json::from_str(&s).map_or_else(
                |_| Value::Json(serde_json::Value::String(s.into_owned())),
                Value::Json,
            )
        }
        (ValueRef::Text(b), ColType::Int) => {
            let s = String::from_utf8_lossy(b);
            s.parse()
                .map_or_else(|_| Value::Text(s.into_owned()), Value::Int)
        }
        (ValueRef::Text(b), ColType::Float) => {
            let s = String::from_utf8_lossy(b);
            s.parse()
                .map_or_else(|_| Value::Text(s.into_owned()), Value::Float)
        }
        (ValueRef::Text(b), _) => Value::Text(String::from_utf8_lossy(b).into_owned()),
        (ValueRef::Blob(b), ColType::Blob) => Value::Blob(b.to_vec()),
        // Bytes read as anything else (an exposed model's blob column): base64, as
        // PostgreSQL's `bytea` columns are served.
        (ValueRef::Blob(b), _) => Value::Text(crate::conn::base64_text(b)),
    }
}

/// Maps driver errors: constraint violations become conflicts naming the column.
pub(super) fn map_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    if let rusqlite::Error::SqliteFailure(err, msg) = &e {
        let msg = msg.as_deref().unwrap_or_default();
        // RESTRICT actions report SQLITE_CONSTRAINT_TRIGGER, so the message decides too.
        let unique = matches!(
            err.extended_code,
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        ) || msg.starts_with("UNIQUE constraint failed");
        let foreign_key = err.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            || msg.starts_with("FOREIGN KEY constraint failed");
        if unique {
            // "UNIQUE constraint failed: posts.title"
            let column = msg.rsplit(['.', ' ']).next().unwrap_or("id");
            return StoreError::conflict(column, "must be unique; another record has this value");
        }
        if foreign_key {
            return StoreError::Conflict {
                message: "the record is referenced by other records; delete those first or use cascade_delete".into(),
                errors: Default::default(),
            };
        }
        if matches!(
            err.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        ) {
            return StoreError::unavailable_from(e.to_string(), e);
        }
    }
    StoreError::Internal {
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

//! Binding [`Value`]s to PostgreSQL parameters of whatever type the server inferred, decoding
//! columns per [`ColType`], and mapping SQLSTATEs to user-facing errors.

use std::error::Error;

use brigade_core::value::Value;
use bytes::BytesMut;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, Json, ToSql, Type, to_sql_checked};

use crate::conn::ColType;
use crate::error::StoreError;

/// A borrowed value as a PostgreSQL parameter. The server infers each parameter's type from
/// the statement; we convert to it (int8 ↔ int4, int → float8, anything → text).
#[derive(Debug)]
pub(super) struct Bind<'a>(pub(super) &'a Value);

type BoxError = Box<dyn Error + Sync + Send>;

impl ToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Value::Float(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Float(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Float(f), &Type::INT8) if f.fract() == 0.0 => (*f as i64).to_sql(ty, out),
            (Value::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            (Value::Json(j), &Type::JSONB | &Type::JSON) => Json(j).to_sql(ty, out),
            (Value::Text(s), &Type::JSONB | &Type::JSON) => {
                Json(serde_json::Value::String(s.clone())).to_sql(ty, out)
            }
            (v, t) if is_text(t) => text_of(v).as_str().to_sql(&Type::TEXT, out),
            (v, t) => Err(format!("cannot bind {v:?} as {t}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(t: &Type) -> bool {
    matches!(
        *t,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Text(s) => s.clone(),
        Value::Json(j) => j.to_string(),
        Value::Blob(b) => format!("<{} bytes>", b.len()),
    }
}

/// Decodes column `i` of `row` as `t`, accepting the neighbouring SQL types.
pub(super) fn decode(row: &tokio_postgres::Row, i: usize, t: ColType) -> Result<Value, StoreError> {
    let ty = row.columns()[i].type_().clone();
    let bad = |e: tokio_postgres::Error| {
        StoreError::internal_from(format!("decoding column {i} ({ty})"), e)
    };
    let v = match (t, &ty) {
        (_, &Type::INT8) => row
            .try_get::<_, Option<i64>>(i)
            .map_err(bad)?
            .map(|n| as_type(Value::Int(n), t)),
        (_, &Type::INT4) => row
            .try_get::<_, Option<i32>>(i)
            .map_err(bad)?
            .map(|n| as_type(Value::Int(n.into()), t)),
        (_, &Type::INT2) => row
            .try_get::<_, Option<i16>>(i)
            .map_err(bad)?
            .map(|n| as_type(Value::Int(n.into()), t)),
        (_, &Type::FLOAT8) => row
            .try_get::<_, Option<f64>>(i)
            .map_err(bad)?
            .map(|f| as_type(Value::Float(f), t)),
        (_, &Type::FLOAT4) => row
            .try_get::<_, Option<f32>>(i)
            .map_err(bad)?
            .map(|f| as_type(Value::Float(f.into()), t)),
        (_, &Type::BOOL) => row
            .try_get::<_, Option<bool>>(i)
            .map_err(bad)?
            .map(Value::Bool),
        (_, &Type::JSONB | &Type::JSON) => row
            .try_get::<_, Option<Json<serde_json::Value>>>(i)
            .map_err(bad)?
            .map(|j| Value::Json(j.0)),
        (_, &Type::BYTEA) => row.try_get::<_, Option<Vec<u8>>>(i).map_err(bad)?.map(|b| {
            if t == ColType::Blob {
                Value::Blob(b)
            } else {
                Value::Text(crate::conn::base64_text(&b))
            }
        }),
        (_, &Type::NUMERIC) => row
            .try_get::<_, Option<Numeric>>(i)
            .map_err(bad)?
            .map(|n| as_type(Value::Float(n.0), t)),
        _ => row.try_get::<_, Option<String>>(i).map_err(bad)?.map(|s| {
            if t == ColType::Json {
                serde_json::from_str(&s).map_or(Value::Text(s), Value::Json)
            } else {
                Value::Text(s)
            }
        }),
    };
    Ok(v.unwrap_or(if t == ColType::Json {
        Value::Json(serde_json::Value::Null)
    } else {
        Value::Null
    }))
}

/// A `numeric` read as the nearest `f64` (NaN and the infinities too), from its binary
/// form: sign, weight and base-10000 digits, which give the decimal text `f64` parses.
struct Numeric(f64);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let word = |n: usize| -> Result<u16, BoxError> {
            raw.get(2 * n..2 * n + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "numeric value too short".into())
        };
        let digits = usize::from(word(0)?);
        let weight = i64::from(word(1)? as i16);
        let value = match word(2)? {
            0xC000 => f64::NAN,
            0xD000 => f64::INFINITY,
            0xF000 => f64::NEG_INFINITY,
            sign => {
                let mut text = String::from(if sign == 0x4000 { "-0." } else { "0." });
                for n in 0..digits {
                    text.push_str(&format!("{:04}", word(4 + n)?));
                }
                // 0.d1d2.. times 10000^(weight + 1).
                text.push_str(&format!("e{}", 4 * (weight + 1)));
                text.parse::<f64>()?
            }
        };
        Ok(Numeric(value))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

fn as_type(v: Value, t: ColType) -> Value {
    match (v, t) {
        (Value::Int(i), ColType::Float) => Value::Float(i as f64),
        (Value::Float(f), ColType::Int) if f.fract() == 0.0 => Value::Int(f as i64),
        (Value::Int(i), ColType::Bool) => Value::Bool(i != 0),
        (Value::Int(i), ColType::Text) => Value::Text(i.to_string()),
        (v, _) => v,
    }
}

/// Maps driver errors: unique and foreign-key violations become conflicts.
pub(super) fn map_error(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            // detail: "Key (title)=(x) already exists."
            let column = db
                .detail()
                .and_then(|d| d.strip_prefix("Key ("))
                .and_then(|d| d.split(')').next())
                .unwrap_or("id")
                .to_string();
            return StoreError::conflict(&column, "must be unique; another record has this value");
        }
        // The `statement_timeout` a request's transaction sets (see `begin`).
        if *code == SqlState::QUERY_CANCELED
            && let Some(deadline) = crate::deadline::Deadline::current()
        {
            return deadline.exceeded();
        }
        if *code == SqlState::FOREIGN_KEY_VIOLATION {
            return StoreError::Conflict {
                message: "the record is referenced by other records; delete those first or use cascade_delete".into(),
                errors: Default::default(),
            };
        }
        // Class 08 (connection exception), 57P01-57P03 (shutdown, crash, starting up) and
        // 53300 (too many connections) are the server going away or busy, not our bug.
        let sqlstate = code.code();
        if sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "53300") {
            let message = format!("{sqlstate}: {}", db.message());
            return StoreError::unavailable_from(message, e);
        }
        let message = format!(
            "{}: {} ({})",
            code.code(),
            db.message(),
            db.detail().unwrap_or_default()
        );
        return StoreError::Internal {
            message,
            source: Some(Box::new(e)),
        };
    }
    // No database error: the connection broke (closed, reset, I/O) rather than a statement.
    if e.is_closed()
        || e.code().is_none()
            && std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
    {
        return StoreError::unavailable_from(e.to_string(), e);
    }
    StoreError::Internal {
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

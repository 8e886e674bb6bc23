//! Typed values: what the records service hands the store after validation, and what the
//! store hands back. Both backends bind these as parameters; none is ever formatted into SQL.

/// A validated, typed value of one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Json(serde_json::Value),
    /// Raw bytes (search vectors); not a field type, the API never sees them.
    Blob(Vec<u8>),
}

impl Value {
    /// The JSON form of the value as the API returns it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Bool(b) => (*b).into(),
            Value::Text(s) => s.clone().into(),
            Value::Json(v) => v.clone(),
            Value::Blob(b) => format!("<{} bytes>", b.len()).into(),
        }
    }
}

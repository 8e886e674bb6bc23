//! Column types from a sample of text values, and the conversion of each value to its
//! column's type. Conservative on purpose: `007` stays text (a zip code, not 7), a column
//! with both `1` and `1.5` is a number, a date-time must be RFC 3339 or `YYYY-MM-DD[ HH:MM[:SS]]`.

use brigade_core::value::Value;
use brigade_store::warehouse::ColumnType;

/// Accumulates what a column's sample values allow.
#[derive(Debug, Clone, Copy)]
pub struct Inference {
    int: bool,
    float: bool,
    boolean: bool,
    timestamp: bool,
    seen: bool,
}

impl Default for Inference {
    fn default() -> Self {
        Inference {
            int: true,
            float: true,
            boolean: true,
            timestamp: true,
            seen: false,
        }
    }
}

impl Inference {
    /// Takes one non-null sample value into account.
    pub fn observe(&mut self, s: &str) {
        self.seen = true;
        if self.int && parse_int(s).is_none() {
            self.int = false;
        }
        if self.float && parse_float(s).is_none() {
            self.float = false;
        }
        if self.boolean && parse_bool(s).is_none() {
            self.boolean = false;
        }
        if self.timestamp && !is_timestamp(s) {
            self.timestamp = false;
        }
    }

    /// Whether any value was observed.
    pub fn seen(&self) -> bool {
        self.seen
    }

    /// The narrowest type all observed values fit; text when nothing was seen.
    pub fn result(&self) -> ColumnType {
        match *self {
            Inference { seen: false, .. } => ColumnType::Text,
            Inference { int: true, .. } => ColumnType::Integer,
            Inference { float: true, .. } => ColumnType::Number,
            Inference { boolean: true, .. } => ColumnType::Bool,
            Inference {
                timestamp: true, ..
            } => ColumnType::Timestamp,
            _ => ColumnType::Text,
        }
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    // Plain decimal notation only: no "inf", "NaN", hex, or leading "+".
    let ok = !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'e' | b'E' | b'+'))
        && b.iter().any(u8::is_ascii_digit)
        && b[0] != b'+';
    if !ok {
        return None;
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.") {
        return None;
    }
    s.parse().ok().filter(|f: &f64| f.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "TRUE" | "True" => Some(true),
        "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// RFC 3339, or `YYYY-MM-DD` optionally followed by ` HH:MM[:SS[.fff]]`.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let date = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    if !date {
        return false;
    }
    if b.len() == 10 {
        return chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok();
    }
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

/// Converts `s` to `ty`.
///
/// # Errors
/// Why the value does not fit, for the bad-row report.
pub fn convert(s: &str, ty: ColumnType) -> Result<Value, String> {
    match ty {
        ColumnType::Text => Ok(Value::Text(s.to_string())),
        ColumnType::Integer => s
            .parse::<i64>()
            .map(Value::Int)
            .or_else(|_| {
                // "12.0" in an integer column is still 12.
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| Value::Int(f as i64))
                    .ok_or(())
            })
            .map_err(|()| format!("`{}` is not an integer", clip(s))),
        ColumnType::Number => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Float)
            .ok_or_else(|| format!("`{}` is not a number", clip(s))),
        ColumnType::Bool => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "f" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("`{}` is not a boolean", clip(s))),
        },
        ColumnType::Timestamp => {
            if is_timestamp(s) {
                Ok(Value::Text(s.to_string()))
            } else {
                Err(format!("`{}` is not a date or RFC 3339 date-time", clip(s)))
            }
        }
        ColumnType::Json => serde_json::from_str(s)
            .map(Value::Json)
            .or_else(|_| Ok(Value::Json(serde_json::Value::String(s.to_string())))),
    }
}

/// The type and value of a JSON value (from NDJSON, JSON or an HTTP API).
pub fn from_json(v: &serde_json::Value) -> (Option<ColumnType>, Value) {
    match v {
        serde_json::Value::Null => (None, Value::Null),
        serde_json::Value::Bool(b) => (Some(ColumnType::Bool), Value::Bool(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => (Some(ColumnType::Integer), Value::Int(i)),
            None => (
                Some(ColumnType::Number),
                n.as_f64().map_or(Value::Null, Value::Float),
            ),
        },
        serde_json::Value::String(s) => {
            let ty = if is_timestamp(s) {
                ColumnType::Timestamp
            } else {
                ColumnType::Text
            };
            (Some(ty), Value::Text(s.clone()))
        }
        other => (Some(ColumnType::Json), Value::Json(other.clone())),
    }
}

/// The common type of two observed JSON types.
pub fn widen(a: ColumnType, b: ColumnType) -> ColumnType {
    use ColumnType::{Integer, Number, Text, Timestamp};
    match (a, b) {
        (x, y) if x == y => x,
        (Integer, Number) | (Number, Integer) => Number,
        (Timestamp, Text) | (Text, Timestamp) => Text,
        (ColumnType::Json, _) | (_, ColumnType::Json) => ColumnType::Json,
        _ => Text,
    }
}

/// Converts a JSON value to a column of type `ty`.
///
/// # Errors
/// Why the value does not fit.
pub fn json_to(v: &serde_json::Value, ty: ColumnType) -> Result<Value, String> {
    match (v, ty) {
        (serde_json::Value::Null, _) => Ok(Value::Null),
        (_, ColumnType::Json) => Ok(Value::Json(v.clone())),
        (serde_json::Value::String(s), _) => convert(s, ty),
        (serde_json::Value::Number(n), ColumnType::Integer) => n
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("`{n}` is not an integer")),
        (serde_json::Value::Number(n), ColumnType::Number) => n
            .as_f64()
            .map(Value::Float)
            .ok_or_else(|| format!("`{n}` is not a number")),
        (serde_json::Value::Bool(b), ColumnType::Bool) => Ok(Value::Bool(*b)),
        (other, ColumnType::Text) => Ok(Value::Text(match other {
            serde_json::Value::String(s) => s.clone(),
            o => o.to_string(),
        })),
        (other, ty) => Err(format!(
            "`{}` is not {}",
            clip(&other.to_string()),
            ty.name()
        )),
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(values: &[&str]) -> ColumnType {
        let mut i = Inference::default();
        for v in values {
            i.observe(v);
        }
        i.result()
    }

    #[test]
    fn infers_conservatively() {
        assert_eq!(infer(&["1", "-20", "300"]), ColumnType::Integer);
        assert_eq!(infer(&["1", "2.5"]), ColumnType::Number);
        assert_eq!(infer(&["007", "12"]), ColumnType::Text);
        assert_eq!(infer(&["true", "False"]), ColumnType::Bool);
        assert_eq!(
            infer(&["2013-01-01T10:00:00Z", "2013-01-01"]),
            ColumnType::Timestamp
        );
        assert_eq!(infer(&["2013-01-01 10:00:00"]), ColumnType::Timestamp);
        assert_eq!(infer(&["2013-13-45"]), ColumnType::Text);
        assert_eq!(infer(&["inf", "NaN"]), ColumnType::Text);
        assert_eq!(infer(&[]), ColumnType::Text);
    }

    #[test]
    fn converts_or_explains() {
        assert_eq!(convert("12", ColumnType::Integer), Ok(Value::Int(12)));
        assert_eq!(convert("12.0", ColumnType::Integer), Ok(Value::Int(12)));
        assert!(
            convert("12.5", ColumnType::Integer)
                .unwrap_err()
                .contains("not an integer")
        );
        assert!(convert("x", ColumnType::Number).is_err());
        assert_eq!(convert("yes", ColumnType::Bool), Ok(Value::Bool(true)));
    }
}

//! Filters over a context instead of a record: channel rules (`[[channels]]` `join` and
//! `broadcast`), which see only `@request.auth.*`, `@channel.name`, `@now` and literals.
//!
//! The meaning follows the record rules' (see the store's filter module): an absent or null
//! `@request` value matches only `= null`; a list value (`@request.auth.roles`) matches `=`
//! and `~` when any item does and `!=` when none does; text compares byte-wise and `~` is a
//! substring test ignoring ASCII case.

use serde_json::{Map, Value};

use super::ast::{CmpOp, Expr, Literal, Operand};
use super::{FilterError, parse};

/// Parses a context rule and checks it uses only what a context has.
///
/// # Errors
/// A syntax error, or a record field or `@request.body` value, with its char position.
pub fn parse_context_rule(source: &str) -> Result<Expr, FilterError> {
    let expr = parse(source)?;
    let position = |byte: usize| source[..byte.min(source.len())].chars().count();
    let mut stack = vec![&expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::And(l, r) | Expr::Or(l, r) => {
                stack.push(l);
                stack.push(r);
            }
            Expr::Cmp { left, right, .. } => {
                for operand in [left, right] {
                    match operand {
                        Operand::Field { span, .. } => {
                            return Err(FilterError::new(
                                position(span.start),
                                "a channel rule has no record fields; use @request.auth.*, @channel.name, @now or a literal",
                            ));
                        }
                        Operand::Request { path, span }
                            if path.first().is_some_and(|p| p == "body") =>
                        {
                            return Err(FilterError::new(
                                position(span.start),
                                "a channel rule has no @request.body; use @request.auth.* or @channel.name",
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(expr)
}

/// Whether `expr` (checked by [`parse_context_rule`]) holds for a caller whose
/// `@request.auth` is `auth` (empty when anonymous) on channel `channel`.
pub fn holds(expr: &Expr, auth: &Map<String, Value>, channel: &str, now: &str) -> bool {
    match expr {
        Expr::And(l, r) => holds(l, auth, channel, now) && holds(r, auth, channel, now),
        Expr::Or(l, r) => holds(l, auth, channel, now) || holds(r, auth, channel, now),
        Expr::Cmp { left, op, right } => {
            let value = |o: &Operand| -> Option<Value> {
                match o {
                    Operand::Literal { value, .. } => Some(literal(value)),
                    Operand::Now { .. } => Some(Value::String(now.to_string())),
                    Operand::Request { path, .. } => match path.first().map(String::as_str) {
                        Some("channel") => Some(Value::String(channel.to_string())),
                        Some("auth") => {
                            let mut v = path.get(1).and_then(|k| auth.get(k));
                            for key in path.iter().skip(2) {
                                v = v.and_then(|x| x.get(key));
                            }
                            v.cloned()
                        }
                        _ => None,
                    },
                    Operand::Field { .. } => None,
                }
            };
            let is_null_literal = |o: &Operand| {
                matches!(
                    o,
                    Operand::Literal {
                        value: Literal::Null,
                        ..
                    }
                )
            };
            let (l, r) = (value(left), value(right));
            if is_null_literal(left) || is_null_literal(right) {
                let other = if is_null_literal(left) { r } else { l };
                let null = other.is_none_or(|v| v.is_null());
                return match op {
                    CmpOp::Eq => null,
                    CmpOp::Ne => !null,
                    _ => false,
                };
            }
            match (l, r) {
                (Some(l), Some(r)) if !l.is_null() && !r.is_null() => compare(&l, *op, &r),
                _ => false,
            }
        }
    }
}

fn literal(l: &Literal) -> Value {
    match l {
        Literal::Str(s) => Value::String(s.clone()),
        Literal::Int(i) => Value::from(*i),
        Literal::Float(f) => Value::from(*f),
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Null => Value::Null,
    }
}

fn compare(l: &Value, op: CmpOp, r: &Value) -> bool {
    if let Some(items) = l.as_array() {
        let any = |op| items.iter().any(|i| compare(i, op, r));
        return match op {
            CmpOp::Ne => !any(CmpOp::Eq),
            CmpOp::NotLike => !any(CmpOp::Like),
            _ => any(op),
        };
    }
    if r.is_array() {
        let flipped = match op {
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            other => other,
        };
        if !matches!(op, CmpOp::Like | CmpOp::NotLike) {
            return compare(r, flipped, l);
        }
        return false;
    }
    let ordering = match (l, r) {
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.to_ascii_lowercase(),
        other => other.to_string().to_ascii_lowercase(),
    };
    match op {
        CmpOp::Like => text(l).contains(&text(r)),
        CmpOp::NotLike => !text(l).contains(&text(r)),
        CmpOp::Eq => ordering == Some(std::cmp::Ordering::Equal),
        CmpOp::Ne => ordering != Some(std::cmp::Ordering::Equal),
        CmpOp::Gt => ordering == Some(std::cmp::Ordering::Greater),
        CmpOp::Ge => ordering.is_some_and(|o| o != std::cmp::Ordering::Less),
        CmpOp::Lt => ordering == Some(std::cmp::Ordering::Less),
        CmpOp::Le => ordering.is_some_and(|o| o != std::cmp::Ordering::Greater),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(rule: &str, auth: Value, channel: &str) -> bool {
        let expr = parse_context_rule(rule).unwrap();
        holds(
            &expr,
            auth.as_object().unwrap(),
            channel,
            "2026-01-01T00:00:00.000Z",
        )
    }

    #[test]
    fn channel_rules_see_the_caller_and_the_channel() {
        let ada = json!({"id": "u1", "roles": ["member", "staff"]});
        assert!(check("@request.auth.id != null", ada.clone(), "room-1"));
        assert!(!check("@request.auth.id != null", json!({}), "room-1"));
        assert!(check("@request.auth.id = null", json!({}), "room-1"));
        assert!(check("@request.auth.roles = 'staff'", ada.clone(), "x"));
        assert!(!check("@request.auth.roles = 'admin'", ada.clone(), "x"));
        assert!(check("@request.auth.roles != 'admin'", ada.clone(), "x"));
        assert!(check(
            "@channel.name = 'room-' && @request.auth.id = 'u1' || @channel.name ~ 'ROOM'",
            ada.clone(),
            "room-1"
        ));
        assert!(!check("@channel.name = 'lobby'", ada.clone(), "room-1"));
        assert!(check("@channel.name ~ @request.auth.id", ada, "dm-u1-u2"));
        // An absent value never matches, whatever the operator.
        assert!(!check("@request.auth.id != 'u2'", json!({}), "x"));
    }

    #[test]
    fn record_fields_and_bodies_are_refused_with_their_position() {
        let e = parse_context_rule("@channel.name = 'a' && owner = 'x'").unwrap_err();
        assert_eq!(e.position, 23);
        assert!(parse_context_rule("@request.body.x = 1").is_err());
        assert!(parse_context_rule("@channel.id = 1").is_err());
    }
}

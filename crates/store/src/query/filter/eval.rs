//! The in-memory evaluator: a [`Plan`] tested against one record without a database.
//!
//! It exists for realtime, which must decide for every change whether each subscriber's rule
//! and filter match, and must agree with what a list request would have returned. So it
//! follows the SQL emitter's semantics, not what might seem natural in Rust:
//! - a missing key or JSON `null` is SQL NULL: `!=` and `!~` hold for it, every other
//!   comparison fails (`= null` and `!= null` are [`Node::Null`]);
//! - text compares byte-wise (SQLite's `BINARY`, PostgreSQL's `C` collation);
//! - `~` ignores ASCII case only, as SQLite's `LIKE` and `ILIKE` under the `C` locale do;
//! - integers compare exactly, numbers as `f64`; date-times are normalized RFC 3339 text;
//! - a relation step loads the target through [`Related`] and also requires the target's view
//!   rule when the plan carries one.
//!
//! `~` on `number` and `bool` fields is refused by the checker: they have no one text form
//! (SQLite writes `1.0` and `1`, PostgreSQL `1` and `true`). Known differences between the
//! two SQL back ends themselves, where this follows neither exactly: `~` on a `json` field
//! matches against the field's compact JSON text (SQLite keeps the text as written, compact;
//! PostgreSQL's `jsonb` renders `{"a": 1}` with spaces and its own key order, so needles that
//! span a key and its value can differ there), and in search metadata a JSON object is not
//! searched into by `=` and `~` (PostgreSQL's behaviour; SQLite's `json_each` looks at the
//! object's values).
//!
//! One difference this cannot avoid: a json field explicitly set to JSON `null` is stored as
//! the JSON value `null`, which SQL's `= null` does not match, but it reads back as `null`
//! like an unset field, so here it is null.

use std::cmp::Ordering;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use brigade_core::filter::{CmpOp, Literal};
use brigade_core::schema::Collection;
use serde_json::Value as Json;

use super::plan::{Column, Node, Order, Plan, Scalar};
use crate::error::StoreError;
use crate::records::Record;

/// Loads the record a relation field points to, for relation steps (`author.name = 'Ada'`).
#[async_trait]
pub trait Related: Send + Sync {
    /// The record `id` of `collection`, whatever the rules say (the plan applies the view
    /// rule itself), or `None` when there is no such record.
    ///
    /// # Errors
    /// Whatever reading it fails with; evaluation stops with that error.
    async fn related(
        &self,
        collection: &Collection,
        id: &str,
    ) -> Result<Option<Record>, StoreError>;
}

/// A [`Related`] that finds nothing: for plans without relation steps, or for callers that
/// want every relation step to fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRelated;

#[async_trait]
impl Related for NoRelated {
    async fn related(&self, _: &Collection, _: &str) -> Result<Option<Record>, StoreError> {
        Ok(None)
    }
}

impl Plan {
    /// Whether `record` matches, with the same result as the plan's SQL on the stored row.
    ///
    /// # Errors
    /// Only what `related` fails with.
    pub async fn matches(
        &self,
        record: &Record,
        related: &dyn Related,
    ) -> Result<bool, StoreError> {
        eval(&self.node, record, related).await
    }
}

type Eval<'a> = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 'a>>;

/// Whether `record` satisfies `node`.
///
/// # Errors
/// Only what `related` fails with.
pub fn eval<'a>(node: &'a Node, record: &'a Record, related: &'a dyn Related) -> Eval<'a> {
    Box::pin(async move {
        Ok(match node {
            Node::Const(holds) => *holds,
            Node::And(l, r) => eval(l, record, related).await? && eval(r, record, related).await?,
            Node::Or(l, r) => eval(l, record, related).await? || eval(r, record, related).await?,
            Node::Any(items) => {
                for item in items {
                    if eval(item, record, related).await? {
                        return Ok(true);
                    }
                }
                false
            }
            Node::All(items) => {
                for item in items {
                    if !eval(item, record, related).await? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Null { column, is_null } => value(record, column).is_none() == *is_null,
            Node::Compare { column, op, value } => match self::value(record, column) {
                None => *op == Order::Ne,
                Some(v) => holds(*op, compare_scalar(v, value)),
            },
            Node::Contains {
                column,
                needle,
                negated,
            } => match value(record, column) {
                None => *negated,
                Some(v) => contains_ignoring_ascii_case(&text_of(v), needle) != *negated,
            },
            Node::Columns { left, op, right } => {
                match (value(record, left), value(record, right)) {
                    (None, None) => false,
                    (None, Some(_)) | (Some(_), None) => *op == Order::Ne,
                    (Some(a), Some(b)) => holds(*op, compare_json(a, b)),
                }
            }
            Node::Walk {
                column,
                target,
                inner,
                visible,
                ..
            } => {
                let Some(id) = value(record, column).and_then(Json::as_str) else {
                    return Ok(false);
                };
                let Some(found) = related.related(target, id).await? else {
                    return Ok(false);
                };
                if let Some(rule) = visible
                    && !eval(rule, &found, related).await?
                {
                    return Ok(false);
                }
                eval(inner, &found, related).await?
            }
            Node::Meta {
                column,
                keys,
                op,
                value,
            } => meta(record, column, keys, *op, value),
        })
    })
}

/// The field's value; `None` for SQL NULL (missing or JSON `null`).
fn value<'r>(record: &'r Record, column: &Column) -> Option<&'r Json> {
    record.get(column.name.as_str()).filter(|v| !v.is_null())
}

/// `op` given how the two sides compare; values that do not compare are distinct.
fn holds(op: Order, ordering: Option<Ordering>) -> bool {
    match ordering {
        Some(o) => op.holds(o),
        None => op == Order::Ne,
    }
}

fn compare_scalar(v: &Json, s: &Scalar) -> Option<Ordering> {
    match s {
        Scalar::Int(i) => match v.as_i64() {
            Some(x) => Some(x.cmp(i)),
            None => v.as_f64()?.partial_cmp(&(*i as f64)),
        },
        Scalar::Float(f) => v.as_f64()?.partial_cmp(f),
        Scalar::Bool(b) => as_bool(v).map(|x| x.cmp(b)),
        Scalar::Text(t) => v.as_str().map(|x| x.cmp(t.as_str())),
    }
}

fn compare_json(a: &Json, b: &Json) -> Option<Ordering> {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Json::String(x), Json::String(y)) => Some(x.cmp(y)),
        (Json::Bool(x), Json::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A boolean field's value; SQLite's `0`/`1` count too.
fn as_bool(v: &Json) -> Option<bool> {
    v.as_bool().or_else(|| v.as_i64().map(|i| i != 0))
}

/// The text `~` looks in.
fn text_of(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `LIKE '%needle%'` with the wildcards escaped: a substring test ignoring ASCII case.
pub(crate) fn contains_ignoring_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// A comparison on a key path of a JSON text column, as `query::metadata` compiles it.
fn meta(record: &Record, column: &str, keys: &[String], op: CmpOp, lit: &Literal) -> bool {
    let parsed;
    let root = match record.get(column) {
        Some(Json::String(text)) => {
            parsed = serde_json::from_str::<Json>(text).ok();
            parsed.as_ref()
        }
        Some(Json::Null) | None => None,
        Some(other) => Some(other),
    };
    let mut at = root;
    for key in keys {
        at = at.and_then(|v| v.as_object()).and_then(|o| o.get(key));
    }
    let at = at.filter(|v| !v.is_null());
    // The value itself, or the elements of an array.
    let elements = || -> Vec<&Json> {
        match at {
            None | Some(Json::Object(_)) => Vec::new(),
            Some(Json::Array(items)) => items.iter().collect(),
            Some(scalar) => vec![scalar],
        }
    };
    match (op, lit) {
        (CmpOp::Eq, Literal::Null) => at.is_none(),
        (CmpOp::Ne, Literal::Null) => at.is_some(),
        (CmpOp::Eq | CmpOp::Ne, _) => {
            let found = elements().into_iter().any(|e| match (e, lit) {
                (Json::String(s), Literal::Str(l)) => s == l,
                (Json::Bool(b), Literal::Bool(l)) => b == l,
                (Json::Number(n), Literal::Int(l)) => n.as_f64() == Some(*l as f64),
                (Json::Number(n), Literal::Float(l)) => n.as_f64() == Some(*l),
                _ => false,
            });
            found == (op == CmpOp::Eq)
        }
        (CmpOp::Like | CmpOp::NotLike, _) => {
            let needle = super::check::like_needle(lit);
            let found = elements().into_iter().any(|e| {
                e.as_str()
                    .is_some_and(|s| contains_ignoring_ascii_case(s, &needle))
            });
            found == (op == CmpOp::Like)
        }
        (_, _) => {
            let Some(order) = Order::from_cmp(op) else {
                return false;
            };
            let ordering = match (at, lit) {
                (Some(Json::String(s)), Literal::Str(l)) => Some(s.as_str().cmp(l.as_str())),
                (Some(Json::Number(n)), Literal::Int(l)) => {
                    n.as_f64().and_then(|x| x.partial_cmp(&(*l as f64)))
                }
                (Some(Json::Number(n)), Literal::Float(l)) => {
                    n.as_f64().and_then(|x| x.partial_cmp(l))
                }
                _ => None,
            };
            ordering.is_some_and(|o| order.holds(o))
        }
    }
}

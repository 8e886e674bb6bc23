//! The SQL emitter: a [`Plan`] as a boolean SQL expression for SQLite or PostgreSQL.
//!
//! It exists so that the database does the filtering of lists, counts and rule checks; every
//! decision about meaning was made by the check, so emitting cannot fail. Values are always
//! bound, names are [`Ident`](crate::sql::Ident)s. `!=` is `IS NOT` / `IS DISTINCT FROM` so
//! that it keeps rows where the field is null, `~` is `LIKE` / `ILIKE` with `%`, `_` and `\`
//! escaped, and a relation step is an `IN` sub-select over the target (with its view rule).

use brigade_core::schema::FieldType;
use brigade_core::value::Value;

use super::plan::{Node, Order, Plan, Scalar};
use crate::query::metadata;
use crate::sql::{Dialect, Sql};

/// `plan` as a SQL boolean expression in `dialect`.
pub(crate) fn emit(dialect: Dialect, plan: &Plan) -> Sql {
    node(dialect, &plan.node)
}

/// `node` as a SQL boolean expression in `dialect`.
pub(crate) fn node(dialect: Dialect, node: &Node) -> Sql {
    let mut sql = Sql::new(dialect);
    match node {
        Node::Const(holds) => {
            sql.push(if *holds { "1 = 1" } else { "1 = 0" });
        }
        Node::And(l, r) | Node::Or(l, r) => {
            let op = if matches!(node, Node::And(..)) {
                " AND "
            } else {
                " OR "
            };
            sql.push("(")
                .append(self::node(dialect, l))
                .push(op)
                .append(self::node(dialect, r))
                .push(")");
        }
        Node::Any(items) | Node::All(items) => {
            let joiner = if matches!(node, Node::Any(..)) {
                " OR "
            } else {
                " AND "
            };
            sql.push("(");
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    sql.push(joiner);
                }
                sql.append(self::node(dialect, item));
            }
            sql.push(")");
        }
        Node::Null { column, is_null } => {
            let not = if *is_null { "" } else { "NOT " };
            sql.push(&format!("{} IS {not}NULL", column.name));
        }
        Node::Compare { column, op, value } => {
            let col = &column.name;
            let (value, cast_float) = match value {
                Scalar::Int(i) => (Value::Int(*i), false),
                Scalar::Float(f) => (Value::Float(*f), column.kind == FieldType::Integer),
                Scalar::Bool(b) => (Value::Bool(*b), false),
                Scalar::Text(s) => (Value::Text(s.clone()), false),
            };
            // On PostgreSQL the parameter takes the column's type: a cast to what the field
            // binds as keeps a model's `integer` or `numeric` column comparable (a no-op on
            // the `bigint` and `double precision` columns collections have).
            let target = match (dialect, column.kind) {
                (Dialect::Postgres, FieldType::Integer) if cast_float => {
                    format!("CAST({col} AS DOUBLE PRECISION)")
                }
                (Dialect::Postgres, FieldType::Integer) => format!("CAST({col} AS BIGINT)"),
                (Dialect::Postgres, FieldType::Number) => {
                    format!("CAST({col} AS DOUBLE PRECISION)")
                }
                _ => col.to_string(),
            };
            sql.push(&format!("{target} {} ", symbol(dialect, *op)))
                .bind(value);
        }
        Node::Contains {
            column,
            needle,
            negated,
        } => {
            let col = &column.name;
            let pattern = format!("%{}%", escape_like(needle));
            let target = match (dialect, column.kind.is_textual()) {
                (Dialect::Postgres, false) => format!("CAST({col} AS TEXT)"),
                _ => col.to_string(),
            };
            let like = if dialect == Dialect::Postgres {
                "ILIKE"
            } else {
                "LIKE"
            };
            if *negated {
                sql.push(&format!("({col} IS NULL OR {target} NOT {like} "))
                    .bind(Value::Text(pattern))
                    .push(" ESCAPE '\\')");
            } else {
                sql.push(&format!("{target} {like} "))
                    .bind(Value::Text(pattern))
                    .push(" ESCAPE '\\'");
            }
        }
        Node::Columns { left, op, right } => {
            sql.push(&format!(
                "{} {} {}",
                left.name,
                symbol(dialect, *op),
                right.name
            ));
        }
        Node::Walk {
            column,
            table,
            inner,
            visible,
            ..
        } => {
            sql.push(&format!(
                "{} IN (SELECT \"id\" FROM {table} WHERE ",
                column.name
            ))
            .append(self::node(dialect, inner));
            if let Some(rule) = visible {
                sql.push(" AND (")
                    .append(self::node(dialect, rule))
                    .push(")");
            }
            sql.push(")");
        }
        Node::Meta {
            column,
            keys,
            op,
            value,
        } => {
            sql.append(metadata::compare(dialect, column, keys, *op, value));
        }
    }
    sql
}

/// The SQL operator; `!=` keeps rows where either side is null.
fn symbol(dialect: Dialect, op: Order) -> &'static str {
    match op {
        Order::Eq => "=",
        Order::Ne => match dialect {
            Dialect::Sqlite => "IS NOT",
            Dialect::Postgres => "IS DISTINCT FROM",
        },
        Order::Gt => ">",
        Order::Ge => ">=",
        Order::Lt => "<",
        Order::Le => "<=",
    }
}

/// `s` with the `LIKE` wildcards `%` and `_` and the escape `\` escaped by `\`.
pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

//! Filter comparisons on keys of a JSON text column: search documents' `metadata`.
//!
//! A posted document's metadata has no schema, so the literal decides the type: a string
//! matches string values, a number numbers, `true`/`false` booleans. `=` also matches an
//! array holding the value (`tags = 'sql'` finds `{"tags": ["sql", "json"]}`), `~` a string
//! or an array element containing it, and ordering applies to scalars of the literal's type
//! only. A missing key equals `null`; `!=` and `!~` keep documents without the key, as they
//! do for a column. Keys are bound, never spliced into the SQL, and no expression can fail
//! at run time on a value of another type (PostgreSQL casts sit behind a type test).

use brigade_core::filter::{CmpOp, Literal};
use brigade_core::value::Value;

use crate::sql::{Dialect, Sql};

/// Whether `column.keys[0].keys[1]... op literal` is allowed.
///
/// # Errors
/// A message for the user (the caller adds the position) when the operator does not apply.
pub(crate) fn check(column: &str, keys: &[String], op: CmpOp, lit: &Literal) -> Result<(), String> {
    match (op, lit) {
        (CmpOp::Eq | CmpOp::Ne | CmpOp::Like | CmpOp::NotLike, _)
        | (_, Literal::Str(_) | Literal::Int(_) | Literal::Float(_)) => Ok(()),
        (_, Literal::Null | Literal::Bool(_)) => Err(format!(
            "`{column}.{}` can be compared with {} only with = or !=",
            keys.join("."),
            if matches!(lit, Literal::Null) {
                "null"
            } else {
                "true or false"
            }
        )),
    }
}

/// Compiles `column.keys[0].keys[1]... op literal`, which [`check`] allowed (an operator it
/// refuses compiles to a condition no row meets).
pub(crate) fn compare(
    dialect: Dialect,
    column: &str,
    keys: &[String],
    op: CmpOp,
    lit: &Literal,
) -> Sql {
    let at = At {
        dialect,
        column,
        keys,
    };
    let mut sql = Sql::new(dialect);
    match (op, lit) {
        (CmpOp::Eq | CmpOp::Ne, Literal::Null) => {
            let not = if op == CmpOp::Eq { "" } else { "NOT " };
            sql.push(&format!("{not}(COALESCE("))
                .append(at.type_of())
                .push(", 'null') = 'null')");
        }
        (CmpOp::Eq | CmpOp::Ne, _) => {
            if op == CmpOp::Ne {
                sql.push("NOT ");
            }
            sql.append(at.holds(lit));
        }
        (CmpOp::Like | CmpOp::NotLike, _) => {
            if op == CmpOp::NotLike {
                sql.push("NOT ");
            }
            sql.append(at.contains(&super::filter::like_needle(lit)));
        }
        (_, Literal::Str(_) | Literal::Int(_) | Literal::Float(_)) => {
            sql.append(at.ordered(op, lit));
        }
        (_, Literal::Null | Literal::Bool(_)) => {
            sql.push("1 = 0");
        }
    }
    sql
}

struct At<'a> {
    dialect: Dialect,
    column: &'a str,
    keys: &'a [String],
}

impl At<'_> {
    /// SQLite: the JSON path `$."a"."b"` (bound). PostgreSQL: the jsonb value at the keys.
    fn value(&self) -> Sql {
        let mut sql = Sql::new(self.dialect);
        match self.dialect {
            Dialect::Sqlite => {
                sql.push(self.column)
                    .push(", ")
                    .bind(Value::Text(self.path()));
            }
            Dialect::Postgres => {
                sql.push(&format!("(CAST({} AS jsonb)", self.column));
                for key in self.keys {
                    sql.push(" -> CAST(")
                        .bind(Value::Text(key.clone()))
                        .push(" AS TEXT)");
                }
                sql.push(")");
            }
        }
        sql
    }

    fn path(&self) -> String {
        let mut path = String::from("$");
        for key in self.keys {
            // Filter identifiers are `[A-Za-z0-9_]`, so quoting cannot be escaped.
            path.push_str(&format!(".\"{key}\""));
        }
        path
    }

    /// The JSON type name of the value (SQL NULL when the key is missing).
    fn type_of(&self) -> Sql {
        let mut sql = Sql::new(self.dialect);
        let f = match self.dialect {
            Dialect::Sqlite => "json_type(",
            Dialect::Postgres => "jsonb_typeof(",
        };
        sql.push(f).append(self.value()).push(")");
        sql
    }

    /// True when the value is `lit` or an array holding it; never NULL.
    fn holds(&self, lit: &Literal) -> Sql {
        let mut sql = Sql::new(self.dialect);
        match self.dialect {
            Dialect::Sqlite => {
                sql.push("EXISTS (SELECT 1 FROM json_each(")
                    .append(self.value())
                    .push(") WHERE ");
                match lit {
                    Literal::Bool(b) => {
                        sql.push(if *b {
                            "type = 'true'"
                        } else {
                            "type = 'false'"
                        });
                    }
                    Literal::Str(s) => {
                        sql.push("type = 'text' AND atom = ")
                            .bind(Value::Text(s.clone()));
                    }
                    Literal::Int(i) => {
                        sql.push("type IN ('integer', 'real') AND atom = ")
                            .bind(Value::Int(*i));
                    }
                    Literal::Float(f) => {
                        sql.push("type IN ('integer', 'real') AND atom = ")
                            .bind(Value::Float(*f));
                    }
                    Literal::Null => {
                        sql.push("type = 'null'");
                    }
                }
                sql.push(")");
            }
            Dialect::Postgres => {
                sql.push("COALESCE(").append(self.value()).push(" @> ");
                match lit {
                    Literal::Bool(b) => {
                        sql.push(if *b {
                            "'true'::jsonb"
                        } else {
                            "'false'::jsonb"
                        });
                    }
                    Literal::Str(s) => {
                        sql.push("to_jsonb(CAST(")
                            .bind(Value::Text(s.clone()))
                            .push(" AS TEXT))");
                    }
                    Literal::Int(i) => {
                        sql.push("to_jsonb(CAST(")
                            .bind(Value::Int(*i))
                            .push(" AS BIGINT))");
                    }
                    Literal::Float(f) => {
                        sql.push("to_jsonb(CAST(")
                            .bind(Value::Float(*f))
                            .push(" AS DOUBLE PRECISION))");
                    }
                    Literal::Null => {
                        sql.push("'null'::jsonb");
                    }
                }
                sql.push(", FALSE)");
            }
        }
        sql
    }

    /// True when the value is a string, or an array with a string, containing `needle`
    /// (case-insensitively, like `~` on a column); never NULL.
    fn contains(&self, needle: &str) -> Sql {
        let pattern = Value::Text(format!("%{}%", super::filter::escape_like(needle)));
        let mut sql = Sql::new(self.dialect);
        match self.dialect {
            Dialect::Sqlite => {
                sql.push("EXISTS (SELECT 1 FROM json_each(")
                    .append(self.value())
                    .push(") WHERE type = 'text' AND atom LIKE ")
                    .bind(pattern)
                    .push(" ESCAPE '\\')");
            }
            Dialect::Postgres => {
                sql.push("EXISTS (SELECT 1 FROM jsonb_array_elements(CASE jsonb_typeof(")
                    .append(self.value())
                    .push(") WHEN 'array' THEN ")
                    .append(self.value())
                    .push(" ELSE jsonb_build_array(")
                    .append(self.value())
                    .push(") END) AS e(v) WHERE jsonb_typeof(e.v) = 'string' AND (e.v #>> '{}') ILIKE ")
                    .bind(pattern)
                    .push(" ESCAPE '\\')");
            }
        }
        sql
    }

    /// `<`, `<=`, `>`, `>=` against a scalar of the literal's type; never NULL.
    fn ordered(&self, op: CmpOp, lit: &Literal) -> Sql {
        // Only `<`, `<=`, `>`, `>=` reach here, and they are the same in SQL.
        let sym = op.as_str();
        let (value, text) = match lit {
            Literal::Str(s) => (Value::Text(s.clone()), true),
            Literal::Int(i) => (Value::Float(*i as f64), false),
            Literal::Float(f) => (Value::Float(*f), false),
            Literal::Null | Literal::Bool(_) => (Value::Null, false),
        };
        let mut sql = Sql::new(self.dialect);
        match self.dialect {
            Dialect::Sqlite => {
                let types = if text {
                    "('text')"
                } else {
                    "('integer', 'real')"
                };
                sql.push("CASE WHEN ")
                    .append(self.type_of())
                    .push(&format!(" IN {types} THEN json_extract("))
                    .append(self.value())
                    .push(&format!(") {sym} "))
                    .bind(value)
                    .push(" ELSE 0 END");
            }
            Dialect::Postgres => {
                let (kind, cast) = if text {
                    ("string", "TEXT")
                } else {
                    ("number", "DOUBLE PRECISION")
                };
                sql.push("CASE WHEN ")
                    .append(self.type_of())
                    .push(&format!(" = '{kind}' THEN CAST(("))
                    .append(self.value())
                    .push(&format!(" #>> '{{}}') AS {cast}) {sym} CAST("))
                    .bind(value)
                    .push(&format!(" AS {cast}) ELSE FALSE END"));
            }
        }
        sql
    }
}

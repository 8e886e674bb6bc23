//! Compiles a filter [`Expr`] to a SQL boolean expression for one collection.
//!
//! Literals are type-checked against the field they are compared with (an integer field
//! compared with `'abc'` is a 400 naming the position, not a database error), `!=` and `!~`
//! keep rows where the field is null (what a user means by "not equal"), and `~` escapes
//! `%` and `_` so they match literally. `a.b` walks a relation through a sub-select.
//!
//! Two kinds of source are compiled here, and they are trusted differently:
//! - a **rule** is written by whoever defines the schema: it may use `@request.*`, and its
//!   relation walks see every record of the target;
//! - a caller's **filter** (`filter=` on lists, counts and searches) may not use `@request`,
//!   every relation walk it makes sees only the target records the caller may view (the
//!   target's view rule is part of the sub-select, so a filter cannot test predicates on hidden
//!   records), and for non-superusers its cost is bounded by [`MAX_FILTER_COST`].
//!
//! A comparison of a field with an `@request.*` value that is absent (anonymous callers have
//! no `@request.auth.id`) or JSON `null` never matches: only the literal `null` means IS NULL.
//! Such a value equals the literal `null` (`@request.body.owner = null`: "not sent") and
//! nothing else.

use std::cell::Cell;
use std::sync::Arc;

use brigade_core::filter::{CmpOp, Expr, Literal, Operand, Span};
use brigade_core::schema::{Collection, FieldType};
use brigade_core::value::Value;

use crate::access::{Access, RuleOp, rule_for};
use crate::ddl::{ident, table};
use crate::error::StoreError;
use crate::query::metadata;
use crate::sql::{Dialect, Sql};

/// Values for `@request.*` when the filter is a collection rule.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// `@request.auth.*`: `id`, `email`, `roles` (null when anonymous).
    pub auth: serde_json::Map<String, serde_json::Value>,
    /// `@request.body.*`.
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// Finds collections by name for relation walks.
pub(crate) type Lookup<'a> = &'a (dyn Fn(&str) -> Option<Arc<Collection>> + Send + Sync);

const MAX_WALK: usize = 3;

/// The most a non-superuser's filter may cost, in the units of [`Cost`]: enough for a
/// search box over a dozen text fields or a few relation walks, far below what made a
/// 100k-row table take seconds per request.
pub const MAX_FILTER_COST: u32 = 100;

/// What each part of a filter costs against [`MAX_FILTER_COST`].
struct Cost;

impl Cost {
    /// A comparison the database answers from the row or an index.
    const COMPARISON: u32 = 1;
    /// `~` / `!~`: a substring scan of every candidate row.
    const CONTAINS: u32 = 5;
    /// One step through a relation: a sub-select over the target collection (with its
    /// view rule).
    const WALK: u32 = 10;
}

/// A compiled filter or rule.
pub(crate) struct Compiled {
    pub(crate) sql: Sql,
    /// Whether it may scan many rows (a `~` or a relation step): such list reads queue for
    /// PostgreSQL's heavy-read permits.
    pub(crate) scans: bool,
}

/// What a compiled source is, which decides what it may do (see the module docs).
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A collection or index rule with the caller's `@request` values.
    Rule(&'a RequestContext),
    /// A caller's filter: relation walks are limited by the targets' view rules for `access`.
    Filter(&'a Access),
}

struct Compiler<'a> {
    dialect: Dialect,
    source: &'a str,
    lookup: Lookup<'a>,
    kind: Source<'a>,
    /// Accumulated [`Cost`] of the comparisons compiled so far.
    cost: Cell<u32>,
    /// Whether any part may scan many rows (a `~` or a relation step).
    scans: Cell<bool>,
    /// A JSON text column whose keys are fields too (`metadata.lang`, or `lang` when no
    /// column has that name): search documents' metadata.
    metadata: Option<&'a str>,
    now: String,
}

/// Compiles `expr` (parsed from `source`) against `collection`; with `metadata`, names
/// that are not columns are keys of that JSON column.
///
/// # Errors
/// [`StoreError::Invalid`] on key `filter` naming the position of an unknown field, a type
/// mismatch, a misplaced `@request`, a walk into a collection the caller may not view, or a
/// non-superuser's filter over [`MAX_FILTER_COST`].
pub(crate) fn compile_filter(
    dialect: Dialect,
    collection: &Collection,
    lookup: Lookup<'_>,
    source: &str,
    expr: &Expr,
    kind: Source<'_>,
    metadata: Option<&str>,
) -> Result<Compiled, StoreError> {
    let c = Compiler {
        dialect,
        source,
        lookup,
        kind,
        cost: Cell::new(0),
        scans: Cell::new(false),
        metadata,
        now: brigade_core::time::now(),
    };
    let sql = c.expr(collection, expr, 0)?;
    if let Source::Filter(Access::Caller(_)) = kind
        && c.cost.get() > MAX_FILTER_COST
    {
        return Err(StoreError::invalid(
            "filter",
            format!(
                "this filter costs {} and filters of non-superusers may cost at most \
                 {MAX_FILTER_COST} (each comparison costs {}, each `~` or `!~` {}, each step \
                 through a relation {}); use fewer `~` and relation steps",
                c.cost.get(),
                Cost::COMPARISON,
                Cost::CONTAINS,
                Cost::WALK,
            ),
        ));
    }
    Ok(Compiled {
        sql,
        scans: c.scans.get(),
    })
}

/// Where a value operand comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Written in the source.
    Source,
    /// `@now`.
    Now,
    /// An `@request` value: caller-controlled, so a type that does not fit the field makes
    /// the comparison false instead of an error (a body of the wrong type must not turn a
    /// rule into a 500).
    Request,
}

enum Operandish<'e> {
    Field(&'e [String], Span),
    Value(Literal, Span, Origin),
    /// An array from `@request` (e.g. `@request.auth.roles`): `=` and `~` mean "has an
    /// element that matches", `!=` and `!~` "has none".
    List(Vec<Literal>, Span),
    /// An `@request` value that is absent or JSON `null`: no comparison with it matches.
    Missing,
}

impl Compiler<'_> {
    fn error(&self, span: Span, message: impl Into<String>) -> StoreError {
        let position = self
            .source
            .get(..span.start)
            .map_or(span.start, |s| s.chars().count());
        StoreError::invalid(
            "filter",
            format!("at position {position}: {}", message.into()),
        )
    }

    fn expr(&self, c: &Collection, e: &Expr, depth: usize) -> Result<Sql, StoreError> {
        let mut sql = Sql::new(self.dialect);
        match e {
            Expr::And(l, r) | Expr::Or(l, r) => {
                let op = if matches!(e, Expr::And(..)) {
                    " AND "
                } else {
                    " OR "
                };
                sql.push("(")
                    .append(self.expr(c, l, depth)?)
                    .push(op)
                    .append(self.expr(c, r, depth)?)
                    .push(")");
            }
            Expr::Cmp { left, op, right } => {
                sql.append(self.cmp(c, left, *op, right, depth)?);
            }
        }
        Ok(sql)
    }

    fn operand<'e>(&self, o: &'e Operand) -> Result<Operandish<'e>, StoreError> {
        Ok(match o {
            Operand::Field { path, span } => Operandish::Field(path, *span),
            Operand::Literal { value, span } => {
                Operandish::Value(value.clone(), *span, Origin::Source)
            }
            Operand::Now { span } => {
                Operandish::Value(Literal::Str(self.now.clone()), *span, Origin::Now)
            }
            Operand::Request { path, span } => {
                let Source::Rule(request) = self.kind else {
                    return Err(
                        self.error(*span, "`@request` can only be used in collection rules")
                    );
                };
                match request_json(request, path) {
                    None | Some(serde_json::Value::Null) => Operandish::Missing,
                    Some(serde_json::Value::Array(items)) => Operandish::List(
                        items
                            .iter()
                            .filter(|i| !i.is_null())
                            .map(json_literal)
                            .collect(),
                        *span,
                    ),
                    Some(value) => Operandish::Value(json_literal(value), *span, Origin::Request),
                }
            }
        })
    }

    fn cmp(
        &self,
        c: &Collection,
        left: &Operand,
        op: CmpOp,
        right: &Operand,
        depth: usize,
    ) -> Result<Sql, StoreError> {
        match (self.operand(left)?, self.operand(right)?) {
            (Operandish::Missing, other) | (other, Operandish::Missing) => {
                // Still check the field, so a rule naming a missing field fails when it is
                // defined, not only when a caller with that `@request` value arrives.
                match other {
                    Operandish::Field(path, span) => {
                        self.field_cmp(
                            c,
                            path,
                            span,
                            CmpOp::Eq,
                            &Literal::Null,
                            span,
                            false,
                            depth,
                        )?;
                    }
                    // `@request.body.owner = null`: "was not sent", which is true here.
                    Operandish::Value(Literal::Null, _, Origin::Source) if op == CmpOp::Eq => {
                        let mut sql = Sql::new(self.dialect);
                        sql.push("1 = 1");
                        return Ok(sql);
                    }
                    _ => {}
                }
                Ok(never(self.dialect))
            }
            (Operandish::Field(path, span), Operandish::Value(v, vspan, origin)) => {
                self.value_cmp(c, path, span, op, &v, vspan, origin, depth)
            }
            (Operandish::Value(v, vspan, origin), Operandish::Field(path, span)) => {
                let flipped = match op {
                    CmpOp::Gt => CmpOp::Lt,
                    CmpOp::Ge => CmpOp::Le,
                    CmpOp::Lt => CmpOp::Gt,
                    CmpOp::Le => CmpOp::Ge,
                    CmpOp::Like | CmpOp::NotLike => {
                        return Err(self.error(vspan, "put the field on the left of `~` and `!~`"));
                    }
                    other => other,
                };
                self.value_cmp(c, path, span, flipped, &v, vspan, origin, depth)
            }
            (Operandish::Field(a, aspan), Operandish::Field(b, bspan)) => {
                self.field_field(c, a, aspan, op, b, bspan)
            }
            (Operandish::List(items, _), Operandish::Value(v, ..))
            | (Operandish::Value(v, ..), Operandish::List(items, _)) => {
                // Lists come from `@request`, which callers control: an order comparison with
                // one is false, not an error.
                let any = match op {
                    CmpOp::Eq | CmpOp::Like => true,
                    CmpOp::Ne | CmpOp::NotLike => false,
                    _ => return Ok(never(self.dialect)),
                };
                let holds = if any {
                    items.iter().any(|i| const_cmp(i, op, &v))
                } else {
                    items.iter().all(|i| const_cmp(i, op, &v))
                };
                let mut sql = Sql::new(self.dialect);
                sql.push(if holds { "1 = 1" } else { "1 = 0" });
                Ok(sql)
            }
            (Operandish::List(items, span), Operandish::Field(path, fspan))
            | (Operandish::Field(path, fspan), Operandish::List(items, span)) => {
                let (joiner, empty) = match op {
                    CmpOp::Eq => (" OR ", "1 = 0"),
                    CmpOp::Ne => (" AND ", "1 = 1"),
                    _ => {
                        self.value_cmp(
                            c,
                            path,
                            fspan,
                            CmpOp::Eq,
                            &Literal::Null,
                            span,
                            Origin::Source,
                            depth,
                        )?;
                        return Ok(never(self.dialect));
                    }
                };
                let mut sql = Sql::new(self.dialect);
                if items.is_empty() {
                    sql.push(empty);
                    return Ok(sql);
                }
                sql.push("(");
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        sql.push(joiner);
                    }
                    sql.append(self.value_cmp(
                        c,
                        path,
                        fspan,
                        op,
                        item,
                        span,
                        Origin::Request,
                        depth,
                    )?);
                }
                sql.push(")");
                Ok(sql)
            }
            (Operandish::List(..), Operandish::List(..)) => Ok(never(self.dialect)),
            (Operandish::Value(a, ..), Operandish::Value(b, ..)) => {
                let mut sql = Sql::new(self.dialect);
                sql.push(if const_cmp(&a, op, &b) {
                    "1 = 1"
                } else {
                    "1 = 0"
                });
                Ok(sql)
            }
        }
    }

    /// A field compared with a value; see [`Origin::Request`] for values from `@request`.
    #[allow(clippy::too_many_arguments)]
    fn value_cmp(
        &self,
        c: &Collection,
        path: &[String],
        span: Span,
        op: CmpOp,
        value: &Literal,
        vspan: Span,
        origin: Origin,
        depth: usize,
    ) -> Result<Sql, StoreError> {
        if origin != Origin::Request {
            return self.field_cmp(
                c,
                path,
                span,
                op,
                value,
                vspan,
                origin == Origin::Now,
                depth,
            );
        }
        self.field_cmp(c, path, span, CmpOp::Eq, &Literal::Null, span, false, depth)?;
        Ok(self
            .field_cmp(c, path, span, op, value, vspan, false, depth)
            .unwrap_or_else(|_| never(self.dialect)))
    }

    fn charge(&self, units: u32) {
        self.cost.set(self.cost.get().saturating_add(units));
        if units >= Cost::CONTAINS {
            self.scans.set(true);
        }
    }

    /// The restriction a walk through `field` into `target` must carry: none for rules and
    /// superusers, the target's view rule for callers' filters. A target only superusers may
    /// view cannot be walked into by anyone else.
    fn visible(
        &self,
        field: &str,
        target: &Collection,
        span: Span,
    ) -> Result<Option<Sql>, StoreError> {
        let Source::Filter(access) = self.kind else {
            return Ok(None);
        };
        match rule_for(
            self.dialect,
            target,
            RuleOp::View,
            access,
            self.lookup,
            None,
        ) {
            Err(StoreError::Forbidden { .. }) => Err(self.error(
                span,
                format!(
                    "`{field}` points to `{}`, whose records only superusers may view, so a \
                     filter cannot follow it; compare `{field}` itself (the related id) instead",
                    target.name
                ),
            )),
            other => other,
        }
    }

    fn column(&self, c: &Collection, name: &str, span: Span) -> Result<FieldType, StoreError> {
        c.column_type(name).ok_or_else(|| {
            self.error(
                span,
                format!("unknown field `{name}` in collection `{}`", c.name),
            )
        })
    }

    fn field_field(
        &self,
        c: &Collection,
        a: &[String],
        aspan: Span,
        op: CmpOp,
        b: &[String],
        bspan: Span,
    ) -> Result<Sql, StoreError> {
        self.charge(Cost::COMPARISON);
        if a.len() != 1 || b.len() != 1 {
            return Err(self.error(
                aspan,
                "comparing two fields works only on fields of the same record",
            ));
        }
        let (ta, tb) = (self.column(c, &a[0], aspan)?, self.column(c, &b[0], bspan)?);
        let numeric = |t: FieldType| matches!(t, FieldType::Integer | FieldType::Number);
        let compatible =
            (ta.is_textual() && tb.is_textual()) || (numeric(ta) && numeric(tb)) || ta == tb;
        if !compatible || ta == FieldType::Json || matches!(op, CmpOp::Like | CmpOp::NotLike) {
            return Err(self.error(
                bspan,
                format!(
                    "cannot compare `{}` with `{}` using {}",
                    a[0],
                    b[0],
                    op.as_str()
                ),
            ));
        }
        let (ca, cb) = (ident(&a[0])?, ident(&b[0])?);
        let mut sql = Sql::new(self.dialect);
        let text = match op {
            CmpOp::Ne => format!("{ca} {} {cb}", self.distinct()),
            _ => format!("{ca} {} {cb}", op.as_str().replace("==", "=")),
        };
        sql.push(&text);
        Ok(sql)
    }

    fn distinct(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "IS NOT",
            Dialect::Postgres => "IS DISTINCT FROM",
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn field_cmp(
        &self,
        c: &Collection,
        path: &[String],
        span: Span,
        op: CmpOp,
        lit: &Literal,
        lspan: Span,
        is_now: bool,
        depth: usize,
    ) -> Result<Sql, StoreError> {
        let name = &path[0];
        if depth == 0 {
            self.charge(if matches!(op, CmpOp::Like | CmpOp::NotLike) {
                Cost::CONTAINS
            } else {
                Cost::COMPARISON
            });
        }
        if let Some(column) = self.metadata {
            let keys = if name == column {
                if path.len() == 1 {
                    return Err(self.error(
                        span,
                        format!("compare one key of `{column}`, e.g. `{column}.lang = 'en'`"),
                    ));
                }
                Some(&path[1..])
            } else if c.column_type(name).is_none() {
                Some(path)
            } else {
                None
            };
            if let Some(keys) = keys {
                return metadata::compare(self.dialect, column, keys, op, lit)
                    .map_err(|m| self.error(span, m));
            }
        }
        let kind = self.column(c, name, span)?;
        let col = ident(name)?;
        let mut sql = Sql::new(self.dialect);
        if path.len() > 1 {
            let target = c
                .field(name)
                .filter(|f| f.kind == FieldType::Relation)
                .and_then(|f| f.options.collection.clone());
            let Some(target) = target.and_then(|t| (self.lookup)(&t)) else {
                return Err(self.error(
                    span,
                    format!(
                        "`{name}` is not a relation field, so `{}` cannot be followed",
                        path.join(".")
                    ),
                ));
            };
            if depth >= MAX_WALK {
                return Err(self.error(
                    span,
                    format!("relations can be followed at most {MAX_WALK} levels deep"),
                ));
            }
            self.charge(Cost::WALK);
            let visible = self.visible(name, &target, span)?;
            let inner =
                self.field_cmp(&target, &path[1..], span, op, lit, lspan, is_now, depth + 1)?;
            sql.push(&format!(
                "{col} IN (SELECT \"id\" FROM {} WHERE ",
                table(&target)?
            ))
            .append(inner);
            if let Some(rule) = visible {
                sql.push(" AND (").append(rule).push(")");
            }
            sql.push(")");
            return Ok(sql);
        }
        if *lit == Literal::Null {
            return match op {
                CmpOp::Eq => Ok(sql.push(&format!("{col} IS NULL")).clone()),
                CmpOp::Ne => Ok(sql.push(&format!("{col} IS NOT NULL")).clone()),
                _ => Err(self.error(lspan, "null can only be compared with = or !=")),
            };
        }
        if matches!(op, CmpOp::Like | CmpOp::NotLike) {
            let pattern = format!("%{}%", escape_like(&like_needle(lit)));
            let target = match (self.dialect, kind.is_textual()) {
                (Dialect::Postgres, false) => format!("CAST({col} AS TEXT)"),
                _ => col.to_string(),
            };
            let like = if self.dialect == Dialect::Postgres {
                "ILIKE"
            } else {
                "LIKE"
            };
            if op == CmpOp::Like {
                sql.push(&format!("{target} {like} "))
                    .bind(Value::Text(pattern))
                    .push(" ESCAPE '\\'");
            } else {
                sql.push(&format!("({col} IS NULL OR {target} NOT {like} "))
                    .bind(Value::Text(pattern))
                    .push(" ESCAPE '\\')");
            }
            return Ok(sql);
        }
        let article = if kind.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        let mismatch = |what: &str| {
            self.error(
                lspan,
                format!(
                    "`{name}` is {article} {} field; compare it with {what}",
                    kind.as_str()
                ),
            )
        };
        let (value, cast_float) = match (kind, lit) {
            (FieldType::Integer, Literal::Int(i)) => (Value::Int(*i), false),
            (FieldType::Integer, Literal::Float(f)) => (Value::Float(*f), true),
            (FieldType::Number, Literal::Int(i)) => (Value::Float(*i as f64), false),
            (FieldType::Number, Literal::Float(f)) => (Value::Float(*f), false),
            (FieldType::Integer | FieldType::Number, _) => return Err(mismatch("a number")),
            (FieldType::Bool, Literal::Bool(b)) => (Value::Bool(*b), false),
            (FieldType::Bool, _) => return Err(mismatch("true or false")),
            (FieldType::Datetime, Literal::Str(s)) => {
                match brigade_core::time::normalize_datetime(s) {
                    Some(t) => (Value::Text(t), false),
                    None if is_now => (Value::Text(s.clone()), false),
                    None => {
                        return Err(mismatch(
                            "a date-time such as '2026-01-31T12:00:00Z' or @now",
                        ));
                    }
                }
            }
            (FieldType::Datetime, _) => {
                return Err(mismatch(
                    "a date-time such as '2026-01-31T12:00:00Z' or @now",
                ));
            }
            (FieldType::Json, _) => {
                return Err(self.error(
                    span,
                    format!(
                        "`{name}` is a json field; only `= null`, `!= null`, `~` and `!~` apply"
                    ),
                ));
            }
            (_, Literal::Str(s)) if !is_now => (Value::Text(s.clone()), false),
            (_, _) => return Err(mismatch("a quoted string")),
        };
        // On PostgreSQL the parameter takes the column's type: a cast to what the field
        // binds as keeps a model's `integer` or `numeric` column comparable (a no-op on the
        // `bigint` and `double precision` columns collections have).
        let target = match (self.dialect, kind) {
            (Dialect::Postgres, FieldType::Integer) if cast_float => {
                format!("CAST({col} AS DOUBLE PRECISION)")
            }
            (Dialect::Postgres, FieldType::Integer) => format!("CAST({col} AS BIGINT)"),
            (Dialect::Postgres, FieldType::Number) => format!("CAST({col} AS DOUBLE PRECISION)"),
            _ => col.to_string(),
        };
        let sym = match op {
            CmpOp::Eq => "=",
            CmpOp::Ne => self.distinct(),
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Like | CmpOp::NotLike => unreachable_like(),
        };
        sql.push(&format!("{target} {sym} ")).bind(value);
        Ok(sql)
    }
}

/// A condition no row meets.
fn never(dialect: Dialect) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("1 = 0");
    sql
}

fn unreachable_like() -> &'static str {
    // `~`/`!~` return earlier; keep a harmless operator rather than panic.
    "="
}

/// The text a `~` literal looks for.
pub(super) fn like_needle(lit: &Literal) -> String {
    match lit {
        Literal::Str(s) => s.clone(),
        Literal::Int(i) => i.to_string(),
        Literal::Float(f) => f.to_string(),
        Literal::Bool(b) => b.to_string(),
        Literal::Null => String::new(),
    }
}

pub(super) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn request_json<'a>(request: &'a RequestContext, path: &[String]) -> Option<&'a serde_json::Value> {
    let root = match path.first().map(String::as_str) {
        Some("auth") => &request.auth,
        Some("body") => &request.body,
        _ => return None,
    };
    let mut value = path.get(1).and_then(|k| root.get(k));
    for key in path.iter().skip(2) {
        value = value.and_then(|v| v.get(key));
    }
    value
}

fn json_literal(value: &serde_json::Value) -> Literal {
    match value {
        serde_json::Value::String(s) => Literal::Str(s.clone()),
        serde_json::Value::Bool(b) => Literal::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Literal::Float(n.as_f64().unwrap_or(0.0)), Literal::Int),
        serde_json::Value::Null => Literal::Null,
        other => Literal::Str(other.to_string()),
    }
}

fn const_cmp(a: &Literal, op: CmpOp, b: &Literal) -> bool {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Literal::Int(x), Literal::Int(y)) => Some(x.cmp(y)),
        (Literal::Float(x), Literal::Float(y)) => x.partial_cmp(y),
        (Literal::Int(x), Literal::Float(y)) => (*x as f64).partial_cmp(y),
        (Literal::Float(x), Literal::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Literal::Str(x), Literal::Str(y)) => Some(x.cmp(y)),
        (Literal::Bool(x), Literal::Bool(y)) => Some(x.cmp(y)),
        (Literal::Null, Literal::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        CmpOp::Eq => ord == Some(Ordering::Equal),
        CmpOp::Ne => ord != Some(Ordering::Equal),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Like | CmpOp::NotLike => {
            let contains = match (a, b) {
                (Literal::Str(x), Literal::Str(y)) => x.to_lowercase().contains(&y.to_lowercase()),
                _ => false,
            };
            contains == (op == CmpOp::Like)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collection(name: &str, fields: serde_json::Value, view: Option<&str>) -> Arc<Collection> {
        Arc::new(
            serde_json::from_value(json!({
                "id": format!("c_{name}"), "name": name, "fields": fields,
                "rules": {"list": view, "view": view},
                "created": "", "updated": ""
            }))
            .unwrap(),
        )
    }

    fn schema() -> Vec<Arc<Collection>> {
        vec![
            collection(
                "posts",
                json!([
                    {"id": "f1", "name": "title", "type": "text"},
                    {"id": "f2", "name": "vault", "type": "relation", "options": {"collection": "vault"}},
                    {"id": "f3", "name": "profile", "type": "relation", "options": {"collection": "profiles"}}
                ]),
                Some(""),
            ),
            collection(
                "vault",
                json!([{"id": "f4", "name": "secret", "type": "text"}]),
                None,
            ),
            collection(
                "profiles",
                json!([{"id": "f5", "name": "owner", "type": "text"}]),
                Some("owner = @request.auth.id"),
            ),
        ]
    }

    fn compile(source: &str, kind: Source<'_>) -> Result<Sql, StoreError> {
        let schema = schema();
        let lookup = |name: &str| schema.iter().find(|c| c.name == name).cloned();
        let expr = brigade_core::filter::parse(source).unwrap();
        compile_filter(
            Dialect::Sqlite,
            &schema[0],
            &lookup,
            source,
            &expr,
            kind,
            None,
        )
        .map(|c| c.sql)
    }

    fn scans(source: &str) -> bool {
        let schema = schema();
        let lookup = |name: &str| schema.iter().find(|c| c.name == name).cloned();
        let expr = brigade_core::filter::parse(source).unwrap();
        let kind = Source::Filter(&Access::Superuser);
        compile_filter(
            Dialect::Sqlite,
            &schema[0],
            &lookup,
            source,
            &expr,
            kind,
            None,
        )
        .unwrap()
        .scans
    }

    #[test]
    fn substring_matches_and_relation_steps_are_scans() {
        assert!(!scans("title = 'a' && title != 'b'"));
        assert!(scans("title ~ 'a'"));
        assert!(scans("profile.owner = 'u1'"));
    }

    fn caller(id: Option<&str>) -> Access {
        let mut ctx = RequestContext::default();
        if let Some(id) = id {
            ctx.auth.insert("id".into(), json!(id));
        }
        Access::Caller(ctx)
    }

    #[test]
    fn a_callers_walk_carries_the_targets_view_rule() {
        let sql = compile("profile.owner ~ 'x'", Source::Filter(&caller(Some("u1")))).unwrap();
        assert_eq!(
            sql.text,
            "\"profile\" IN (SELECT \"id\" FROM \"profiles\" WHERE \"owner\" LIKE ?1 ESCAPE '\\' \
             AND (\"owner\" = ?2))"
        );
        assert!(matches!(&sql.params[1], Value::Text(id) if id == "u1"));
        // Anonymous callers have no id: the walk matches nothing.
        let sql = compile("profile.owner ~ 'x'", Source::Filter(&Access::anonymous())).unwrap();
        assert!(sql.text.ends_with("AND (1 = 0))"), "{}", sql.text);
        // Superusers and rules walk freely.
        let sql = compile("vault.secret = 'x'", Source::Filter(&Access::Superuser)).unwrap();
        assert!(!sql.text.contains(" AND "), "{}", sql.text);
        let rule = RequestContext::default();
        let sql = compile("vault.secret = 'x'", Source::Rule(&rule)).unwrap();
        assert!(!sql.text.contains(" AND "), "{}", sql.text);
    }

    #[test]
    fn a_walk_into_a_superuser_only_collection_is_refused() {
        let err = compile("vault.secret >= 'P'", Source::Filter(&caller(Some("u1")))).unwrap_err();
        assert!(err.to_string().contains("only superusers"), "{err}");
    }

    #[test]
    fn absent_request_values_match_nothing_but_null() {
        let nobody = RequestContext::default();
        let sql = compile("title = @request.auth.id", Source::Rule(&nobody)).unwrap();
        assert_eq!(sql.text, "1 = 0");
        let sql = compile("title != @request.auth.id", Source::Rule(&nobody)).unwrap();
        assert_eq!(sql.text, "1 = 0");
        let sql = compile("@request.body.title = null", Source::Rule(&nobody)).unwrap();
        assert_eq!(sql.text, "1 = 1");
        let sql = compile("@request.body.title != null", Source::Rule(&nobody)).unwrap();
        assert_eq!(sql.text, "1 = 0");
        let mut null_id = RequestContext::default();
        null_id.auth.insert("id".into(), serde_json::Value::Null);
        let sql = compile("title = @request.auth.id", Source::Rule(&null_id)).unwrap();
        assert_eq!(sql.text, "1 = 0");
        // The field is still checked.
        assert!(compile("titel = @request.auth.id", Source::Rule(&nobody)).is_err());
        // The literal null still means IS NULL.
        let sql = compile("title = null", Source::Rule(&nobody)).unwrap();
        assert_eq!(sql.text, "\"title\" IS NULL");
    }

    #[test]
    fn non_superusers_filters_have_a_cost_budget() {
        let contains = |n: usize| {
            (0..n)
                .map(|i| format!("title ~ 'w{i}'"))
                .collect::<Vec<_>>()
                .join(" || ")
        };
        let user = caller(Some("u1"));
        assert!(compile(&contains(20), Source::Filter(&user)).is_ok());
        let err = compile(&contains(21), Source::Filter(&user)).unwrap_err();
        assert!(err.to_string().contains("costs 105"), "{err}");
        assert!(compile(&contains(21), Source::Filter(&Access::Superuser)).is_ok());
        // Each relation step costs more than a comparison.
        let walks = (0..10)
            .map(|i| format!("profile.owner = 'u{i}'"))
            .collect::<Vec<_>>()
            .join(" || ");
        let err = compile(&walks, Source::Filter(&user)).unwrap_err();
        assert!(err.to_string().contains("costs 110"), "{err}");
    }
}

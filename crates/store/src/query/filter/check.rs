//! The schema-aware check: a parsed [`Expr`] plus a collection becomes a [`Plan`].
//!
//! All of a filter's user-facing errors come from here, so that both back ends share them
//! and neither can fail for a reason the user could have been told about: unknown fields,
//! literals of the wrong type, misplaced `@request`, relation steps that are not relations or
//! lead where the caller may not look, and the cost budget. Each error names the char
//! position of the operand at fault.

use std::cell::Cell;

use brigade_core::filter::{CmpOp, Expr, Literal, Operand, Span};
use brigade_core::schema::{Collection, FieldType};

use super::plan::{Column, Node, Order, Plan, Scalar};
use super::{Lookup, MAX_FILTER_COST, RequestContext, Source};
use crate::access::{Access, RuleOp, rule_plan};
use crate::ddl::{ident, table};
use crate::error::StoreError;
use crate::query::metadata;

/// How many relation steps one path may take.
const MAX_WALK: usize = 3;

/// What each part of a filter costs against [`MAX_FILTER_COST`].
pub(super) struct Cost;

impl Cost {
    /// A comparison the database answers from the row or an index.
    pub(super) const COMPARISON: u32 = 1;
    /// `~` / `!~`: a substring scan of every candidate row.
    pub(super) const CONTAINS: u32 = 5;
    /// One step through a relation: a sub-select over the target collection (with its
    /// view rule).
    pub(super) const WALK: u32 = 10;
}

/// Checks `expr` (parsed from `source`) against `collection`; with `metadata`, names that
/// are not columns are keys of that JSON column.
///
/// # Errors
/// [`StoreError::Invalid`] on key `filter` naming the position of an unknown field, a type
/// mismatch, a misplaced `@request`, a walk into a collection the caller may not view, or a
/// non-superuser's filter over [`MAX_FILTER_COST`].
pub(crate) fn check(
    collection: &Collection,
    lookup: Lookup<'_>,
    source: &str,
    expr: &Expr,
    kind: Source<'_>,
    metadata: Option<&str>,
) -> Result<Plan, StoreError> {
    let c = Checker {
        source,
        lookup,
        kind,
        cost: Cell::new(0),
        scans: Cell::new(false),
        metadata,
        now: brigade_core::time::now(),
    };
    let node = c.expr(collection, expr, 0)?;
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
    Ok(Plan {
        node,
        scans: c.scans.get(),
        cost: c.cost.get(),
    })
}

struct Checker<'a> {
    source: &'a str,
    lookup: Lookup<'a>,
    kind: Source<'a>,
    /// Accumulated [`Cost`] of the comparisons checked so far.
    cost: Cell<u32>,
    /// Whether any part may scan many rows (a `~` or a relation step).
    scans: Cell<bool>,
    /// A JSON text column whose keys are fields too (`metadata.lang`, or `lang` when no
    /// column has that name): search documents' metadata.
    metadata: Option<&'a str>,
    now: String,
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

impl Checker<'_> {
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

    fn expr(&self, c: &Collection, e: &Expr, depth: usize) -> Result<Node, StoreError> {
        Ok(match e {
            Expr::And(l, r) => Node::And(
                Box::new(self.expr(c, l, depth)?),
                Box::new(self.expr(c, r, depth)?),
            ),
            Expr::Or(l, r) => Node::Or(
                Box::new(self.expr(c, l, depth)?),
                Box::new(self.expr(c, r, depth)?),
            ),
            Expr::Cmp { left, op, right } => self.cmp(c, left, *op, right, depth)?,
        })
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
            Operand::Request { path, span } if path.first().is_some_and(|p| p == "channel") => {
                return Err(self.error(*span, "`@channel` can only be used in channel rules"));
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
    ) -> Result<Node, StoreError> {
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
                        return Ok(Node::Const(true));
                    }
                    _ => {}
                }
                Ok(Node::Const(false))
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
                    _ => return Ok(Node::Const(false)),
                };
                Ok(Node::Const(if any {
                    items.iter().any(|i| const_cmp(i, op, &v))
                } else {
                    items.iter().all(|i| const_cmp(i, op, &v))
                }))
            }
            (Operandish::List(items, span), Operandish::Field(path, fspan))
            | (Operandish::Field(path, fspan), Operandish::List(items, span)) => {
                let any = match op {
                    CmpOp::Eq => true,
                    CmpOp::Ne => false,
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
                        return Ok(Node::Const(false));
                    }
                };
                if items.is_empty() {
                    return Ok(Node::Const(!any));
                }
                let mut nodes = Vec::with_capacity(items.len());
                for item in &items {
                    nodes.push(self.value_cmp(
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
                Ok(if any {
                    Node::Any(nodes)
                } else {
                    Node::All(nodes)
                })
            }
            (Operandish::List(..), Operandish::List(..)) => Ok(Node::Const(false)),
            (Operandish::Value(a, ..), Operandish::Value(b, ..)) => {
                Ok(Node::Const(const_cmp(&a, op, &b)))
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
    ) -> Result<Node, StoreError> {
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
            .unwrap_or(Node::Const(false)))
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
    ) -> Result<Option<Box<Node>>, StoreError> {
        let Source::Filter(access) = self.kind else {
            return Ok(None);
        };
        match rule_plan(target, RuleOp::View, access, self.lookup, None) {
            Ok(plan) => Ok(plan.map(|p| Box::new(p.node))),
            Err(StoreError::Forbidden { .. }) => Err(self.error(
                span,
                format!(
                    "`{field}` points to `{}`, whose records only superusers may view, so a \
                     filter cannot follow it; compare `{field}` itself (the related id) instead",
                    target.name
                ),
            )),
            Err(other) => Err(other),
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
    ) -> Result<Node, StoreError> {
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
        let order = Order::from_cmp(op);
        let Some(order) = order.filter(|_| compatible && ta != FieldType::Json) else {
            return Err(self.error(
                bspan,
                format!(
                    "cannot compare `{}` with `{}` using {}",
                    a[0],
                    b[0],
                    op.as_str()
                ),
            ));
        };
        Ok(Node::Columns {
            left: Column {
                name: ident(&a[0])?,
                kind: ta,
            },
            op: order,
            right: Column {
                name: ident(&b[0])?,
                kind: tb,
            },
        })
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
    ) -> Result<Node, StoreError> {
        let Some(name) = path.first() else {
            return Err(self.error(span, "expected a field name"));
        };
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
                metadata::check(column, keys, op, lit).map_err(|m| self.error(span, m))?;
                return Ok(Node::Meta {
                    column: column.to_owned(),
                    keys: keys.to_vec(),
                    op,
                    value: lit.clone(),
                });
            }
        }
        let kind = self.column(c, name, span)?;
        let column = Column {
            name: ident(name)?,
            kind,
        };
        if path.len() > 1 {
            if c.field(name)
                .is_some_and(crate::account_refs::targets_accounts)
            {
                // Accounts are not a collection: their emails and roles are private.
                return Err(self.error(
                    span,
                    format!(
                        "`{name}` points at accounts, whose fields filters cannot follow; \
                         compare the account id instead, e.g. `{name} = @request.auth.id` in a \
                         rule or `{name} = 'ID'`"
                    ),
                ));
            }
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
            return Ok(Node::Walk {
                column,
                table: table(&target)?,
                target,
                inner: Box::new(inner),
                visible,
            });
        }
        if *lit == Literal::Null {
            return match op {
                CmpOp::Eq => Ok(Node::Null {
                    column,
                    is_null: true,
                }),
                CmpOp::Ne => Ok(Node::Null {
                    column,
                    is_null: false,
                }),
                _ => Err(self.error(lspan, "null can only be compared with = or !=")),
            };
        }
        let Some(order) = Order::from_cmp(op) else {
            // `~` compares text. Integers have one text form everywhere; numbers and
            // booleans do not (SQLite writes `1.0` and `1`, PostgreSQL `1` and `true`), so
            // the two stores and the evaluator would disagree on what matches: refused, with
            // what to write instead.
            if matches!(kind, FieldType::Number | FieldType::Bool) {
                return Err(self.error(
                    span,
                    format!(
                        "`{}` compares text, and `{name}` is a {} field; compare it with =, !=, <, <=, > or >=",
                        if op == CmpOp::Like { "~" } else { "!~" },
                        kind.as_str()
                    ),
                ));
            }
            return Ok(Node::Contains {
                column,
                needle: like_needle(lit),
                negated: op == CmpOp::NotLike,
            });
        };
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
        const DATETIME: &str = "a date-time such as '2026-01-31T12:00:00Z' or @now";
        let value = match (kind, lit) {
            (FieldType::Integer, Literal::Int(i)) => Scalar::Int(*i),
            (FieldType::Integer, Literal::Float(f)) => Scalar::Float(*f),
            (FieldType::Number, Literal::Int(i)) => Scalar::Float(*i as f64),
            (FieldType::Number, Literal::Float(f)) => Scalar::Float(*f),
            (FieldType::Integer | FieldType::Number, _) => return Err(mismatch("a number")),
            (FieldType::Bool, Literal::Bool(b)) => Scalar::Bool(*b),
            (FieldType::Bool, _) => return Err(mismatch("true or false")),
            (FieldType::Datetime, Literal::Str(s)) => {
                match brigade_core::time::normalize_datetime(s) {
                    Some(t) => Scalar::Text(t),
                    None if is_now => Scalar::Text(s.clone()),
                    None => return Err(mismatch(DATETIME)),
                }
            }
            (FieldType::Datetime, _) => return Err(mismatch(DATETIME)),
            (FieldType::Json, _) => {
                return Err(self.error(
                    span,
                    format!(
                        "`{name}` is a json field; only `= null`, `!= null`, `~` and `!~` apply"
                    ),
                ));
            }
            (_, Literal::Str(s)) if !is_now => Scalar::Text(s.clone()),
            (_, _) => return Err(mismatch("a quoted string")),
        };
        Ok(Node::Compare {
            column,
            op: order,
            value,
        })
    }
}

/// The text a `~` literal looks for.
pub(crate) fn like_needle(lit: &Literal) -> String {
    match lit {
        Literal::Str(s) => s.clone(),
        Literal::Int(i) => i.to_string(),
        Literal::Float(f) => f.to_string(),
        Literal::Bool(b) => b.to_string(),
        Literal::Null => String::new(),
    }
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

/// A comparison between two constants, decided when checking.
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
    match Order::from_cmp(op) {
        Some(Order::Ne) => ord != Some(Ordering::Equal),
        Some(order) => ord.is_some_and(|o| order.holds(o)),
        None => {
            let contains = match (a, b) {
                (Literal::Str(x), Literal::Str(y)) => x.to_lowercase().contains(&y.to_lowercase()),
                _ => false,
            };
            contains == (op == CmpOp::Like)
        }
    }
}

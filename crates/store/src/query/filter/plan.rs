//! The typed plan: what a filter or rule means once it has been checked against a schema.
//!
//! It exists so that the two back ends, SQL ([`super::sql`]) and the in-memory evaluator
//! ([`super::eval`]), read one already-decided meaning instead of each re-deriving it from the
//! syntax tree. Every literal has been checked against its field's type and converted to a
//! [`Scalar`] of the type the comparison uses, every `@request` value has been substituted
//! (comparisons that can never match are [`Node::Const`]), every field is a validated
//! [`Column`], and every relation step names its target collection and the view rule the
//! walk must also satisfy. No node can fail to emit or to evaluate for a schema reason.

use std::sync::Arc;

use brigade_core::filter::{CmpOp, Literal};
use brigade_core::schema::{Collection, FieldType};

use crate::sql::Ident;

/// A checked filter or rule, ready to be emitted as SQL or evaluated against a record.
///
/// A plan holds the `@request` values and the `@now` of the moment it was checked: check
/// again when either changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub(crate) node: Node,
    pub(crate) scans: bool,
    pub(crate) cost: u32,
}

impl Plan {
    /// The root of the plan.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Whether evaluating it in SQL may scan many rows (a `~` or a relation step).
    pub fn scans(&self) -> bool {
        self.scans
    }

    /// Its cost in the units of [`super::MAX_FILTER_COST`].
    pub fn cost(&self) -> u32 {
        self.cost
    }
}

/// One boolean condition on a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Decided when the plan was checked (comparisons between constants, `@request` values
    /// that are absent or of the wrong type).
    Const(bool),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    /// At least one holds: a field `=` an `@request` list. Never empty.
    Any(Vec<Node>),
    /// Every one holds: a field `!=` an `@request` list. Never empty.
    All(Vec<Node>),
    /// `field = null` (`is_null`) or `field != null`.
    Null {
        column: Column,
        is_null: bool,
    },
    /// A field compared with a value of the type the comparison uses. `!=` holds when the
    /// field is null; the other operators never do.
    Compare {
        column: Column,
        op: Order,
        value: Scalar,
    },
    /// `~` (or `!~` when `negated`): the field's text contains `needle`, ignoring ASCII case;
    /// `%` and `_` are plain characters. `!~` holds when the field is null.
    Contains {
        column: Column,
        needle: String,
        negated: bool,
    },
    /// Two fields of one record, of compatible types.
    Columns {
        left: Column,
        op: Order,
        right: Column,
    },
    /// A relation step: the record that `column` points to exists, satisfies `visible` (the
    /// target's view rule, for callers' filters) and satisfies `inner`.
    Walk {
        column: Column,
        target: Arc<Collection>,
        table: Ident,
        inner: Box<Node>,
        visible: Option<Box<Node>>,
    },
    /// A key path in a JSON text column without a schema (search documents' metadata); see
    /// `query::metadata` for the semantics.
    Meta {
        column: String,
        keys: Vec<String>,
        op: CmpOp,
        value: Literal,
    },
}

/// A field of the record a node is evaluated against.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: Ident,
    pub kind: FieldType,
}

/// The comparison operators other than `~` and `!~`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Order {
    /// `None` for `~` and `!~`.
    pub fn from_cmp(op: CmpOp) -> Option<Order> {
        Some(match op {
            CmpOp::Eq => Order::Eq,
            CmpOp::Ne => Order::Ne,
            CmpOp::Gt => Order::Gt,
            CmpOp::Ge => Order::Ge,
            CmpOp::Lt => Order::Lt,
            CmpOp::Le => Order::Le,
            CmpOp::Like | CmpOp::NotLike => return None,
        })
    }

    /// Whether `ordering` (left compared with right) satisfies the operator.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            Order::Eq => ordering == Equal,
            Order::Ne => ordering != Equal,
            Order::Gt => ordering == Greater,
            Order::Ge => ordering != Less,
            Order::Lt => ordering == Less,
            Order::Le => ordering != Greater,
        }
    }
}

/// A value checked against the field it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// An integer literal against an integer field.
    Int(i64),
    /// A number against a number field, or a fractional number against an integer field
    /// (compared as floating point).
    Float(f64),
    Bool(bool),
    /// Text, or a normalized date-time (RFC 3339 text, compared as text).
    Text(String),
}

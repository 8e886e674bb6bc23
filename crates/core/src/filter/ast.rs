//! The filter language's syntax tree, shared by list filters, collection rules, GraphQL
//! arguments, realtime subscriptions and search filters.
//!
//! Spans are byte offsets into the source text. They are carried so that later stages
//! (compiling to SQL against a schema) can name the position of an unknown field or a
//! type mismatch; [`Expr::without_spans`] zeroes them for structural comparison.

/// A byte range in the filter source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp {
        left: Operand,
        op: CmpOp,
        right: Operand,
    },
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A record field, possibly through relations: `title`, `author.name`.
    Field { path: Vec<String>, span: Span },
    /// A literal value.
    Literal { value: Literal, span: Span },
    /// `@now`: the current time.
    Now { span: Span },
    /// `@request.auth.id` → `["auth", "id"]`, `@request.body.title` → `["body", "title"]`.
    Request { path: Vec<String>, span: Span },
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    /// Always finite.
    Float(f64),
    Bool(bool),
    Null,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `~`: contains, case-insensitive.
    Like,
    /// `!~`: does not contain, case-insensitive.
    NotLike,
}

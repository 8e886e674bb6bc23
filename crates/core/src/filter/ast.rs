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

impl Expr {
    /// A copy with every span zeroed, for comparing trees by structure alone.
    pub fn without_spans(&self) -> Expr {
        match self {
            Expr::And(left, right) => Expr::And(
                Box::new(left.without_spans()),
                Box::new(right.without_spans()),
            ),
            Expr::Or(left, right) => Expr::Or(
                Box::new(left.without_spans()),
                Box::new(right.without_spans()),
            ),
            Expr::Cmp { left, op, right } => Expr::Cmp {
                left: left.without_spans(),
                op: *op,
                right: right.without_spans(),
            },
        }
    }

    /// Every operand, in source order; for checking fields and `@request` paths against a
    /// schema.
    pub fn operands(&self) -> Vec<&Operand> {
        let mut operands = Vec::new();
        // An explicit stack, so that trees built by hand cannot overflow the call stack.
        let mut pending = vec![self];
        while let Some(expr) = pending.pop() {
            match expr {
                Expr::And(left, right) | Expr::Or(left, right) => {
                    pending.push(right);
                    pending.push(left);
                }
                Expr::Cmp { left, right, .. } => operands.extend([left, right]),
            }
        }
        operands
    }
}

impl Operand {
    /// Where this operand is in the source, in bytes.
    pub fn span(&self) -> Span {
        match self {
            Operand::Field { span, .. }
            | Operand::Literal { span, .. }
            | Operand::Now { span }
            | Operand::Request { span, .. } => *span,
        }
    }

    /// A copy with its span zeroed.
    pub fn without_spans(&self) -> Operand {
        let span = Span::default();
        match self {
            Operand::Field { path, .. } => Operand::Field {
                path: path.clone(),
                span,
            },
            Operand::Literal { value, .. } => Operand::Literal {
                value: value.clone(),
                span,
            },
            Operand::Now { .. } => Operand::Now { span },
            Operand::Request { path, .. } => Operand::Request {
                path: path.clone(),
                span,
            },
        }
    }
}

//! The filter language: `status = 'active' && (views >= 10 || title ~ 'rust')`.
//!
//! One language serves list filters, collection rules, realtime subscriptions and search
//! filters, so it is parsed once here, with no knowledge of schemas or SQL.
//!
//! # Layout
//! - [`ast`]: the syntax tree ([`Expr`], [`Operand`], [`Literal`], [`CmpOp`], [`Span`]).
//! - `lexer`, `parser`: source text to [`Expr`] through [`parse`].
//! - [`context`]: rules over a context rather than a record (channel rules).
//! - `print`: [`std::fmt::Display`] for the tree, printing canonical source that parses back.
//!
//! # Positions
//! [`FilterError::position`] counts **chars** (Unicode scalar values) from 0, which is what a
//! user counting along their filter sees. [`Span`]s in the tree are **byte** offsets, so that
//! later stages can slice the source with them.

pub mod ast;
pub mod context;
mod lexer;
mod parser;
mod print;

pub use ast::{CmpOp, Expr, Literal, Operand, Span};

/// The longest accepted filter, in chars.
pub const MAX_LEN: usize = 4096;
/// The deepest accepted nesting of parentheses.
pub const MAX_DEPTH: usize = 32;
/// The most comparisons accepted in one filter.
pub const MAX_COMPARISONS: usize = 256;

/// Why a filter did not parse: a user fault, meant to be shown to the user as is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct FilterError {
    /// Where the problem is, as a 0-based char offset into the filter.
    pub position: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// Parses a filter expression.
///
/// `&&` binds tighter than `||`, both are left-associative, and a comparison is
/// `operand OP operand` with OP one of `= != > >= < <= ~ !~`.
///
/// # Errors
/// A [`FilterError`] naming the first problem and its char position: a syntax error, an
/// empty filter, an integer outside `i64`, a float that is not finite, or a filter beyond
/// [`MAX_LEN`] chars, [`MAX_DEPTH`] nested parentheses or [`MAX_COMPARISONS`] comparisons.
/// Never panics, whatever the input.
pub fn parse(input: &str) -> Result<Expr, FilterError> {
    let tokens = lexer::tokenize(input)?;
    parser::parse_tokens(tokens, input.chars().count())
}

#[cfg(test)]
mod tests;

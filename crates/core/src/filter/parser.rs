//! Recursive-descent parser from tokens to [`Expr`].
//!
//! ```text
//! expr := or
//! or   := and ('||' and)*
//! and  := cmp ('&&' cmp)*
//! cmp  := '(' expr ')' | operand OP operand
//! ```
//!
//! `||` and `&&` are loops, so only parentheses recurse; [`MAX_DEPTH`] bounds that recursion
//! and [`MAX_COMPARISONS`] bounds the size of the tree, whatever the input.

use super::ast::{Expr, Literal, Operand};
use super::lexer::{END, Token, TokenKind};
use super::{FilterError, MAX_COMPARISONS, MAX_DEPTH};

const EXPECTED_OPERATOR: &str = "a comparison operator (=, !=, >, >=, <, <=, ~, !~)";

/// Parses the whole token stream; `end` is the char length of the source.
pub(super) fn parse_tokens(tokens: Vec<Token<'_>>, end: usize) -> Result<Expr, FilterError> {
    if tokens.is_empty() {
        return Err(FilterError::new(0, "empty filter"));
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        end,
        depth: 0,
        comparisons: 0,
    };
    let expr = parser.or()?;
    match parser.peek() {
        None => Ok(expr),
        Some(token) if token.kind == TokenKind::RParen => Err(FilterError::new(
            token.pos,
            "unexpected ')' without a matching '('",
        )),
        Some(token) => {
            let hint = match token.text {
                "and" | "AND" => "; use '&&' to combine comparisons",
                "or" | "OR" => "; use '||' to combine comparisons",
                _ => "",
            };
            let message = format!(
                "unexpected {} after the end of the expression{hint}",
                token.describe()
            );
            Err(FilterError::new(token.pos, message))
        }
    }
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    /// Index of the next token.
    next: usize,
    /// Char position of the end of the input.
    end: usize,
    /// Parentheses open around the current position.
    depth: usize,
    /// Comparisons seen so far.
    comparisons: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.next)
    }

    fn bump(&mut self) -> Option<Token<'a>> {
        let token = self.tokens.get(self.next).cloned();
        if token.is_some() {
            self.next += 1;
        }
        token
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        let found = self.peek().is_some_and(|token| token.kind == *kind);
        if found {
            self.next += 1;
        }
        found
    }

    /// An error saying `expected` was wanted where the next token (or the end) is.
    fn expected(&self, expected: &str) -> FilterError {
        match self.peek() {
            Some(token) => FilterError::new(
                token.pos,
                format!("expected {expected}, found {}", token.describe()),
            ),
            None => FilterError::new(self.end, format!("expected {expected}, found {END}")),
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.eat(&TokenKind::OrOr) {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.cmp()?;
        while self.eat(&TokenKind::AndAnd) {
            let right = self.cmp()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn cmp(&mut self) -> Result<Expr, FilterError> {
        if let Some(open) = self.peek().filter(|t| t.kind == TokenKind::LParen) {
            let open = open.pos;
            self.next += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                let message = format!("parentheses are nested deeper than {MAX_DEPTH} levels");
                return Err(FilterError::new(open, message));
            }
            let expr = self.or()?;
            if !self.eat(&TokenKind::RParen) {
                return Err(self.expected(&format!("')' to close '(' at position {open}")));
            }
            self.depth -= 1;
            return Ok(expr);
        }
        let start = self.peek().map_or(self.end, |token| token.pos);
        let left = self.operand("a field name, a value or '('")?;
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            let message = format!("filter has more than {MAX_COMPARISONS} comparisons");
            return Err(FilterError::new(start, message));
        }
        let Some(&TokenKind::Op(op)) = self.peek().map(|token| &token.kind) else {
            return Err(self.expected(EXPECTED_OPERATOR));
        };
        self.next += 1;
        let right = self.operand(&format!("a field name or a value after '{op}'"))?;
        Ok(Expr::Cmp { left, op, right })
    }

    fn operand(&mut self, expected: &str) -> Result<Operand, FilterError> {
        let error = self.expected(expected);
        let Some(token) = self.bump() else {
            return Err(error);
        };
        let span = token.span;
        let literal = |value| Ok(Operand::Literal { value, span });
        match token.kind {
            TokenKind::Field(path) => Ok(Operand::Field { path, span }),
            TokenKind::Request(path) => Ok(Operand::Request { path, span }),
            TokenKind::Now => Ok(Operand::Now { span }),
            TokenKind::Str(s) => literal(Literal::Str(s)),
            TokenKind::Int(i) => literal(Literal::Int(i)),
            TokenKind::Float(x) => literal(Literal::Float(x)),
            TokenKind::Bool(b) => literal(Literal::Bool(b)),
            TokenKind::Null => literal(Literal::Null),
            TokenKind::LParen
            | TokenKind::RParen
            | TokenKind::AndAnd
            | TokenKind::OrOr
            | TokenKind::Op(_) => Err(error),
        }
    }
}

//! Turns filter source into tokens, so that the parser deals only in whole operands and
//! operators.
//!
//! A dotted field path (`author.name`) and an `@request.auth.id` reference are single tokens:
//! no whitespace is allowed inside them. Each token records its char position, which errors
//! report, and its byte span, which the tree keeps.

use super::ast::{CmpOp, Span};
use super::{FilterError, MAX_LEN};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    LParen,
    RParen,
    AndAnd,
    OrOr,
    Op(CmpOp),
    Field(Vec<String>),
    /// Path after `@request.`, starting with `auth` or `body`.
    Request(Vec<String>),
    Now,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

/// A token and where it came from.
#[derive(Debug, Clone)]
pub(super) struct Token<'a> {
    pub(super) kind: TokenKind,
    /// Char offset of the token's first char.
    pub(super) pos: usize,
    /// Byte range in the source.
    pub(super) span: Span,
    /// The source text of the token.
    pub(super) text: &'a str,
}

impl Token<'_> {
    /// How error messages name this token: `'foo'`, `string 'it\'s'`.
    pub(super) fn describe(&self) -> String {
        match self.kind {
            TokenKind::Str(_) => format!("string {}", excerpt(self.text)),
            _ => format!("'{}'", excerpt(self.text)),
        }
    }
}

/// How error messages name the end of the input.
pub(super) const END: &str = "the end of the filter";

/// Splits `input` into tokens.
///
/// # Errors
/// Input over [`MAX_LEN`] chars, characters outside the language, malformed strings, numbers
/// and `@` references.
pub(super) fn tokenize(input: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let mut chars = Vec::with_capacity(input.len().min(MAX_LEN));
    for (count, char_index) in input.char_indices().enumerate() {
        if count == MAX_LEN {
            let message = format!("filter is longer than {MAX_LEN} characters");
            return Err(FilterError::new(MAX_LEN, message));
        }
        chars.push(char_index);
    }
    let mut lexer = Lexer { input, chars, i: 0 };
    let mut tokens = Vec::new();
    while let Some(token) = lexer.next_token()? {
        tokens.push(token);
    }
    Ok(tokens)
}

struct Lexer<'a> {
    input: &'a str,
    /// `input.char_indices()`, so that a char position indexes straight into it.
    chars: Vec<(usize, char)>,
    /// Char position of the next char.
    i: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).map(|&(_, c)| c)
    }

    fn peek_is(&self, test: impl Fn(char) -> bool) -> bool {
        self.peek().is_some_and(test)
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.i += 1;
        }
        found
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.i += 1;
        kind
    }

    fn byte(&self, pos: usize) -> usize {
        self.chars.get(pos).map_or(self.input.len(), |&(b, _)| b)
    }

    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.input.get(self.byte(from)..self.byte(to)).unwrap_or("")
    }

    /// Names the next char for an error message.
    fn found(&self) -> String {
        self.peek().map_or_else(|| END.to_owned(), quote_char)
    }

    fn next_token(&mut self) -> Result<Option<Token<'a>>, FilterError> {
        while self.peek_is(char::is_whitespace) {
            self.i += 1;
        }
        let start = self.i;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let kind = match c {
            '(' => self.single(TokenKind::LParen),
            ')' => self.single(TokenKind::RParen),
            '~' => self.single(TokenKind::Op(CmpOp::Like)),
            '&' | '|' => {
                self.i += 1;
                if !self.eat(c) {
                    return Err(FilterError::new(
                        start,
                        format!("unexpected '{c}'; did you mean '{c}{c}'?"),
                    ));
                }
                if c == '&' {
                    TokenKind::AndAnd
                } else {
                    TokenKind::OrOr
                }
            }
            '=' => {
                self.i += 1;
                if self.peek() == Some('=') {
                    let message = "'==' is not an operator; use '=' to test equality";
                    return Err(FilterError::new(start, message));
                }
                TokenKind::Op(CmpOp::Eq)
            }
            '!' => {
                self.i += 1;
                if self.eat('=') {
                    TokenKind::Op(CmpOp::Ne)
                } else if self.eat('~') {
                    TokenKind::Op(CmpOp::NotLike)
                } else {
                    let message = format!("expected '!=' or '!~', found '!' and {}", self.found());
                    return Err(FilterError::new(start, message));
                }
            }
            '>' | '<' => {
                self.i += 1;
                TokenKind::Op(match (c, self.eat('=')) {
                    ('>', false) => CmpOp::Gt,
                    ('>', true) => CmpOp::Ge,
                    (_, false) => CmpOp::Lt,
                    (_, true) => CmpOp::Le,
                })
            }
            '\'' | '"' => self.string(c)?,
            '@' => self.at()?,
            '-' | '0'..='9' => self.number()?,
            c if is_ident_start(c) => self.word()?,
            c => {
                let message = format!("unexpected character {}", quote_char(c));
                return Err(FilterError::new(start, message));
            }
        };
        let span = Span {
            start: self.byte(start),
            end: self.byte(self.i),
        };
        let text = self.slice(start, self.i);
        Ok(Some(Token {
            kind,
            pos: start,
            span,
            text,
        }))
    }

    fn string(&mut self, quote: char) -> Result<TokenKind, FilterError> {
        let start = self.i;
        self.i += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                let message = format!("unterminated string starting at position {start}");
                return Err(FilterError::new(self.i, message));
            };
            self.i += 1;
            if c == quote {
                return Ok(TokenKind::Str(value));
            }
            if c != '\\' {
                value.push(c);
                continue;
            }
            let unescaped = match self.peek() {
                Some('\\') => '\\',
                Some('\'') => '\'',
                Some('"') => '"',
                Some('n') => '\n',
                Some('t') => '\t',
                Some(other) => {
                    let message = format!(
                        "unknown escape '\\{}' in string; expected one of \\\\ \\' \\\" \\n \\t",
                        other.escape_debug()
                    );
                    return Err(FilterError::new(self.i - 1, message));
                }
                // The loop reports the missing closing quote.
                None => continue,
            };
            self.i += 1;
            value.push(unescaped);
        }
    }

    fn number(&mut self) -> Result<TokenKind, FilterError> {
        let start = self.i;
        self.eat('-');
        self.expect_digit("after '-'")?;
        self.digits();
        let mut float = false;
        if self.eat('.') {
            self.expect_digit("after '.' in a number")?;
            self.digits();
            float = true;
        }
        if self.eat('e') || self.eat('E') {
            if !self.eat('+') {
                self.eat('-');
            }
            self.expect_digit("in the exponent of a number")?;
            self.digits();
            float = true;
        }
        if let Some(c) = self.peek().filter(|&c| is_ident_char(c) || c == '.') {
            let message = format!("unexpected {} in a number", quote_char(c));
            return Err(FilterError::new(self.i, message));
        }
        let text = self.slice(start, self.i);
        if float {
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(TokenKind::Float(value)),
                _ => {
                    let message = format!("number '{}' is too large", excerpt(text));
                    Err(FilterError::new(start, message))
                }
            }
        } else {
            text.parse::<i64>().map(TokenKind::Int).map_err(|_| {
                let message = format!(
                    "integer '{}' is out of range ({} to {})",
                    excerpt(text),
                    i64::MIN,
                    i64::MAX
                );
                FilterError::new(start, message)
            })
        }
    }

    fn digits(&mut self) {
        while self.peek_is(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn expect_digit(&self, context: &str) -> Result<(), FilterError> {
        if self.peek_is(|c| c.is_ascii_digit()) {
            return Ok(());
        }
        let message = format!("expected a digit {context}, found {}", self.found());
        Err(FilterError::new(self.i, message))
    }

    /// A field path or one of the keywords `true`, `false`, `null`.
    fn word(&mut self) -> Result<TokenKind, FilterError> {
        let path = self.path()?;
        Ok(match path.as_slice() {
            [word] if word == "true" => TokenKind::Bool(true),
            [word] if word == "false" => TokenKind::Bool(false),
            [word] if word == "null" => TokenKind::Null,
            _ => TokenKind::Field(path),
        })
    }

    /// `ident ('.' ident)*`; the caller has checked that an identifier starts here.
    fn path(&mut self) -> Result<Vec<String>, FilterError> {
        let mut path = vec![self.ident()];
        while self.eat('.') {
            if !self.peek_is(is_ident_start) {
                let message = format!("expected a field name after '.', found {}", self.found());
                return Err(FilterError::new(self.i, message));
            }
            path.push(self.ident());
        }
        Ok(path)
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while self.peek_is(is_ident_char) {
            self.i += 1;
        }
        self.slice(start, self.i).to_owned()
    }

    /// `@now`, `@request.auth.<path>` or `@request.body.<path>`.
    fn at(&mut self) -> Result<TokenKind, FilterError> {
        const EXPECTED: &str = "expected '@request.auth.<field>' or '@request.body.<field>'";
        let start = self.i;
        self.i += 1;
        if !self.peek_is(is_ident_start) {
            let message = format!(
                "expected '@now' or '@request', found '@' and {}",
                self.found()
            );
            return Err(FilterError::new(start, message));
        }
        match self.ident().as_str() {
            "now" => return Ok(TokenKind::Now),
            "request" => {}
            // Channel rules' `@channel.name`, carried as a request value of its own section
            // (`@request.` itself only takes `auth` and `body`, so nothing else spells it).
            "channel" => {
                if self.eat('.') && self.peek_is(is_ident_start) && self.ident() == "name" {
                    return Ok(TokenKind::Request(vec!["channel".into(), "name".into()]));
                }
                return Err(FilterError::new(
                    start,
                    "expected '@channel.name' (the only value of a channel)".to_string(),
                ));
            }
            name => {
                let message = format!(
                    "unknown '@{}'; expected '@now' or '@request'",
                    excerpt(name)
                );
                return Err(FilterError::new(start, message));
            }
        }
        if !self.eat('.') || !self.peek_is(is_ident_start) {
            return Err(FilterError::new(
                self.i,
                format!("{EXPECTED}, found {}", self.found()),
            ));
        }
        let section_pos = self.i;
        let path = self.path()?;
        match path.as_slice() {
            [section, _, ..] if section == "auth" || section == "body" => {
                Ok(TokenKind::Request(path))
            }
            [section] if section == "auth" || section == "body" => {
                let message = format!(
                    "expected '.' and a field name after '@request.{section}', found {}",
                    self.found()
                );
                Err(FilterError::new(self.i, message))
            }
            _ => {
                let section = path.first().map_or("", String::as_str);
                let message = format!("unknown '@request.{}'; {EXPECTED}", excerpt(section));
                Err(FilterError::new(section_pos, message))
            }
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `'x'`, escaped as in Rust source so that control characters keep messages on one line.
fn quote_char(c: char) -> String {
    format!("'{}'", c.escape_debug())
}

/// Source text for an error message: at most 32 chars, control characters escaped.
fn excerpt(text: &str) -> String {
    const MAX: usize = 32;
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

//! SQL text assembly: the one place identifiers are quoted and placeholders numbered.
//!
//! [`Ident`] is the only way a name gets into SQL: it accepts the names the schema layer
//! allows (plus our own `_`-prefixed system tables) and always double-quotes them.
//! [`Sql`] collects text and bound [`Value`]s; values are never formatted into the text.
//! We build SQL by hand rather than with sea-query because our statements are few and
//! simple (one table per collection, a filter compiler) and the two dialects differ only
//! in placeholders, a few type names and `ILIKE`.

use std::fmt;

use brigade_core::value::Value;

/// The SQL dialect of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A validated, quoted SQL identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(String);

impl Ident {
    /// Accepts `[A-Za-z_][A-Za-z0-9_]{0,62}`.
    ///
    /// # Errors
    /// Returns the rejected name; callers validate user input earlier, so this is a guard.
    pub fn parse(name: &str) -> Result<Ident, String> {
        let b = name.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && (b[0].is_ascii_alphabetic() || b[0] == b'_')
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if ok {
            Ok(Ident(name.to_string()))
        } else {
            Err(name.to_string())
        }
    }

    /// The bare name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The alphabet excludes `"`, so quoting cannot be escaped.
        write!(f, "\"{}\"", self.0)
    }
}

/// A statement under construction: text plus its bound values.
#[derive(Debug, Clone)]
pub struct Sql {
    pub dialect: Dialect,
    pub text: String,
    pub params: Vec<Value>,
}

impl Sql {
    /// An empty statement.
    pub fn new(dialect: Dialect) -> Self {
        Sql {
            dialect,
            text: String::with_capacity(128),
            params: Vec::new(),
        }
    }

    /// Appends SQL text written by us (never user input).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a quoted identifier.
    pub fn ident(&mut self, ident: &Ident) -> &mut Self {
        use fmt::Write;
        let _ = write!(self.text, "{ident}");
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: Value) -> &mut Self {
        self.params.push(value);
        let n = self.params.len();
        use fmt::Write;
        let _ = match self.dialect {
            Dialect::Sqlite => write!(self.text, "?{n}"),
            Dialect::Postgres => write!(self.text, "${n}"),
        };
        self
    }

    /// Appends another fragment, renumbering its placeholders.
    pub fn append(&mut self, other: Sql) -> &mut Self {
        let offset = self.params.len();
        if offset == 0 {
            self.text.push_str(&other.text);
        } else {
            self.text
                .push_str(&renumber(&other.text, offset, self.dialect));
        }
        self.params.extend(other.params);
        self
    }
}

/// Shifts `?n`/`$n` placeholders by `offset`. Our fragments never contain string literals
/// holding `?` or `$`, so a plain scan is exact.
fn renumber(text: &str, offset: usize, dialect: Dialect) -> String {
    let mark = if dialect == Dialect::Sqlite { '?' } else { '$' };
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == mark {
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            if let Ok(n) = digits.parse::<usize>() {
                out.push_str(&(n + offset).to_string());
            } else {
                out.push_str(&digits);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents_are_validated_and_quoted() {
        assert_eq!(Ident::parse("posts").unwrap().to_string(), "\"posts\"");
        assert!(Ident::parse("a\"b").is_err());
        assert!(Ident::parse("x; DROP TABLE y").is_err());
        assert!(Ident::parse("").is_err());
    }

    #[test]
    fn append_renumbers() {
        let mut a = Sql::new(Dialect::Postgres);
        a.push("a = ").bind(Value::Int(1));
        let mut b = Sql::new(Dialect::Postgres);
        b.push(" AND b = ").bind(Value::Int(2));
        a.append(b);
        assert_eq!(a.text, "a = $1 AND b = $2");
        assert_eq!(a.params.len(), 2);
    }
}

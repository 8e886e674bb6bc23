//! A model is exactly one `SELECT` (or `WITH .. SELECT`): the store wraps it in
//! `CREATE TABLE .. AS`, and a second statement after a `;` would run as-is (a
//! `DROP TABLE` of another node's table, say). This module finds statement boundaries with a
//! tokenizer that knows string literals (`'..'`, `E'..'`, `$tag$..$tag$`), quoted identifiers
//! (`".."`, `` `..` ``, `[..]`), comments (`--`, nested `/* */`) and, in model files,
//! Jinja tags (`{{ }}`, `{% %}`, `{# #}`), so a `';'` inside a string is fine and only a real
//! second statement is refused. Checked when the files load and again on the rendered SQL
//! just before it runs.

/// Why SQL is not a single query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOneQuery {
    /// 1-based line, in the text checked, of the offending statement.
    pub line: usize,
    pub message: String,
}

/// Checks that `sql` is one query: at most a trailing `;` followed by whitespace and
/// comments, and (when its first word is visible) starting with `SELECT`, `WITH` or `VALUES`.
/// `jinja`: the text is a model template; its tags are skipped. Returns where the query
/// ends: `sql[..end]` is it without the trailing `;` and comments (safe to wrap in
/// parentheses).
///
/// # Errors
/// [`NotOneQuery`] with the line of the second statement (or of the first word).
pub fn single_query(sql: &str, jinja: bool) -> Result<usize, NotOneQuery> {
    let mut scan = Scanner {
        s: sql.as_bytes(),
        i: 0,
        line: 1,
        jinja,
    };
    let mut seen_code = false;
    let mut after_semicolon = false;
    let mut end = 0;
    loop {
        let Some(token) = scan.next_token() else {
            return Ok(end);
        };
        match token {
            Token::Semicolon => after_semicolon = true,
            Token::Code { line, word } => {
                if after_semicolon {
                    return Err(NotOneQuery {
                        line,
                        message: format!(
                            "a model is exactly one SELECT; a second statement starts on line {line} after `;` (remove it, or put it in its own model)"
                        ),
                    });
                }
                end = scan.i;
                if !seen_code {
                    seen_code = true;
                    if let Some(w) = word {
                        let lower = w.to_ascii_lowercase();
                        if !matches!(lower.as_str(), "select" | "with" | "values") {
                            return Err(NotOneQuery {
                                line,
                                message: format!(
                                    "a model is exactly one SELECT (or WITH .. SELECT); it starts with `{w}` on line {line}"
                                ),
                            });
                        }
                    }
                }
            }
            // What a tag renders to is checked again after rendering.
            Token::Jinja => {
                seen_code = true;
                end = scan.i;
            }
        }
    }
}

enum Token {
    Semicolon,
    /// Anything that is code: a word (`Some` for identifiers/keywords), a literal, a symbol.
    Code {
        line: usize,
        word: Option<String>,
    },
    /// A Jinja tag in a template.
    Jinja,
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
    jinja: bool,
}

impl Scanner<'_> {
    fn peek(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }

    fn bump(&mut self) {
        if self.s.get(self.i) == Some(&b'\n') {
            self.line += 1;
        }
        self.i += 1;
    }

    /// Skips to just past `end` (or to the end of the text).
    fn skip_past(&mut self, end: &[u8]) {
        while self.i < self.s.len() {
            if self.s[self.i..].starts_with(end) {
                for _ in 0..end.len() {
                    self.bump();
                }
                return;
            }
            self.bump();
        }
    }

    /// A quoted run closed by `quote`, where a doubled quote stands for itself.
    fn quoted(&mut self, quote: u8, backslash: bool) {
        self.bump();
        while let Some(c) = self.peek(0) {
            if backslash && c == b'\\' {
                self.bump();
                self.bump();
                continue;
            }
            self.bump();
            if c == quote {
                if self.peek(0) == Some(quote) {
                    self.bump();
                    continue;
                }
                return;
            }
        }
    }

    fn block_comment(&mut self) {
        let mut depth = 0usize;
        while self.i < self.s.len() {
            if self.s[self.i..].starts_with(b"/*") {
                depth += 1;
                self.bump();
                self.bump();
            } else if self.s[self.i..].starts_with(b"*/") {
                self.bump();
                self.bump();
                depth -= 1;
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// `$tag$` at the cursor (PostgreSQL dollar quoting), if any.
    fn dollar_tag(&self) -> Option<Vec<u8>> {
        let rest = &self.s[self.i..];
        let end = rest.iter().skip(1).position(|&c| c == b'$')? + 1;
        let tag = &rest[1..end];
        (tag.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
            && !tag.first().is_some_and(u8::is_ascii_digit))
        .then(|| rest[..=end].to_vec())
    }

    fn next_token(&mut self) -> Option<Token> {
        loop {
            let c = self.peek(0)?;
            let line = self.line;
            match c {
                c if c.is_ascii_whitespace() => self.bump(),
                b'-' if self.peek(1) == Some(b'-') => {
                    while self.peek(0).is_some_and(|c| c != b'\n') {
                        self.bump();
                    }
                }
                b'/' if self.peek(1) == Some(b'*') => self.block_comment(),
                b'{' if self.jinja && matches!(self.peek(1), Some(b'{' | b'%' | b'#')) => {
                    let end: &[u8] = match self.peek(1) {
                        Some(b'{') => b"}}",
                        Some(b'%') => b"%}",
                        _ => b"#}",
                    };
                    let comment = self.peek(1) == Some(b'#');
                    self.bump();
                    self.bump();
                    self.skip_past(end);
                    if !comment {
                        return Some(Token::Jinja);
                    }
                }
                b';' => {
                    self.bump();
                    return Some(Token::Semicolon);
                }
                b'\'' => {
                    self.quoted(b'\'', false);
                    return Some(Token::Code { line, word: None });
                }
                b'"' | b'`' => {
                    self.quoted(c, false);
                    return Some(Token::Code { line, word: None });
                }
                b'[' => {
                    self.bump();
                    self.skip_past(b"]");
                    return Some(Token::Code { line, word: None });
                }
                b'$' => {
                    if let Some(tag) = self.dollar_tag() {
                        for _ in 0..tag.len() {
                            self.bump();
                        }
                        self.skip_past(&tag);
                    } else {
                        self.bump();
                    }
                    return Some(Token::Code { line, word: None });
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    // `E'..'` strings take backslash escapes.
                    if (c == b'e' || c == b'E') && self.peek(1) == Some(b'\'') {
                        self.bump();
                        self.quoted(b'\'', true);
                        return Some(Token::Code { line, word: None });
                    }
                    let start = self.i;
                    while self
                        .peek(0)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$')
                    {
                        self.bump();
                    }
                    let word = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                    return Some(Token::Code {
                        line,
                        word: Some(word),
                    });
                }
                _ => {
                    self.bump();
                    return Some(Token::Code { line, word: None });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(sql: &str) -> Option<usize> {
        single_query(sql, true).err().map(|e| e.line)
    }

    #[test]
    fn one_select_passes() {
        for sql in [
            "SELECT 1",
            "SELECT 1;",
            "SELECT 1;  \n -- done\n /* really */ \n",
            "with a as (select 1 as n) select n from a",
            "SELECT ';' AS s, 'it''s; fine' AS t",
            "SELECT \"a;b\" FROM t",
            "SELECT `a;b`, [c;d] FROM t",
            "SELECT E'\\';' AS x",
            "SELECT $$ ; $$ AS x, $tag$ ; $tag$ AS y",
            "-- leading; comment\nSELECT 1 /* ; /* nested ; */ ; */",
            "SELECT * FROM {{ ref('a') }} {% if is_incremental() %} WHERE x > 1 {% endif %}",
            "{{ config() }} SELECT 1",
            "{# a; comment #} SELECT 1",
            "VALUES (1)",
            "(SELECT 1)",
        ] {
            assert!(single_query(sql, true).is_ok(), "{sql}");
        }
    }

    #[test]
    fn the_end_leaves_out_the_terminator_and_trailing_comments() {
        let sql = "SELECT 'a;b' AS s -- note\n; -- done\n";
        assert_eq!(
            &sql[..single_query(sql, false).unwrap()],
            "SELECT 'a;b' AS s"
        );
        let sql = "SELECT 1 /* c */";
        assert_eq!(&sql[..single_query(sql, false).unwrap()], "SELECT 1");
    }

    #[test]
    fn a_second_statement_is_refused_at_its_line() {
        assert_eq!(line_of("SELECT 1 AS n; DROP TABLE raw_b"), Some(1));
        assert_eq!(line_of("SELECT 1 AS n\n;\n\n  DROP TABLE raw_b"), Some(4));
        assert_eq!(line_of("SELECT ';'; -- x\nDELETE FROM t"), Some(2));
        assert_eq!(line_of("SELECT 1;;SELECT 2"), Some(1));
        let e = single_query("SELECT 1;\nDROP TABLE raw_b", false).unwrap_err();
        assert!(e.message.contains("line 2"), "{e:?}");
    }

    #[test]
    fn other_statements_are_refused() {
        assert_eq!(line_of("\n\nDROP TABLE raw_b"), Some(3));
        assert_eq!(line_of("delete from raw_b"), Some(1));
    }
}

//! The line of a model's own file that a database error is about. Databases report errors
//! against the statement they ran — the rendered SQL inside a `CREATE TABLE .. AS` wrapper —
//! so their positions mean nothing to the author of `models/x.sql`. The error names the
//! offending token instead (`no such column: nope`, `syntax error at or near "FORM"`); its
//! first whole-word occurrence in the model's source (templating and comments included, as
//! the author sees the file) is the line to show.

/// The 1-based line of `source` the database `message` points at, if a token it names is
/// found there.
pub(super) fn line_of_error(message: &str, source: &str) -> Option<usize> {
    let token = token(message)?;
    let mut candidates = vec![token.clone()];
    // `f.nope`: the qualified name, else the column alone.
    if let Some((_, last)) = token.rsplit_once('.') {
        candidates.push(last.to_string());
    }
    for candidate in &candidates {
        if let Some(line) = find_word(source, candidate, false) {
            return Some(line);
        }
    }
    candidates.iter().find_map(|c| find_word(source, c, true))
}

/// The token a database error names: the first `"quoted"` text, or what follows
/// `no such column:` / `no such table:` / `no such function:`.
fn token(message: &str) -> Option<String> {
    for prefix in ["no such column: ", "no such table: ", "no such function: "] {
        if let Some(i) = message.find(prefix) {
            let rest = &message[i + prefix.len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == ',' || c == ')' || c == '(')
                .unwrap_or(rest.len());
            return Some(rest[..end].to_string()).filter(|t| !t.is_empty());
        }
    }
    let start = message.find('"')? + 1;
    let len = message[start..].find('"')?;
    Some(message[start..start + len].to_string()).filter(|t| !t.is_empty())
}

/// The line of the first occurrence of `word` in `text` not inside a longer identifier.
fn find_word(text: &str, word: &str, ignore_case: bool) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    for (n, line) in text.lines().enumerate() {
        let (hay, needle) = if ignore_case {
            (line.to_lowercase(), word.to_lowercase())
        } else {
            (line.to_string(), word.to_string())
        };
        let mut from = 0;
        while let Some(i) = hay[from..].find(&needle) {
            let at = from + i;
            let before = hay[..at].chars().next_back();
            let after = hay[at + needle.len()..].chars().next();
            if !before.is_some_and(ident) && !after.is_some_and(ident) {
                return Some(n + 1);
            }
            from = at + needle.len().max(1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::line_of_error;

    const MODEL: &str = "{# daily orders,\n   one row per customer #}\nSELECT customer,\n       nope, amount_total\nFORM {{ ref('raw_orders') }} o\nJOIN {{ ref('raw_customers') }} c ON c.id = o.customer\n";

    #[test]
    fn finds_the_line_of_the_token_the_database_names() {
        assert_eq!(line_of_error("no such column: nope", MODEL), Some(4));
        assert_eq!(
            line_of_error("42703: column \"nope\" does not exist ()", MODEL),
            Some(4)
        );
        assert_eq!(line_of_error("no such column: c.id", MODEL), Some(6));
        assert_eq!(line_of_error("near \"FORM\": syntax error", MODEL), Some(5));
        assert_eq!(
            line_of_error("42601: syntax error at or near \"form\" ()", MODEL),
            Some(5),
            "case differs: still found"
        );
        // `amount` is only part of `amount_total`: not a match.
        assert_eq!(line_of_error("no such column: amount", MODEL), None);
        assert_eq!(line_of_error("database is locked", MODEL), None);
    }
}

//! The YAML front matter of a markdown file as document metadata, so `filter=` can use it
//! (`tags = 'sql'`, `year >= 2024`, `draft = false`).
//!
//! Only the flat shapes front matter uses in practice are read — `key: scalar`,
//! `key: [a, b]` and a `key:` followed by `- item` lines — without a YAML dependency.
//! Anything else (nested maps, multi-line strings) is skipped rather than misread.

use serde_json::{Map, Value};

/// The keys of a front matter block with scalar or list values.
pub(super) fn parse(yaml: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let mut list: Option<(String, Vec<Value>)> = None;
    for line in yaml.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if let Some((_, items)) = &mut list {
            if let Some(item) = line.trim_start().strip_prefix("- ") {
                items.push(scalar(item));
                continue;
            }
            if indented {
                // A nested map or a continued string: not something we read.
                list = None;
                continue;
            }
        }
        if let Some((key, items)) = list.take()
            && !items.is_empty()
        {
            out.insert(key, Value::Array(items));
        }
        if indented {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            continue;
        }
        let value = value.trim();
        if value.is_empty() {
            list = Some((key.to_string(), Vec::new()));
        } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let items = inner
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(scalar)
                .collect();
            out.insert(key.to_string(), Value::Array(items));
        } else if !matches!(
            value.chars().next(),
            Some('|' | '>' | '{' | '&' | '*' | '!')
        ) {
            out.insert(key.to_string(), scalar(value));
        }
    }
    if let Some((key, items)) = list
        && !items.is_empty()
    {
        out.insert(key, Value::Array(items));
    }
    out
}

/// A YAML scalar: quoted string, `true`/`false`, `null`/`~`, a number, else plain text
/// (a trailing ` # comment` removed).
fn scalar(raw: &str) -> Value {
    let raw = raw.trim();
    for quote in ['"', '\''] {
        if let Some(s) = raw.strip_prefix(quote).and_then(|r| r.strip_suffix(quote)) {
            return Value::String(s.to_string());
        }
    }
    let raw = raw.split_once(" #").map_or(raw, |(v, _)| v.trim_end());
    match raw {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        "null" | "Null" | "NULL" | "~" => return Value::Null,
        _ => {}
    }
    if let Ok(i) = raw.parse::<i64>() {
        return Value::from(i);
    }
    if raw.contains(['.', 'e', 'E'])
        && let Ok(f) = raw.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    Value::String(raw.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_scalars_and_lists() {
        let yaml = "title: \"Backups: a guide\"\nyear: 2024\nscore: 4.5\ndraft: false\n\
                    tags: [sql, 'json']\nauthors:\n  - Ada\n  - Brian\nempty:\nlang: en # English\n";
        assert_eq!(
            Value::Object(parse(yaml)),
            json!({
                "title": "Backups: a guide", "year": 2024, "score": 4.5, "draft": false,
                "tags": ["sql", "json"], "authors": ["Ada", "Brian"], "lang": "en",
            })
        );
    }

    #[test]
    fn skips_what_it_cannot_read() {
        let yaml = "author:\n  name: Ada\n  email: a@example.com\nsummary: |\n  two\n  lines\n\
                    version: 1.2.3\n";
        assert_eq!(Value::Object(parse(yaml)), json!({"version": "1.2.3"}));
    }
}

//! Finds the line of a key path such as `extract[1].format` in a pipeline file, so errors
//! found after parsing (an unknown `ref`, a bad cron) still point at a line. It reads the
//! TOML shapes pipeline files use: `[[array]]` blocks, nested `[[a.b]]` blocks, `key = ..`.

/// A table header line (`[a.b]` or `[[a.b]]`) as written without spaces and without a
/// trailing comment (`[[extract]]  # orders` is `[[extract]]`); `None` for other lines.
fn header(line: &str) -> Option<String> {
    let t = line.trim();
    if !t.starts_with('[') {
        return None;
    }
    let double = t.starts_with("[[");
    let close = if double { "]]" } else { "]" };
    let open = if double { 2 } else { 1 };
    let end = t.find(close)?;
    let rest = t[end + close.len()..].trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    let inner = &t[open..end];
    if inner.trim().is_empty()
        || !inner
            .chars()
            .all(|c| c.is_alphanumeric() || " ._-\"'".contains(c))
    {
        return None;
    }
    let name: String = inner
        .split('.')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(".");
    Some(if double {
        format!("[[{name}]]")
    } else {
        format!("[{name}]")
    })
}

/// The 1-based line of `path` in `text`; the closest enclosing block's line when the key
/// itself is absent, 0 when nothing matches.
pub fn line_of(text: &str, path: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut end = lines.len();
    let mut prefix = String::new();
    let mut found = 0;
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let table = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        match index {
            Some(i) => {
                let header = format!("[[{table}]]");
                let blocks: Vec<usize> = (start..end)
                    .filter(|&l| self::header(lines[l]).as_deref() == Some(header.as_str()))
                    .collect();
                let Some(&block) = blocks.get(i) else {
                    return found;
                };
                // The block runs until the next header that is not nested in it.
                let nested = format!("[[{table}.");
                let nested_table = format!("[{table}.");
                let block_end = (block + 1..end)
                    .find(|&l| {
                        self::header(lines[l]).is_some_and(|t| {
                            !t.starts_with(&nested) && !t.starts_with(&nested_table)
                        })
                    })
                    .unwrap_or(end);
                found = block + 1;
                start = block + 1;
                end = block_end;
                prefix = table;
            }
            None => {
                let line = (start..end).find(|&l| {
                    let t = lines[l].trim_start();
                    t.strip_prefix(name).is_some_and(|rest| {
                        let rest = rest.trim_start();
                        rest.starts_with('=') || rest.starts_with('.')
                    })
                });
                match line {
                    Some(l) => {
                        found = l + 1;
                        start = l;
                    }
                    None => {
                        // A plain `[table]` block such as `[trigger]` or `[vars]`.
                        let header = format!("[{table}]");
                        let Some(block) = (start..end).find(|&l| lines[l].trim() == header) else {
                            return found;
                        };
                        found = block + 1;
                        start = block + 1;
                        end = (block + 1..end)
                            .find(|&l| lines[l].trim_start().starts_with('['))
                            .unwrap_or(end);
                        prefix = table;
                    }
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const TEXT: &str = r#"name = "x"

[[extract]]
name = "a"
from = "file"

[[extract]]
name = "b"
format = "csv"

[[model]]
name = "m"
[[model.expect]]
name = "e1"
check = "x"
[[model.expect]]
name = "e2"
check = "y"
"#;

    #[test]
    fn finds_keys_in_array_blocks() {
        assert_eq!(line_of(TEXT, "name"), 1);
        assert_eq!(line_of(TEXT, "extract[0].from"), 5);
        assert_eq!(line_of(TEXT, "extract[1].format"), 9);
        assert_eq!(line_of(TEXT, "model[0].expect[1].check"), 18);
        // A missing key points at its block.
        assert_eq!(line_of(TEXT, "extract[1].path"), 7);
        assert_eq!(line_of(TEXT, "nothing"), 0);
    }

    #[test]
    fn block_headers_may_carry_comments_and_spaces() {
        let text = "name = \"x\"\n\n[[extract]] # orders\nname = \"a\"\n\n[[ extract ]]  # second\nname = \"b\"\nformat = \"csv\"\n[[model]]#m\nname = \"m\"\n[[ model.expect ]] # e\ncheck = \"x\"\n";
        assert_eq!(line_of(text, "extract[0].name"), 4);
        assert_eq!(line_of(text, "extract[1].format"), 8);
        assert_eq!(
            line_of(text, "extract[1].path"),
            6,
            "a missing key: its block"
        );
        assert_eq!(line_of(text, "model[0].expect[0].check"), 12);
        // An array value that starts with `[` is not a header.
        assert_eq!(
            line_of("[[extract]]\nx = 1\n[1, 2]\ny = 2\n", "extract[0].y"),
            4
        );
    }
}

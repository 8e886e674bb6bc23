//! dbt-style macros: `{% macro name(args) %}..{% endmacro %}` in `macros/*.sql` of the app
//! directory (next to `models/`), callable from every model without an import. Files are
//! read and syntax-checked when pipelines load, so a broken macro file is reported with its
//! file and line before anything runs.

use std::path::Path;

use minijinja::Environment;

use crate::error::ConfigError;

/// One macro file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacroFile {
    /// Relative to the app directory: `macros/money.sql`.
    pub path: String,
    pub text: String,
    /// The macros it defines, in order.
    pub names: Vec<String>,
}

/// Names models already have; a macro may not hide them.
const RESERVED: [&str; 5] = ["ref", "this", "is_incremental", "env_var", "var"];

/// Reads and checks every `macros/*.sql` of `dir` (none when the folder is missing).
///
/// # Errors
/// An unreadable file, a syntax error (file and line), or a macro name defined twice or
/// taken by the template vocabulary.
pub fn load(dir: &Path) -> Result<Vec<MacroFile>, ConfigError> {
    let folder = dir.join("macros");
    let mut paths: Vec<std::path::PathBuf> = match std::fs::read_dir(&folder) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ConfigError::new("macros", 0, "", e.to_string())),
    };
    paths.sort();
    let mut files: Vec<MacroFile> = Vec::new();
    for path in paths {
        let rel = format!(
            "macros/{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new(&rel, 0, "", format!("cannot read: {e}")))?;
        let mut env = Environment::new();
        env.add_template_owned(rel.clone(), text.clone())
            .map_err(|e| {
                ConfigError::new(
                    &rel,
                    e.line().unwrap_or(0),
                    "",
                    match e.detail() {
                        Some(detail) => format!("{}: {detail}", e.kind()),
                        None => e.kind().to_string(),
                    },
                )
            })?;
        let names = defined(&text);
        for (name, line) in &names {
            if RESERVED.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    &rel,
                    *line,
                    "",
                    format!("a macro cannot be called `{name}`: models already use that name"),
                ));
            }
            if let Some(other) = files.iter().find(|f| f.names.contains(name)) {
                return Err(ConfigError::new(
                    &rel,
                    *line,
                    "",
                    format!(
                        "macro `{name}` is already defined in {}; rename one of them",
                        other.path
                    ),
                ));
            }
        }
        files.push(MacroFile {
            path: rel,
            text,
            names: names.into_iter().map(|(n, _)| n).collect(),
        });
    }
    Ok(files)
}

/// The macros `text` defines at its top level, with their 1-based lines.
fn defined(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find("{%") {
        let after = rest[i + 2..].trim_start_matches(['-', '+']).trim_start();
        if let Some(tail) = after.strip_prefix("macro")
            && tail.starts_with(char::is_whitespace)
        {
            let name: String = tail
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                let line = text[..offset + i].matches('\n').count() + 1;
                out.push((name, line));
            }
        }
        offset += i + 2;
        rest = &rest[i + 2..];
    }
    out
}

/// The `{% from .. import .. %}` tags that make every macro callable from a model, on one
/// line with no newline, so the model's line numbers stay as written.
pub(crate) fn imports(files: &[MacroFile]) -> String {
    files
        .iter()
        .filter(|f| !f.names.is_empty())
        .map(|f| format!("{{% from \"{}\" import {} %}}", f.path, f.names.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_macro_names_and_lines() {
        let text = "{# money #}\n{% macro cents(col) %}{{ col }} / 100{% endmacro %}\n\n{%- macro  pct(a, b) -%}x{% endmacro %}";
        assert_eq!(
            defined(text),
            [("cents".to_string(), 2), ("pct".to_string(), 4)]
        );
    }

    #[test]
    fn syntax_errors_and_duplicates_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("macros")).unwrap();
        std::fs::write(
            dir.path().join("macros/a.sql"),
            "{% macro one() %}1{% endmacro %}\n",
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap()[0].names, ["one"]);
        std::fs::write(
            dir.path().join("macros/b.sql"),
            "\n{% macro one() %}2{% endmacro %}\n",
        )
        .unwrap();
        let e = load(dir.path()).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("macros/b.sql", 2));
        assert!(e.message.contains("already defined in macros/a.sql"), "{e}");
        std::fs::write(
            dir.path().join("macros/b.sql"),
            "{% macro two() %}\n{{ 1 + }}\n{% endmacro %}\n",
        )
        .unwrap();
        let e = load(dir.path()).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("macros/b.sql", 2), "{e}");
    }
}

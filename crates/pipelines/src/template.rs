//! Rendering model SQL: Jinja (minijinja) with dbt's vocabulary — `{{ ref('name') }}`,
//! `{{ this }}`, `{% if is_incremental() %}`, `{{ env_var('NAME', 'default') }}` and
//! `{{ var('name') }}` (the pipeline's `[vars]`, overridden by the run).
//! Rendering with a recording `ref` is also how a model's dependencies are found. Macros of
//! `macros/*.sql` ([`crate::macros`]) are callable from every model.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use minijinja::value::Value as JinjaValue;
use minijinja::{Environment, Error as JinjaError, ErrorKind, UndefinedBehavior};

/// What a model's SQL is rendered against.
pub struct Context<'a> {
    /// Names `ref` accepts (the pipeline's extracts and models).
    pub nodes: &'a [String],
    /// The model itself, for `this`.
    pub this: &'a str,
    /// Whether `is_incremental()` is true (incremental model, table exists, no full refresh).
    pub incremental: bool,
    /// Values `env_var` may read.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Values `var` reads: the pipeline's `[vars]` defaults with the run's overrides.
    pub vars: &'a std::collections::BTreeMap<String, serde_json::Value>,
    /// The app's macro files.
    pub macros: &'a [crate::macros::MacroFile],
}

/// The rendered SQL and the nodes it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub sql: String,
    pub refs: BTreeSet<String>,
}

/// A template error with its 1-based line in the model's SQL (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The macro file the error is in; `None` for the model itself.
    pub file: Option<String>,
    pub line: usize,
    pub message: String,
}

fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// Renders `text`, a model's SQL.
///
/// # Errors
/// A syntax error, an unknown `ref`, an unset `env_var` without default.
pub fn render(text: &str, cx: &Context<'_>) -> Result<Rendered, TemplateError> {
    let refs = Arc::new(Mutex::new(BTreeSet::new()));
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // SQL is not HTML: no auto-escaping.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let known: Vec<String> = cx.nodes.to_vec();
    let seen = refs.clone();
    env.add_function(
        "ref",
        move |name: String| -> Result<JinjaValue, JinjaError> {
            if !known.contains(&name) {
                let mut names = known.clone();
                names.sort();
                return Err(JinjaError::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "unknown ref `{name}`; this pipeline has: {}",
                        names.join(", ")
                    ),
                ));
            }
            if let Ok(mut seen) = seen.lock() {
                seen.insert(name.clone());
            }
            Ok(JinjaValue::from_safe_string(quote(&name)))
        },
    );
    let incremental = cx.incremental;
    env.add_function("is_incremental", move || incremental);
    let lookup: crate::Env = {
        let snapshot: Vec<(String, Option<String>)> = std::iter::once(text)
            .chain(cx.macros.iter().map(|m| m.text.as_str()))
            .flat_map(env_names)
            .map(|n| {
                let v = (cx.env)(&n);
                (n, v)
            })
            .collect();
        Arc::new(move |name: &str| {
            snapshot
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.clone())
        })
    };
    env.add_function(
        "env_var",
        move |name: String, default: Option<String>| -> Result<String, JinjaError> {
            lookup(&name).or(default).ok_or_else(|| {
                JinjaError::new(
                    ErrorKind::InvalidOperation,
                    format!("environment variable `{name}` is not set and has no default"),
                )
            })
        },
    );
    let vars = cx.vars.clone();
    env.add_function(
        "var",
        move |name: String, default: Option<JinjaValue>| -> Result<JinjaValue, JinjaError> {
            match (vars.get(&name), default) {
                (Some(v), _) => Ok(JinjaValue::from_serialize(v)),
                (None, Some(d)) => Ok(d),
                (None, None) => {
                    let known: Vec<&str> = vars.keys().map(String::as_str).collect();
                    Err(JinjaError::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "unknown var `{name}`; declare it under [vars] with a default (declared: {})",
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    ))
                }
            }
        },
    );
    // A global, so macros see it too.
    env.add_global("this", JinjaValue::from_safe_string(quote(cx.this)));
    for m in cx.macros {
        env.add_template_owned(m.path.clone(), m.text.clone())
            .map_err(|e| error(&e))?;
    }
    // The imports go on the model's first line, so its line numbers stay as written.
    let source = format!("{}{text}", crate::macros::imports(cx.macros));
    let sql = env
        .render_str(&source, minijinja::context! {})
        .map_err(|e| error(&e))?;
    let refs = refs.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(Rendered { sql, refs })
}

/// The names passed to `env_var('..')` in `text`, so only those are read from the
/// environment.
fn env_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("env_var(") {
        rest = &rest[i + 8..];
        let trimmed = rest.trim_start();
        if let Some(q) = trimmed.chars().next().filter(|c| *c == '\'' || *c == '"')
            && let Some(end) = trimmed[1..].find(q)
        {
            names.push(trimmed[1..1 + end].to_string());
        }
    }
    names
}

fn error(e: &JinjaError) -> TemplateError {
    TemplateError {
        file: e
            .name()
            .filter(|n| n.starts_with("macros/"))
            .map(str::to_string),
        line: e.line().unwrap_or(0),
        message: describe(e),
    }
}

fn describe(e: &JinjaError) -> String {
    let mut message = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_string);
    if e.kind() == ErrorKind::UndefinedError {
        message = format!(
            "{message} (models know `ref('name')`, `this`, `is_incremental()`, `env_var('NAME')` and `var('name')`)"
        );
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx<'a>(nodes: &'a [String], incremental: bool) -> Context<'a> {
        static VARS: std::sync::LazyLock<std::collections::BTreeMap<String, serde_json::Value>> =
            std::sync::LazyLock::new(|| {
                [
                    ("day".to_string(), serde_json::json!("2013-01-01")),
                    ("limit".to_string(), serde_json::json!(5)),
                ]
                .into()
            });
        Context {
            nodes,
            this: "gold",
            incremental,
            env: &|name| (name == "MIN_YEAR").then(|| "2013".to_string()),
            vars: &VARS,
            macros: &[],
        }
    }

    #[test]
    fn var_reads_the_runs_values_or_a_default_and_names_unknown_ones() {
        let nodes = vec![];
        let r = render(
            "WHERE d = '{{ var('day') }}' LIMIT {{ var('limit') }} -- {{ var('x', 'dflt') }}",
            &cx(&nodes, false),
        )
        .unwrap();
        assert_eq!(r.sql, "WHERE d = '2013-01-01' LIMIT 5 -- dflt");
        let e = render("{{ var('nope') }}", &cx(&nodes, false)).unwrap_err();
        assert!(e.message.contains("unknown var `nope`"), "{}", e.message);
        assert!(e.message.contains("day, limit"), "{}", e.message);
    }

    #[test]
    fn renders_refs_this_and_incremental() {
        let nodes = vec!["raw".to_string(), "silver".to_string()];
        let text = "SELECT * FROM {{ ref('silver') }} JOIN {{ ref(\"raw\") }}\n\
                    {% if is_incremental() %}WHERE t > (SELECT max(t) FROM {{ this }}){% endif %}";
        let full = render(text, &cx(&nodes, false)).unwrap();
        assert_eq!(full.sql.trim(), "SELECT * FROM \"silver\" JOIN \"raw\"");
        assert_eq!(full.refs.len(), 2);
        let inc = render(text, &cx(&nodes, true)).unwrap();
        assert!(inc.sql.contains("FROM \"gold\")"));
    }

    #[test]
    fn unknown_refs_and_syntax_errors_name_the_line() {
        let nodes = vec!["raw".to_string()];
        let e = render("SELECT 1\nFROM {{ ref('nope') }}", &cx(&nodes, false)).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unknown ref `nope`"), "{}", e.message);
        let e = render("SELECT {{ ", &cx(&nodes, false)).unwrap_err();
        assert!(e.line >= 1);
        let e = render("SELECT {{ nothing }}", &cx(&nodes, false)).unwrap_err();
        assert!(e.message.contains("ref('name')"), "{}", e.message);
    }

    #[test]
    fn env_var_reads_the_environment_or_a_default() {
        let nodes = vec![];
        let r = render(
            "WHERE y >= {{ env_var('MIN_YEAR') }} AND {{ env_var('X', '1') }}",
            &cx(&nodes, false),
        )
        .unwrap();
        assert_eq!(r.sql, "WHERE y >= 2013 AND 1");
        assert!(render("{{ env_var('UNSET') }}", &cx(&nodes, false)).is_err());
    }

    #[test]
    fn macros_are_callable_without_import_and_keep_lines() {
        let macros = vec![crate::macros::MacroFile {
            path: "macros/money.sql".into(),
            text: "{% macro cents(col) %}ROUND({{ col }} / 100.0, 2){% endmacro %}\n\
                   {% macro from_raw() %}{{ ref('raw') }}{% endmacro %}"
                .into(),
            names: vec!["cents".into(), "from_raw".into()],
        }];
        let nodes = vec!["raw".to_string()];
        let mut c = cx(&nodes, false);
        c.macros = &macros;
        let r = render("SELECT {{ cents('amount') }}\nFROM {{ from_raw() }}", &c).unwrap();
        assert_eq!(r.sql, "SELECT ROUND(amount / 100.0, 2)\nFROM \"raw\"");
        assert!(
            r.refs.contains("raw"),
            "a ref inside a macro is a dependency"
        );
        let e = render("SELECT 1\nFROM {{ nope() }}", &c).unwrap_err();
        assert_eq!((e.file.as_deref(), e.line), (None, 2), "{e:?}");
    }
}

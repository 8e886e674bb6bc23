//! Checks a parsed pipeline beyond its shape: names, the keys each source kind needs, type
//! names, the cron, model files and their templates, and the graph (unknown refs, cycles).

use std::path::Path;

use brigade_store::warehouse::ColumnType;

use super::{
    Extract, Format, Materialized, Model, PaginationKind, Pipeline, SourceKind, Write, expect,
    line_of,
};
use crate::dag::{Graph, GraphNode};
use crate::error::ConfigError;
use crate::template;

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, line_of(self.text, key), key, message)
    }
}

/// Validates `p` (parsed from `text`) and fills in model SQL and the graph.
pub(super) fn pipeline(dir: &Path, text: &str, p: &mut Pipeline) -> Result<(), ConfigError> {
    let c = Checker {
        file: &p.file.clone(),
        text,
    };
    if !valid_name(&p.name) {
        return Err(c.err(
            "name",
            format!(
                "`{}` is not a valid pipeline name (letters, digits, `_` and `-`)",
                p.name
            ),
        ));
    }
    if let Some(schedule) = &p.schedule {
        crate::schedule::parse(schedule).map_err(|m| c.err("schedule", m))?;
    }
    if let Some(on_failure) = &p.on_failure
        && !(on_failure.webhook.starts_with("http://")
            || on_failure.webhook.starts_with("https://"))
    {
        return Err(c.err("on_failure.webhook", "must be an http:// or https:// URL"));
    }
    for role in &p.readers {
        let valid = (1..=64).contains(&role.len())
            && role
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
        if !valid {
            return Err(c.err(
                "readers",
                format!("`{role}` is not a role name (1 to 64 letters, digits, `_` or `-`)"),
            ));
        }
    }
    notify_and_freshness(&c, p)?;
    triggers_and_vars(&c, p)?;
    if let Some(threads) = p.threads
        && !(1..=32).contains(&threads)
    {
        return Err(c.err("threads", "must be between 1 and 32"));
    }
    if p.extract.is_empty() && p.model.is_empty() {
        return Err(c.err("", "a pipeline needs at least one [[extract]] or [[model]]"));
    }
    let mut names: Vec<String> = Vec::new();
    for (i, e) in p.extract.iter().enumerate() {
        let key = |k: &str| format!("extract[{i}].{k}");
        node_name(&c, &key("name"), &e.name, &names)?;
        names.push(e.name.clone());
        extract(&c, i, e)?;
        tags(&c, &key("tags"), &e.tags)?;
    }
    for (i, m) in p.model.iter().enumerate() {
        node_name(&c, &format!("model[{i}].name"), &m.name, &names)?;
        names.push(m.name.clone());
        tags(&c, &format!("model[{i}].tags"), &m.tags)?;
    }
    for (i, m) in p.model.iter_mut().enumerate() {
        model(&c, dir, i, m)?;
        let owner = expect::Owner {
            prefix: format!("model[{i}]"),
            name: &m.name,
            can_drop: m.materialized != Materialized::View,
            nodes: &names,
        };
        expect::check_all(&|k, msg| c.err(k, msg), &owner, &mut m.expect)?;
    }
    for (i, e) in p.extract.iter_mut().enumerate() {
        let owner = expect::Owner {
            prefix: format!("extract[{i}]"),
            name: &e.name,
            can_drop: false,
            nodes: &names,
        };
        expect::check_all(&|k, msg| c.err(k, msg), &owner, &mut e.expect)?;
    }
    if !p.model.is_empty() {
        p.macros = std::sync::Arc::new(crate::macros::load(dir)?);
    }
    p.graph = graph(&c, p, &names)?;
    Ok(())
}

/// Webhook URLs of `[[notify]]` and the ages of every extract's `freshness`.
fn notify_and_freshness(c: &Checker<'_>, p: &Pipeline) -> Result<(), ConfigError> {
    for (i, n) in p.notify.iter().enumerate() {
        if !(n.webhook.starts_with("http://") || n.webhook.starts_with("https://")) {
            return Err(c.err(
                &format!("notify[{i}].webhook"),
                "must be an http:// or https:// URL",
            ));
        }
        if n.on.is_empty() {
            return Err(c.err(
                &format!("notify[{i}].on"),
                "lists no event; use some of \"failure\", \"success\", \"missed\", \"freshness\"",
            ));
        }
    }
    for (i, e) in p.extract.iter().enumerate() {
        let Some(f) = &e.freshness else { continue };
        let key = |k: &str| format!("extract[{i}].freshness.{k}");
        for (k, v) in [
            ("warn_after", &f.warn_after),
            ("error_after", &f.error_after),
        ] {
            if let Some(v) = v {
                brigade_core::settings::parse_duration(v).map_err(|m| c.err(&key(k), m))?;
            }
        }
        match f.limits() {
            (None, None) => {
                return Err(c.err(
                    &format!("extract[{i}].freshness"),
                    "set warn_after, error_after or both, e.g. { warn_after = \"6h\", error_after = \"1d\" }",
                ));
            }
            (Some(w), Some(e)) if w > e => {
                return Err(c.err(&key("warn_after"), "must not be longer than error_after"));
            }
            _ => {}
        }
        if let Some(field) = &f.field
            && brigade_store::Ident::parse(field).is_err()
        {
            return Err(c.err(&key("field"), format!("`{field}` is not a column name")));
        }
    }
    Ok(())
}

/// `[trigger]` (known events, a poll interval, a file extract to watch) and `[vars]`
/// (scalar defaults under identifier names).
fn triggers_and_vars(c: &Checker<'_>, p: &Pipeline) -> Result<(), ConfigError> {
    if let Some(t) = &p.trigger {
        for (i, upstream) in t.after.iter().enumerate() {
            if upstream == &p.name {
                return Err(c.err(
                    &format!("trigger.after[{i}]"),
                    "a pipeline cannot trigger itself; use a schedule to repeat it",
                ));
            }
            if !valid_name(upstream) {
                return Err(c.err(
                    &format!("trigger.after[{i}]"),
                    format!("`{upstream}` is not a pipeline name"),
                ));
            }
        }
        if let Some(poll) = &t.poll {
            let every = brigade_core::settings::parse_duration(poll)
                .map_err(|m| c.err("trigger.poll", m))?;
            if every < std::time::Duration::from_secs(1) {
                return Err(c.err("trigger.poll", "must be at least 1s"));
            }
        }
        if t.files
            && !p
                .extract
                .iter()
                .any(|e| e.from == crate::spec::SourceKind::File)
        {
            return Err(c.err(
                "trigger.files",
                "watches the paths of `file` extracts, and this pipeline has none",
            ));
        }
        if !t.files && t.poll.is_some() {
            return Err(c.err("trigger.poll", "only applies with files = true"));
        }
        if t.after.is_empty() && !t.files {
            return Err(c.err(
                "trigger",
                "names no event; set after = [\"other_pipeline\"], files = true, or both",
            ));
        }
    }
    for (name, value) in &p.vars {
        if brigade_store::Ident::parse(name).is_err() {
            return Err(c.err(
                &format!("vars.{name}"),
                "is not a valid variable name (letters, digits and `_`)",
            ));
        }
        if !matches!(
            value,
            toml::Value::String(_)
                | toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
        ) {
            return Err(c.err(
                &format!("vars.{name}"),
                "must be a string, a number or a boolean (its default value)",
            ));
        }
    }
    Ok(())
}

/// A snapshot's key, strategy and delete handling; those keys elsewhere are mistakes.
fn snapshot(c: &Checker<'_>, i: usize, m: &Model) -> Result<(), ConfigError> {
    let key = |k: &str| format!("model[{i}].{k}");
    if m.materialized != Materialized::Snapshot {
        for (name, set) in [
            ("check_cols", m.check_cols.is_some()),
            ("updated_at", m.updated_at.is_some()),
            ("hard_deletes", m.hard_deletes.is_some()),
        ] {
            if set {
                return Err(c.err(
                    &key(name),
                    format!("{name} applies to snapshots (materialized = \"snapshot\")"),
                ));
            }
        }
        return Ok(());
    }
    if m.unique_key.is_none() {
        return Err(c.err(
            &key("materialized"),
            "a snapshot tracks rows by key: set unique_key (a column or a list of columns)",
        ));
    }
    if m.expose {
        return Err(c.err(
            &key("expose"),
            "a snapshot keeps several versions per key, so it cannot be a collection keyed by it; expose a model that selects the current versions (WHERE valid_to IS NULL)",
        ));
    }
    if m.contract == crate::spec::Contract::Freeze {
        return Err(c.err(
            &key("contract"),
            "a snapshot's columns may only grow (new source columns join the history); contract = \"freeze\" does not apply",
        ));
    }
    if m.check_cols.is_some() && m.updated_at.is_some() {
        return Err(c.err(
            &key("updated_at"),
            "choose one strategy: updated_at (a newer timestamp is a new version) or check_cols (a changed value is)",
        ));
    }
    let columns = m
        .check_cols
        .iter()
        .flatten()
        .map(|col| ("check_cols", col))
        .chain(m.updated_at.iter().map(|col| ("updated_at", col)));
    for (k, col) in columns {
        if brigade_store::Ident::parse(col).is_err() {
            return Err(c.err(&key(k), format!("`{col}` is not a column name")));
        }
    }
    if m.check_cols.as_ref().is_some_and(Vec::is_empty) {
        return Err(c.err(&key("check_cols"), "lists no column"));
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

fn node_name(c: &Checker<'_>, key: &str, name: &str, seen: &[String]) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        && !name.contains("__");
    if !ok {
        return Err(c.err(key, format!("`{name}` is not a valid table name: use lowercase letters, digits and single `_`, starting with a letter, at most 48 characters")));
    }
    if seen.iter().any(|s| s == name) {
        return Err(c.err(key, format!("`{name}` is defined twice in this pipeline")));
    }
    Ok(())
}

/// Tags are selector words: letters, digits, `_`, `-` and `.`.
fn tags(c: &Checker<'_>, key: &str, tags: &[String]) -> Result<(), ConfigError> {
    for t in tags {
        let ok = !t.is_empty()
            && t.len() <= 63
            && t.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'));
        if !ok {
            return Err(c.err(
                key,
                format!("`{t}` is not a valid tag (letters, digits, `_`, `-` and `.`)"),
            ));
        }
    }
    Ok(())
}

fn extract(c: &Checker<'_>, i: usize, e: &Extract) -> Result<(), ConfigError> {
    let key = |k: &str| format!("extract[{i}].{k}");
    let require = |value: bool, k: &str, what: &str| {
        if value {
            Ok(())
        } else {
            Err(c.err(
                &key(k),
                format!("`from = \"{}\"` needs `{k}` ({what})", kind_name(e.from)),
            ))
        }
    };
    match e.from {
        SourceKind::File => {
            require(
                e.path.is_some(),
                "path",
                "a file or glob relative to the app directory",
            )?;
            let path = e.path.as_deref().unwrap_or_default();
            if e.format.is_none() && format_of(path).is_none() {
                return Err(c.err(&key("format"), format!("cannot tell the format of `{path}` from its extension; set format = \"csv\" | \"ndjson\" | \"json\" | \"parquet\"")));
            }
            if let Some(d) = &e.download {
                download(c, &key("download"), path, d)?;
            }
            if let Some(d) = &e.delimiter
                && (d.len() != 1 || !d.is_ascii())
            {
                return Err(c.err(
                    &key("delimiter"),
                    "must be a single ASCII character, e.g. \",\" or \";\" or \"\\t\"",
                ));
            }
        }
        SourceKind::Http => {
            require(e.url.is_some(), "url", "the API endpoint")?;
            http_url(c, &key("url"), e.url.as_deref().unwrap_or_default())?;
            if let Some(p) = &e.paginate
                && p.kind == PaginationKind::Cursor
                && p.next.is_none()
            {
                return Err(c.err(&key("paginate.next"), "cursor pagination needs `next`, the path of the next cursor in each response (e.g. \"meta.next\")"));
            }
        }
        SourceKind::Html => {
            require(e.url.is_some(), "url", "the first page")?;
            http_url(c, &key("url"), e.url.as_deref().unwrap_or_default())?;
            require(
                e.item.is_some(),
                "item",
                "a CSS selector matching one element per row",
            )?;
            require(
                !e.fields.is_empty(),
                "fields",
                "a CSS selector per column, e.g. { title = \"h2 a\", link = \"h2 a@href\" }",
            )?;
            let mut selectors: Vec<(String, &str)> =
                vec![(key("item"), e.item.as_deref().unwrap_or_default())];
            for (name, sel) in &e.fields {
                selectors.push((
                    format!("{}.{name}", key("fields")),
                    sel.split('@').next().unwrap_or_default(),
                ));
            }
            if let Some(f) = &e.follow {
                selectors.push((key("follow"), f.split('@').next().unwrap_or_default()));
            }
            for (k, sel) in selectors {
                if !sel.trim().is_empty() {
                    crate::extract::html::check_selector(sel).map_err(|m| c.err(&k, m))?;
                }
            }
        }
        SourceKind::Sql => {
            require(
                e.connection.is_some(),
                "connection",
                "a sqlite://PATH or postgres:// URL",
            )?;
            require(e.query.is_some(), "query", "a SELECT")?;
            let conn = e.connection.as_deref().unwrap_or_default();
            if !(conn.starts_with("sqlite://")
                || conn.starts_with("postgres://")
                || conn.starts_with("postgresql://")
                || conn.starts_with("${"))
            {
                return Err(c.err(
                    &key("connection"),
                    "must start with sqlite:// or postgres://",
                ));
            }
        }
    }
    for (column, ty) in &e.columns {
        if ColumnType::parse(ty).is_none() {
            return Err(c.err(
                &format!("{}.{column}", key("columns")),
                format!(
                    "unknown type `{ty}`; use one of {}",
                    ColumnType::NAMES.join(", ")
                ),
            ));
        }
    }
    if e.write == Some(Write::Merge) && e.primary_key.is_empty() {
        return Err(c.err(&key("write"), "write = \"merge\" needs primary_key"));
    }
    if e.primary_key.iter().any(String::is_empty) {
        return Err(c.err(&key("primary_key"), "column names cannot be empty"));
    }
    if let Some(inc) = &e.incremental
        && inc.cursor.is_empty()
    {
        return Err(c.err(&key("incremental.cursor"), "name the cursor column"));
    }
    Ok(())
}

fn download(
    c: &Checker<'_>,
    key: &str,
    path: &str,
    d: &super::Download,
) -> Result<(), ConfigError> {
    if path.contains(['*', '?', '[']) {
        return Err(c.err(
            key,
            format!("`path = \"{path}\"` is a glob; a download fills one file, so name it"),
        ));
    }
    if !(d.url.starts_with("https://") || d.url.starts_with("http://")) {
        return Err(c.err(
            &format!("{key}.url"),
            format!("`{}` is not an http:// or https:// URL", d.url),
        ));
    }
    if d.sha256.len() != 64 || !d.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(c.err(
            &format!("{key}.sha256"),
            "must be the 64 hex digits of the file's SHA-256 (`sha256sum FILE` prints them)",
        ));
    }
    if let Some(i) = d.member.iter().position(|m| m.trim().is_empty()) {
        return Err(c.err(
            &format!("{key}.member[{i}]"),
            "must be a path inside the archive",
        ));
    }
    Ok(())
}

fn http_url(c: &Checker<'_>, key: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("${") {
        Ok(())
    } else {
        Err(c.err(key, format!("`{url}` is not an http:// or https:// URL")))
    }
}

fn kind_name(k: SourceKind) -> &'static str {
    match k {
        SourceKind::File => "file",
        SourceKind::Http => "http",
        SourceKind::Html => "html",
        SourceKind::Sql => "sql",
    }
}

/// The format of `path` by extension (`.gz` looked through).
pub fn format_of(path: &str) -> Option<Format> {
    let lower = path.to_ascii_lowercase();
    let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
    let ext = stem.rsplit('.').next()?;
    Some(match ext {
        "csv" | "tsv" | "txt" => Format::Csv,
        "ndjson" | "jsonl" => Format::Ndjson,
        "json" => Format::Json,
        "parquet" => Format::Parquet,
        _ => return None,
    })
}

fn model(c: &Checker<'_>, dir: &Path, i: usize, m: &mut Model) -> Result<(), ConfigError> {
    let key = |k: &str| format!("model[{i}].{k}");
    match (&m.sql, &m.query) {
        (Some(_), Some(_)) => {
            return Err(c.err(
                &key("query"),
                "set either `sql` (a file) or `query` (inline SQL), not both",
            ));
        }
        (None, None) => {
            return Err(c.err(
                &key("sql"),
                "a model needs `sql = \"models/NAME.sql\"` or `query = \"SELECT ...\"`",
            ));
        }
        (Some(path), None) => {
            let full = dir.join(path);
            m.text = std::fs::read_to_string(&full)
                .map_err(|e| c.err(&key("sql"), format!("cannot read `{path}`: {e}")))?;
            m.origin = path.clone();
        }
        (None, Some(q)) => {
            m.text = q.clone();
            m.origin = c.file.to_string();
        }
    }
    if m.text.trim().is_empty() {
        return Err(c.err(&key("sql"), format!("the SQL of `{}` is empty", m.name)));
    }
    if let Err(e) = crate::statement::single_query(&m.text, true) {
        return Err(if m.query.is_some() {
            c.err(&key("query"), format!("model `{}`: {}", m.name, e.message))
        } else {
            ConfigError::new(
                &m.origin,
                e.line,
                "",
                format!("model `{}`: {}", m.name, e.message),
            )
        });
    }
    if !matches!(
        m.materialized,
        Materialized::Incremental | Materialized::Snapshot
    ) && !m.expose
        && m.unique_key.is_some()
    {
        return Err(c.err(&key("unique_key"), "unique_key applies to incremental models (the merge key), snapshots (the tracked key) and exposed models (the record id)"));
    }
    snapshot(c, i, m)?;
    if let Some(rule) = &m.list_rule {
        if !m.expose {
            return Err(c.err(
                &key("list_rule"),
                "list_rule applies to exposed models (expose = true)",
            ));
        }
        if !rule.trim().is_empty() {
            brigade_core::filter::parse(rule)
                .map_err(|e| c.err(&key("list_rule"), format!("not a valid rule: {e}")))?;
        }
    }
    if let Some(k) = &m.unique_key
        && k.columns().iter().any(String::is_empty)
    {
        return Err(c.err(&key("unique_key"), "column names cannot be empty"));
    }
    Ok(())
}

/// The nodes `relationships` tests read: they run after them.
fn test_refs(expect: &[super::Expect], own: &str) -> Vec<String> {
    let mut refs: Vec<String> = expect
        .iter()
        .filter_map(|x| x.to_parts().map(|(node, _)| node.to_string()))
        .filter(|n| n != own)
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

fn graph(c: &Checker<'_>, p: &Pipeline, names: &[String]) -> Result<Graph, ConfigError> {
    let mut nodes: Vec<GraphNode> = p
        .extract
        .iter()
        .map(|e| GraphNode {
            name: e.name.clone(),
            kind: "extract",
            layer: "bronze",
            depends_on: test_refs(&e.expect, &e.name),
            tags: e.tags.clone(),
        })
        .collect();
    let vars = p.var_defaults();
    for (i, m) in p.model.iter().enumerate() {
        // Both branches of `{% if is_incremental() %}`: a bad `ref` in the incremental one
        // would otherwise surface only on the second run. Dependencies are the refs of both.
        let mut refs = std::collections::BTreeSet::new();
        for incremental in [false, true] {
            let cx = template::Context {
                nodes: names,
                this: &m.name,
                incremental,
                env: &|_| Some(String::new()),
                vars: &vars,
                macros: &p.macros,
            };
            let rendered = template::render(&m.text, &cx).map_err(|e| {
                let message = if incremental {
                    format!("{} (in the `is_incremental()` branch)", e.message)
                } else {
                    e.message
                };
                if let Some(file) = &e.file {
                    ConfigError::new(file, e.line, "", message)
                } else if m.query.is_some() {
                    c.err(&format!("model[{i}].query"), message)
                } else {
                    ConfigError::new(&m.origin, e.line, "", message)
                }
            })?;
            refs.extend(rendered.refs);
        }
        if refs.contains(&m.name) {
            return Err(c.err(
                &format!("model[{i}].name"),
                format!(
                    "`{}` refers to itself; use {{{{ this }}}} inside an incremental model",
                    m.name
                ),
            ));
        }
        refs.extend(test_refs(&m.expect, &m.name));
        nodes.push(GraphNode {
            name: m.name.clone(),
            kind: "model",
            layer: m.layer.name(),
            depends_on: refs.into_iter().collect(),
            tags: m.tags.clone(),
        });
    }
    Graph::build(nodes).map_err(|cycle| {
        // Point at the first model of the cycle.
        let first = cycle.split(" -> ").next().unwrap_or_default();
        let key = p
            .model
            .iter()
            .position(|m| m.name == first)
            .map_or_else(|| "model".to_string(), |i| format!("model[{i}].name"));
        c.err(&key, format!("the models form a cycle: {cycle}"))
    })
}

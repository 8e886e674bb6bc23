//! The `fields` and `expand` query parameters of a collection's records, as patterns built
//! from the collection: a client (or a fuzzer) reads from the document exactly which keys and
//! relation paths the store's `parse_fields` and `parse_expand` accept. Both are comma
//! separated lists whose items are trimmed and whose empty items are skipped.

use std::collections::HashSet;
use std::sync::Arc;

use brigade_core::schema::{ACCOUNTS_COLLECTION, Collection, FieldType, SYSTEM_FIELDS};
use serde_json::{Value, json};

use super::op::whitespace_class;

/// How many relation steps an `expand` path may take (the store's limit).
const MAX_EXPAND_DEPTH: usize = 3;
/// Past this many relation paths the `expand` pattern checks their syntax only.
const MAX_LISTED_PATHS: usize = 256;

/// A comma-separated list of `items` (regular expressions), each trimmed, empty ones allowed.
fn list_pattern(items: &[String]) -> String {
    let ws = format!("[{}]*", whitespace_class());
    let item = match items.is_empty() {
        true => ws.clone(),
        false => format!("{ws}(?:(?:{}){ws})?", items.join("|")),
    };
    format!("^{item}(?:,{item})*$")
}

/// The `fields` parameter of `c`: its columns and `expand`.
pub(super) fn fields(c: &Collection) -> Value {
    let mut keys: Vec<String> = Vec::new();
    if c.system_columns {
        keys.extend(SYSTEM_FIELDS.iter().map(|k| k.to_string()));
    }
    keys.extend(c.fields.iter().map(|f| f.name.clone()));
    keys.push("expand".into());
    json!({"type": "string", "pattern": list_pattern(&keys),
        "description": format!("Comma-separated keys to return, of: {}", keys.join(", "))})
}

/// The `expand` parameter of `c`: relation paths of up to three steps; a relation to accounts
/// ends a path. `find` looks collections up; the paths through a `hidden` collection are not
/// spelled out (its relations are not for this reader), only their syntax.
pub(super) fn expand(
    c: &Collection,
    find: &dyn Fn(&str) -> Option<Arc<Collection>>,
    hidden: &HashSet<&str>,
) -> Value {
    let mut paths = Vec::new();
    walk(c, find, hidden, "", 1, &mut paths);
    let step = "[A-Za-z][A-Za-z0-9_]*";
    let (items, description) = if paths.len() > MAX_LISTED_PATHS {
        (
            vec![format!("{step}(?:\\.{step}){{0,{}}}", MAX_EXPAND_DEPTH - 1)],
            "Comma-separated relation paths of up to three steps, e.g. author,author.team"
                .to_string(),
        )
    } else if paths.is_empty() {
        (
            Vec::new(),
            "The collection has no relations to expand".to_string(),
        )
    } else {
        let listed: Vec<&str> = paths.iter().map(|(p, _)| p.as_str()).collect();
        (
            paths.iter().map(|(_, pattern)| pattern.clone()).collect(),
            format!("Comma-separated relation paths, of: {}", listed.join(", ")),
        )
    };
    json!({"type": "string", "pattern": list_pattern(&items), "description": description})
}

/// Collects `(path, pattern)` for every relation path from `c` below `prefix`.
fn walk(
    c: &Collection,
    find: &dyn Fn(&str) -> Option<Arc<Collection>>,
    hidden: &HashSet<&str>,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, String)>,
) {
    if depth > MAX_EXPAND_DEPTH || out.len() > MAX_LISTED_PATHS {
        return;
    }
    for f in c.fields.iter().filter(|f| f.kind == FieldType::Relation) {
        let path = format!("{prefix}{}", f.name);
        let pattern = path.replace('.', "\\.");
        let Some(target) = f.options.collection.as_deref() else {
            continue;
        };
        if target == ACCOUNTS_COLLECTION {
            out.push((path, pattern));
            continue;
        }
        let Some(next) = find(target) else {
            continue;
        };
        if hidden.contains(next.name.as_str()) {
            // Deeper steps exist or not; either way they are not named here.
            let rest = MAX_EXPAND_DEPTH - depth;
            let deeper = match rest {
                0 => String::new(),
                n => format!("(?:\\.[A-Za-z][A-Za-z0-9_]*){{0,{n}}}"),
            };
            out.push((path, format!("{pattern}{deeper}")));
            continue;
        }
        out.push((path.clone(), pattern));
        walk(&next, find, hidden, &format!("{path}."), depth + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collection(name: &str, fields: Value) -> Arc<Collection> {
        let c: Collection =
            serde_json::from_value(json!({"id": name, "name": name, "fields": fields,
            "indexes": [], "rules": {}, "created": "t", "updated": "t"}))
            .expect("a collection");
        Arc::new(c)
    }

    #[test]
    fn fields_lists_the_columns() {
        let c = collection(
            "tags",
            json!([{"id": "f1", "name": "label", "type": "text"}]),
        );
        let ws = format!("[{}]*", whitespace_class());
        let item = format!("{ws}(?:(?:id|created|updated|label|expand){ws})?");
        assert_eq!(fields(&c)["pattern"], format!("^{item}(?:,{item})*$"));
    }

    #[test]
    fn expand_follows_relations_three_steps_deep() {
        let nodes = collection(
            "nodes",
            json!([{"id": "f1", "name": "parent", "type": "relation", "options": {"collection": "nodes"}},
                {"id": "f2", "name": "owner", "type": "relation", "options": {"collection": "users"}}]),
        );
        let find = |n: &str| (n == "nodes").then(|| nodes.clone());
        let pattern = expand(&nodes, &find, &HashSet::new())["description"].clone();
        assert_eq!(
            pattern,
            "Comma-separated relation paths, of: parent, parent.parent, parent.parent.parent, \
             parent.parent.owner, parent.owner, owner"
        );
        let hidden = HashSet::from(["nodes"]);
        let pattern = expand(&nodes, &find, &hidden)["pattern"].to_string();
        assert!(
            pattern.contains("parent(?:\\\\.[A-Za-z][A-Za-z0-9_]*){0,2}"),
            "{pattern}"
        );
    }
}

//! dbt's node selection: which steps a run (or `brigade pipeline test`) covers.
//!
//! A selector is a node name or `tag:NAME`, optionally with graph operators: `+node` adds
//! its ancestors, `node+` its descendants, `2+node` / `node+1` only that many levels.
//! `--select` values are unioned (a value may hold several selectors separated by spaces,
//! as in dbt), `--exclude` values are removed from the result. A selector that matches
//! nothing is an error naming it, so a typo never silently runs nothing (or everything).

use std::collections::{BTreeMap, BTreeSet};

use crate::dag::Graph;

/// How far an operator walks the graph: `None` is all the way.
type Depth = Option<usize>;

/// What a selector names before its operators apply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Node(String),
    Tag(String),
}

/// One parsed selector such as `+silver_orders` or `tag:finance+1`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    target: Target,
    /// Ancestors to add (`+node`, `2+node`).
    up: Option<Depth>,
    /// Descendants to add (`node+`, `node+2`).
    down: Option<Depth>,
}

/// A selector that does not parse or matches no step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectError {
    /// `select` or `exclude`: the option the selector came from.
    pub field: &'static str,
    pub message: String,
}

fn parse(raw: &str) -> Result<Selector, String> {
    let mut rest = raw;
    let mut up = None;
    if let Some(i) = rest.find('+') {
        let digits = &rest[..i];
        if digits.chars().all(|c| c.is_ascii_digit()) {
            up = Some(depth(digits, raw)?);
            rest = &rest[i + 1..];
        }
    }
    let mut down = None;
    if let Some(i) = rest.rfind('+') {
        let digits = &rest[i + 1..];
        if digits.chars().all(|c| c.is_ascii_digit()) {
            down = Some(depth(digits, raw)?);
            rest = &rest[..i];
        }
    }
    let target = match rest.strip_prefix("tag:") {
        Some(tag) => Target::Tag(tag.to_string()),
        None => Target::Node(rest.to_string()),
    };
    let name = match &target {
        Target::Node(n) | Target::Tag(n) => n,
    };
    if name.is_empty() || name.contains('+') || name.contains(':') {
        return Err(format!(
            "`{raw}` is not a selector; use NAME, +NAME, NAME+, +NAME+, N+NAME, NAME+N or tag:NAME"
        ));
    }
    Ok(Selector { target, up, down })
}

fn depth(digits: &str, raw: &str) -> Result<Depth, String> {
    if digits.is_empty() {
        return Ok(None);
    }
    digits
        .parse::<usize>()
        .map(Some)
        .map_err(|_| format!("`{raw}`: the depth `{digits}` is too large"))
}

/// The steps of `graph` that `select` (all steps when empty) minus `exclude` cover.
///
/// # Errors
/// A selector that does not parse or matches no step, naming it; or a selection that
/// leaves nothing to run.
pub fn resolve(
    graph: &Graph,
    select: &[String],
    exclude: &[String],
) -> Result<BTreeSet<String>, SelectError> {
    let all: BTreeSet<String> = graph.nodes.iter().map(|n| n.name.clone()).collect();
    let mut chosen = if select.iter().all(|s| s.trim().is_empty()) {
        all.clone()
    } else {
        union(graph, select, "select")?
    };
    let removed = union(graph, exclude, "exclude")?;
    chosen.retain(|n| !removed.contains(n));
    if chosen.is_empty() {
        return Err(SelectError {
            field: "exclude",
            message: "the selection leaves no step to run".into(),
        });
    }
    Ok(chosen)
}

fn union(
    graph: &Graph,
    values: &[String],
    field: &'static str,
) -> Result<BTreeSet<String>, SelectError> {
    let mut out = BTreeSet::new();
    for raw in values.iter().flat_map(|v| v.split_whitespace()) {
        let selector = parse(raw).map_err(|message| SelectError { field, message })?;
        let matched = apply(graph, &selector);
        if matched.is_empty() {
            return Err(SelectError {
                field,
                message: no_match(graph, raw, &selector.target),
            });
        }
        out.extend(matched);
    }
    Ok(out)
}

fn no_match(graph: &Graph, raw: &str, target: &Target) -> String {
    match target {
        Target::Node(_) => format!(
            "selector `{raw}` matches no step; the steps are: {}",
            graph
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Target::Tag(_) => {
            let tags: BTreeSet<&str> = graph
                .nodes
                .iter()
                .flat_map(|n| n.tags.iter().map(String::as_str))
                .collect();
            format!(
                "selector `{raw}` matches no step; the tags are: {}",
                if tags.is_empty() {
                    "none (add tags = [\"..\"] to an extract or model)".to_string()
                } else {
                    tags.into_iter().collect::<Vec<_>>().join(", ")
                }
            )
        }
    }
}

fn apply(graph: &Graph, s: &Selector) -> BTreeSet<String> {
    let seeds: Vec<&str> = graph
        .nodes
        .iter()
        .filter(|n| match &s.target {
            Target::Node(name) => &n.name == name,
            Target::Tag(tag) => n.tags.contains(tag),
        })
        .map(|n| n.name.as_str())
        .collect();
    let parents: BTreeMap<&str, Vec<&str>> = graph
        .nodes
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in &graph.nodes {
        for d in &n.depends_on {
            children
                .entry(d.as_str())
                .or_default()
                .push(n.name.as_str());
        }
    }
    let mut out: BTreeSet<String> = seeds.iter().map(|s| s.to_string()).collect();
    if let Some(depth) = s.up {
        walk(&seeds, &parents, depth, &mut out);
    }
    if let Some(depth) = s.down {
        walk(&seeds, &children, depth, &mut out);
    }
    out
}

/// Adds the nodes reachable from `seeds` along `edges`, at most `depth` steps away.
fn walk(
    seeds: &[&str],
    edges: &BTreeMap<&str, Vec<&str>>,
    depth: Depth,
    out: &mut BTreeSet<String>,
) {
    let mut frontier: Vec<&str> = seeds.to_vec();
    let mut seen: BTreeSet<&str> = seeds.iter().copied().collect();
    let mut level = 0;
    while !frontier.is_empty() && depth.is_none_or(|d| level < d) {
        level += 1;
        let mut next = Vec::new();
        for n in frontier {
            for &m in edges.get(n).map(Vec::as_slice).unwrap_or_default() {
                if seen.insert(m) {
                    out.insert(m.to_string());
                    next.push(m);
                }
            }
        }
        frontier = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::GraphNode;

    fn node(name: &str, deps: &[&str], tags: &[&str]) -> GraphNode {
        GraphNode {
            name: name.into(),
            kind: if deps.is_empty() { "extract" } else { "model" },
            layer: "silver",
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// raw_a -> stg_a -> mart <- stg_b <- raw_b ; mart -> report
    fn graph() -> Graph {
        Graph::build(vec![
            node("raw_a", &[], &["nightly"]),
            node("raw_b", &[], &[]),
            node("stg_a", &["raw_a"], &["finance"]),
            node("stg_b", &["raw_b"], &[]),
            node("mart", &["stg_a", "stg_b"], &["finance"]),
            node("report", &["mart"], &[]),
        ])
        .unwrap()
    }

    fn sel(select: &[&str], exclude: &[&str]) -> Result<Vec<String>, SelectError> {
        let s: Vec<String> = select.iter().map(|s| s.to_string()).collect();
        let e: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        resolve(&graph(), &s, &e).map(|set| set.into_iter().collect())
    }

    #[test]
    fn graph_operators_walk_ancestors_and_descendants() {
        assert_eq!(sel(&["mart"], &[]).unwrap(), ["mart"]);
        assert_eq!(
            sel(&["+mart"], &[]).unwrap(),
            ["mart", "raw_a", "raw_b", "stg_a", "stg_b"]
        );
        assert_eq!(sel(&["stg_a+"], &[]).unwrap(), ["mart", "report", "stg_a"]);
        assert_eq!(sel(&["1+mart"], &[]).unwrap(), ["mart", "stg_a", "stg_b"]);
        assert_eq!(sel(&["raw_a+1"], &[]).unwrap(), ["raw_a", "stg_a"]);
        assert_eq!(
            sel(&["+stg_a+"], &[]).unwrap(),
            ["mart", "raw_a", "report", "stg_a"]
        );
        assert_eq!(sel(&[], &[]).unwrap().len(), 6);
    }

    #[test]
    fn tags_unions_and_excludes() {
        assert_eq!(sel(&["tag:finance"], &[]).unwrap(), ["mart", "stg_a"]);
        assert_eq!(
            sel(&["tag:nightly report"], &[]).unwrap(),
            ["raw_a", "report"]
        );
        assert_eq!(
            sel(&["+report"], &["tag:finance"]).unwrap(),
            ["raw_a", "raw_b", "report", "stg_b"]
        );
        assert_eq!(sel(&[], &["mart+"]).unwrap().len(), 4);
    }

    #[test]
    fn a_selector_matching_nothing_is_named() {
        let e = sel(&["mart", "nope+"], &[]).unwrap_err();
        assert_eq!(e.field, "select");
        assert!(
            e.message.contains("`nope+` matches no step"),
            "{}",
            e.message
        );
        let e = sel(&[], &["tag:gone"]).unwrap_err();
        assert_eq!(e.field, "exclude");
        assert!(e.message.contains("finance, nightly"), "{}", e.message);
        let e = sel(&["+"], &[]).unwrap_err();
        assert!(e.message.contains("not a selector"), "{}", e.message);
        let e = sel(&["report"], &["report"]).unwrap_err();
        assert!(e.message.contains("no step to run"), "{}", e.message);
    }
}

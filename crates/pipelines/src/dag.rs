//! The dependency graph of a pipeline: extracts and models as nodes, `ref`s as edges. Built
//! and checked (unknown refs, cycles) when the file is loaded; gives the run order and the
//! `brigade pipeline graph` drawings (Graphviz dot, Mermaid).

use std::collections::BTreeMap;

use serde::Serialize;

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphNode {
    pub name: String,
    /// `extract` or `model`.
    pub kind: &'static str,
    /// `bronze`, `silver` or `gold`.
    pub layer: &'static str,
    /// The nodes this one reads, sorted.
    pub depends_on: Vec<String>,
    /// `tags = [..]` of the extract or model, for `tag:NAME` selectors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The nodes in run order: every node after the nodes it depends on, declaration order
/// otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
}

impl Graph {
    /// Orders `nodes` (in declaration order) topologically.
    ///
    /// # Errors
    /// The cycle, as `a -> b -> a`.
    pub fn build(nodes: Vec<GraphNode>) -> Result<Graph, String> {
        let index: BTreeMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let mut state = vec![0u8; nodes.len()]; // 0 new, 1 on stack, 2 done
        let mut order = Vec::with_capacity(nodes.len());
        let mut stack = Vec::new();
        for start in 0..nodes.len() {
            visit(start, &nodes, &index, &mut state, &mut order, &mut stack)?;
        }
        let mut sorted: Vec<Option<GraphNode>> = nodes.into_iter().map(Some).collect();
        Ok(Graph {
            nodes: order.into_iter().filter_map(|i| sorted[i].take()).collect(),
        })
    }

    /// Graphviz dot, nodes grouped by layer.
    pub fn to_dot(&self, pipeline: &str) -> String {
        let mut out = format!(
            "digraph \"{pipeline}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n"
        );
        for layer in ["bronze", "silver", "gold"] {
            let members: Vec<&GraphNode> = self.nodes.iter().filter(|n| n.layer == layer).collect();
            if members.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "  subgraph cluster_{layer} {{\n    label=\"{layer}\";\n"
            ));
            for n in members {
                let shape = if n.kind == "extract" {
                    ", shape=cylinder"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "    \"{}\" [label=\"{}\"{shape}];\n",
                    n.name, n.name
                ));
            }
            out.push_str("  }\n");
        }
        for n in &self.nodes {
            for d in &n.depends_on {
                out.push_str(&format!("  \"{d}\" -> \"{}\";\n", n.name));
            }
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart, nodes grouped by layer.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for layer in ["bronze", "silver", "gold"] {
            let members: Vec<&GraphNode> = self.nodes.iter().filter(|n| n.layer == layer).collect();
            if members.is_empty() {
                continue;
            }
            out.push_str(&format!("  subgraph {layer}\n"));
            for n in members {
                if n.kind == "extract" {
                    out.push_str(&format!("    {}[({})]\n", n.name, n.name));
                } else {
                    out.push_str(&format!("    {}[{}]\n", n.name, n.name));
                }
            }
            out.push_str("  end\n");
        }
        for n in &self.nodes {
            for d in &n.depends_on {
                out.push_str(&format!("  {d} --> {}\n", n.name));
            }
        }
        out
    }
}

fn visit(
    i: usize,
    nodes: &[GraphNode],
    index: &BTreeMap<&str, usize>,
    state: &mut [u8],
    order: &mut Vec<usize>,
    stack: &mut Vec<usize>,
) -> Result<(), String> {
    match state[i] {
        2 => return Ok(()),
        1 => {
            let from = stack.iter().position(|&s| s == i).unwrap_or(0);
            let mut names: Vec<&str> = stack[from..]
                .iter()
                .map(|&s| nodes[s].name.as_str())
                .collect();
            names.push(&nodes[i].name);
            return Err(names.join(" -> "));
        }
        _ => {}
    }
    state[i] = 1;
    stack.push(i);
    for dep in &nodes[i].depends_on {
        if let Some(&j) = index.get(dep.as_str()) {
            visit(j, nodes, index, state, order, stack)?;
        }
    }
    stack.pop();
    state[i] = 2;
    order.push(i);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, deps: &[&str]) -> GraphNode {
        GraphNode {
            name: name.into(),
            kind: if deps.is_empty() { "extract" } else { "model" },
            layer: if deps.is_empty() { "bronze" } else { "silver" },
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn orders_dependencies_first_and_finds_cycles() {
        let g = Graph::build(vec![
            node("gold", &["silver"]),
            node("silver", &["raw"]),
            node("raw", &[]),
        ])
        .unwrap();
        let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["raw", "silver", "gold"]);
        let e = Graph::build(vec![
            node("a", &["b"]),
            node("b", &["c"]),
            node("c", &["a"]),
        ])
        .unwrap_err();
        assert_eq!(e, "a -> b -> c -> a");
        assert!(g.to_dot("p").contains("\"silver\" -> \"gold\""));
        assert!(g.to_mermaid().contains("silver --> gold"));
    }
}

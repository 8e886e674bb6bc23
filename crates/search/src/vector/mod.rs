//! The in-memory vector index of one search index: unit vectors by chunk id, searched by dot
//! product, exactly below [`HnswOptions::threshold`] vectors and through an HNSW graph above.
//!
//! # Layout
//! - [`VectorIndex`]: the vectors (one contiguous array, the truth for exact search and for
//!   rebuilds), the graph, and which graph node holds each id's current vector.
//! - `exact`: the vectorised dot product and the bounded top-k heap.
//! - `graph`: the HNSW graph (`hnsw_rs`), whose nodes are never unlinked: a replaced or removed
//!   vector leaves a dead node that searches skip, and the graph is rebuilt once dead nodes
//!   outnumber live ones.
//!
//! # Concurrency
//! Every method takes `&self`; share the index as `Arc<VectorIndex>`. One `RwLock` guards the
//! bookkeeping: searches hold it shared, inserts and removals hold it exclusively only to update
//! the arrays, and link new graph nodes after releasing it (the graph is internally concurrent).
//! A graph build runs on its own thread from a snapshot; until it is ready searches are exact,
//! and vectors inserted meanwhile are linked into the graph being built.

mod exact;
mod graph;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use graph::Graph;
pub use graph::HnswOptions;

/// Marks "no node" in `node_of` and "dead" in `node_slot`.
const NONE: usize = usize::MAX;

/// Slots sampled to estimate how much of the index a filter accepts.
const FILTER_SAMPLE: usize = 512;

/// Below this share of graph nodes both live and accepted by the filter, graph search would
/// wade through mostly rejected nodes: the exact scan of the accepted vectors is cheaper.
const MIN_GRAPH_FILTER_FRACTION: f32 = 0.05;

/// Extra neighbours asked of the graph, on top of those the filter is expected to reject.
const OVERSAMPLING: f32 = 2.0;

/// Unit vectors by id, searched by dot product.
pub struct VectorIndex {
    dims: usize,
    options: HnswOptions,
    /// `options.ef_search`, adjustable on a live index.
    ef_search: AtomicUsize,
    inner: RwLock<Inner>,
}

/// The bookkeeping behind the lock.
#[derive(Default)]
struct Inner {
    /// Id of each slot.
    ids: Vec<u64>,
    /// Vector of each slot, `dims` floats per slot.
    data: Vec<f32>,
    /// Slot of each id.
    slots: HashMap<u64, usize>,
    /// Graph node of each slot (`NONE` while there is no graph).
    node_of: Vec<usize>,
    /// Slot of each graph node (`NONE` once its vector was replaced or removed).
    node_slot: Vec<usize>,
    /// Dead entries in `node_slot`.
    dead: usize,
    graph: Option<Arc<Graph>>,
}

/// A graph to link from a snapshot of the vectors, node `i` being row `i`.
struct Build {
    graph: Arc<Graph>,
    data: Vec<f32>,
    dims: usize,
}

impl Build {
    fn run(self) {
        let nodes: Vec<(&[f32], usize)> = self.data.chunks_exact(self.dims).zip(0..).collect();
        let started = std::time::Instant::now();
        self.graph.build(&nodes);
        tracing::info!(
            vectors = nodes.len(),
            seconds = started.elapsed().as_secs_f32(),
            "Built the HNSW graph."
        );
    }
}

/// What a write leaves to do once the lock is released.
enum Pending<'a> {
    Nothing,
    Link(Arc<Graph>, Vec<(&'a [f32], usize)>),
    Build(Build),
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dims", &self.dims)
            .field("len", &self.len())
            .field("graph_ready", &self.is_graph_ready())
            .finish_non_exhaustive()
    }
}

impl VectorIndex {
    /// An empty index of `dims`-long vectors with the default [`HnswOptions`].
    pub fn new(dims: usize) -> Self {
        VectorIndex::with_options(dims, HnswOptions::default())
    }

    /// An empty index of `dims`-long vectors.
    pub fn with_options(dims: usize, options: HnswOptions) -> Self {
        VectorIndex {
            dims,
            ef_search: AtomicUsize::new(options.ef_search),
            options,
            inner: RwLock::new(Inner::default()),
        }
    }

    /// An index holding `items`, as [`VectorIndex::extend`] would (the graph, when the items
    /// reach the threshold, is built once at the end).
    pub fn from_items<'a>(
        dims: usize,
        options: HnswOptions,
        items: impl IntoIterator<Item = (u64, &'a [f32])>,
    ) -> Self {
        let index = VectorIndex::with_options(dims, options);
        index.extend(items);
        index
    }

    /// The vectors' length.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Changes how many candidates graph searches keep (recall against latency).
    pub fn set_ef_search(&self, ef_search: usize) {
        self.ef_search.store(ef_search, Ordering::Relaxed);
    }

    /// How many vectors are held.
    pub fn len(&self) -> usize {
        self.read().ids.len()
    }

    /// Whether no vector is held.
    pub fn is_empty(&self) -> bool {
        self.read().ids.is_empty()
    }

    /// Whether searches go through a finished HNSW graph (they do once the index reaches the
    /// threshold and the graph's build, possibly in the background, is over).
    pub fn is_graph_ready(&self) -> bool {
        let inner = self.read();
        self.graph_in_use(&inner).is_some()
    }

    /// Adds or replaces the vector of `id`. Vectors of the wrong length are ignored.
    pub fn insert(&self, id: u64, vector: &[f32]) {
        self.extend([(id, vector)]);
    }

    /// Adds or replaces several vectors; later items win over earlier ones with the same id.
    /// Vectors of the wrong length are ignored.
    pub fn extend<'a>(&self, items: impl IntoIterator<Item = (u64, &'a [f32])>) {
        let pending = {
            let mut inner = self.write();
            let mut links = Vec::new();
            for (id, vector) in items {
                if vector.len() != self.dims {
                    continue;
                }
                if let Some(node) = inner.put(self.dims, id, vector) {
                    links.push((vector, node));
                }
            }
            match self.plan_graph(&mut inner) {
                Some(build) => Pending::Build(build),
                None => match &inner.graph {
                    Some(graph) if !links.is_empty() => Pending::Link(Arc::clone(graph), links),
                    _ => Pending::Nothing,
                },
            }
        };
        self.finish(pending);
    }

    /// Removes `id` (no-op when absent).
    pub fn remove(&self, id: u64) {
        let pending = {
            let mut inner = self.write();
            if !inner.delete(self.dims, id) {
                return;
            }
            match self.plan_graph(&mut inner) {
                Some(build) => Pending::Build(build),
                None => Pending::Nothing,
            }
        };
        self.finish(pending);
    }

    /// The `k` nearest ids to `query` by dot product, best first, among ids `allow` accepts.
    ///
    /// Uses the HNSW graph when there is a ready one, exact search otherwise, and also when the
    /// filter accepts few vectors or the graph finds fewer than `k`: a filtered search returns
    /// `min(k, accepted)` results. Wrong-length queries find nothing.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        allow: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        if query.len() != self.dims || k == 0 {
            return Vec::new();
        }
        let inner = self.read();
        let Some(graph) = self.graph_in_use(&inner) else {
            return inner.exact(self.dims, query, k, allow);
        };
        let ef = self.ef_search.load(Ordering::Relaxed);
        // `hnsw_rs`'s own filtered search gives up its early exit and is several times slower
        // than a plain one, so ask the plain search for more neighbours and filter them here,
        // as many more as dead nodes and the filter are expected to reject.
        let accepted = allow.map_or(1.0, |allow| inner.accepted_fraction(allow));
        let live = 1.0 - inner.dead as f32 / inner.node_slot.len().max(1) as f32;
        let share = accepted * live;
        // Scanning only the accepted vectors is exact, and no slower than a whole index below
        // the threshold: below that many accepted, the graph cannot win.
        if share < MIN_GRAPH_FILTER_FRACTION
            || accepted * (inner.ids.len() as f32) < self.options.threshold as f32
        {
            return inner.exact(self.dims, query, k, allow);
        }
        let wanted = ((k as f32 / share) * OVERSAMPLING).ceil() as usize;
        let found: Vec<usize> = graph
            .search(query, wanted, ef.max(wanted))
            .into_iter()
            .filter(|&node| {
                let slot = inner.node_slot.get(node).copied().unwrap_or(NONE);
                slot != NONE && allow.is_none_or(|allow| allow(inner.ids[slot]))
            })
            .take(k)
            .collect();
        if found.len() < k.min(inner.ids.len()) {
            return inner.exact(self.dims, query, k, allow);
        }
        let mut hits: Vec<(u64, f32)> = found
            .into_iter()
            .map(|node| {
                let slot = inner.node_slot[node];
                (
                    inner.ids[slot],
                    exact::dot(inner.row(self.dims, slot), query),
                )
            })
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        hits
    }

    /// Exact search over every vector (the reference for recall).
    pub fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        allow: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        if query.len() != self.dims || k == 0 {
            return Vec::new();
        }
        self.read().exact(self.dims, query, k, allow)
    }

    /// Blocks until no graph build is running (for benchmarks and tests).
    pub fn wait_for_graph(&self) {
        loop {
            let building = {
                let inner = self.read();
                inner.graph.as_ref().is_some_and(|graph| !graph.is_ready())
            };
            if !building {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The graph searches should use: a ready one, on an index past the threshold.
    fn graph_in_use<'a>(&self, inner: &'a Inner) -> Option<&'a Graph> {
        let graph = inner.graph.as_deref()?;
        (inner.ids.len() >= self.options.threshold && graph.is_ready()).then_some(graph)
    }

    /// Starts a graph when the index reaches the threshold without one, rebuilds it once dead
    /// nodes outnumber live ones, and drops it when the index has shrunk well below the
    /// threshold.
    fn plan_graph(&self, inner: &mut Inner) -> Option<Build> {
        let len = inner.ids.len();
        match &inner.graph {
            None if len >= self.options.threshold => {}
            Some(_) if len < self.options.threshold / 2 => {
                inner.drop_graph();
                return None;
            }
            Some(_) if inner.dead > len => {}
            _ => return None,
        }
        let graph = Arc::new(Graph::new(&self.options, len));
        inner.node_of = (0..len).collect();
        inner.node_slot = (0..len).collect();
        inner.dead = 0;
        inner.graph = Some(Arc::clone(&graph));
        Some(Build {
            graph,
            data: inner.data.clone(),
            dims: self.dims,
        })
    }

    fn finish(&self, pending: Pending<'_>) {
        match pending {
            Pending::Nothing => {}
            Pending::Link(graph, links) => graph.insert_many(&links),
            Pending::Build(build) if self.options.background => {
                std::thread::spawn(move || build.run());
            }
            Pending::Build(build) => build.run(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic under the lock leaves the arrays consistent between statements; go on.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn row(&self, dims: usize, slot: usize) -> &[f32] {
        &self.data[slot * dims..(slot + 1) * dims]
    }

    /// Stores `vector` as `id`'s and, when there is a graph, gives it a new node (returned) and
    /// kills the node of the vector it replaces.
    fn put(&mut self, dims: usize, id: u64, vector: &[f32]) -> Option<usize> {
        let slot = match self.slots.get(&id) {
            Some(&slot) => {
                self.data[slot * dims..(slot + 1) * dims].copy_from_slice(vector);
                self.kill(slot);
                slot
            }
            None => {
                let slot = self.ids.len();
                self.slots.insert(id, slot);
                self.ids.push(id);
                self.data.extend_from_slice(vector);
                self.node_of.push(NONE);
                slot
            }
        };
        self.graph.as_ref()?;
        let node = self.node_slot.len();
        self.node_slot.push(slot);
        self.node_of[slot] = node;
        Some(node)
    }

    /// Forgets `id`, moving the last slot into its place. Returns whether it was held.
    fn delete(&mut self, dims: usize, id: u64) -> bool {
        let Some(slot) = self.slots.remove(&id) else {
            return false;
        };
        self.kill(slot);
        let last = self.ids.len() - 1;
        if slot != last {
            let moved = self.ids[last];
            self.ids[slot] = moved;
            self.slots.insert(moved, slot);
            let (head, tail) = self.data.split_at_mut(last * dims);
            head[slot * dims..(slot + 1) * dims].copy_from_slice(&tail[..dims]);
            let node = self.node_of[last];
            self.node_of[slot] = node;
            if node != NONE {
                self.node_slot[node] = slot;
            }
        }
        self.ids.pop();
        self.node_of.pop();
        self.data.truncate(last * dims);
        true
    }

    /// Marks the graph node of `slot`, if any, dead.
    fn kill(&mut self, slot: usize) {
        let node = std::mem::replace(&mut self.node_of[slot], NONE);
        if node != NONE {
            self.node_slot[node] = NONE;
            self.dead += 1;
        }
    }

    fn drop_graph(&mut self) {
        self.graph = None;
        self.node_slot = Vec::new();
        self.node_of.fill(NONE);
        self.dead = 0;
    }

    /// The share of vectors `allow` accepts, estimated on evenly spaced slots.
    fn accepted_fraction(&self, allow: &dyn Fn(u64) -> bool) -> f32 {
        let step = (self.ids.len() / FILTER_SAMPLE).max(1);
        let (mut seen, mut accepted) = (0u32, 0u32);
        for &id in self.ids.iter().step_by(step) {
            seen += 1;
            accepted += u32::from(allow(id));
        }
        if seen == 0 {
            return 0.0;
        }
        accepted as f32 / seen as f32
    }

    fn exact(
        &self,
        dims: usize,
        query: &[f32],
        k: usize,
        allow: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        let hits = match allow {
            None => exact::top_k(&self.data, dims, query, k, |_| true),
            Some(allow) => exact::top_k(&self.data, dims, query, k, |slot| allow(self.ids[slot])),
        };
        hits.into_iter()
            .map(|hit| (self.ids[hit.slot], hit.score))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn normalised(mut v: Vec<f32>) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    fn gaussian(rng: &mut StdRng) -> f32 {
        let u: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * rng.random::<f32>()).cos()
    }

    fn uniform(rng: &mut StdRng, dims: usize) -> Vec<f32> {
        normalised((0..dims).map(|_| gaussian(rng)).collect())
    }

    /// `n` unit vectors from a mixture of Gaussian clusters of varying spread.
    fn clustered(rng: &mut StdRng, n: usize, dims: usize, clusters: usize) -> Vec<Vec<f32>> {
        let centers: Vec<Vec<f32>> = (0..clusters).map(|_| uniform(rng, dims)).collect();
        let spreads: Vec<f32> = (0..clusters)
            .map(|_| rng.random_range(0.5..1.5) / (dims as f32).sqrt())
            .collect();
        (0..n)
            .map(|_| {
                let c = rng.random_range(0..clusters);
                let v = centers[c].iter().map(|x| x + spreads[c] * gaussian(rng));
                normalised(v.collect())
            })
            .collect()
    }

    /// Debug builds compile the graph's generic code unoptimised: keep graphs small and cheap.
    fn small_graph(threshold: usize) -> HnswOptions {
        HnswOptions {
            threshold,
            ef_construction: 64,
            background: false,
            ..HnswOptions::default()
        }
    }

    fn indexed(vectors: &[Vec<f32>], options: HnswOptions) -> VectorIndex {
        let dims = vectors[0].len();
        let items = vectors.iter().zip(0..).map(|(v, id)| (id, v.as_slice()));
        VectorIndex::from_items(dims, options, items)
    }

    fn naive(vectors: &[Vec<f32>], query: &[f32], k: usize) -> Vec<(u64, f32)> {
        let mut all: Vec<(u64, f32)> = (0..)
            .zip(vectors)
            .map(|(id, v)| (id, v.iter().zip(query).map(|(a, b)| a * b).sum()))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(k);
        all
    }

    #[test]
    fn exact_search_matches_a_naive_sort() {
        let mut rng = StdRng::seed_from_u64(1);
        // 37 dims: two full chunks of 16 lanes and a tail.
        let vectors: Vec<Vec<f32>> = (0..1000).map(|_| uniform(&mut rng, 37)).collect();
        let index = indexed(&vectors, HnswOptions::default());
        for _ in 0..20 {
            let query = uniform(&mut rng, 37);
            for k in [1, 10, 1000, 2000] {
                let got = index.search_exact(&query, k, None);
                let want = naive(&vectors, &query, k);
                assert_eq!(got.len(), want.len());
                let mut ids: Vec<u64> = got.iter().map(|g| g.0).collect();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), got.len());
                for (g, w) in got.iter().zip(&want) {
                    // Summing in another order may swap near-ties.
                    assert!(g.0 == w.0 || (g.1 - w.1).abs() < 1e-5);
                    let own = naive(&vectors[g.0 as usize..=g.0 as usize], &query, 1)[0].1;
                    assert!((g.1 - own).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn hnsw_recall_at_10_on_5k_clustered_vectors() {
        let mut rng = StdRng::seed_from_u64(2);
        let data = clustered(&mut rng, 5100, 32, 100);
        let (vectors, queries) = data.split_at(5000);
        let index = indexed(vectors, small_graph(1000));
        assert!(index.is_graph_ready());
        let mut found = 0;
        for query in queries {
            let want: Vec<u64> = naive(vectors, query, 10).iter().map(|h| h.0).collect();
            let got = index.search(query, 10, None);
            assert_eq!(got.len(), 10);
            assert!(got.windows(2).all(|w| w[0].1 >= w[1].1));
            found += got.iter().filter(|h| want.contains(&h.0)).count();
        }
        let recall = found as f64 / (queries.len() * 10) as f64;
        assert!(recall >= 0.9, "recall@10 {recall}");
    }

    #[test]
    fn removed_ids_never_come_back_and_replacements_are_found_by_their_new_value() {
        let mut rng = StdRng::seed_from_u64(3);
        let vectors = clustered(&mut rng, 1500, 32, 50);
        let index = indexed(&vectors, small_graph(500));
        assert!(index.is_graph_ready());
        for id in (0..1500).step_by(3) {
            index.remove(id);
        }
        index.remove(1_000_000);
        assert_eq!(index.len(), 1000);
        for id in (1..1500).step_by(30) {
            let fresh = uniform(&mut rng, 32);
            index.insert(id, &fresh);
            let hits = index.search(&fresh, 5, None);
            assert_eq!(hits[0].0, id);
            assert!((hits[0].1 - 1.0).abs() < 1e-4);
        }
        assert_eq!(index.len(), 1000);
        for (id, vector) in (0..).zip(&vectors).step_by(3) {
            for hits in [
                index.search(vector, 10, None),
                index.search_exact(vector, 10, None),
            ] {
                assert_eq!(hits.len(), 10);
                assert!(hits.iter().all(|h| h.0 % 3 != 0), "removed {id} came back");
            }
        }
        // Replaced ids are not found by their old value either.
        for id in (1..1500).step_by(30) {
            let hits = index.search(&vectors[id as usize], 1, None);
            assert_ne!(hits[0].0, id);
        }
    }

    #[test]
    fn heavy_churn_rebuilds_the_graph_and_small_indexes_drop_it() {
        let mut rng = StdRng::seed_from_u64(4);
        let vectors = clustered(&mut rng, 800, 32, 30);
        let index = indexed(&vectors, small_graph(500));
        // Replace everything twice: dead nodes outnumber live ones, so the graph is rebuilt.
        for _ in 0..2 {
            for id in 0..800 {
                index.insert(id, &uniform(&mut rng, 32));
            }
        }
        assert!(index.read().dead <= index.len());
        assert!(index.is_graph_ready());
        for id in 0..800 {
            let vector = {
                let inner = index.read();
                inner.row(32, inner.slots[&id]).to_vec()
            };
            assert_eq!(index.search(&vector, 1, None)[0].0, id);
        }
        for id in 0..600 {
            index.remove(id);
        }
        assert!(index.read().graph.is_none());
        assert!(!index.is_graph_ready());
        assert_eq!(index.search(&uniform(&mut rng, 32), 500, None).len(), 200);
    }

    #[test]
    fn filtered_search_returns_only_allowed_ids_and_as_many_as_it_can() {
        let mut rng = StdRng::seed_from_u64(5);
        let vectors = clustered(&mut rng, 1500, 32, 50);
        for options in [HnswOptions::default(), small_graph(500)] {
            let index = indexed(&vectors, options);
            let every_seventh = |id: u64| id.is_multiple_of(7);
            let three = |id: u64| [5, 500, 1499].contains(&id);
            let none = |_: u64| false;
            let even = |id: u64| id.is_multiple_of(2);
            for query in clustered(&mut rng, 20, 32, 5) {
                let hits = index.search(&query, 10, Some(&every_seventh));
                assert_eq!(hits.len(), 10);
                assert!(hits.iter().all(|h| h.0.is_multiple_of(7)));
                // Half the index: enough to go through the graph, filtering its neighbours.
                let hits = index.search(&query, 10, Some(&even));
                assert_eq!(hits.len(), 10);
                assert!(hits.iter().all(|h| h.0.is_multiple_of(2)));
                let hits = index.search(&query, 10, Some(&three));
                let mut ids: Vec<u64> = hits.iter().map(|h| h.0).collect();
                ids.sort_unstable();
                assert_eq!(ids, [5, 500, 1499]);
                assert!(index.search(&query, 10, Some(&none)).is_empty());
                assert_eq!(index.search(&query, 1500, Some(&every_seventh)).len(), 215);
            }
        }
    }

    #[test]
    fn degenerate_queries_find_nothing() {
        let empty = VectorIndex::new(8);
        assert!(empty.is_empty());
        assert!(empty.search(&[0.5; 8], 10, None).is_empty());
        assert!(empty.search_exact(&[0.5; 8], 10, None).is_empty());
        let mut rng = StdRng::seed_from_u64(6);
        let vectors = clustered(&mut rng, 600, 8, 10);
        for options in [HnswOptions::default(), small_graph(500)] {
            let index = indexed(&vectors, options);
            index.insert(9_999, &[1.0; 7]);
            assert_eq!(index.len(), 600);
            assert!(index.search(&[0.5; 7], 10, None).is_empty());
            assert!(index.search(&[0.5; 9], 10, None).is_empty());
            assert!(index.search(&vectors[0], 0, None).is_empty());
            assert!(index.search_exact(&vectors[0], 0, None).is_empty());
            assert_eq!(index.search(&vectors[0], 10, None)[0].0, 0);
        }
    }

    #[test]
    fn searches_are_exact_until_a_background_build_is_ready() {
        let mut rng = StdRng::seed_from_u64(7);
        let vectors = clustered(&mut rng, 1200, 32, 30);
        let options = HnswOptions {
            background: true,
            ..small_graph(500)
        };
        let index = Arc::new(VectorIndex::with_options(32, options));
        let writer = {
            let index = Arc::clone(&index);
            let vectors = vectors.clone();
            std::thread::spawn(move || {
                for (id, v) in (0..).zip(&vectors) {
                    index.insert(id, v);
                }
            })
        };
        let mut searched = 0;
        while !writer.is_finished() {
            let hits = index.search(&vectors[0], 5, None);
            assert!(hits.is_empty() || hits[0].0 == 0);
            searched += 1;
            // A reader spinning without pause can starve the writer on a loaded two-core
            // machine (seen in CI-like runs: the test never ended).
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        writer.join().unwrap();
        index.wait_for_graph();
        assert!(index.is_graph_ready());
        assert!(searched > 0);
        // Vectors inserted while the graph was being built are linked too.
        for (id, v) in (0..).zip(&vectors).step_by(50) {
            assert_eq!(index.search(v, 1, None)[0].0, id);
        }
    }
}

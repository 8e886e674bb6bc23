//! One search index at runtime: its settings, its embedder and its in-memory vectors.
//!
//! The store holds the truth (chunks and cached vectors); the vectors here are a copy kept
//! fresh by the index's `version`: a write made by this process is applied directly, and
//! any other change (another process on the same PostgreSQL, a CLI ingest next to a running
//! server) is noticed by a version check before each vector search and loaded incrementally.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use brigade_core::settings::{IndexSettings, IndexSource};
use brigade_store::Store;
use brigade_store::search_index::DocumentChange;

use crate::embed::Embedder;
use crate::error::SearchError;
use crate::vector::{HnswOptions, VectorIndex};

/// Changes whenever chunking changes in a way that alters chunks.
const CHUNKER_VERSION: &str = "chunker-1";
/// Vectors loaded per query while warming up.
const LOAD_PAGE: i64 = 5000;

/// Vectors as little-endian `f32` bytes, the stored form.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`to_bytes`].
pub fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// What is in memory: which chunk ids, as of which index version. The vectors themselves
/// live in `index`, which is internally concurrent, so slow graph inserts never hold this lock.
#[derive(Default)]
struct State {
    loaded: bool,
    version: i64,
    max_id: u64,
    ids: HashSet<u64>,
    index: Option<Arc<VectorIndex>>,
}

impl State {
    /// The vector index, created for `dims` on first use.
    fn index_for(&mut self, dims: usize) -> Arc<VectorIndex> {
        self.index
            .get_or_insert_with(|| Arc::new(VectorIndex::new(dims)))
            .clone()
    }
}

/// A search index at runtime.
pub struct Index {
    pub settings: IndexSettings,
    pub embedder: Arc<dyn Embedder>,
    fingerprint: String,
    vectors: RwLock<State>,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("name", &self.settings.name)
            .field("embedder", &self.embedder.id())
            .finish_non_exhaustive()
    }
}

impl Index {
    /// An index over `settings` embedding with `embedder`; [`Index::open`] prepares its
    /// storage.
    pub fn new(settings: IndexSettings, embedder: Arc<dyn Embedder>) -> Self {
        let source = match &settings.source {
            IndexSource::Path(p) => format!("path:{p}"),
            IndexSource::Collection { name, fields } => {
                format!("collection:{name}:{}", fields.join(","))
            }
            IndexSource::Api => "api".to_string(),
        };
        let fingerprint = format!(
            "{}|{}|{}|{}|{source}",
            embedder.id(),
            settings.max_tokens,
            settings.overlap,
            CHUNKER_VERSION
        );
        Index {
            settings,
            embedder,
            fingerprint,
            vectors: RwLock::new(State::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Prepares the index's tables; when the embedder or the chunking changed since the last
    /// run, its documents are dropped (the next ingest rebuilds them) and `true` is returned.
    ///
    /// # Errors
    /// [`SearchError::Store`].
    pub async fn open(&self, store: &Store) -> Result<bool, SearchError> {
        let reset = store
            .search_index(self.name())
            .open(&self.fingerprint)
            .await?;
        if reset {
            tracing::warn!(
                index = self.name(),
                "the embedder or chunking of the index changed; its documents were dropped and will be ingested again"
            );
        }
        *self.vectors.write().unwrap_or_else(|e| e.into_inner()) = State::default();
        Ok(reset)
    }

    /// Applies a write made by this process, when nothing else changed in between.
    pub(crate) fn apply(
        &self,
        change: &DocumentChange,
        vectors: &dyn Fn(&str) -> Option<Vec<f32>>,
    ) {
        let added: Vec<(u64, Vec<f32>)> = change
            .added
            .iter()
            .filter_map(|(id, hash)| vectors(hash).map(|v| (*id, v)))
            .collect();
        let index = {
            let mut state = self.vectors.write().unwrap_or_else(|e| e.into_inner());
            if !state.loaded || change.version != state.version + 1 {
                return;
            }
            state.version = change.version;
            for id in &change.removed {
                state.ids.remove(id);
            }
            for (id, _) in &added {
                state.ids.insert(*id);
                state.max_id = state.max_id.max(*id);
            }
            match (&state.index, added.first()) {
                (Some(index), _) => index.clone(),
                (None, Some((_, v))) => state.index_for(v.len()),
                (None, None) => return,
            }
        };
        for id in &change.removed {
            index.remove(*id);
        }
        index.extend(added.iter().map(|(id, v)| (*id, v.as_slice())));
    }

    /// Brings the in-memory vectors up to date with the store.
    ///
    /// # Errors
    /// [`SearchError::Store`].
    pub async fn fresh(&self, store: &Store) -> Result<(), SearchError> {
        let version = store.search_index(self.name()).version().await?;
        {
            let state = self.vectors.read().unwrap_or_else(|e| e.into_inner());
            if state.loaded && state.version == version {
                return Ok(());
            }
        }
        let _guard = self.refresh.lock().await;
        let (loaded, after, known) = {
            let state = self.vectors.read().unwrap_or_else(|e| e.into_inner());
            if state.loaded && state.version == version {
                return Ok(());
            }
            (state.loaded, state.max_id, state.ids.len())
        };
        // `version` was read before loading: anything committed later is picked up next time.
        let mut after = if loaded { after } else { 0 };
        let mut fresh: Vec<(u64, Vec<f32>)> = Vec::new();
        loop {
            let page = store
                .search_index(self.name())
                .vectors(self.embedder.id(), after, LOAD_PAGE)
                .await?;
            let Some(last) = page.last().map(|(id, _)| *id) else {
                break;
            };
            after = last;
            let full = page.len() as i64 == LOAD_PAGE;
            fresh.extend(page.into_iter().map(|(id, b)| (id, from_bytes(&b))));
            if !full {
                break;
            }
        }
        if !loaded {
            let dims = fresh.first().map_or(0, |(_, v)| v.len());
            let index = (!fresh.is_empty()).then(|| {
                Arc::new(VectorIndex::from_items(
                    dims,
                    HnswOptions::default(),
                    fresh.iter().map(|(id, v)| (*id, v.as_slice())),
                ))
            });
            let mut state = self.vectors.write().unwrap_or_else(|e| e.into_inner());
            *state = State {
                loaded: true,
                version,
                max_id: fresh.last().map_or(0, |(id, _)| *id),
                ids: fresh.iter().map(|(id, _)| *id).collect(),
                index,
            };
            return Ok(());
        }
        let all = store.search_index(self.name()).chunk_ids().await?;
        let (index, gone) = {
            let mut state = self.vectors.write().unwrap_or_else(|e| e.into_inner());
            let mut gone = Vec::new();
            if all.len() != known + fresh.len() {
                let keep: HashSet<u64> = all.into_iter().collect();
                gone = state
                    .ids
                    .iter()
                    .filter(|id| !keep.contains(id))
                    .copied()
                    .collect();
                for id in &gone {
                    state.ids.remove(id);
                }
            }
            for (id, _) in &fresh {
                state.ids.insert(*id);
                state.max_id = state.max_id.max(*id);
            }
            state.version = version;
            let index = match (&state.index, fresh.first()) {
                (Some(index), _) => Some(index.clone()),
                (None, Some((_, v))) => Some(state.index_for(v.len())),
                (None, None) => None,
            };
            (index, gone)
        };
        if let Some(index) = index {
            for id in gone {
                index.remove(id);
            }
            index.extend(fresh.iter().map(|(id, v)| (*id, v.as_slice())));
        }
        Ok(())
    }

    /// The `k` nearest chunks to `query` among those `allowed` (all when `None`).
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Vec<(u64, f32)> {
        let index = {
            let state = self.vectors.read().unwrap_or_else(|e| e.into_inner());
            state.index.clone()
        };
        let Some(index) = index else {
            return Vec::new();
        };
        match allowed {
            Some(set) => {
                let allow = |id: u64| set.contains(&id);
                index.search(query, k, Some(&allow))
            }
            None => index.search(query, k, None),
        }
    }

    /// Waits until the in-memory vectors are searchable by their graph (when they have one),
    /// for benchmarks that must not time the exact fallback used while it builds.
    pub fn wait_for_graph(&self) {
        let index = {
            let state = self.vectors.read().unwrap_or_else(|e| e.into_inner());
            state.index.clone()
        };
        if let Some(index) = index {
            index.wait_for_graph();
        }
    }
}

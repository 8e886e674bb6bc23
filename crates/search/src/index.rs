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
use brigade_store::search::DocumentChange;

use crate::embed::Embedder;
use crate::error::SearchError;
use crate::vector::VectorIndex;

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

#[derive(Default)]
struct Vectors {
    loaded: bool,
    version: i64,
    max_id: u64,
    ids: HashSet<u64>,
    index: Option<VectorIndex>,
}

impl Vectors {
    fn insert(&mut self, id: u64, v: &[f32]) {
        let index = self.index.get_or_insert_with(|| VectorIndex::new(v.len()));
        index.insert(id, v);
        self.ids.insert(id);
        self.max_id = self.max_id.max(id);
    }

    fn remove(&mut self, id: u64) {
        if let Some(index) = self.index.as_mut() {
            index.remove(id);
        }
        self.ids.remove(&id);
    }
}

/// A search index at runtime.
pub struct Index {
    pub settings: IndexSettings,
    pub embedder: Arc<dyn Embedder>,
    fingerprint: String,
    vectors: RwLock<Vectors>,
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
            vectors: RwLock::new(Vectors::default()),
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
            .search_open_index(self.name(), &self.fingerprint)
            .await?;
        if reset {
            tracing::warn!(
                index = self.name(),
                "the embedder or chunking of the index changed; its documents were dropped and will be ingested again"
            );
        }
        *self.vectors.write().unwrap_or_else(|e| e.into_inner()) = Vectors::default();
        Ok(reset)
    }

    /// Applies a write made by this process, when nothing else changed in between.
    pub(crate) fn apply(
        &self,
        change: &DocumentChange,
        vectors: &dyn Fn(&str) -> Option<Vec<f32>>,
    ) {
        let mut v = self.vectors.write().unwrap_or_else(|e| e.into_inner());
        if !v.loaded || change.version != v.version + 1 {
            return;
        }
        for id in &change.removed {
            v.remove(*id);
        }
        for (id, hash) in &change.added {
            if let Some(vector) = vectors(hash) {
                v.insert(*id, &vector);
            }
        }
        v.version = change.version;
    }

    /// Brings the in-memory vectors up to date with the store.
    ///
    /// # Errors
    /// [`SearchError::Store`].
    pub async fn fresh(&self, store: &Store) -> Result<(), SearchError> {
        let version = store.search_version(self.name()).await?;
        {
            let v = self.vectors.read().unwrap_or_else(|e| e.into_inner());
            if v.loaded && v.version == version {
                return Ok(());
            }
        }
        let _guard = self.refresh.lock().await;
        let (loaded, after, current) = {
            let v = self.vectors.read().unwrap_or_else(|e| e.into_inner());
            if v.loaded && v.version == version {
                return Ok(());
            }
            (
                v.loaded,
                v.max_id,
                v.index.as_ref().map_or(0, VectorIndex::len),
            )
        };
        let version = store.search_version(self.name()).await?;
        let mut after = if loaded { after } else { 0 };
        let mut fresh = Vec::new();
        loop {
            let page = store
                .search_vectors(self.name(), self.embedder.id(), after, LOAD_PAGE)
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
        let ids = if loaded {
            Some(store.search_chunk_ids(self.name()).await?)
        } else {
            None
        };
        let mut v = self.vectors.write().unwrap_or_else(|e| e.into_inner());
        if !loaded {
            *v = Vectors::default();
        }
        for (id, vector) in &fresh {
            v.insert(*id, vector);
        }
        if let Some(ids) = ids
            && ids.len() != current + fresh.len()
        {
            let keep: HashSet<u64> = ids.into_iter().collect();
            let gone: Vec<u64> = v
                .ids
                .iter()
                .filter(|id| !keep.contains(id))
                .copied()
                .collect();
            for id in gone {
                v.remove(id);
            }
        }
        v.loaded = true;
        v.version = version;
        Ok(())
    }

    /// The `k` nearest chunks to `query` among those `allowed` (all when `None`).
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Vec<(u64, f32)> {
        let v = self.vectors.read().unwrap_or_else(|e| e.into_inner());
        let Some(index) = v.index.as_ref() else {
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

    /// How many vectors are in memory.
    pub fn vectors_len(&self) -> usize {
        let v = self.vectors.read().unwrap_or_else(|e| e.into_inner());
        v.index.as_ref().map_or(0, VectorIndex::len)
    }
}

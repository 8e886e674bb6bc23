//! The in-memory vector index of one search index: unit vectors by chunk id, searched by dot
//! product. (Interim: exact search only.)

use std::collections::HashMap;

/// Vectors by id.
#[derive(Debug, Default)]
pub struct VectorIndex {
    dims: usize,
    ids: Vec<u64>,
    data: Vec<f32>,
    slots: HashMap<u64, usize>,
}

impl VectorIndex {
    /// An empty index of `dims`-long vectors.
    pub fn new(dims: usize) -> Self {
        VectorIndex {
            dims,
            ..VectorIndex::default()
        }
    }

    /// The vectors' length.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// How many vectors are held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no vector is held.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds or replaces the vector of `id`. Vectors of the wrong length are ignored.
    pub fn insert(&mut self, id: u64, vector: &[f32]) {
        if vector.len() != self.dims {
            return;
        }
        if let Some(&slot) = self.slots.get(&id) {
            self.data[slot * self.dims..(slot + 1) * self.dims].copy_from_slice(vector);
            return;
        }
        self.slots.insert(id, self.ids.len());
        self.ids.push(id);
        self.data.extend_from_slice(vector);
    }

    /// Removes `id` (no-op when absent).
    pub fn remove(&mut self, id: u64) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        let last = self.ids.len() - 1;
        if slot != last {
            let moved = self.ids[last];
            self.ids[slot] = moved;
            self.slots.insert(moved, slot);
            let (head, tail) = self.data.split_at_mut(last * self.dims);
            head[slot * self.dims..(slot + 1) * self.dims].copy_from_slice(&tail[..self.dims]);
        }
        self.ids.pop();
        self.data.truncate(last * self.dims);
    }

    /// The `k` nearest ids to `query` by dot product, best first, among ids `allow` accepts.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        allow: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        self.search_exact(query, k, allow)
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
        let mut scored: Vec<(u64, f32)> = self
            .ids
            .iter()
            .enumerate()
            .filter(|(_, id)| allow.is_none_or(|f| f(**id)))
            .map(|(slot, id)| {
                let v = &self.data[slot * self.dims..(slot + 1) * self.dims];
                (*id, v.iter().zip(query).map(|(a, b)| a * b).sum())
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored
    }
}

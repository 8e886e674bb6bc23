//! Exact search: a dot product written to auto-vectorise and a bounded top-k heap.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Lanes of independent accumulators: two AVX registers, or four SSE/NEON ones. Independent
/// sums let the compiler vectorise without reassociating floats, which it may not do itself.
const LANES: usize = 16;

/// The dot product of two equally long slices.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, a_rest) = a.as_chunks::<LANES>();
    let (b_chunks, b_rest) = b.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..LANES {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in a_rest.iter().zip(b_rest) {
        sum += x * y;
    }
    sum
}

/// A scored slot, ordered by score then slot so the heap's order is total and deterministic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored {
    pub(crate) score: f32,
    pub(crate) slot: usize,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    /// Greater is better: higher score, then lower slot.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.slot.cmp(&self.slot))
    }
}

/// The best `k` of what is pushed, kept in a min-heap of at most `k` entries.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<std::cmp::Reverse<Scored>>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// The score a candidate must beat to enter (minus infinity until `k` are held).
    fn floor(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap
                .peek()
                .map_or(f32::NEG_INFINITY, |worst| worst.0.score)
        }
    }

    pub(crate) fn push(&mut self, candidate: Scored) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse(candidate));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && candidate > worst.0
        {
            *worst = std::cmp::Reverse(candidate);
        }
    }

    /// The kept entries, best first.
    pub(crate) fn into_sorted(self) -> Vec<Scored> {
        // Ascending order of `Reverse` is descending order of score.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.0)
            .collect()
    }
}

/// The best `k` slots of `data` (rows of `dims`) for `query`, among slots `allow` accepts.
pub(crate) fn top_k(
    data: &[f32],
    dims: usize,
    query: &[f32],
    k: usize,
    mut allow: impl FnMut(usize) -> bool,
) -> Vec<Scored> {
    let mut top = TopK::new(k);
    if k == 0 || dims == 0 {
        return Vec::new();
    }
    let mut floor = f32::NEG_INFINITY;
    for (slot, row) in data.chunks_exact(dims).enumerate() {
        if !allow(slot) {
            continue;
        }
        let score = dot(row, query);
        // Most rows lose to the current k-th best: skip the heap for them.
        if score >= floor {
            top.push(Scored { score, slot });
            floor = top.floor();
        }
    }
    top.into_sorted()
}

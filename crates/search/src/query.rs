//! Retrieval: keyword (the store's BM25), vector (the in-memory index) or hybrid, where the
//! two ranked lists are fused by weighted reciprocal rank fusion, a chunk's score being
//! `Σ weight / (20 + rank)` over the lists it appears in. Then hits are spread over
//! documents: each further chunk of a document already ranked counts for a share of its score
//! (`same_document_weight`, default 0.6, chosen on the development questions — BENCHMARKS.md,
//! "Diversity"), so ten hits show the best passages of several pages rather than one page
//! ten times.

use std::collections::{HashMap, HashSet};

use brigade_store::Store;
use brigade_store::search_index::{ChunkRow, Restriction};

use crate::embed::Purpose;
use crate::error::SearchError;
use crate::index::Index;
use crate::terms::{highlights, query_terms, stems};

/// The RRF constant. Cormack et al. use 60; on the development questions about the
/// PostgreSQL manual 20 ranked as well with `builtin` and better with MiniLM (BENCHMARKS.md,
/// "Fusion"): a smaller constant lets the top of each list count for more.
const RRF_K: f64 = 20.0;
/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 2000;
/// Most hits one search returns.
pub const MAX_K: usize = 100;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    Keyword,
    Vector,
    #[default]
    Hybrid,
}

impl Mode {
    /// `keyword`, `vector` or `hybrid`.
    ///
    /// # Errors
    /// [`SearchError::Invalid`] on key `mode`.
    pub fn parse(s: &str) -> Result<Mode, SearchError> {
        match s {
            "keyword" => Ok(Mode::Keyword),
            "vector" => Ok(Mode::Vector),
            "hybrid" => Ok(Mode::Hybrid),
            other => Err(SearchError::invalid(
                "mode",
                format!("`{other}` is not one of hybrid, vector, keyword"),
            )),
        }
    }
}

/// Where a hit comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HitSource {
    pub document_id: String,
    pub title: String,
    pub path_or_url: String,
    /// The chunk's position in its document (0-based).
    pub chunk: i64,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    /// `document_id#chunk`.
    pub id: String,
    pub score: f64,
    pub text: String,
    pub source: HitSource,
    /// Fragments of the text with the query's words in `<mark>`.
    pub highlights: Vec<String>,
    /// The heading path of the chunk.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub heading: String,
}

/// Validates a query.
///
/// # Errors
/// [`SearchError::Invalid`] on `field` when empty or too long.
pub fn check_query(field: &str, q: &str) -> Result<(), SearchError> {
    if q.trim().is_empty() {
        return Err(SearchError::invalid(
            field,
            "is required and must not be blank",
        ));
    }
    let n = q.chars().count();
    if n > MAX_QUERY_CHARS {
        return Err(SearchError::invalid(
            field,
            format!("is {n} characters long; the limit is {MAX_QUERY_CHARS}"),
        ));
    }
    if q.contains('\0') {
        return Err(SearchError::invalid(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Fuses ranked lists by weighted reciprocal rank fusion, best first: each list adds
/// `weight / (k + rank)` to the ids it holds.
pub fn rrf(lists: &[(Vec<u64>, f64)]) -> Vec<(u64, f64)> {
    let mut scores: HashMap<u64, f64> = HashMap::new();
    for (list, weight) in lists {
        for (rank, id) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += weight / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut out: Vec<(u64, f64)> = scores.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// The best `k` of `ranked` (best first) when each chunk's score is multiplied by `weight`
/// (0.1..=1) for every chunk of its document picked before it (divided, for a negative
/// score), with those discounted scores, which never increase down the list. Chunks without
/// a document (gone since ranking) are dropped.
pub fn diversify(
    ranked: &[(u64, f64)],
    documents: &HashMap<u64, &str>,
    k: usize,
    weight: f64,
) -> Vec<(u64, f64)> {
    let discount = |score: f64, n: i32| {
        let factor = weight.powi(n);
        if score >= 0.0 {
            score * factor
        } else {
            score / factor
        }
    };
    let mut left: Vec<(u64, f64, &str)> = ranked
        .iter()
        .filter_map(|(id, s)| documents.get(id).map(|d| (*id, *s, *d)))
        .collect();
    let mut picked: HashMap<&str, i32> = HashMap::new();
    let mut out = Vec::with_capacity(k.min(left.len()));
    while out.len() < k && !left.is_empty() {
        let mut best = 0;
        let mut best_score = f64::NEG_INFINITY;
        for (i, (_, score, doc)) in left.iter().enumerate() {
            let s = discount(*score, picked.get(doc).copied().unwrap_or(0));
            // `left` keeps the ranked order, so ties go to the better-ranked chunk.
            if s > best_score {
                best = i;
                best_score = s;
            }
        }
        let (id, _, doc) = left.remove(best);
        *picked.entry(doc).or_default() += 1;
        out.push((id, best_score));
    }
    out
}

/// Searches `index`; hits best first.
///
/// # Errors
/// [`SearchError::Invalid`] for a bad query or `k`; store and embedder errors.
pub async fn search(
    store: &Store,
    index: &Index,
    q: &str,
    k: usize,
    mode: Mode,
    restriction: Option<&Restriction>,
) -> Result<Vec<Hit>, SearchError> {
    check_query("q", q)?;
    if k == 0 || k > MAX_K {
        return Err(SearchError::invalid(
            "k",
            format!("{k} is not between 1 and {MAX_K}"),
        ));
    }
    let terms = query_terms(q);
    // More candidates than hits, for fusion and for spreading hits over documents.
    let fetch = (k * 4).max(40);
    // In hybrid mode the BM25 query and the query's embedding (an HTTP call or a model run
    // for a real embedder) run at the same time.
    let keyword = async {
        if mode == Mode::Vector {
            return Ok(Vec::new());
        }
        Ok::<_, SearchError>(
            store
                .search_index(index.name())
                .keyword(&terms, fetch, restriction)
                .await?,
        )
    };
    let vector = async {
        if mode == Mode::Keyword {
            return Ok(Vec::new());
        }
        let query = index
            .embedder
            .embed(&[q.to_string()], Purpose::Query)
            .await?
            .pop()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SearchError::embed("the embedder returned no vector for the query"))?;
        index.fresh(store).await?;
        let allowed = match restriction {
            Some(r) => Some(
                store
                    .search_index(index.name())
                    .allowed(Some(r))
                    .await?
                    .into_iter()
                    .collect::<HashSet<u64>>(),
            ),
            None => None,
        };
        Ok::<_, SearchError>(index.nearest(&query, fetch, allowed.as_ref()))
    };
    let (keyword, vector) = tokio::try_join!(keyword, vector)?;
    let ranked: Vec<(u64, f64)> = match mode {
        Mode::Keyword => keyword,
        Mode::Vector => vector
            .into_iter()
            .map(|(id, s)| (id, f64::from(s)))
            .collect(),
        Mode::Hybrid => {
            let w = index.settings.vector_weight;
            rrf(&[
                (keyword.iter().map(|(id, _)| *id).collect(), 1.0 - w),
                (vector.iter().map(|(id, _)| *id).collect(), w),
            ])
        }
    };
    let ids: Vec<u64> = ranked.iter().map(|(id, _)| *id).collect();
    let mut rows: HashMap<u64, ChunkRow> = store
        .search_index(index.name())
        .chunks(&ids)
        .await?
        .into_iter()
        .map(|c| (c.seq, c))
        .collect();
    let documents: HashMap<u64, &str> = rows
        .iter()
        .map(|(seq, c)| (*seq, c.document_id.as_str()))
        .collect();
    let top = diversify(&ranked, &documents, k, index.settings.same_document_weight);
    let stems = stems(&terms);
    Ok(top
        .into_iter()
        .filter_map(|(seq, score)| rows.remove(&seq).map(|c| (c, score)))
        .map(|(c, score)| Hit {
            id: format!("{}#{}", c.document_id, c.ordinal),
            score,
            highlights: highlights(&c.text, &stems, 3),
            heading: c.heading,
            source: HitSource {
                document_id: c.document_id,
                title: c.title,
                path_or_url: c.path,
                chunk: c.ordinal,
            },
            text: c.text,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement_and_weights() {
        let fused = rrf(&[(vec![1, 2, 3], 0.5), (vec![3, 4, 1], 0.5)]);
        assert_eq!(fused[0].0, 1);
        assert_eq!(fused[1].0, 3);
        assert_eq!(fused.len(), 4);
        assert!(rrf(&[]).is_empty());
        // The heavier list's first item outranks the lighter list's.
        let fused = rrf(&[(vec![1, 2], 1.0 / 3.0), (vec![3, 4], 2.0 / 3.0)]);
        let order: Vec<u64> = fused.iter().map(|(id, _)| *id).collect();
        assert_eq!(order, [3, 4, 1, 2]);
        // Weight 0 leaves one list's order alone.
        let fused = rrf(&[(vec![1, 2], 0.0), (vec![4, 3], 1.0)]);
        assert_eq!(fused[0].0, 4);
        assert_eq!(fused[1].0, 3);
    }

    #[test]
    fn hits_are_spread_over_documents() {
        let documents: HashMap<u64, &str> =
            [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "c")].into();
        let ranked = [(1, 1.0), (2, 0.95), (3, 0.9), (4, 0.5), (5, 0.2), (6, 0.99)];
        let top = diversify(&ranked, &documents, 4, 0.6);
        let ids: Vec<u64> = top.iter().map(|(id, _)| *id).collect();
        // a's second chunk (0.95 × 0.6 = 0.57) still beats b (0.5); its third (0.9 × 0.36)
        // does not; 6 has no document (deleted since ranking) and is dropped.
        assert_eq!(ids, [1, 2, 4, 3]);
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{top:?}");
        assert!((top[1].1 - 0.57).abs() < 1e-9);
        // Negative scores (cosine) are pushed down too.
        let top = diversify(&[(1, -0.1), (2, -0.2), (4, -0.3)], &documents, 3, 0.6);
        let ids: Vec<u64> = top.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [1, 4, 2]);
        assert!(diversify(&[], &documents, 3, 0.6).is_empty());
        // 1 keeps the ranking; a small weight puts one chunk per document first.
        let plain = diversify(&ranked, &documents, 4, 1.0);
        assert_eq!(
            plain.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        let ids: Vec<u64> = diversify(&ranked, &documents, 5, 0.1)
            .iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(ids, [1, 4, 5, 2, 3]);
    }

    #[test]
    fn queries_are_checked() {
        assert!(check_query("q", "  ").is_err());
        assert!(check_query("q", &"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(check_query("q", "vacuum").is_ok());
        assert!(Mode::parse("semantic").is_err());
    }
}

//! `brigade bench search`: the retrieval evaluation and query latencies of search indexes.
//!
//! Questions come from a JSONL file (`{"id", "question", "pages": [...], "kind"}`, as in
//! `eval/postgresql-docs/`); a hit answers a question when its document's file name is one of
//! the question's `pages`. For every index and mode it prints recall@5 (an answering page among
//! the first five hits), MRR@10 (the mean of 1/rank of the first answering hit within ten),
//! both per question kind, and the query latency p50/p99 measured in this process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use brigade_core::settings::Settings;
use brigade_search::Search;
use brigade_search::query::Mode;
use brigade_store::Access;
use serde::Deserialize;

use super::Failure;

#[derive(Debug, Deserialize)]
struct Question {
    id: String,
    question: String,
    pages: Vec<String>,
    #[serde(default)]
    kind: String,
}

/// Scores of one index and mode.
#[derive(Debug, Default, serde::Serialize)]
struct Score {
    index: String,
    embedder: String,
    mode: &'static str,
    questions: usize,
    recall_at_5: f64,
    mrr_at_10: f64,
    by_kind: BTreeMap<String, (f64, f64, usize)>,
    p50_ms: f64,
    p99_ms: f64,
    /// Question ids not answered in the first five.
    misses: Vec<String>,
}

fn load_questions(path: &PathBuf) -> Result<Vec<Question>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Failure::Usage(format!(
                    "{}:{}: not a question object: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

fn file_name(document: &str) -> &str {
    document.rsplit('/').next().unwrap_or(document)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) async fn run(
    settings: Settings,
    indexes: Vec<String>,
    questions: PathBuf,
    repeat: u32,
    json: Option<PathBuf>,
) -> Result<(), Failure> {
    let questions_path = questions;
    let questions = load_questions(&questions_path)?;
    if questions.is_empty() {
        return Err(Failure::Usage(format!(
            "{}: no questions; write one JSON object per line: {{\"id\", \"question\", \"pages\": [...]}}",
            questions_path.display()
        )));
    }
    let names: Vec<String> = if indexes.is_empty() {
        settings
            .search
            .indexes
            .iter()
            .map(|i| i.name.clone())
            .collect()
    } else {
        indexes
    };
    if names.is_empty() {
        return Err(Failure::Usage(format!(
            "{}/brigade.toml has no [[search.indexes]] to measure",
            settings.dir.display()
        )));
    }
    for n in &names {
        super::search::check_index(&settings, n)?;
    }
    let (store, search) = super::search::open(&settings, &names).await?;
    // The store is closed whatever happens to the measurement.
    let measured = measure(&search, &names, &questions, repeat).await;
    store.close().await;
    let scores = measured?;
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&scores).unwrap_or_default();
        std::fs::write(&path, text)
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Scores and times every index of `names` in every mode.
async fn measure(
    search: &Search,
    names: &[String],
    questions: &[Question],
    repeat: u32,
) -> Result<Vec<Score>, Failure> {
    let mut scores = Vec::new();
    for name in names {
        let embedder = search
            .index(name)
            .map(|i| i.settings.embedder.clone())
            .unwrap_or_default();
        for (mode, label) in [
            (Mode::Keyword, "keyword"),
            (Mode::Vector, "vector"),
            (Mode::Hybrid, "hybrid"),
        ] {
            // Warm up: the first vector query loads the index's vectors.
            search
                .search(name, "warm up", 10, mode, None, &Access::Superuser)
                .await
                .map_err(super::search::failure)?;
            if let Ok(index) = search.index(name) {
                let waited = Instant::now();
                index.wait_for_graph();
                if waited.elapsed().as_secs() >= 1 {
                    eprintln!(
                        "{name}: waited {:.0} s for the HNSW graph",
                        waited.elapsed().as_secs_f64()
                    );
                }
            }
            let mut latencies = Vec::new();
            let mut score = Score {
                index: name.clone(),
                embedder: embedder.clone(),
                mode: label,
                questions: questions.len(),
                ..Score::default()
            };
            let mut kinds: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
            for q in questions {
                let mut hits = Vec::new();
                for _ in 0..repeat.max(1) {
                    let started = Instant::now();
                    hits = search
                        .search(name, &q.question, 10, mode, None, &Access::Superuser)
                        .await
                        .map_err(super::search::failure)?;
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                let rank = hits
                    .iter()
                    .position(|h| {
                        q.pages
                            .iter()
                            .any(|p| p == file_name(&h.source.document_id))
                    })
                    .map(|r| r + 1);
                let recall = if rank.is_some_and(|r| r <= 5) {
                    1.0
                } else {
                    0.0
                };
                let rr = rank.map_or(0.0, |r| 1.0 / r as f64);
                if recall == 0.0 {
                    score.misses.push(q.id.clone());
                }
                score.recall_at_5 += recall;
                score.mrr_at_10 += rr;
                let k = kinds.entry(q.kind.clone()).or_default();
                k.0 += recall;
                k.1 += rr;
                k.2 += 1;
            }
            let n = questions.len() as f64;
            score.recall_at_5 /= n;
            score.mrr_at_10 /= n;
            score.by_kind = kinds
                .into_iter()
                .map(|(k, (r, m, c))| (k, (r / c as f64, m / c as f64, c)))
                .collect();
            latencies.sort_by(f64::total_cmp);
            score.p50_ms = percentile(&latencies, 50.0);
            score.p99_ms = percentile(&latencies, 99.0);
            print_row(&score);
            scores.push(score);
        }
    }
    Ok(scores)
}

fn print_row(s: &Score) {
    let kinds: Vec<String> = s
        .by_kind
        .iter()
        .map(|(k, (r, m, c))| format!("{k} {r:.2}/{m:.2} (n={c})"))
        .collect();
    println!(
        "{:<16} {:<28} {:<8} recall@5 {:.3}  MRR@10 {:.3}  p50 {:>7.2} ms  p99 {:>7.2} ms  | {}",
        s.index,
        s.embedder,
        s.mode,
        s.recall_at_5,
        s.mrr_at_10,
        s.p50_ms,
        s.p99_ms,
        kinds.join("  ")
    );
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}

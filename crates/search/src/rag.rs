//! Answers with their sources: retrieve the best chunks (hybrid), number them inside a token
//! budget, and let the configured OpenAI-compatible model write the answer citing `[n]`.
//! Without a model, the answer is extractive: the sentences of the best passages that share
//! the most words with the question, each cited.

use std::collections::HashSet;

use rust_stemmers::{Algorithm, Stemmer};

use crate::chunk::count_tokens;
use crate::query::Hit;
use crate::terms::{query_terms, stems};

/// Most sources a question may ask for.
pub const MAX_K: usize = 20;
/// Sources used when a question does not say.
pub const DEFAULT_K: usize = 5;
/// The instructions given to the model.
pub const SYSTEM_PROMPT: &str = "You answer questions using only the numbered sources the user \
gives you. Cite every source you use with its number in square brackets, like [1] or [2][3]. If \
the sources do not contain the answer, say that you do not know. Be concise and exact.";

/// One source of an answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    pub document_id: String,
    pub title: String,
    pub path_or_url: String,
    pub snippet: String,
    pub score: f64,
}

/// Tokens a model reported (or that were estimated when it did not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// The answer to a question.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    pub answer: String,
    /// `generative` or `extractive`.
    pub mode: String,
    pub sources: Vec<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    pub latency_ms: u64,
    /// Served from the answer cache.
    #[serde(default)]
    pub cached: bool,
}

/// The hits that fit in `budget` tokens, the last one cut to fit when needed (at least one).
pub fn within_budget(hits: &[Hit], budget: usize) -> Vec<Hit> {
    let mut used = 0;
    let mut out = Vec::new();
    for hit in hits {
        let cost = count_tokens(&source_block(0, hit)) + 2;
        if used + cost <= budget {
            used += cost;
            out.push(hit.clone());
            continue;
        }
        if out.is_empty() {
            let mut cut = hit.clone();
            let keep_chars = budget.saturating_sub(40).max(20) * 4;
            cut.text = cut.text.chars().take(keep_chars).collect();
            out.push(cut);
        }
        break;
    }
    out
}

fn source_block(n: usize, hit: &Hit) -> String {
    let mut s = format!("[{n}] {}", hit.source.title);
    if !hit.heading.is_empty() && hit.heading != hit.source.title {
        s.push_str(" — ");
        s.push_str(&hit.heading);
    }
    s.push_str(&format!(" ({})\n{}", hit.source.path_or_url, hit.text));
    s
}

/// The user message: numbered sources, then the question.
pub fn user_prompt(question: &str, hits: &[Hit]) -> String {
    let mut s = String::from("Sources:\n\n");
    for (i, hit) in hits.iter().enumerate() {
        s.push_str(&source_block(i + 1, hit));
        s.push_str("\n\n");
    }
    s.push_str("Question: ");
    s.push_str(question.trim());
    s
}

fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let end = i + c.len_utf8();
        let boundary =
            matches!(c, '.' | '!' | '?') && bytes.get(end).is_none_or(|b| b.is_ascii_whitespace());
        if boundary || c == '\n' && bytes.get(end) == Some(&b'\n') {
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn overlap(sentence: &str, stems: &HashSet<String>, stemmer: &Stemmer) -> usize {
    let mut seen = HashSet::new();
    sentence
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| stemmer.stem(&w.to_lowercase()).into_owned())
        .filter(|s| stems.contains(s) && seen.insert(s.clone()))
        .count()
}

/// Scores sentences by the question's words they share (by English stem).
struct Scorer {
    stems: HashSet<String>,
    stemmer: Stemmer,
}

impl Scorer {
    fn new(question: &str) -> Self {
        Scorer {
            stems: stems(&query_terms(question)),
            stemmer: Stemmer::create(Algorithm::English),
        }
    }

    /// `(position, shared words)` of the best sentence (the first among equals).
    fn best(&self, sents: &[&str]) -> Option<(usize, usize)> {
        sents
            .iter()
            .enumerate()
            .map(|(i, s)| (i, overlap(s, &self.stems, &self.stemmer)))
            .max_by_key(|(i, score)| (*score, std::cmp::Reverse(*i)))
    }

    /// The best sentence window of `text` (about `max_chars`).
    fn snippet(&self, text: &str, max_chars: usize) -> String {
        let sents = sentences(text);
        let best = self.best(&sents).map_or(0, |(i, _)| i);
        let mut out = String::new();
        for s in sents.iter().skip(best) {
            if !out.is_empty() && out.chars().count() + s.chars().count() > max_chars {
                break;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(s);
        }
        if out.chars().count() > max_chars {
            out = out.chars().take(max_chars).collect::<String>() + "…";
        }
        out
    }
}

/// The best sentence window of `text` for the question (about `max_chars`).
pub fn snippet(text: &str, question: &str, max_chars: usize) -> String {
    Scorer::new(question).snippet(text, max_chars)
}

/// An extractive answer: from each of the best passages, the sentence that shares the most
/// words with the question, cited with the passage's number.
pub fn extractive(question: &str, hits: &[Hit]) -> String {
    let scorer = Scorer::new(question);
    let mut parts = Vec::new();
    for (i, hit) in hits.iter().take(3).enumerate() {
        let sents = sentences(&hit.text);
        let Some((best, score)) = scorer.best(&sents) else {
            continue;
        };
        // Passages after the best one must share a word with the question to be quoted.
        if i > 0 && score == 0 {
            continue;
        }
        let best = sents[best];
        let text: String = if best.chars().count() > 400 {
            best.chars().take(400).collect::<String>() + "…"
        } else {
            best.to_string()
        };
        parts.push(format!("{text} [{}]", i + 1));
    }
    parts.join(" ")
}

/// The sources of an answer, in prompt order.
pub fn sources(question: &str, hits: &[Hit]) -> Vec<Source> {
    let scorer = Scorer::new(question);
    hits.iter()
        .map(|h| Source {
            document_id: h.source.document_id.clone(),
            title: h.source.title.clone(),
            path_or_url: h.source.path_or_url.clone(),
            snippet: scorer.snippet(&h.text, 300),
            score: h.score,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::HitSource;

    fn hit(doc: &str, text: &str) -> Hit {
        Hit {
            id: format!("{doc}#0"),
            score: 1.0,
            text: text.into(),
            source: HitSource {
                document_id: doc.into(),
                title: format!("Title {doc}"),
                path_or_url: format!("docs/{doc}.md"),
                chunk: 0,
            },
            highlights: Vec::new(),
            heading: String::new(),
        }
    }

    #[test]
    fn extractive_answers_cite_the_best_sentences() {
        let hits = [
            hit(
                "a",
                "Tables are rows. VACUUM reclaims storage occupied by dead tuples. Other text.",
            ),
            hit("b", "Nothing relevant here. ANALYZE collects statistics."),
            hit("c", "Some intro. Autovacuum runs VACUUM by itself."),
        ];
        let a = extractive("What does VACUUM reclaim?", &hits);
        assert_eq!(
            a,
            "VACUUM reclaims storage occupied by dead tuples. [1] Autovacuum runs VACUUM by itself. [3]"
        );
    }

    #[test]
    fn prompts_number_sources_and_respect_the_budget() {
        let hits: Vec<Hit> = (0..10)
            .map(|i| hit(&i.to_string(), &"word ".repeat(200)))
            .collect();
        let kept = within_budget(&hits, 800);
        assert_eq!(kept.len(), 3);
        let p = user_prompt("why?", &kept);
        assert!(p.contains("[1] Title 0") && p.contains("[3] Title 2") && !p.contains("[4]"));
        assert!(p.ends_with("Question: why?"));
        let one = within_budget(&hits[..1], 50);
        assert_eq!(one.len(), 1);
        assert!(one[0].text.len() < 1000);
    }

    #[test]
    fn snippets_start_at_the_best_sentence() {
        let s = snippet(
            "Intro sentence. The checkpoint interval is set by checkpoint_timeout. Tail.",
            "checkpoint interval",
            60,
        );
        assert!(s.starts_with("The checkpoint interval"), "{s}");
    }
}

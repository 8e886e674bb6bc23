//! Words of a query and of a passage: the keyword query's terms (stop words dropped),
//! highlights of matching words (by English stem, as the keyword engines match), and a
//! token estimate for prompt budgets.

use std::collections::HashSet;
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

/// Words too common to search for.
const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "between", "both", "but", "by", "can", "could",
    "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had",
    "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in",
    "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "no", "nor", "not",
    "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own",
    "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs",
    "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under",
    "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who",
    "whom", "why", "will", "with", "would", "you", "your", "yours",
];

/// The most terms a keyword query uses.
pub const MAX_TERMS: usize = 32;

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The keyword terms of a query: lowercase words of letters and digits, stop words and
/// duplicates dropped, at most [`MAX_TERMS`]. Safe to put in a full-text query as is.
pub fn query_terms(query: &str) -> Vec<String> {
    static STOP: LazyLock<HashSet<&str>> = LazyLock::new(|| STOP_WORDS.iter().copied().collect());
    let mut seen = HashSet::new();
    let mut terms = Vec::new();
    for w in words(query) {
        let w = w.to_lowercase();
        if w.chars().count() > 64 || STOP.contains(w.as_str()) || !seen.insert(w.clone()) {
            continue;
        }
        terms.push(w);
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    if terms.is_empty() {
        // A query of stop words only ("what is it") still searches for something.
        terms = words(query)
            .map(str::to_lowercase)
            .filter(|w| seen.insert(w.clone()))
            .take(MAX_TERMS)
            .collect();
    }
    terms
}

/// Stems the terms of a query, for [`highlights`].
pub fn stems(terms: &[String]) -> HashSet<String> {
    let stemmer = Stemmer::create(Algorithm::English);
    terms.iter().map(|t| stemmer.stem(t).into_owned()).collect()
}

/// Up to `max` fragments of `text` around words whose stem is in `stems`, the words wrapped
/// in `<mark>…</mark>` (the text itself is not HTML-escaped beyond `<`, `>` and `&`).
pub fn highlights(text: &str, stems: &HashSet<String>, max: usize) -> Vec<String> {
    if stems.is_empty() || max == 0 {
        return Vec::new();
    }
    let stemmer = Stemmer::create(Algorithm::English);
    // Byte ranges of matching words.
    let mut hits = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let word = text[s..i].to_lowercase();
                if stems.contains(stemmer.stem(&word).as_ref()) {
                    hits.push((s, i));
                }
                start = None;
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut used_until = 0;
    const CONTEXT: usize = 60;
    let mut i = 0;
    while i < hits.len() && out.len() < max {
        let (s, _) = hits[i];
        if s < used_until {
            i += 1;
            continue;
        }
        let from = floor_char(text, s.saturating_sub(CONTEXT));
        let mut to = ceil_char(text, (hits[i].1 + CONTEXT).min(text.len()));
        // Extend the fragment over hits that follow closely.
        let mut j = i;
        while j + 1 < hits.len() && hits[j + 1].0 < to {
            j += 1;
            to = ceil_char(text, (hits[j].1 + CONTEXT).min(text.len()));
        }
        let mut frag = String::new();
        if from > 0 {
            frag.push('…');
        }
        let mut at = from;
        for &(hs, he) in &hits[i..=j] {
            frag.push_str(&escape(&text[at..hs]));
            frag.push_str("<mark>");
            frag.push_str(&escape(&text[hs..he]));
            frag.push_str("</mark>");
            at = he;
        }
        frag.push_str(&escape(&text[at..to]));
        if to < text.len() {
            frag.push('…');
        }
        out.push(crate::document::collapse_whitespace(&frag));
        used_until = to;
        i = j + 1;
    }
    out
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_terms_drop_stop_words_and_punctuation() {
        assert_eq!(
            query_terms("How do I create an index CONCURRENTLY? (pg_dump)"),
            ["create", "index", "concurrently", "pg", "dump"]
        );
        assert_eq!(query_terms("what is it"), ["what", "is", "it"]);
        assert_eq!(query_terms("what is what"), ["what", "is"]);
        assert!(query_terms("  ?!  ").is_empty());
        assert_eq!(query_terms("\"x\" OR y*").len(), 2);
    }

    #[test]
    fn highlights_mark_stemmed_matches_with_context() {
        let s = stems(&query_terms("indexes vacuuming"));
        let text = "Routine vacuuming keeps an index small. Unrelated words here. ".repeat(3);
        let h = highlights(&text, &s, 2);
        assert!(!h.is_empty());
        assert!(h[0].contains("<mark>vacuuming</mark>"), "{h:?}");
        assert!(h[0].contains("<mark>index</mark>"), "{h:?}");
        assert!(highlights("nothing to see", &s, 3).is_empty());
    }

    #[test]
    fn highlights_escape_html_and_respect_char_boundaries() {
        let s = stems(&["naïve".to_string()]);
        let h = highlights("<b>é</b> naïve — ünïcödé", &s, 1);
        assert_eq!(h, ["&lt;b&gt;é&lt;/b&gt; <mark>naïve</mark> — ünïcödé"]);
    }
}

//! The answer cache: answers by index, index version, question and who asked (their
//! restriction), so a repeated question costs no model call until the index changes. A
//! change that keeps a document's text does not change the version, so the service checks
//! a cached answer's sources against the caller's current access before serving it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::rag::Answer;

/// Entries kept.
const CAPACITY: usize = 512;
/// How long an entry is served.
const TTL: Duration = Duration::from_secs(600);

/// Answers by key with the time they were stored, and keys in insertion order.
type Entries = (HashMap<String, (Instant, Answer)>, VecDeque<String>);

/// A small LRU-by-insertion cache with a time to live.
#[derive(Debug, Default)]
pub struct AnswerCache {
    inner: Mutex<Entries>,
}

/// The cache key of a question.
pub fn key(index: &str, version: i64, k: usize, scope: &str, question: &str) -> String {
    let q = question
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    format!("{index}\u{0}{version}\u{0}{k}\u{0}{scope}\u{0}{q}")
}

impl AnswerCache {
    /// The cached answer for `key`, if fresh.
    pub fn get(&self, key: &str) -> Option<Answer> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .0
            .get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, a)| a.clone())
    }

    /// Forgets the answer under `key` (its sources are no longer all visible to its askers).
    pub fn remove(&self, key: &str) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        if map.remove(key).is_some() {
            order.retain(|k| k != key);
        }
    }

    /// Keeps `answer` under `key`, evicting the oldest entry when full.
    pub fn put(&self, key: String, answer: Answer) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(key.clone(), (Instant::now(), answer)).is_none() {
            order.push_back(key);
        }
        while order.len() > CAPACITY {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Answer {
        Answer {
            answer: text.into(),
            mode: "extractive".into(),
            sources: Vec::new(),
            model: None,
            usage: None,
            latency_ms: 1,
            cached: false,
        }
    }

    #[test]
    fn keys_normalise_the_question_but_not_the_version() {
        assert_eq!(
            key("d", 1, 5, "", "What  is X?"),
            key("d", 1, 5, "", "what is x?")
        );
        assert_ne!(key("d", 1, 5, "", "x"), key("d", 2, 5, "", "x"));
        assert_ne!(key("d", 1, 5, "a", "x"), key("d", 1, 5, "b", "x"));
    }

    #[test]
    fn the_oldest_entries_are_evicted() {
        let c = AnswerCache::default();
        for i in 0..CAPACITY + 10 {
            c.put(i.to_string(), answer(&i.to_string()));
        }
        assert!(c.get("0").is_none());
        assert_eq!(
            c.get(&(CAPACITY + 9).to_string()).unwrap().answer,
            (CAPACITY + 9).to_string()
        );
    }
}

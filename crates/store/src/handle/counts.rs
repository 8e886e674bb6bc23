//! A cache of list totals. `COUNT(*)` over a large filtered set costs far more than the page
//! itself, and most list requests repeat the same filter between writes. Every committed
//! write (and schema change) bumps one data version, which invalidates every cached total;
//! a short time-to-live bounds staleness when other processes write to a shared PostgreSQL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sql::Sql;

/// Entries kept before the cache is cleared wholesale.
const MAX_ENTRIES: usize = 4096;

pub(crate) struct CountCache {
    version: AtomicU64,
    ttl: Duration,
    entries: Mutex<HashMap<String, (u64, i64, Instant)>>,
}

impl CountCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        CountCache {
            version: AtomicU64::new(0),
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Invalidates every cached total (call after each committed write).
    pub(crate) fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The current data version; pass it to [`CountCache::put`] with a total computed after.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The key of a count: the table and the exact filter with its values.
    pub(crate) fn key(table: &str, filter: Option<&Sql>) -> String {
        match filter {
            None => table.to_string(),
            Some(f) => format!("{table}\u{0}{}\u{0}{:?}", f.text, f.params),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<i64> {
        let current = self.version();
        let entries = self.entries.lock().ok()?;
        let (version, count, at) = entries.get(key)?;
        (*version == current && at.elapsed() < self.ttl).then_some(*count)
    }

    pub(crate) fn put(&self, key: String, version: u64, count: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (version, count, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_invalidate_and_ttl_expires() {
        let cache = CountCache::new(Duration::from_secs(60));
        let v = cache.version();
        cache.put("posts".into(), v, 7);
        assert_eq!(cache.get("posts"), Some(7));
        cache.bump();
        assert_eq!(cache.get("posts"), None, "a write invalidates");
        // A total computed before a write must not be served after it.
        let before = cache.version();
        cache.bump();
        cache.put("posts".into(), before, 9);
        assert_eq!(cache.get("posts"), None);
        let short = CountCache::new(Duration::from_millis(0));
        short.put("x".into(), short.version(), 1);
        assert_eq!(short.get("x"), None, "expired");
    }
}

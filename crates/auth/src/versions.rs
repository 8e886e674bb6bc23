//! Which access tokens are still current. Every account has a token version in the
//! database, and each access token carries the version it was issued at. Logout, a password
//! change or reset, a role change and refresh-token reuse increment it, so every token
//! issued before stops working, on every process sharing the database.
//!
//! Asking the database on every request would cost a round trip per request, so each process
//! remembers an account's version for at most [`CACHE_TTL`]: another process notices a
//! revocation within that time. The process that revokes forgets its entry at once, so its
//! own next request already refuses the old tokens.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a process trusts a version it read: the longest a revoked token keeps working
/// on another process.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// Past this many remembered accounts, stale entries are dropped (memory stays bounded).
const MAX_ENTRIES: usize = 50_000;

#[derive(Debug, Clone, Copy)]
enum Entry {
    /// The version read by a lookup that started at `read_at` (`None`: no such account).
    Known {
        version: Option<i64>,
        read_at: Instant,
    },
    /// Revoked here at `at`: lookups that started earlier may have read the old version
    /// and must not be remembered.
    Forgotten { at: Instant },
}

/// Per-account token versions, cached briefly.
#[derive(Debug)]
pub struct TokenVersions {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl TokenVersions {
    /// An empty cache trusting what it reads for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        TokenVersions {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a token issued at `version` of account `user_id` is still current: the
    /// account exists and nothing revoked its tokens since. `read` asks the database for the
    /// account's version (`None`: no such account) when the cache cannot answer.
    ///
    /// # Errors
    /// `read`'s error (the caller answers 5xx, not "revoked").
    pub async fn is_current<F, Fut, E>(
        &self,
        user_id: &str,
        version: i64,
        read: F,
    ) -> Result<bool, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<i64>, E>>,
    {
        if let Some(known) = self.cached(user_id) {
            return Ok(known == Some(version));
        }
        let read_at = Instant::now();
        let current = read().await?;
        self.remember(user_id, current, read_at);
        Ok(current == Some(version))
    }

    /// Drops what this process knows of `user_id` after it revoked the account's tokens, so
    /// its next request reads the new version.
    pub fn forget(&self, user_id: &str) {
        let mut entries = self.lock();
        entries.insert(user_id.to_string(), Entry::Forgotten { at: Instant::now() });
        Self::bound(&mut entries, self.ttl);
    }

    fn cached(&self, user_id: &str) -> Option<Option<i64>> {
        match self.lock().get(user_id) {
            Some(Entry::Known { version, read_at }) if read_at.elapsed() < self.ttl => {
                Some(*version)
            }
            _ => None,
        }
    }

    fn remember(&self, user_id: &str, version: Option<i64>, read_at: Instant) {
        // A read that took longer than the TTL may predate a revocation whose marker is
        // already gone; one that started before the entry we hold (a newer read, or a
        // revocation here) is older news. Neither is kept.
        if read_at.elapsed() >= self.ttl {
            return;
        }
        let mut entries = self.lock();
        let newer = match entries.get(user_id) {
            Some(Entry::Forgotten { at }) => *at >= read_at,
            Some(Entry::Known { read_at: held, .. }) => *held > read_at,
            None => false,
        };
        if newer {
            return;
        }
        entries.insert(user_id.to_string(), Entry::Known { version, read_at });
        Self::bound(&mut entries, self.ttl);
    }

    fn bound(entries: &mut HashMap<String, Entry>, ttl: Duration) {
        if entries.len() > MAX_ENTRIES {
            entries.retain(|_, e| match e {
                Entry::Known { read_at, .. } => read_at.elapsed() < ttl,
                Entry::Forgotten { at } => at.elapsed() < ttl,
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map holds no invariant a panic could break half-way.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_forgetting_wins_over_older_reads() {
        let versions = TokenVersions::new(Duration::from_millis(50));
        let before = Instant::now();
        versions.remember("u", Some(1), before);
        assert_eq!(versions.cached("u"), Some(Some(1)));
        versions.forget("u");
        assert_eq!(versions.cached("u"), None, "forgotten at once");
        versions.remember("u", Some(1), before);
        assert_eq!(
            versions.cached("u"),
            None,
            "a read that started before the revocation is not remembered"
        );
        versions.remember("u", Some(2), Instant::now());
        assert_eq!(versions.cached("u"), Some(Some(2)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(versions.cached("u"), None, "trusted for the TTL only");
    }

    #[test]
    fn a_slow_old_read_does_not_replace_a_newer_one() {
        let versions = TokenVersions::new(Duration::from_secs(5));
        let slow = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        versions.forget("u");
        versions.remember("u", Some(2), Instant::now());
        // The read that started before the revocation finishes last.
        versions.remember("u", Some(1), slow);
        assert_eq!(versions.cached("u"), Some(Some(2)));
        // A read slower than the TTL is not kept at all.
        let short = TokenVersions::new(Duration::from_millis(10));
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(15));
        short.remember("v", Some(1), started);
        assert_eq!(short.cached("v"), None);
    }
}

//! Short-term `jti` storage against replayed JWTs. An entry lives until its token could no longer
//! be accepted (`exp` + clock skew); expired entries are swept lazily. The store is per process:
//! several replicas behind a load balancer each keep their own (documented in docs/security.md).

use std::collections::HashMap;
use std::sync::Mutex;

/// Default bound on remembered `jti`s. With tokens limited to an hour this is far above what a
/// CDS client sends; when it is reached after a sweep, new tokens are refused (fail closed).
pub const DEFAULT_MAX_ENTRIES: usize = 500_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// This `(iss, jti)` was already accepted and has not expired.
    Replayed,
    /// The store is full of unexpired entries.
    Full,
}

#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<Inner>,
    max_entries: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// `iss` NUL `jti` -> time (Unix seconds) after which the entry may be forgotten.
    entries: HashMap<String, i64>,
    last_sweep: i64,
}

impl ReplayCache {
    pub fn new(max_entries: usize) -> ReplayCache {
        ReplayCache {
            inner: Mutex::new(Inner::default()),
            max_entries,
        }
    }

    /// Records `(iss, jti)` until `forget_after`, or says it was seen before.
    pub fn check_and_insert(
        &self,
        iss: &str,
        jti: &str,
        forget_after: i64,
        now: i64,
    ) -> Result<(), ReplayError> {
        let key = format!("{iss}\u{0}{jti}");
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&until) = inner.entries.get(&key)
            && until >= now
        {
            return Err(ReplayError::Replayed);
        }
        if inner.entries.len() >= self.max_entries || now - inner.last_sweep >= 60 {
            inner.entries.retain(|_, until| *until >= now);
            inner.last_sweep = now;
        }
        if inner.entries.len() >= self.max_entries {
            return Err(ReplayError::Full);
        }
        inner.entries.insert(key, forget_after);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(DEFAULT_MAX_ENTRIES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_expiry() {
        let c = ReplayCache::new(10);
        c.check_and_insert("iss", "a", 100, 0).unwrap();
        assert_eq!(
            c.check_and_insert("iss", "a", 100, 50),
            Err(ReplayError::Replayed)
        );
        // Same jti from another issuer is a different token.
        c.check_and_insert("other", "a", 100, 50).unwrap();
        // After expiry the entry is forgotten (the token itself is rejected as expired anyway).
        c.check_and_insert("iss", "a", 300, 101).unwrap();
    }

    #[test]
    fn full_store_fails_closed_and_sweeps() {
        let c = ReplayCache::new(2);
        c.check_and_insert("i", "1", 10, 0).unwrap();
        c.check_and_insert("i", "2", 10, 0).unwrap();
        assert_eq!(c.check_and_insert("i", "3", 10, 5), Err(ReplayError::Full));
        // Once the first two expire, the sweep makes room.
        c.check_and_insert("i", "3", 30, 11).unwrap();
        assert_eq!(c.len(), 1);
    }
}

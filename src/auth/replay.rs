//! Short-term `jti` storage against replayed JWTs. An entry lives until its token could no longer
//! be accepted (`exp` + clock skew); expired entries are swept lazily.
//!
//! [`ReplayStore`] picks where: with a PostgreSQL audit store the entries live in its
//! `auth_jti_seen` table, shared by every replica (an insert-if-absent, so a token replayed on
//! any replica is refused); with SQLite (a single instance) they stay in process memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

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

/// How long a shared check may take before this replica falls back to its own memory.
const SHARED_TIMEOUT: Duration = Duration::from_millis(1000);
/// Expired rows are deleted at most this often (seconds) per replica.
const PURGE_EVERY_SECS: i64 = 60;

/// Where accepted `jti`s are remembered.
#[derive(Debug)]
pub enum ReplayStore {
    /// This process only (SQLite deployments: one instance).
    Memory(ReplayCache),
    /// The PostgreSQL audit database, shared by all replicas.
    Shared(SharedReplay),
}

impl ReplayStore {
    /// Shared when `audit_db` is a PostgreSQL URL, in memory otherwise.
    pub fn for_audit_db(audit_db: &str, max_entries: usize) -> ReplayStore {
        match crate::audit::db::AuditDbLocation::parse(audit_db) {
            Ok(crate::audit::db::AuditDbLocation::Postgres(url)) => {
                ReplayStore::Shared(SharedReplay::new(url, max_entries))
            }
            _ => ReplayStore::Memory(ReplayCache::new(max_entries)),
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, ReplayStore::Shared(_))
    }

    /// Records `(iss, jti)` until `forget_after`, or says it was seen before.
    pub async fn check_and_insert(
        &self,
        iss: &str,
        jti: &str,
        forget_after: i64,
        now: i64,
    ) -> Result<(), ReplayError> {
        match self {
            ReplayStore::Memory(c) => c.check_and_insert(iss, jti, forget_after, now),
            ReplayStore::Shared(s) => s.check_and_insert(iss, jti, forget_after, now).await,
        }
    }
}

/// The `auth_jti_seen` table of the PostgreSQL audit store (created by the audit migrations).
/// While the database cannot be reached the replica falls back to its own memory, logging a
/// warning: advice keeps flowing and replays on this replica are still refused; replays across
/// replicas are caught again once the database is back.
pub struct SharedReplay {
    url: String,
    pool: tokio::sync::OnceCell<sqlx::PgPool>,
    fallback: ReplayCache,
    last_purge: AtomicI64,
}

impl std::fmt::Debug for SharedReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedReplay")
    }
}

impl SharedReplay {
    pub fn new(url: String, max_entries: usize) -> SharedReplay {
        SharedReplay {
            url,
            pool: tokio::sync::OnceCell::new(),
            fallback: ReplayCache::new(max_entries),
            last_purge: AtomicI64::new(0),
        }
    }

    async fn pool(&self) -> Result<&sqlx::PgPool, sqlx::Error> {
        self.pool
            .get_or_try_init(|| async {
                // Lazy: nothing is contacted until the first token; small, the checks are short.
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(SHARED_TIMEOUT)
                    .connect_lazy(&self.url)
            })
            .await
    }

    async fn check_and_insert(
        &self,
        iss: &str,
        jti: &str,
        forget_after: i64,
        now: i64,
    ) -> Result<(), ReplayError> {
        match tokio::time::timeout(SHARED_TIMEOUT, self.insert(iss, jti, forget_after, now)).await {
            Ok(Ok(true)) => {
                self.purge_if_due(now).await;
                Ok(())
            }
            Ok(Ok(false)) => Err(ReplayError::Replayed),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "shared jti cache unavailable; using this replica's memory");
                self.fallback.check_and_insert(iss, jti, forget_after, now)
            }
            Err(_) => {
                tracing::warn!("shared jti cache timed out; using this replica's memory");
                self.fallback.check_and_insert(iss, jti, forget_after, now)
            }
        }
    }

    /// True when this `(iss, jti)` was not held (absent, or its entry had expired).
    async fn insert(
        &self,
        iss: &str,
        jti: &str,
        forget_after: i64,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let pool = self.pool().await?;
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO auth_jti_seen (iss, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (iss, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at \
             WHERE auth_jti_seen.expires_at < $4 \
             RETURNING expires_at",
        )
        .bind(iss)
        .bind(jti)
        .bind(forget_after)
        .bind(now)
        .fetch_optional(pool)
        .await?;
        Ok(row.is_some())
    }

    async fn purge_if_due(&self, now: i64) {
        let last = self.last_purge.load(Ordering::Relaxed);
        if now - last < PURGE_EVERY_SECS
            || self
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Ok(pool) = self.pool().await {
            let purge = sqlx::query("DELETE FROM auth_jti_seen WHERE expires_at < $1")
                .bind(now)
                .execute(pool);
            match tokio::time::timeout(SHARED_TIMEOUT, purge).await {
                Ok(Ok(done)) => {
                    tracing::debug!(purged = done.rows_affected(), "expired jti entries purged")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "purging expired jti entries failed"),
                Err(_) => tracing::warn!("purging expired jti entries timed out"),
            }
        }
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

    /// The shared cache: insert-if-absent, an expired entry can be taken again, expired rows
    /// are purged.
    #[tokio::test]
    #[ignore = "needs PostgreSQL (VCF_TEST_POSTGRES_URL)"]
    async fn shared_cache_in_postgres() {
        let url = crate::audit::testing::fresh_postgres_db()
            .await
            .expect("VCF_TEST_POSTGRES_URL must be set");
        // The audit store's migrations create the table.
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::audit::testing::settings_in(dir.path(), Some(url.clone()));
        let audit = crate::audit::AuditStore::open(&settings).await.unwrap();
        let store = ReplayStore::for_audit_db(&url, 10);
        assert!(store.is_shared());
        let other_replica = ReplayStore::for_audit_db(&url, 10);
        store
            .check_and_insert("iss", "a", 1_000, 100)
            .await
            .unwrap();
        assert_eq!(
            other_replica.check_and_insert("iss", "a", 1_000, 101).await,
            Err(ReplayError::Replayed)
        );
        other_replica
            .check_and_insert("other-iss", "a", 1_000, 101)
            .await
            .unwrap();
        // Past its expiry the entry may be taken again.
        store
            .check_and_insert("iss", "old", 150, 100)
            .await
            .unwrap();
        other_replica
            .check_and_insert("iss", "old", 400, 200)
            .await
            .unwrap();
        // Purge (due: never purged before) removes rows expired at `now`.
        store
            .check_and_insert("iss", "b", 2_000, 1_500)
            .await
            .unwrap();
        let ReplayStore::Shared(shared) = &store else {
            unreachable!()
        };
        let pool = shared.pool().await.unwrap();
        let left: Vec<(String,)> =
            sqlx::query_as("SELECT jti FROM auth_jti_seen ORDER BY jti, iss")
                .fetch_all(pool)
                .await
                .unwrap();
        let left: Vec<&str> = left.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(left, ["b"], "rows expired before 1500 purged");
        audit.shutdown().await;
    }
}

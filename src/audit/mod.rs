//! Compliance audit trail.
//!
//! Every hook call is recorded before its response is sent: one `audit_calls` row per call (also
//! when the call had no draft order) and one `audit_orders` row per draft order with the
//! engine's verdict. Feedback entries are recorded the same way. The store is SQLite (default,
//! a file) or PostgreSQL (a `postgres://` URL in `audit_db`), with the same schema and SQL.
//!
//! Durability: records are committed by a single writer task in group commits; the caller waits
//! for the commit. When the store fails or does not answer within `audit_write_timeout_ms`, the
//! records are appended to a local spool file and `fsync`ed instead ([`Delivery::Spooled`]: the
//! response goes out, the record is "undelivered" until a background task replays the spool).
//! Only if the spool cannot be written either is a record held in memory ([`Delivery::Volatile`],
//! counted, logged at error level). Identifiers (user, patient, encounter) are pseudonymized
//! with HMAC-SHA-256 when `audit_pseudonym_key` is set, before anything is written.

pub mod cli;
pub mod db;
pub mod feedback;
pub mod pseudonym;
pub mod query;
pub mod records;
pub mod seed;
pub mod spool;
mod sql;
mod sqlite_writer;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod writer;

pub use records::{HookCallRecord, SpoolRecord, StoredCall, StoredFeedback, StoredOrder};

use crate::configuration::{Secret, Settings};
use db::{AuditDbLocation, Db, StoreError};
use pseudonym::Pseudonymizer;
use spool::Spool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use writer::{Counters, Msg, Writer};

/// What happened to the audit records of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Committed to the store.
    Committed,
    /// The store was unavailable: written and fsynced to the local spool, replayed later.
    Spooled,
    /// Neither the store nor the spool could take the records (disk failure): held in memory
    /// and retried, lost if the process dies first. Counted in `volatile`.
    Volatile,
}

impl Delivery {
    /// True when the records survive a crash of the process.
    pub fn is_durable(self) -> bool {
        !matches!(self, Delivery::Volatile)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Committed => "committed",
            Delivery::Spooled => "spooled",
            Delivery::Volatile => "volatile",
        }
    }
}

/// Counters for `/metrics` and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AuditMetrics {
    /// Records (hook calls + feedback entries) committed directly.
    pub records_committed: u64,
    /// Group-commit transactions.
    pub commit_batches: u64,
    /// Records written to the spool because the store was unavailable (the response was sent
    /// before the record reached the store: "undelivered" at that moment).
    pub records_spooled: u64,
    /// Records replayed from the spool into the store.
    pub records_replayed: u64,
    /// Records currently waiting in the spool.
    pub spool_backlog: u64,
    /// Responses whose records were not in the store when the response was sent
    /// (spooled + volatile).
    pub undelivered: u64,
    /// Records that could not even be spooled (held in memory), since start.
    pub volatile: u64,
    /// Records currently held in memory only.
    pub volatile_pending: u64,
    /// Spooled records the store refused (kept in the spool's `dead-letter.jsonl`).
    pub dead_letter: u64,
    /// Times the store went from available to unavailable.
    pub store_failures: u64,
    pub store_up: bool,
}

impl AuditMetrics {
    /// Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        let mut s = String::new();
        let mut c = |name: &str, kind: &str, help: &str, v: u64| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        c(
            "vcf_cds_audit_records_committed_total",
            "counter",
            "Audit records committed directly to the store.",
            self.records_committed,
        );
        c(
            "vcf_cds_audit_commit_batches_total",
            "counter",
            "Audit group-commit transactions.",
            self.commit_batches,
        );
        c(
            "vcf_cds_audit_records_spooled_total",
            "counter",
            "Audit records written to the local spool because the store was unavailable.",
            self.records_spooled,
        );
        c(
            "vcf_cds_audit_records_replayed_total",
            "counter",
            "Audit records replayed from the spool into the store.",
            self.records_replayed,
        );
        c(
            "vcf_cds_audit_spool_backlog",
            "gauge",
            "Audit records waiting in the spool.",
            self.spool_backlog,
        );
        c(
            "vcf_cds_audit_undelivered_total",
            "counter",
            "Responses sent before their audit records reached the store.",
            self.undelivered,
        );
        c(
            "vcf_cds_audit_volatile_total",
            "counter",
            "Audit records that could not be spooled (memory only).",
            self.volatile,
        );
        c(
            "vcf_cds_audit_dead_letter_total",
            "counter",
            "Spooled audit records the store refused.",
            self.dead_letter,
        );
        c(
            "vcf_cds_audit_store_up",
            "gauge",
            "1 when the audit store is reachable.",
            u64::from(self.store_up),
        );
        s
    }
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    /// `None` for [`AuditStore::disabled`].
    db: Option<Arc<Db>>,
    counters: Arc<Counters>,
    pseudonymizer: Pseudonymizer,
    location: AuditDbLocation,
    retention_days: u32,
    /// Answers when the writer thread has finished (after [`AuditStore::shutdown`]).
    writer: Mutex<Option<oneshot::Receiver<()>>>,
    purger: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Hook calls being evaluated (see [`AuditStore::call_started`]).
    in_flight: Arc<InFlightCount>,
}

/// The number of hook calls being evaluated, and a signal for the writer when it drops to zero.
#[derive(Debug, Default)]
pub(crate) struct InFlightCount {
    pub(crate) n: AtomicUsize,
    /// Notified when `n` drops to zero: the writer sleeps on this during a group commit wait
    /// instead of waking for every record queued meanwhile.
    pub(crate) none: tokio::sync::Notify,
}

/// A hook call being evaluated, counted until dropped (see [`AuditStore::call_started`]).
#[must_use]
pub struct InFlight(Arc<InFlightCount>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none.notify_one();
        }
    }
}

/// The audit trail handle; cheap to clone.
#[derive(Clone)]
pub struct AuditStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStore")
            .field("store", &self.inner.location.describe())
            .finish()
    }
}

/// Runs the writer on a thread of its own, on a single-threaded runtime. Its SQLite commits are
/// synchronous (`sqlite_writer`): they block this runtime only, and the hand-off from a web
/// worker is one wake-up each way. Answers when the writer has finished.
fn spawn_writer(
    writer: Writer,
    rx: mpsc::Receiver<Msg>,
) -> Result<oneshot::Receiver<()>, StoreError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Writer(format!("cannot build its runtime: {e}")))?;
    let (done, finished) = oneshot::channel();
    std::thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || {
            rt.block_on(writer.run(rx));
            let _ = done.send(());
        })
        .map_err(|e| StoreError::Writer(format!("cannot start its thread: {e}")))?;
    Ok(finished)
}

impl AuditStore {
    /// Opens the store named by `audit_db` and the spool in `audit_spool_dir`, runs migrations
    /// and starts the writer. Fails on an invalid `audit_db` or an unusable spool directory;
    /// an unreachable store is not an error (records are spooled until it is back).
    pub async fn open(settings: &Settings) -> Result<AuditStore, StoreError> {
        let location = AuditDbLocation::parse(&settings.audit_db).map_err(StoreError::Config)?;
        let write_timeout = Duration::from_millis(settings.audit_write_timeout_ms);
        let spool = Spool::open(&settings.audit_spool_dir).map_err(|e| {
            StoreError::Spool(format!(
                "audit spool directory {}: {e}",
                settings.audit_spool_dir.display()
            ))
        })?;
        let backlog = spool.backlog();
        let db = Arc::new(Db::new(&location, write_timeout)?);
        let store_up = match tokio::time::timeout(
            write_timeout.max(Duration::from_secs(5)),
            db.ensure_ready(),
        )
        .await
        {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(store = %location.describe(), error = %e, "audit store unavailable at start-up; spooling until it is back");
                false
            }
            Err(_) => {
                tracing::error!(store = %location.describe(), "audit store did not answer at start-up; spooling until it is back");
                false
            }
        };
        tracing::info!(
            store = %location.describe(),
            store_up,
            spool_backlog = backlog,
            pseudonymized = settings.audit_pseudonym_key.is_some(),
            "audit trail open"
        );
        let counters = Arc::new(Counters::default());
        counters.store_up.store(store_up, Ordering::Release);
        counters.backlog.store(backlog, Ordering::Release);
        let (tx, rx) = mpsc::channel(8192);
        let in_flight = Arc::new(InFlightCount::default());
        let writer = Writer {
            db: db.clone(),
            spool: Arc::new(Mutex::new(spool)),
            counters: counters.clone(),
            write_timeout,
            retry_interval: Duration::from_millis(settings.audit_retry_interval_ms),
            store_up,
            memory: vec![],
            paused: false,
            probe: None,
            in_flight: in_flight.clone(),
            group_wait: Duration::from_micros(settings.audit_group_commit_wait_us),
        };
        let handle = spawn_writer(writer, rx)?;
        let store = AuditStore {
            inner: Arc::new(Inner {
                tx,
                db: Some(db),
                counters,
                pseudonymizer: Pseudonymizer::new(
                    settings.audit_pseudonym_key.as_ref().map(Secret::expose),
                ),
                location,
                retention_days: settings.audit_retention_days,
                writer: Mutex::new(Some(handle)),
                purger: Mutex::new(None),
                in_flight,
            }),
        };
        if settings.audit_retention_days > 0 {
            let s = store.clone();
            let h = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    tick.tick().await;
                    if let Err(e) = s.purge_expired().await {
                        tracing::warn!(error = %e, "audit retention purge failed; retried in an hour");
                    }
                }
            });
            *store.inner.purger.lock().expect("fresh mutex") = Some(h);
        }
        Ok(store)
    }

    /// A store that records nothing (every call answers [`Delivery::Volatile`]): for tools that
    /// build the application state without serving (`vcf-cds evaluate`).
    pub fn disabled() -> AuditStore {
        let (tx, _rx) = mpsc::channel(1);
        AuditStore {
            inner: Arc::new(Inner {
                tx,
                db: None,
                counters: Arc::new(Counters::default()),
                pseudonymizer: Pseudonymizer::new(None),
                location: AuditDbLocation::Sqlite("(disabled)".into()),
                retention_days: 0,
                writer: Mutex::new(None),
                purger: Mutex::new(None),
                in_flight: Arc::new(InFlightCount::default()),
            }),
        }
    }

    /// Counts a hook call as being evaluated until the guard is dropped (hand it to
    /// [`AuditStore::record_evaluated_call`]): the writer holds a group commit open for a moment
    /// while such calls are about to submit their records (`audit_group_commit_wait_us`).
    pub fn call_started(&self) -> InFlight {
        self.inner.in_flight.n.fetch_add(1, Ordering::AcqRel);
        InFlight(self.inner.in_flight.clone())
    }

    /// Records one hook call. Returns once the records are committed (or spooled); never fails.
    pub async fn record_hook_call(&self, record: HookCallRecord) -> Delivery {
        self.record_call(record, None).await
    }

    /// [`AuditStore::record_hook_call`] for a call counted by [`AuditStore::call_started`]: the
    /// count is released once the records are queued for the writer, not before. So when it
    /// drops to zero, every record of the calls it counted is already in the queue, and a
    /// waiting group commit can take them all at that moment.
    pub async fn record_evaluated_call(
        &self,
        record: HookCallRecord,
        evaluating: InFlight,
    ) -> Delivery {
        self.record_call(record, Some(evaluating)).await
    }

    async fn record_call(&self, record: HookCallRecord, evaluating: Option<InFlight>) -> Delivery {
        let call = StoredCall::from_record(record, &self.inner.pseudonymizer);
        self.submit(vec![SpoolRecord::Call(call)], evaluating).await
    }

    /// Records validated feedback entries (one request) together.
    pub async fn record_feedback(&self, entries: Vec<StoredFeedback>) -> Delivery {
        if entries.is_empty() {
            return Delivery::Committed;
        }
        self.submit(
            entries.into_iter().map(SpoolRecord::Feedback).collect(),
            None,
        )
        .await
    }

    async fn submit(&self, records: Vec<SpoolRecord>, evaluating: Option<InFlight>) -> Delivery {
        let n = records.len() as u64;
        let (reply, rx) = oneshot::channel();
        let sent = self.inner.tx.send(Msg::Write { records, reply }).await;
        drop(evaluating);
        let answer = match sent {
            Ok(()) => rx.await.ok(),
            Err(_) => None,
        };
        let delivery = answer.unwrap_or_else(|| {
            // The writer is gone (after shutdown): nothing can store the records.
            self.inner.counters.volatile.fetch_add(n, Ordering::Relaxed);
            Delivery::Volatile
        });
        if delivery == Delivery::Volatile {
            tracing::error!(records = n, "audit records not durably stored");
        }
        delivery
    }

    /// The store is reachable and migrated (for `/readyz`).
    pub fn ready(&self) -> bool {
        self.inner.counters.store_up.load(Ordering::Acquire)
    }

    /// Group-commit latency (seconds) and size (records) histograms, for `GET /metrics`.
    pub fn commit_histograms(
        &self,
    ) -> (
        prometheus_client::metrics::histogram::Histogram,
        prometheus_client::metrics::histogram::Histogram,
    ) {
        let c = &self.inner.counters.commit;
        (c.seconds.clone(), c.records.clone())
    }

    pub fn metrics(&self) -> AuditMetrics {
        let c = &self.inner.counters;
        let spooled = c.spooled.load(Ordering::Relaxed);
        let volatile = c.volatile.load(Ordering::Relaxed);
        AuditMetrics {
            records_committed: c.committed.load(Ordering::Relaxed),
            commit_batches: c.batches.load(Ordering::Relaxed),
            records_spooled: spooled,
            records_replayed: c.replayed.load(Ordering::Relaxed),
            spool_backlog: c.backlog.load(Ordering::Relaxed),
            undelivered: spooled + volatile,
            volatile,
            volatile_pending: c.volatile_pending.load(Ordering::Relaxed),
            dead_letter: c.dead_letter.load(Ordering::Relaxed),
            store_failures: c.store_failures.load(Ordering::Relaxed),
            store_up: c.store_up.load(Ordering::Acquire),
        }
    }

    /// Replays the spool into the store now; true when nothing is left outside the store.
    pub async fn flush(&self) -> bool {
        let (reply, rx) = oneshot::channel();
        if self.inner.tx.send(Msg::Flush { reply }).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Graceful shutdown: commits what is queued, replays the spool if the store is up (up to
    /// 5 s), closes the pool. Call after the HTTP server stopped.
    pub async fn shutdown(&self) {
        if let Some(h) = self.inner.purger.lock().ok().and_then(|mut p| p.take()) {
            h.abort();
        }
        let (reply, rx) = oneshot::channel();
        if self.inner.tx.send(Msg::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.await;
            let m = self.metrics();
            tracing::info!(
                records_committed = m.records_committed,
                records_spooled = m.records_spooled,
                spool_backlog = m.spool_backlog,
                "audit trail closed"
            );
        }
    }

    /// Deletes records older than `audit_retention_days` (no-op when 0).
    pub async fn purge_expired(&self) -> Result<(u64, u64, u64), StoreError> {
        if self.inner.retention_days == 0 {
            return Ok((0, 0, 0));
        }
        let cutoff = time::OffsetDateTime::now_utc()
            - time::Duration::days(i64::from(self.inner.retention_days));
        self.purge_before(cutoff).await
    }

    /// Deletes records received before `cutoff`: (calls, orders, feedback) deleted.
    pub async fn purge_before(
        &self,
        cutoff: time::OffsetDateTime,
    ) -> Result<(u64, u64, u64), StoreError> {
        let db = self.db().ok_or(StoreError::Disabled)?;
        let counts = db.purge_before(records::epoch_ms(cutoff)).await?;
        tracing::info!(
            calls = counts.0,
            orders = counts.1,
            feedback = counts.2,
            "audit retention purge"
        );
        Ok(counts)
    }

    /// The store for queries (`None` for a disabled store).
    pub fn db(&self) -> Option<&Db> {
        self.inner.db.as_deref()
    }

    pub fn pseudonymizer(&self) -> &Pseudonymizer {
        &self.inner.pseudonymizer
    }

    pub fn location(&self) -> &AuditDbLocation {
        &self.inner.location
    }
}

#[cfg(test)]
mod tests;

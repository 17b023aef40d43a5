//! The single writer task. Every record goes through it; it commits whatever has queued up while
//! the previous transaction ran in one transaction (group commit), falls back to the spool when
//! the store fails or is slow, and replays the spool when the store is back.

use super::db::Db;
use super::records::SpoolRecord;
use super::spool::Spool;
use super::{Delivery, InFlightCount};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{MissedTickBehavior, timeout};

/// Most records committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Records replayed from the spool per transaction.
const REPLAY_CHUNK: usize = 512;

pub(crate) enum Msg {
    Write {
        records: Vec<SpoolRecord>,
        reply: oneshot::Sender<Delivery>,
    },
    /// Replay the spool now (as far as the store takes it); answers whether it is empty.
    Flush {
        reply: oneshot::Sender<bool>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Counters shared with [`super::AuditStore::metrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub committed: AtomicU64,
    pub spooled: AtomicU64,
    pub replayed: AtomicU64,
    pub volatile: AtomicU64,
    pub volatile_pending: AtomicU64,
    pub dead_letter: AtomicU64,
    pub store_failures: AtomicU64,
    pub batches: AtomicU64,
    pub backlog: AtomicU64,
    pub store_up: AtomicBool,
    /// Group-commit latency and size (exposed by `GET /metrics`).
    pub commit: CommitHistograms,
}

/// Histograms of the group commits.
#[derive(Debug, Clone)]
pub(crate) struct CommitHistograms {
    pub seconds: prometheus_client::metrics::histogram::Histogram,
    pub records: prometheus_client::metrics::histogram::Histogram,
}

impl Default for CommitHistograms {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
        CommitHistograms {
            // 0.5 ms .. ~8 s; 1 .. 512 records.
            seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
            records: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
        }
    }
}

type Jobs = Vec<(Vec<SpoolRecord>, oneshot::Sender<Delivery>)>;

/// The writes of one group commit, and the control message that ended the group (handled
/// after the commit).
struct Group {
    jobs: Jobs,
    /// Records in `jobs`.
    n: usize,
    control: Option<Msg>,
}

impl Group {
    fn open(&self) -> bool {
        self.control.is_none() && self.n < MAX_BATCH
    }

    fn add(&mut self, msg: Msg) {
        match msg {
            Msg::Write { records, reply } => {
                self.n += records.len();
                self.jobs.push((records, reply));
            }
            other => self.control = Some(other),
        }
    }

    /// Adds what is already queued, as far as the group stays open; never waits.
    fn take_queued(&mut self, rx: &mut mpsc::Receiver<Msg>) {
        while self.open() {
            match rx.try_recv() {
                Ok(msg) => self.add(msg),
                Err(_) => break,
            }
        }
    }
}

pub(crate) struct Writer {
    pub db: Arc<Db>,
    pub spool: Arc<Mutex<Spool>>,
    pub counters: Arc<Counters>,
    pub write_timeout: Duration,
    pub retry_interval: Duration,
    pub store_up: bool,
    /// Records neither the store nor the spool took (disk trouble); retried on every tick.
    pub memory: Vec<SpoolRecord>,
    /// Spool replay paused until the next tick (after a spool read error).
    pub paused: bool,
    /// Background probe of an unavailable store.
    pub probe: Option<tokio::task::JoinHandle<bool>>,
    /// Hook calls being evaluated whose records have not been queued yet
    /// ([`super::AuditStore::call_started`]).
    pub in_flight: Arc<InFlightCount>,
    /// How long a group commit may wait for calls still being evaluated (0: never waits).
    pub group_wait: Duration,
}

fn now_ms() -> i64 {
    super::records::epoch_ms(time::OffsetDateTime::now_utc())
}

impl Writer {
    fn set_store_up(&mut self, up: bool) {
        if self.store_up != up {
            if up {
                tracing::info!("audit store reachable");
            } else {
                self.counters.store_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.store_up = up;
        self.counters.store_up.store(up, Ordering::Release);
    }

    fn backlog(&self) -> u64 {
        self.spool.lock().map(|s| s.backlog()).unwrap_or(0)
    }

    fn publish_backlog(&self) {
        self.counters
            .backlog
            .store(self.backlog(), Ordering::Release);
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut tick = tokio::time::interval(self.retry_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.publish_backlog();
        loop {
            let draining = self.store_up && !self.paused && self.backlog() > 0;
            tokio::select! {
                biased;
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    match msg {
                        Msg::Write { records, reply } => {
                            let group = self.collect(&mut rx, records, reply).await;
                            self.write(group.jobs).await;
                            if let Some(m) = group.control
                                && self.control(m, &mut rx).await
                            {
                                return;
                            }
                        }
                        other => {
                            if self.control(other, &mut rx).await {
                                return;
                            }
                        }
                    }
                }
                _ = tick.tick() => self.retry().await,
                _ = std::future::ready(()), if draining => {
                    self.drain_step().await;
                }
            }
        }
        self.db.close().await;
    }

    /// The group of one commit: `first`, whatever has queued up behind it, and then (group
    /// commit wait) while other hook calls are still being evaluated, whatever they submit
    /// within `group_wait`: their records follow within a fraction of a millisecond, and one
    /// commit and one `fsync` then serve them all. No wait when no call is in flight (an idle
    /// server commits a lone call at once). A control message ends the group.
    ///
    /// During the wait this task sleeps until no call is in flight or the wait is over, and
    /// then takes what has queued. It used to wake for every record as it arrived: at 32
    /// connections that was about ten wake-ups of this thread (and as many `eventfd` writes by
    /// the senders) per commit, for nothing but moving a record from the queue into the group.
    async fn collect(
        &self,
        rx: &mut mpsc::Receiver<Msg>,
        first: Vec<SpoolRecord>,
        reply: oneshot::Sender<Delivery>,
    ) -> Group {
        let mut group = Group {
            n: first.len(),
            jobs: vec![(first, reply)],
            control: None,
        };
        group.take_queued(rx);
        if self.group_wait.is_zero() || !self.store_up {
            return group;
        }
        let deadline = tokio::time::Instant::now() + self.group_wait;
        while group.open() {
            // Registered before the count is read, so a drop to zero in between is not missed.
            let none_in_flight = self.in_flight.none.notified();
            tokio::pin!(none_in_flight);
            none_in_flight.as_mut().enable();
            let done = self.in_flight.n.load(Ordering::Acquire) == 0
                || tokio::time::timeout_at(deadline, none_in_flight)
                    .await
                    .is_err();
            // A call queues its records before it stops counting (`record_evaluated_call`), so
            // once the count is zero they are all in the queue.
            group.take_queued(rx);
            if done {
                break;
            }
        }
        group
    }

    /// Handles Flush / Shutdown; true when the writer must stop.
    async fn control(&mut self, msg: Msg, rx: &mut mpsc::Receiver<Msg>) -> bool {
        match msg {
            Msg::Write { records, reply } => {
                self.write(vec![(records, reply)]).await;
                false
            }
            Msg::Flush { reply } => {
                let empty = self.flush(Duration::from_secs(30)).await;
                let _ = reply.send(empty);
                false
            }
            Msg::Shutdown { reply } => {
                rx.close();
                while let Some(m) = rx.recv().await {
                    match m {
                        Msg::Write { records, reply } => self.write(vec![(records, reply)]).await,
                        Msg::Flush { reply } => {
                            let _ = reply.send(self.backlog() == 0);
                        }
                        Msg::Shutdown { reply } => {
                            let _ = reply.send(());
                        }
                    }
                }
                self.flush(Duration::from_secs(5)).await;
                if !self.memory.is_empty() {
                    self.retry().await;
                }
                let backlog = self.backlog();
                if backlog > 0 || !self.memory.is_empty() {
                    tracing::warn!(
                        spool_backlog = backlog,
                        in_memory = self.memory.len(),
                        "audit: shutting down with records not yet in the store (the spool is replayed at next start)"
                    );
                }
                self.db.close().await;
                let _ = reply.send(());
                true
            }
        }
    }

    async fn write(&mut self, jobs: Jobs) {
        let refs: Vec<&SpoolRecord> = jobs.iter().flat_map(|(r, _)| r.iter()).collect();
        let n = refs.len() as u64;
        let delivery = if self.store_up {
            let started = std::time::Instant::now();
            match timeout(
                self.write_timeout,
                self.db.insert_batch(&refs, "committed", now_ms()),
            )
            .await
            {
                Ok(Ok(())) => {
                    self.counters.committed.fetch_add(n, Ordering::Relaxed);
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                    let commit = &self.counters.commit;
                    commit.seconds.observe(started.elapsed().as_secs_f64());
                    commit.records.observe(n as f64);
                    Ok(Delivery::Committed)
                }
                Ok(Err(e)) => {
                    tracing::warn!(records = n, error = %e, "audit store write failed; spooling");
                    Err(self.db.is_record_error(&e))
                }
                Err(_) => {
                    tracing::warn!(
                        records = n,
                        timeout_ms = self.write_timeout.as_millis() as u64,
                        "audit store write timed out; spooling"
                    );
                    Err(false)
                }
            }
        } else {
            Err(false)
        };
        let delivery = match delivery {
            Ok(d) => d,
            Err(record_error) => {
                if !record_error {
                    // The store is in trouble: spool directly until a probe succeeds.
                    self.set_store_up(false);
                }
                let owned: Vec<SpoolRecord> = refs.into_iter().cloned().collect();
                self.spool_records(owned).await
            }
        };
        for (_, reply) in jobs {
            let _ = reply.send(delivery);
        }
    }

    /// Appends to the spool (fsync); keeps the records in memory when even that fails.
    async fn spool_records(&mut self, records: Vec<SpoolRecord>) -> Delivery {
        let n = records.len() as u64;
        match append_to_spool(&self.spool, records).await {
            Ok(()) => {
                self.counters.spooled.fetch_add(n, Ordering::Relaxed);
                self.publish_backlog();
                Delivery::Spooled
            }
            Err((e, Some(records))) => {
                tracing::error!(records = n, error = %e, "audit spool write failed; records kept in memory only");
                self.counters.volatile.fetch_add(n, Ordering::Relaxed);
                self.counters
                    .volatile_pending
                    .fetch_add(n, Ordering::Relaxed);
                self.memory.extend(records);
                Delivery::Volatile
            }
            Err((e, None)) => {
                tracing::error!(records = n, error = %e, "audit spool task failed");
                self.counters.volatile.fetch_add(n, Ordering::Relaxed);
                Delivery::Volatile
            }
        }
    }

    /// Periodic: moves in-memory records to the spool, re-checks an unreachable store.
    async fn retry(&mut self) {
        self.paused = false;
        if !self.memory.is_empty() {
            let records = std::mem::take(&mut self.memory);
            let n = records.len() as u64;
            match append_to_spool(&self.spool, records).await {
                Ok(()) => {
                    self.counters
                        .volatile_pending
                        .fetch_sub(n, Ordering::Relaxed);
                    self.publish_backlog();
                }
                Err((_, Some(records))) => self.memory = records,
                Err((_, None)) => {}
            }
        }
        if !self.store_up {
            // Probe in the background: hook calls keep being answered (from the spool) while a
            // connection attempt to a dead server waits for its timeout.
            match &self.probe {
                Some(h) if h.is_finished() => {
                    let h = self.probe.take().expect("probe present");
                    if matches!(h.await, Ok(true)) {
                        self.set_store_up(true);
                    }
                }
                Some(_) => {}
                None => {
                    let db = self.db.clone();
                    let t = self.write_timeout.max(Duration::from_secs(1));
                    self.probe = Some(tokio::spawn(async move {
                        match timeout(t, db.ensure_ready()).await {
                            Ok(Ok(())) => true,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "audit store still unavailable");
                                false
                            }
                            Err(_) => false,
                        }
                    }));
                }
            }
        }
    }

    /// Probes the store and waits for the answer (flush and shutdown only).
    async fn probe_now(&mut self) {
        if let Some(h) = self.probe.take() {
            h.abort();
        }
        let t = self.write_timeout.max(Duration::from_secs(1));
        if matches!(timeout(t, self.db.ensure_ready()).await, Ok(Ok(()))) {
            self.set_store_up(true);
        }
    }

    /// Replays one chunk of the spool into the store.
    async fn drain_step(&mut self) {
        let spool = self.spool.clone();
        let chunk = tokio::task::spawn_blocking(move || {
            spool
                .lock()
                .map_err(|_| std::io::Error::other("spool lock poisoned"))
                .and_then(|mut s| s.read_chunk(REPLAY_CHUNK))
        })
        .await;
        let chunk = match chunk {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => {
                self.publish_backlog();
                return;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "audit spool read failed");
                self.paused = true;
                return;
            }
            Err(_) => {
                self.paused = true;
                return;
            }
        };
        let refs: Vec<&SpoolRecord> = chunk.records.iter().collect();
        let n = refs.len() as u64;
        match timeout(
            self.write_timeout,
            self.db.insert_batch(&refs, "spooled", now_ms()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) if self.db.is_record_error(&e) => {
                // One (or more) records the store refuses: store the rest one by one.
                for r in &refs {
                    match timeout(
                        self.write_timeout,
                        self.db.insert_batch(&[*r], "spooled", now_ms()),
                    )
                    .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) if self.db.is_record_error(&e) => {
                            let err = e.to_string();
                            tracing::error!(error = %err, "audit store refused a spooled record; moved to dead-letter.jsonl");
                            let dl = self
                                .spool
                                .lock()
                                .map_err(|_| std::io::Error::other("spool lock poisoned"))
                                .and_then(|mut s| s.dead_letter(r, &err));
                            if dl.is_err() {
                                self.paused = true;
                                return;
                            }
                            self.counters.dead_letter.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            self.set_store_up(false);
                            return;
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "audit spool replay failed; retrying later");
                self.set_store_up(false);
                return;
            }
            Err(_) => {
                self.set_store_up(false);
                return;
            }
        }
        let confirmed = self
            .spool
            .lock()
            .map_err(|_| std::io::Error::other("spool lock poisoned"))
            .and_then(|mut s| s.confirm(&chunk));
        if let Err(e) = confirmed {
            tracing::error!(error = %e, "audit spool: cannot remove a replayed segment");
            self.paused = true;
        }
        self.counters.replayed.fetch_add(n, Ordering::Relaxed);
        self.publish_backlog();
        if self.backlog() == 0 {
            tracing::info!("audit spool replayed into the store");
        }
    }

    /// Replays the spool until it is empty, the store fails or `budget` has passed.
    async fn flush(&mut self, budget: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + budget;
        if !self.memory.is_empty() {
            self.retry().await;
        }
        if !self.store_up {
            self.probe_now().await;
        }
        while self.store_up && !self.paused && self.backlog() > 0 {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            self.drain_step().await;
        }
        self.backlog() == 0 && self.memory.is_empty()
    }
}

/// The one spool append: locks the spool and appends (with fsync) on a blocking thread. On a
/// write failure the records come back for the caller to keep in memory; `None` when the
/// blocking task itself failed and took them with it.
async fn append_to_spool(
    spool: &Arc<Mutex<Spool>>,
    records: Vec<SpoolRecord>,
) -> Result<(), (String, Option<Vec<SpoolRecord>>)> {
    let spool = spool.clone();
    let result = tokio::task::spawn_blocking(move || {
        let refs: Vec<&SpoolRecord> = records.iter().collect();
        let r = spool
            .lock()
            .map_err(|_| std::io::Error::other("spool lock poisoned"))
            .and_then(|mut s| s.append(&refs));
        (r, records)
    })
    .await;
    match result {
        Ok((Ok(()), _)) => Ok(()),
        Ok((Err(e), records)) => Err((e.to_string(), Some(records))),
        Err(e) => Err((e.to_string(), None)),
    }
}

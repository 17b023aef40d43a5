//! The SQLite write path: one rusqlite connection, used by the audit writer's own thread, that
//! commits a group of records in one `BEGIN IMMEDIATE … COMMIT` with cached single-row INSERTs.
//!
//! Why not the sqlx pool (issue 12): sqlx runs every SQLite connection on a worker thread of
//! its own and sends each statement there and back over a channel, so one group commit (begin,
//! three inserts, commit) was five round trips between threads, each a futex wake-up, plus the
//! `Any` driver's argument conversion. Measured under load, that thread used 88 µs of CPU per
//! hook call; on an idle server the hand-offs were most of the 2 ms a call took. Here the
//! commit runs on the thread that asked for it. Reads, migrations and purges keep using sqlx.
//!
//! Checkpoints (copying committed WAL pages into the database file and fsyncing it) run on a
//! thread of their own, not inside a commit: SQLite's automatic checkpoint ran in the commit
//! that crossed 1,000 WAL pages and held it for 4-16 ms, and every call queued behind it waited
//! (1.3 % of commits at 32 connections, measured: the calls' p90 and p99). See [`Checkpointer`].
//!
//! Durability is unchanged: the connection sets `synchronous = FULL` on a WAL database, so the
//! commit returns only after the WAL is fsynced. The busy timeout is the writer's
//! `audit_write_timeout_ms`: a database locked by another writer fails the commit after that
//! long, and the writer spools the records (as it did when the sqlx future timed out).

use super::db::{ReconcileRow, StoreError, reconcile_select, suggestion_known_updates};
use super::sql::Bind;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

impl ToSql for Bind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Bind::Text(Some(s)) => ValueRef::Text(s.as_bytes()),
            Bind::Int(Some(i)) => ValueRef::Integer(*i),
            Bind::Text(None) | Bind::Int(None) => ValueRef::Null,
            Bind::Float(f) => ValueRef::Real(*f),
        }))
    }
}

/// The rows of one group commit, per table (built by `db::rows_of`).
pub(super) struct Rows {
    pub calls: Vec<Vec<Bind>>,
    pub orders: Vec<Vec<Bind>>,
    pub feedback: Vec<Vec<Bind>>,
    /// Cards whose accepted feedback must be reconciled (`db::cards_to_reconcile`).
    pub cards: Vec<String>,
}

pub(super) struct SqliteWriter {
    path: PathBuf,
    busy_timeout: Duration,
    /// The three INSERT statements (prepared once, kept in the connection's statement cache).
    inserts: [String; 3],
    /// Opened on first use (after the migrations created the file), reopened after an error.
    conn: Mutex<Option<Open>>,
}

/// The open write connection and its checkpointer.
struct Open {
    conn: Connection,
    checkpointer: Checkpointer,
}

/// Records committed between two checkpoint requests (each record is one to a few WAL pages;
/// SQLite's own default was a checkpoint per 1,000 pages).
const CHECKPOINT_EVERY_RECORDS: usize = 512;
/// A checkpoint is also requested when this long has passed since the last one (idle trickle).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// WAL size (pages) beyond which a checkpoint holds the writer off until it is complete. A
/// passive checkpoint never stops the writer, but the WAL starts over from its beginning only
/// when a commit begins with every page already copied, which under steady load is never: the
/// file would grow without bound. So once the WAL is this long, the checkpointer takes the
/// commit gate (the writer waits between two commits), copies the pages committed since its
/// passive pass and lets go; the next commit starts the WAL over.
///
/// Small on purpose (4 MiB; under load that is nearly every checkpoint). With 16,384 pages
/// (64 MiB) the WAL started over about once a second at 4 connections, and each time every
/// call waited 20-30 ms (`perf sched`: the workers idle, the writer first waiting for the gate,
/// then about 15 ms on the CPU); wrk's p99 was 16-26 ms. At 1,024 pages no such stall shows:
/// p99 2.3-2.6 ms, 12-20 % more calls at 4 connections and 3-4 % more at 32 in alternating
/// runs (BENCHMARKS.md, History).
const RESTART_WAL_PAGES: i64 = 1_024;
/// The WAL file is cut back to this size when it starts over (SQLite `journal_size_limit`).
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Runs checkpoints on its own thread and connection. Dropping it ends the thread (after the
/// checkpoint in progress, if any).
struct Checkpointer {
    requests: SyncSender<()>,
    /// Held by the writer during each commit, and by the checkpointer to finish a checkpoint
    /// with no commit under way.
    gate: Arc<Mutex<()>>,
    records_since: usize,
    last: Instant,
}

impl Checkpointer {
    fn start(path: &Path, busy_timeout: Duration) -> Result<Checkpointer, StoreError> {
        let conn = open_connection(path, busy_timeout)?;
        // One pending request is enough: requests made while one waits add nothing.
        let (requests, rx) = mpsc::sync_channel(1);
        let gate = Arc::new(Mutex::new(()));
        let held = gate.clone();
        std::thread::Builder::new()
            .name("audit-checkpoint".into())
            .spawn(move || checkpoint_loop(&conn, &rx, &held))
            .map_err(|e| StoreError::Writer(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            requests,
            gate,
            records_since: 0,
            last: Instant::now(),
        })
    }

    /// Called after each commit of `records` records.
    fn committed(&mut self, records: usize) {
        self.records_since += records;
        if self.records_since >= CHECKPOINT_EVERY_RECORDS || self.last.elapsed() >= CHECKPOINT_EVERY
        {
            // Full: a checkpoint is already requested. Disconnected: the thread ended (it
            // logged why); the WAL then waits for the next connection's checkpointer.
            let _ = self.requests.try_send(());
            self.records_since = 0;
            self.last = Instant::now();
        }
    }
}

fn checkpoint_loop(conn: &Connection, requests: &Receiver<()>, gate: &Mutex<()>) {
    let passive = || conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
    while requests.recv().is_ok() {
        let result = passive().and_then(|wal_pages| {
            if wal_pages < RESTART_WAL_PAGES {
                return Ok(());
            }
            // A poisoned gate only means a commit panicked; the database is still consistent.
            let _no_commit = gate.lock().unwrap_or_else(|p| p.into_inner());
            passive().map(|_| ())
        });
        if let Err(e) = result {
            // Not a lost record: the commits are in the WAL; the next request tries again.
            tracing::warn!(error = %e, "audit store checkpoint failed; retried at the next one");
        }
    }
}

/// A read-write connection to the (existing) audit database with the writer's settings.
fn open_connection(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    // No CREATE flag: the file is made (and migrated) by the sqlx pool; a missing file is a
    // store that is not there, and the records go to the spool.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn insert_sql(table: &str, columns: &[&str]) -> String {
    let params = vec!["?"; columns.len()].join(", ");
    format!(
        "INSERT INTO {table} ({}) VALUES ({params}) ON CONFLICT DO NOTHING",
        columns.join(", ")
    )
}

impl SqliteWriter {
    pub(super) fn new(
        path: PathBuf,
        busy_timeout: Duration,
        [calls, orders, feedback]: [(&str, &[&str]); 3],
    ) -> SqliteWriter {
        SqliteWriter {
            path,
            busy_timeout,
            inserts: [
                insert_sql(calls.0, calls.1),
                insert_sql(orders.0, orders.1),
                insert_sql(feedback.0, feedback.1),
            ],
            conn: Mutex::new(None),
        }
    }

    fn open(&self) -> Result<Open, StoreError> {
        let conn = open_connection(&self.path, self.busy_timeout)?;
        // Checkpoints are the checkpointer's job (see the module comment).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(Open {
            conn,
            checkpointer: Checkpointer::start(&self.path, self.busy_timeout)?,
        })
    }

    /// Commits `rows` in one transaction, on the calling thread.
    pub(super) fn commit(&self, rows: &Rows) -> Result<(), StoreError> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| StoreError::Writer("SQLite connection lock poisoned".into()))?;
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        let open = guard.as_mut().expect("opened above");
        let result = {
            let _gate = open
                .checkpointer
                .gate
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            write(&mut open.conn, &self.inserts, rows)
        };
        match &result {
            Ok(()) => open
                .checkpointer
                .committed(rows.calls.len() + rows.feedback.len()),
            // A store-level failure (disk, lock, file replaced): start from a fresh connection.
            Err(e) if !is_record_error(e) => *guard = None,
            Err(_) => {}
        }
        result.map_err(StoreError::from)
    }

    /// `PRAGMA synchronous` (2 = FULL) and `wal_autocheckpoint` of the write connection.
    #[cfg(test)]
    pub(super) fn settings(&self) -> Result<(i64, i64), StoreError> {
        let mut guard = self.conn.lock().expect("lock");
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        let conn = &guard.as_ref().expect("opened above").conn;
        Ok((
            conn.pragma_query_value(None, "synchronous", |r| r.get(0))?,
            conn.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?,
        ))
    }
}

fn write(conn: &mut Connection, inserts: &[String; 3], rows: &Rows) -> rusqlite::Result<()> {
    // IMMEDIATE: take the write lock at BEGIN, so a concurrent writer makes this wait (busy
    // timeout) instead of failing half-way when a read lock cannot be upgraded.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (sql, table) in inserts
        .iter()
        .zip([&rows.calls, &rows.orders, &rows.feedback])
    {
        if table.is_empty() {
            continue;
        }
        let mut stmt = tx.prepare_cached(sql)?;
        for row in table {
            stmt.execute(rusqlite::params_from_iter(row.iter()))?;
        }
    }
    reconcile(&tx, &rows.cards)?;
    tx.commit()
}

/// `db::reconcile_feedback` on this connection.
fn reconcile(tx: &rusqlite::Transaction<'_>, cards: &[String]) -> rusqlite::Result<()> {
    for chunk in cards.chunks(200) {
        let sql = reconcile_select(super::db::Backend::Sqlite, chunk.len());
        let mut stmt = tx.prepare(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(chunk.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<Vec<ReconcileRow>>>()?;
        let mut update = tx.prepare_cached(
            "UPDATE audit_feedback SET suggestion_known = ?1 WHERE feedback_id = ?2",
        )?;
        for (known, id) in suggestion_known_updates(rows) {
            update.execute(rusqlite::params![known, id])?;
        }
    }
    Ok(())
}

/// A problem with a record's data (constraint, too big, type mismatch), not with the store:
/// retrying will not help. Primary result code = low byte: 18 TOOBIG, 19 CONSTRAINT, 20 MISMATCH.
pub(super) fn is_record_error(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(f.extended_code & 0xff, 18..=20),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits that never pause (each holding the gate, as the writer does) while the
    /// checkpointer is asked every few commits: the WAL still starts over, so its file stays
    /// within a few times `RESTART_WAL_PAGES` instead of holding every frame written (with the
    /// 16,384-page threshold this replaced, it reached 71-76 MB here).
    /// This loop leaves the checkpointer far less room than the writer, which waits for records
    /// between commits: it reached 7.5-20 MB in runs on a 2-core machine, hence the margin.
    #[test]
    fn wal_starts_over_under_continuous_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        // Only speed: what is measured is the WAL's length, not what an fsync guarantees.
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        conn.execute("CREATE TABLE t (x BLOB)", []).unwrap();

        let checkpoint_conn = open_connection(&path, Duration::from_secs(5)).unwrap();
        let (requests, rx) = mpsc::sync_channel(1);
        let gate = Arc::new(Mutex::new(()));
        let held = gate.clone();
        let checkpointer =
            std::thread::spawn(move || checkpoint_loop(&checkpoint_conn, &rx, &held));

        const COMMITS: u64 = 12_000;
        let blob = vec![7u8; 3000];
        for i in 0..COMMITS {
            {
                let _gate = gate.lock().unwrap();
                conn.execute("INSERT INTO t (x) VALUES (?1)", [&blob])
                    .unwrap();
            }
            if i % 32 == 31 {
                let _ = requests.try_send(());
            }
        }
        drop(requests);
        checkpointer.join().unwrap();

        // Without `journal_size_limit` (not set here) SQLite never shortens the WAL file when it
        // starts over, so its size now is the longest the WAL has been.
        let biggest = std::fs::metadata(dir.path().join("wal.sqlite-wal"))
            .unwrap()
            .len();
        let frame = 4096 + 24;
        let bound = 8 * RESTART_WAL_PAGES as u64 * frame;
        assert!(
            biggest < bound,
            "WAL reached {biggest} bytes (bound {bound})"
        );
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, COMMITS as i64);
    }
}

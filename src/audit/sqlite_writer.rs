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
//! Durability is unchanged: the connection sets `synchronous = FULL` on a WAL database, so the
//! commit returns only after the WAL is fsynced. The busy timeout is the writer's
//! `audit_write_timeout_ms`: a database locked by another writer fails the commit after that
//! long, and the writer spools the records (as it did when the sqlx future timed out).

use super::db::{ReconcileRow, StoreError, reconcile_select, suggestion_known_updates};
use super::sql::Bind;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

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
    conn: Mutex<Option<Connection>>,
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

    fn open(&self) -> rusqlite::Result<Connection> {
        // No CREATE flag: the file is made (and migrated) by the sqlx pool; a missing file is a
        // store that is not there, and the records go to the spool.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
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
        let conn = guard.as_mut().expect("opened above");
        let result = write(conn, &self.inserts, rows);
        if let Err(e) = &result
            && !is_record_error(e)
        {
            // A store-level failure (disk, lock, file replaced): start from a fresh connection.
            *guard = None;
        }
        result.map_err(StoreError::from)
    }

    /// `PRAGMA synchronous` of the write connection (2 = FULL); for tests.
    #[cfg(test)]
    pub(super) fn synchronous(&self) -> rusqlite::Result<i64> {
        let mut guard = self.conn.lock().expect("lock");
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        guard
            .as_ref()
            .expect("opened above")
            .pragma_query_value(None, "synchronous", |r| r.get(0))
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

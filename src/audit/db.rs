//! The audit store: one sqlx `AnyPool` over SQLite or PostgreSQL, the same SQL text (with `$n`
//! placeholders and portable types) on both, and the schema migrations run at start-up.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk (WAL fsynced) before it
//! returns, so neither kill -9 nor power loss loses a committed record.

use super::records::SpoolRecord;
use super::sql::{Bind, bind_all};
use super::sqlite_writer::{self, Rows, SqliteWriter};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row, SqlSafeStr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Which back end `audit_db` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditDbLocation {
    /// A SQLite database file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl AuditDbLocation {
    /// `postgres://…` / `postgresql://…` → PostgreSQL; `sqlite:PATH` / `sqlite://PATH` or a plain
    /// path → SQLite. Any other URL scheme, an empty value or `:memory:` is an error.
    pub fn parse(value: &str) -> Result<AuditDbLocation, String> {
        let v = value.trim();
        if v.is_empty() {
            return Err("is empty".into());
        }
        if v.starts_with("postgres://") || v.starts_with("postgresql://") {
            let url = url::Url::parse(v).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
            if url.host_str().unwrap_or("").is_empty()
                && !url.query_pairs().any(|(k, _)| k == "host")
            {
                return Err("PostgreSQL URL has no host".into());
            }
            return Ok(AuditDbLocation::Postgres(v.to_owned()));
        }
        let path = if let Some(rest) = v.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.contains('?') {
                return Err("sqlite: URL parameters are not supported; give a file path".into());
            }
            rest.to_owned()
        } else {
            if let Some((scheme, _)) = v.split_once("://") {
                return Err(format!(
                    "unsupported scheme {scheme:?}: use a SQLite file path or a postgres:// URL"
                ));
            }
            v.to_owned()
        };
        if path.is_empty() || path == ":memory:" {
            return Err(
                "needs a SQLite file path (an in-memory database would lose the trail)".into(),
            );
        }
        Ok(AuditDbLocation::Sqlite(PathBuf::from(path)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            AuditDbLocation::Sqlite(_) => Backend::Sqlite,
            AuditDbLocation::Postgres(_) => Backend::Postgres,
        }
    }

    /// Where the store is, without credentials (for logs).
    pub fn describe(&self) -> String {
        match self {
            AuditDbLocation::Sqlite(p) => format!("sqlite file {}", p.display()),
            AuditDbLocation::Postgres(u) => match url::Url::parse(u) {
                Ok(u) => format!(
                    "postgres {}:{}{}",
                    u.host_str().unwrap_or(""),
                    u.port().unwrap_or(5432),
                    u.path()
                ),
                Err(_) => "postgres".into(),
            },
        }
    }

    fn url(&self) -> std::io::Result<String> {
        match self {
            AuditDbLocation::Postgres(u) => Ok(u.clone()),
            AuditDbLocation::Sqlite(p) => {
                let abs = if p.is_absolute() {
                    p.clone()
                } else {
                    std::env::current_dir()?.join(p)
                };
                Ok(format!(
                    "sqlite://{}?mode=rwc",
                    encode_path(&abs.to_string_lossy())
                ))
            }
        }
    }
}

/// Percent-encodes a SQLite file path for a `sqlite://` URL (`%`, `?`, `#`, space, controls and
/// non-ASCII bytes); sqlx decodes it back.
fn encode_path(s: &str) -> String {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    /// Controls and non-ASCII are always encoded; these four would end or split the URL.
    const PATH: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#').add(b' ');
    utf8_percent_encode(s, PATH).to_string()
}

fn migrator() -> Migrator {
    let m = |version: i64, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sqlx::AssertSqlSafe(sql).into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        m(
            1,
            "audit schema",
            include_str!("migrations/0001_audit_schema.sql"),
        ),
        m(
            2,
            "suggestions and safety notes",
            include_str!("migrations/0002_suggestions_and_safety_notes.sql"),
        ),
        m(
            3,
            "feedback suggestion_known",
            include_str!("migrations/0003_feedback_suggestion_known.sql"),
        ),
        m(
            4,
            "shared jti replay cache",
            include_str!("migrations/0004_auth_jti_seen.sql"),
        ),
        m(
            5,
            "source and run id",
            include_str!("migrations/0005_source_and_run.sql"),
        ),
        m(
            6,
            "fewer indexes",
            include_str!("migrations/0006_fewer_indexes.sql"),
        ),
        m(
            7,
            "no hook instance index",
            include_str!("migrations/0007_no_hook_instance_index.sql"),
        ),
    ])
}

/// A failure of the audit store, typed so that callers can tell a record the store refuses
/// (dead-letter it) from a store that is down (spool and retry).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("audit_db: {0}")]
    Config(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Spool(String),
    /// The writer thread or its runtime could not be started, or its connection lock broke.
    #[error("audit writer: {0}")]
    Writer(String),
    #[error("the audit store is disabled")]
    Disabled,
}

/// The store connection. Created lazily: nothing is contacted until first use, so start-up
/// does not fail when PostgreSQL is down.
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    migrated: AtomicBool,
    /// SQLite: the audit writer's own connection for inserts (`sqlite_writer`).
    sqlite: Option<SqliteWriter>,
}

impl Db {
    pub fn new(location: &AuditDbLocation, acquire_timeout: Duration) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = location.backend();
        let url = location
            .url()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let options = sqlx::any::AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let mut pool = AnyPoolOptions::new()
            .acquire_timeout(acquire_timeout)
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .min_connections(0)
            // A SQLite connection is a file handle in this process: it cannot hang up, so the
            // default liveness ping before every acquire is a wasted round trip to the
            // connection's worker thread on each group commit (issue 12). A broken PostgreSQL
            // connection is still detected before use.
            .test_before_acquire(backend == Backend::Postgres);
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    Ok(())
                })
            });
        }
        let sqlite = match location {
            AuditDbLocation::Sqlite(path) => {
                let path = std::path::absolute(path)
                    .map_err(|e| StoreError::Config(format!("{}: {e}", path.display())))?;
                Some(SqliteWriter::new(
                    path,
                    acquire_timeout,
                    [
                        ("audit_calls", CALL_COLUMNS),
                        ("audit_orders", ORDER_COLUMNS),
                        ("audit_feedback", FEEDBACK_COLUMNS),
                    ],
                ))
            }
            AuditDbLocation::Postgres(_) => None,
        };
        Ok(Db {
            pool: pool.connect_lazy_with(options),
            backend,
            migrated: AtomicBool::new(false),
            sqlite,
        })
    }

    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Connects and runs pending migrations (once), or probes. The probe is a write that
    /// changes nothing, so a SQLite file locked by another writer counts as unavailable.
    pub async fn ensure_ready(&self) -> Result<(), StoreError> {
        if self.is_migrated() {
            sqlx::query("DELETE FROM audit_calls WHERE call_id = ''")
                .execute(&self.pool)
                .await?;
            return Ok(());
        }
        migrator().run(&self.pool).await?;
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// Inserts records in one transaction. Records already present (same call id / feedback
    /// id) are left as they are, which makes spool replay idempotent.
    pub async fn insert_batch(
        &self,
        records: &[&SpoolRecord],
        delivery: &str,
        stored_at_ms: i64,
    ) -> Result<(), StoreError> {
        let [calls, orders, feedback] = rows_of(records, delivery, stored_at_ms);
        let cards = cards_to_reconcile(records, delivery);
        if let Some(w) = &self.sqlite {
            // Synchronous, on the calling thread: the audit writer has a thread of its own.
            return w.commit(&Rows {
                calls,
                orders,
                feedback,
                cards,
            });
        }
        let mut tx = self.pool.begin().await?;
        let b = self.backend;
        insert_rows(&mut tx, b, "audit_calls", CALL_COLUMNS, calls).await?;
        insert_rows(&mut tx, b, "audit_orders", ORDER_COLUMNS, orders).await?;
        insert_rows(&mut tx, b, "audit_feedback", FEEDBACK_COLUMNS, feedback).await?;
        reconcile_feedback(&mut tx, b, &cards).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes records received before `cutoff_ms`; returns (calls, orders, feedback) deleted.
    pub async fn purge_before(&self, cutoff_ms: i64) -> Result<(u64, u64, u64), StoreError> {
        let mut tx = self.pool.begin().await?;
        let orders = sqlx::query("DELETE FROM audit_orders WHERE received_at_ms < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let calls = sqlx::query("DELETE FROM audit_calls WHERE received_at_ms < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let feedback = sqlx::query("DELETE FROM audit_feedback WHERE received_at_ms < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok((calls, orders, feedback))
    }

    /// Number of rows in each table: (calls, orders, feedback).
    pub async fn counts(&self) -> Result<(i64, i64, i64), StoreError> {
        let row: AnyRow = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM audit_calls), (SELECT COUNT(*) FROM audit_orders), \
             (SELECT COUNT(*) FROM audit_feedback)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }

    /// True when `e` is a problem with the data of a record (constraint, value out of range),
    /// not with the store: retrying will not help, so the record goes to the dead-letter file.
    pub fn is_record_error(&self, e: &StoreError) -> bool {
        if let StoreError::Sqlite(e) = e {
            return sqlite_writer::is_record_error(e);
        }
        let StoreError::Sql(sqlx::Error::Database(db)) = e else {
            return false;
        };
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        match self.backend {
            // SQLSTATE class 22 data exception, 23 integrity constraint violation.
            Backend::Postgres => code.starts_with("22") || code.starts_with("23"),
            // (Extended) result code; primary = low byte: 18 TOOBIG, 19 CONSTRAINT, 20 MISMATCH.
            Backend::Sqlite => code
                .parse::<i64>()
                .map(|c| matches!(c & 0xff, 18..=20))
                .unwrap_or(false),
        }
    }

    /// `PRAGMA synchronous` (2 = FULL) and `wal_autocheckpoint` of the SQLite write
    /// connection; `None` on PostgreSQL.
    #[cfg(test)]
    pub(super) fn sqlite_writer_settings(&self) -> Option<Result<(i64, i64), StoreError>> {
        self.sqlite.as_ref().map(SqliteWriter::settings)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

const CALL_COLUMNS: &[&str] = &[
    "call_id",
    "received_at_ms",
    "service_id",
    "hook",
    "hook_instance",
    "user_id",
    "patient_id",
    "encounter_id",
    "fhir_server",
    "knowledge_version",
    "guideline_id",
    "latency_ms",
    "order_count",
    "pseudonymized",
    "delivery",
    "stored_at_ms",
    "source",
    "run_id",
];

const ORDER_COLUMNS: &[&str] = &[
    "call_id",
    "order_index",
    "received_at_ms",
    "service_id",
    "hook",
    "hook_instance",
    "user_id",
    "order_ref",
    "order_codes",
    "selected",
    "outcome",
    "procedure_id",
    "procedure_name",
    "region",
    "contrast",
    "matched_code",
    "candidate_variants",
    "chosen_variant",
    "rating",
    "category",
    "evidence",
    "pama_rating",
    "consult_id",
    "assumptions",
    "deciding_facts",
    "card_uuid",
    "suggestion_uuids",
    "suggestions",
    "safety_notes",
    "source",
    "run_id",
];

const FEEDBACK_COLUMNS: &[&str] = &[
    "feedback_id",
    "received_at_ms",
    "service_id",
    "card_uuid",
    "outcome",
    "outcome_at_ms",
    "accepted_suggestions",
    "accepted_count",
    "override_system",
    "override_code",
    "override_display",
    "user_comment",
    "delivery",
    "stored_at_ms",
];

fn t(s: &str) -> Bind {
    Bind::Text(Some(s.to_owned()))
}

fn ot(s: &Option<String>) -> Bind {
    Bind::Text(s.clone())
}

/// Rows of all records of a batch, per table.
fn rows_of(records: &[&SpoolRecord], delivery: &str, stored_at_ms: i64) -> [Vec<Vec<Bind>>; 3] {
    let (mut calls, mut orders, mut feedback) = (vec![], vec![], vec![]);
    for r in records {
        match r {
            SpoolRecord::Call(c) => {
                calls.push(vec![
                    t(&c.call_id),
                    Bind::int(c.received_at_ms),
                    t(&c.service_id),
                    t(&c.hook),
                    t(&c.hook_instance),
                    t(&c.user_id),
                    t(&c.patient_id),
                    ot(&c.encounter_id),
                    ot(&c.fhir_server),
                    t(&c.knowledge_version),
                    t(&c.guideline_id),
                    Bind::Float(c.latency_ms),
                    Bind::int(c.orders.len() as i64),
                    Bind::int(i64::from(c.pseudonymized)),
                    t(delivery),
                    Bind::int(stored_at_ms),
                    t(&c.source),
                    ot(&c.run_id),
                ]);
                for o in &c.orders {
                    orders.push(vec![
                        t(&c.call_id),
                        Bind::int(o.order_index),
                        Bind::int(c.received_at_ms),
                        t(&c.service_id),
                        t(&c.hook),
                        t(&c.hook_instance),
                        t(&c.user_id),
                        t(&o.order_ref),
                        t(&json_list(&o.order_codes)),
                        Bind::int(i64::from(o.selected)),
                        t(&o.outcome),
                        ot(&o.procedure_id),
                        ot(&o.procedure_name),
                        ot(&o.region),
                        ot(&o.contrast),
                        ot(&o.matched_code),
                        t(&json_list(&o.candidate_variants)),
                        ot(&o.chosen_variant),
                        Bind::Int(o.rating),
                        ot(&o.category),
                        ot(&o.evidence),
                        ot(&o.pama_rating),
                        ot(&o.consult_id),
                        t(&json_list(&o.assumptions)),
                        t(&json_list(&o.deciding_facts)),
                        ot(&o.card_uuid),
                        t(&json_list(&o.suggestion_uuids)),
                        t(o.suggestions.get()),
                        t(&json_list(&o.safety_notes)),
                        t(&c.source),
                        ot(&c.run_id),
                    ]);
                }
            }
            SpoolRecord::Feedback(f) => feedback.push(vec![
                t(&f.feedback_id),
                Bind::int(f.received_at_ms),
                t(&f.service_id),
                t(&f.card_uuid),
                t(&f.outcome),
                Bind::int(f.outcome_at_ms),
                t(&json_list(&f.accepted_suggestions)),
                Bind::int(f.accepted_suggestions.len() as i64),
                ot(&f.override_system),
                ot(&f.override_code),
                ot(&f.override_display),
                ot(&f.user_comment),
                t(delivery),
                Bind::int(stored_at_ms),
            ]),
        }
    }
    [calls, orders, feedback]
}

/// Most bound parameters per statement (SQLite allows 32766, PostgreSQL 65535).
const MAX_PARAMS: usize = 30_000;

/// Cards whose `accepted` feedback must be (re)checked against the suggestions issued on them:
/// the cards of accepted feedback in the batch, and, for spool replay (where a card's feedback
/// may have reached the store before its evaluation), the cards of the replayed evaluations.
fn cards_to_reconcile(records: &[&SpoolRecord], delivery: &str) -> Vec<String> {
    let mut cards: Vec<String> = Vec::new();
    for r in records {
        match r {
            SpoolRecord::Feedback(f) if f.outcome == "accepted" => cards.push(f.card_uuid.clone()),
            SpoolRecord::Call(c) if delivery != "committed" => {
                cards.extend(c.orders.iter().filter_map(|o| o.card_uuid.clone()));
            }
            _ => {}
        }
    }
    cards.sort();
    cards.dedup();
    cards
}

/// One row of the reconcile query: (feedback id, accepted suggestion ids as JSON, suggestion
/// ids issued by one order shown the card as JSON, `suggestion_known` now).
pub(super) type ReconcileRow = (String, Option<String>, Option<String>, Option<i64>);

/// The reconcile query over `n` cards (`?` or `$N` placeholders by back end).
pub(super) fn reconcile_select(backend: Backend, n: usize) -> String {
    let mut sql = String::from(
        "SELECT f.feedback_id, f.accepted_suggestions, o.suggestion_uuids, f.suggestion_known \
         FROM audit_feedback f LEFT JOIN audit_orders o ON o.card_uuid = f.card_uuid \
         WHERE f.outcome = 'accepted' AND f.card_uuid IN (",
    );
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        match backend {
            Backend::Sqlite => sql.push('?'),
            Backend::Postgres => sql.push_str(&format!("${}", i + 1)),
        }
    }
    sql.push(')');
    sql
}

/// The `suggestion_known` values that change: (new value, feedback id). One row per (feedback,
/// order shown the card): a grouped card (issue 13) was shown for several orders, each issuing
/// its own suggestions, so the card's issued suggestions are the union over its orders.
pub(super) fn suggestion_known_updates(rows: Vec<ReconcileRow>) -> Vec<(i64, String)> {
    let list = |v: Option<String>| -> Vec<String> {
        v.and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    };
    // (feedback id, accepted suggestion ids, ids issued on the card, suggestion_known now)
    type Entry = (String, Vec<String>, Vec<String>, Option<i64>);
    let mut per_feedback: Vec<Entry> = Vec::new();
    for (id, accepted, issued, before) in rows {
        let issued = list(issued);
        match per_feedback.iter_mut().find(|f| f.0 == id) {
            Some(f) => f.2.extend(issued),
            None => per_feedback.push((id, list(accepted), issued, before)),
        }
    }
    per_feedback
        .into_iter()
        .filter_map(|(id, accepted, issued, before)| {
            let known =
                i64::from(!accepted.is_empty() && accepted.iter().all(|a| issued.contains(a)));
            (before != Some(known)).then_some((known, id))
        })
        .collect()
}

/// Sets `suggestion_known` on the accepted feedback of `cards` (issue 9): 1 when every accepted
/// suggestion id was issued on that card, 0 otherwise (including a card this store does not
/// hold). A client may report an accept for a suggestion it never applied or never got; the
/// dashboard counts only known accepts as accepted advice.
async fn reconcile_feedback(
    tx: &mut Tx,
    backend: Backend,
    cards: &[String],
) -> Result<(), StoreError> {
    for chunk in cards.chunks(200) {
        let sql = reconcile_select(backend, chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            q = q.bind(c.clone());
        }
        let mut rows: Vec<ReconcileRow> = Vec::new();
        for r in q.fetch_all(&mut **tx).await? {
            rows.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
        }
        for (known, id) in suggestion_known_updates(rows) {
            sqlx::query("UPDATE audit_feedback SET suggestion_known = $1 WHERE feedback_id = $2")
                .bind(known)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Multi-row `INSERT … ON CONFLICT DO NOTHING` (rows already stored are left as they are:
/// replaying the spool is idempotent). Table and column names are constants.
async fn insert_rows(
    tx: &mut Tx,
    backend: Backend,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Bind>>,
) -> Result<(), StoreError> {
    let per_row = columns.len();
    let max_rows = (MAX_PARAMS / per_row).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Bind>> = rows.by_ref().take(max_rows).collect();
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for c in 0..per_row {
                n += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                // SQLite: anonymous `?` (parameters in order). Named or numbered ones (`$N`,
                // `?N`) are looked up in a list by a linear search per parameter, when parsing
                // and again when binding: quadratic for thousands of parameters. PostgreSQL only
                // knows `$N`.
                match backend {
                    Backend::Sqlite => sql.push('?'),
                    Backend::Postgres => {
                        sql.push('$');
                        sql.push_str(&n.to_string());
                    }
                }
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        // Batches of up to 64 rows keep their prepared statement (one per size, in the
        // connection's statement cache): preparing a 29-column multi-row INSERT costs more than
        // running it. Larger batches are rare (a spool replay) and not worth the cache space.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(chunk.len() <= 64);
        q = bind_all(q, chunk.into_iter().flatten());
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            AuditDbLocation::parse("vcf-cds-audit.sqlite").unwrap(),
            AuditDbLocation::Sqlite("vcf-cds-audit.sqlite".into())
        );
        assert_eq!(
            AuditDbLocation::parse("sqlite:///var/lib/a.db").unwrap(),
            AuditDbLocation::Sqlite("/var/lib/a.db".into())
        );
        assert_eq!(
            AuditDbLocation::parse("postgres://u:p@127.0.0.1:5432/audit")
                .unwrap()
                .backend(),
            Backend::Postgres
        );
        assert!(
            !AuditDbLocation::parse("postgres://u:secret@db.example.org/audit")
                .unwrap()
                .describe()
                .contains("secret")
        );
        for bad in [
            "",
            "mysql://x/y",
            "http://x",
            ":memory:",
            "sqlite::memory:",
            "sqlite:a?mode=ro",
        ] {
            assert!(AuditDbLocation::parse(bad).is_err(), "{bad}");
        }
        let url = AuditDbLocation::Sqlite("/tmp/a b?#%.sqlite".into())
            .url()
            .unwrap();
        assert_eq!(url, "sqlite:///tmp/a%20b%3F%23%25.sqlite?mode=rwc");
    }
}

//! The audit store: one sqlx `AnyPool` over SQLite or PostgreSQL, the same SQL text (with `$n`
//! placeholders and portable types) on both, and the schema migrations run at start-up.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk (WAL fsynced) before it
//! returns, so neither kill -9 nor power loss loses a committed record.

use super::records::{SpoolRecord, StoredCall, StoredFeedback};
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
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_control() || !b.is_ascii() || matches!(b, b'%' | b'?' | b'#' | b' ') {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "audit schema".into(),
        MigrationType::Simple,
        sqlx::AssertSqlSafe(include_str!("migrations/0001_audit_schema.sql")).into_sql_str(),
        false,
    )])
}

/// The store connection. Created lazily: nothing is contacted until first use, so start-up
/// does not fail when PostgreSQL is down.
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    migrated: AtomicBool,
}

impl Db {
    pub fn new(location: &AuditDbLocation, acquire_timeout: Duration) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = location.backend();
        let url = location.url()?;
        let options = sqlx::any::AnyConnectOptions::from_str(&url)
            .map_err(|e| anyhow::anyhow!("audit_db: {e}"))?;
        let mut pool = AnyPoolOptions::new()
            .acquire_timeout(acquire_timeout)
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .min_connections(0);
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
        Ok(Db {
            pool: pool.connect_lazy_with(options),
            backend,
            migrated: AtomicBool::new(false),
        })
    }

    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Connects and runs pending migrations (once), or probes. The probe is a write that
    /// changes nothing, so a SQLite file locked by another writer counts as unavailable.
    pub async fn ensure_ready(&self) -> anyhow::Result<()> {
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
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for r in records {
            match r {
                SpoolRecord::Call(c) => insert_call(&mut tx, c, delivery, stored_at_ms).await?,
                SpoolRecord::Feedback(f) => {
                    insert_feedback(&mut tx, f, delivery, stored_at_ms).await?
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes records received before `cutoff_ms`; returns (calls, orders, feedback) deleted.
    pub async fn purge_before(&self, cutoff_ms: i64) -> anyhow::Result<(u64, u64, u64)> {
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
    pub async fn counts(&self) -> anyhow::Result<(i64, i64, i64)> {
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
    pub fn is_record_error(&self, e: &anyhow::Error) -> bool {
        let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>() else {
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

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

async fn insert_call(
    tx: &mut Tx,
    c: &StoredCall,
    delivery: &str,
    stored_at_ms: i64,
) -> anyhow::Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO audit_calls (call_id, received_at_ms, service_id, hook, hook_instance, \
         user_id, patient_id, encounter_id, fhir_server, knowledge_version, guideline_id, \
         latency_ms, order_count, pseudonymized, delivery, stored_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&c.call_id)
    .bind(c.received_at_ms)
    .bind(&c.service_id)
    .bind(&c.hook)
    .bind(&c.hook_instance)
    .bind(&c.user_id)
    .bind(&c.patient_id)
    .bind(c.encounter_id.as_deref())
    .bind(c.fhir_server.as_deref())
    .bind(&c.knowledge_version)
    .bind(&c.guideline_id)
    .bind(c.latency_ms)
    .bind(c.orders.len() as i64)
    .bind(i64::from(c.pseudonymized))
    .bind(delivery)
    .bind(stored_at_ms)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        // Already stored (spool replay of a committed call): its orders are there too.
        return Ok(());
    }
    for o in &c.orders {
        sqlx::query(
            "INSERT INTO audit_orders (call_id, order_index, received_at_ms, service_id, hook, \
             hook_instance, user_id, order_ref, order_codes, selected, outcome, procedure_id, \
             procedure_name, region, contrast, matched_code, candidate_variants, chosen_variant, \
             rating, category, evidence, pama_rating, consult_id, assumptions, deciding_facts, \
             card_uuid, suggestion_uuids) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, $22, $23, $24, $25, $26, $27) ON CONFLICT DO NOTHING",
        )
        .bind(&c.call_id)
        .bind(o.order_index)
        .bind(c.received_at_ms)
        .bind(&c.service_id)
        .bind(&c.hook)
        .bind(&c.hook_instance)
        .bind(&c.user_id)
        .bind(&o.order_ref)
        .bind(json_list(&o.order_codes))
        .bind(i64::from(o.selected))
        .bind(&o.outcome)
        .bind(o.procedure_id.as_deref())
        .bind(o.procedure_name.as_deref())
        .bind(o.region.as_deref())
        .bind(o.contrast.as_deref())
        .bind(o.matched_code.as_deref())
        .bind(json_list(&o.candidate_variants))
        .bind(o.chosen_variant.as_deref())
        .bind(o.rating)
        .bind(o.category.as_deref())
        .bind(o.evidence.as_deref())
        .bind(o.pama_rating.as_deref())
        .bind(o.consult_id.as_deref())
        .bind(json_list(&o.assumptions))
        .bind(json_list(&o.deciding_facts))
        .bind(o.card_uuid.as_deref())
        .bind(json_list(&o.suggestion_uuids))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_feedback(
    tx: &mut Tx,
    f: &StoredFeedback,
    delivery: &str,
    stored_at_ms: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO audit_feedback (feedback_id, received_at_ms, service_id, card_uuid, outcome, \
         outcome_at_ms, accepted_suggestions, accepted_count, override_system, override_code, \
         override_display, user_comment, delivery, stored_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&f.feedback_id)
    .bind(f.received_at_ms)
    .bind(&f.service_id)
    .bind(&f.card_uuid)
    .bind(&f.outcome)
    .bind(f.outcome_at_ms)
    .bind(json_list(&f.accepted_suggestions))
    .bind(f.accepted_suggestions.len() as i64)
    .bind(f.override_system.as_deref())
    .bind(f.override_code.as_deref())
    .bind(f.override_display.as_deref())
    .bind(f.user_comment.as_deref())
    .bind(delivery)
    .bind(stored_at_ms)
    .execute(&mut **tx)
    .await?;
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

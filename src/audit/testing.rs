//! Helpers for tests of the audit trail (unit and integration tests): throw-away PostgreSQL
//! databases when `VCF_TEST_POSTGRES_URL` is set, settings pointing at a temp directory.

use crate::configuration::Settings;
use sqlx::{Connection, Executor};

/// Environment variable naming a PostgreSQL server for tests (a database on it that the user
/// may create databases from, e.g. `postgres://postgres@127.0.0.1:55432/postgres`).
pub const POSTGRES_ENV: &str = "VCF_TEST_POSTGRES_URL";

/// Creates a fresh database on the test server and returns its URL, or `None` when
/// `VCF_TEST_POSTGRES_URL` is not set.
pub async fn fresh_postgres_db() -> Option<String> {
    let base = std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())?;
    sqlx::any::install_default_drivers();
    let name = format!("vcf_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but the server is unreachable: {e}"));
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    let _ = conn.close().await;
    let mut url = url::Url::parse(&base).expect("VCF_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// Settings for a store in `dir` (SQLite unless `audit_db` is given), fast timeouts.
pub fn settings_in(dir: &std::path::Path, audit_db: Option<String>) -> Settings {
    Settings {
        audit_db: audit_db
            .unwrap_or_else(|| dir.join("audit.sqlite").to_string_lossy().into_owned()),
        audit_spool_dir: dir.join("spool"),
        audit_write_timeout_ms: 1000,
        audit_retry_interval_ms: 100,
        ..Settings::default()
    }
}

//! Read side of the audit trail, one file per job: [`filters`] (query-string parsing and the
//! WHERE clauses), [`evaluations`] (the evaluation list), [`feedback`] (the feedback list),
//! [`summary`] (the compliance figures) and [`export`] (keyset-paged export and CSV). Plain SQL
//! with `$n` binds that runs unchanged on SQLite and PostgreSQL.
//!
//! Every failure of the store surfaces as a [`QueryError`]: no figure is ever made up from a
//! failed query.

mod evaluations;
mod export;
mod feedback;
mod filters;
mod summary;

pub use evaluations::{EvaluationItem, list_evaluations, list_evaluations_ordered};
pub use export::{CSV_HEADER, ExportCursor, csv_record, export_page};
pub use feedback::{FeedbackItem, list_feedback};
pub use filters::{Bucket, FeedbackFilter, FeedbackFilters, Filters, Page, ParamError};
pub use summary::summary;

use super::db::Db;
use super::sql::{Bind, bind_all};
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

/// A failed audit query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The store could not run the query or a row did not have the expected shape.
    #[error("audit store query failed: {0}")]
    Store(#[from] sqlx::Error),
    /// An aggregate query returned no row (it always returns one on a healthy store).
    #[error("audit store query returned no row")]
    NoRow,
}

impl QueryError {
    /// True when the store could not be reached (connection refused, pool timeout): worth
    /// retrying later, unlike a query the store refused.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            QueryError::Store(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_))
        )
    }
}

async fn fetch_all(db: &Db, sql: String, binds: Vec<Bind>) -> Result<Vec<AnyRow>, QueryError> {
    let q = bind_all(sqlx::query(AssertSqlSafe(sql)), binds);
    Ok(q.fetch_all(&db.pool).await?)
}

fn json_list(s: Option<String>) -> Vec<String> {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;

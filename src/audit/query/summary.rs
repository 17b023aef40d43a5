//! The compliance summary for the filtered evaluations. Every count comes from a query that
//! succeeded: a failed query is an error, never a zero.

use super::filters::{Bucket, Filters};
use super::{QueryError, fetch_all};
use crate::audit::db::Db;
use crate::audit::records::ms_to_rfc3339;
use crate::audit::sql::Bind;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An integer column; SQL NULL (an aggregate over no rows) is 0, a failed read an error.
fn i(r: &AnyRow, idx: usize) -> Result<i64, QueryError> {
    Ok(r.try_get::<Option<i64>, _>(idx)?.unwrap_or(0))
}

/// A text column that may be NULL.
fn text(r: &AnyRow, idx: usize) -> Result<Option<String>, QueryError> {
    Ok(r.try_get::<Option<String>, _>(idx)?)
}

/// Runs an aggregate query that always answers exactly one row.
async fn fetch_one(db: &Db, sql: String, binds: Vec<Bind>) -> Result<AnyRow, QueryError> {
    fetch_all(db, sql, binds)
        .await?
        .into_iter()
        .next()
        .ok_or(QueryError::NoRow)
}

fn share(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0
    }
}

const GROUP_COUNTS: &str = "COUNT(*), \
    CAST(COALESCE(SUM(CASE WHEN o.rating IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN o.category = 'usually-appropriate' THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN o.category IN ('may-be-appropriate', 'may-be-appropriate-disagreement') THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(CASE WHEN o.category = 'usually-not-appropriate' THEN 1 ELSE 0 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(COALESCE(fbk.ovr, 0)), 0) AS BIGINT), \
    CAST(COALESCE(SUM(COALESCE(fbk.acc, 0)), 0) AS BIGINT)";

/// Per card: whether any feedback overrode / accepted it (joined as `fbk`).
const FEEDBACK_FLAGS: &str = "LEFT JOIN (SELECT card_uuid, \
    MAX(CASE WHEN outcome = 'overridden' THEN 1 ELSE 0 END) AS ovr, \
    MAX(CASE WHEN outcome = 'accepted' THEN 1 ELSE 0 END) AS acc \
    FROM audit_feedback GROUP BY card_uuid) fbk ON fbk.card_uuid = o.card_uuid";

/// Counts of a group (variant, procedure, user) starting at column `at`.
fn group_counts(r: &AnyRow, at: usize) -> Result<Value, QueryError> {
    let orders = i(r, at)?;
    let rated = i(r, at + 1)?;
    let not_app = i(r, at + 4)?;
    Ok(json!({
        "orders": orders,
        "rated": rated,
        "usually_appropriate": i(r, at + 2)?,
        "may_be_appropriate": i(r, at + 3)?,
        "usually_not_appropriate": not_app,
        "not_appropriate_share": share(not_app, rated),
        "overridden": i(r, at + 5)?,
        "accepted": i(r, at + 6)?,
    }))
}

/// The compliance summary for the filtered evaluations.
pub async fn summary(db: &Db, filters: &Filters, bucket: Bucket) -> Result<Value, QueryError> {
    let q = |extra_select: &str, group: &str, order: &str| {
        let mut binds = vec![];
        let w = filters.where_orders(&mut binds);
        (
            format!(
                "SELECT {extra_select}{GROUP_COUNTS} FROM audit_orders o {FEEDBACK_FLAGS} {w} {group} {order}"
            ),
            binds,
        )
    };

    // Totals.
    let (sql, binds) = q(
        "COUNT(DISTINCT o.call_id), \
         CAST(COALESCE(SUM(CASE WHEN o.outcome <> 'not-evaluated' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         COUNT(DISTINCT o.card_uuid), ",
        "",
        "",
    );
    let t = &fetch_one(db, sql, binds).await?;
    let mut calls = i(t, 0)?;
    let evaluated = i(t, 1)?;
    let cards = i(t, 2)?;
    let totals = group_counts(t, 3)?;
    // Calls without draft orders count too when no order-level filter is set.
    let mut binds = vec![];
    if let Some(w) = filters.where_calls(&mut binds) {
        calls = i(
            &fetch_one(db, format!("SELECT COUNT(*) FROM audit_calls c {w}"), binds).await?,
            0,
        )?;
    }

    // Outcomes and categories.
    let mut binds = vec![];
    let w = filters.where_orders(&mut binds);
    let rows = fetch_all(
        db,
        format!("SELECT o.outcome, COUNT(*) FROM audit_orders o {w} GROUP BY o.outcome ORDER BY 2 DESC, 1"),
        binds,
    )
    .await?;
    let by_outcome: Vec<Value> = rows
        .iter()
        .map(|r| Ok(json!({"outcome": text(r, 0)?.unwrap_or_default(), "orders": i(r, 1)?})))
        .collect::<Result<_, QueryError>>()?;

    let mut binds = vec![];
    let w = filters.where_orders(&mut binds);
    let rows = fetch_all(
        db,
        format!("SELECT o.service_id, COUNT(*) FROM audit_orders o {w} GROUP BY o.service_id ORDER BY 2 DESC, 1"),
        binds,
    )
    .await?;
    let by_service: Vec<Value> = rows
        .iter()
        .map(|r| Ok(json!({"service": text(r, 0)?.unwrap_or_default(), "orders": i(r, 1)?})))
        .collect::<Result<_, QueryError>>()?;

    let (sql, binds) = q(
        "o.chosen_variant, ",
        "GROUP BY o.chosen_variant",
        "ORDER BY 2 DESC, 1",
    );
    let by_variant: Vec<Value> = fetch_all(db, sql, binds)
        .await?
        .iter()
        .map(|r| {
            let mut v = group_counts(r, 1)?;
            v["variant"] = json!(text(r, 0)?);
            Ok(v)
        })
        .collect::<Result<_, QueryError>>()?;

    let (sql, binds) = q(
        "o.procedure_id, MAX(o.procedure_name), ",
        "GROUP BY o.procedure_id",
        "ORDER BY 3 DESC, 1",
    );
    let by_procedure: Vec<Value> = fetch_all(db, sql, binds)
        .await?
        .iter()
        .map(|r| {
            let mut v = group_counts(r, 2)?;
            v["procedure_id"] = json!(text(r, 0)?);
            v["procedure_name"] = json!(text(r, 1)?);
            Ok(v)
        })
        .collect::<Result<_, QueryError>>()?;

    let (sql, binds) = q(
        "o.user_id, ",
        "GROUP BY o.user_id",
        "ORDER BY 2 DESC, 1 LIMIT 25",
    );
    let by_user: Vec<Value> = fetch_all(db, sql, binds)
        .await?
        .iter()
        .map(|r| {
            let mut v = group_counts(r, 1)?;
            v["user"] = json!(text(r, 0)?.unwrap_or_default());
            Ok(v)
        })
        .collect::<Result<_, QueryError>>()?;

    // Rating mix over time (bucket width is a fixed constant, not user text).
    let width = bucket.millis();
    let mut binds = vec![];
    let w = filters.where_orders(&mut binds);
    let sql = format!(
        "SELECT (o.received_at_ms / {width}) * {width}, \
         CAST(COALESCE(SUM(CASE WHEN o.category = 'usually-appropriate' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN o.category IN ('may-be-appropriate', 'may-be-appropriate-disagreement') THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN o.category = 'usually-not-appropriate' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN o.category IS NULL AND o.outcome <> 'not-evaluated' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM audit_orders o {w} GROUP BY 1 ORDER BY 1"
    );
    let timeline: Vec<Value> = fetch_all(db, sql, binds)
        .await?
        .iter()
        .map(|r| {
            let t = i(r, 0)?;
            Ok(json!({
                "t": ms_to_rfc3339(t),
                "t_ms": t,
                "usually_appropriate": i(r, 1)?,
                "may_be_appropriate": i(r, 2)?,
                "usually_not_appropriate": i(r, 3)?,
                "unrated": i(r, 4)?,
            }))
        })
        .collect::<Result<_, QueryError>>()?;

    // Feedback on the filtered evaluations' cards.
    let mut binds = vec![];
    let w = filters.where_orders(&mut binds);
    let cards_sub = format!(
        "SELECT o.card_uuid FROM audit_orders o {} {} o.card_uuid IS NOT NULL",
        w,
        if w.is_empty() { "WHERE" } else { "AND" }
    );
    let sql = format!(
        "SELECT COUNT(*), \
         COUNT(DISTINCT f.card_uuid), \
         COUNT(DISTINCT CASE WHEN f.outcome = 'accepted' THEN f.card_uuid END), \
         COUNT(DISTINCT CASE WHEN f.outcome = 'overridden' THEN f.card_uuid END), \
         CAST(COALESCE(SUM(CASE WHEN f.outcome = 'accepted' THEN f.accepted_count ELSE 0 END), 0) AS BIGINT), \
         COUNT(DISTINCT CASE WHEN f.outcome = 'accepted' AND f.suggestion_known = 1 THEN f.card_uuid END), \
         CAST(COALESCE(SUM(CASE WHEN f.outcome = 'accepted' AND f.suggestion_known = 1 THEN f.accepted_count ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN f.outcome = 'accepted' AND f.suggestion_known = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM audit_feedback f WHERE f.card_uuid IN ({cards_sub})"
    );
    let f = &fetch_one(db, sql, binds).await?;
    let (entries, with_fb, acc, ovr, sugg) = (i(f, 0)?, i(f, 1)?, i(f, 2)?, i(f, 3)?, i(f, 4)?);
    // Feedback truth (issue 9): accepts whose suggestion ids were all issued on the card.
    let (acc_known, sugg_known, acc_unknown) = (i(f, 5)?, i(f, 6)?, i(f, 7)?);

    let mut binds = vec![];
    let w = filters.where_orders(&mut binds);
    let cards_sub = format!(
        "SELECT o.card_uuid FROM audit_orders o {} {} o.card_uuid IS NOT NULL",
        w,
        if w.is_empty() { "WHERE" } else { "AND" }
    );
    let sql = format!(
        "SELECT f.override_system, f.override_code, MAX(f.override_display), COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN f.user_comment IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM audit_feedback f WHERE f.outcome = 'overridden' AND f.card_uuid IN ({cards_sub}) \
         GROUP BY f.override_system, f.override_code ORDER BY 4 DESC, 2 LIMIT 10"
    );
    let override_reasons: Vec<Value> = fetch_all(db, sql, binds)
        .await?
        .iter()
        .map(|r| {
            let code = text(r, 1)?;
            let display = text(r, 2)?;
            Ok(json!({
                "system": text(r, 0)?,
                "code": code,
                "display": display.or_else(|| code.clone()).unwrap_or_else(|| "(no reason given)".into()),
                "count": i(r, 3)?,
                "with_comment": i(r, 4)?,
            }))
        })
        .collect::<Result<_, QueryError>>()?;

    // Feedback that matches no evaluation in this store (time range only).
    let unlinked = if filters.time_only() {
        let mut binds = vec![];
        let mut conds = vec![
            "NOT EXISTS (SELECT 1 FROM audit_orders o WHERE o.card_uuid = f.card_uuid)".to_owned(),
        ];
        if let Some(v) = filters.from_ms {
            binds.push(Bind::int(v));
            conds.push(format!("f.received_at_ms >= ${}", binds.len()));
        }
        if let Some(v) = filters.to_ms {
            binds.push(Bind::int(v));
            conds.push(format!("f.received_at_ms < ${}", binds.len()));
        }
        let row = fetch_one(
            db,
            format!(
                "SELECT COUNT(*) FROM audit_feedback f WHERE {}",
                conds.join(" AND ")
            ),
            binds,
        )
        .await?;
        Some(i(&row, 0)?)
    } else {
        None
    };

    let mut binds = vec![];
    let sql = match filters.where_calls(&mut binds) {
        Some(w) => {
            format!(
                "SELECT c.delivery, COUNT(*) FROM audit_calls c {w} GROUP BY c.delivery ORDER BY 1"
            )
        }
        None => {
            binds.clear();
            let w = filters.where_orders(&mut binds);
            format!(
                "SELECT c.delivery, COUNT(*) FROM audit_calls c WHERE c.call_id IN \
                 (SELECT o.call_id FROM audit_orders o {w}) GROUP BY c.delivery ORDER BY 1"
            )
        }
    };
    let rows = fetch_all(db, sql, binds).await?;
    let mut delivery = serde_json::Map::new();
    for r in &rows {
        delivery.insert(text(r, 0)?.unwrap_or_default(), json!(i(r, 1)?));
    }

    // Both were just read as integers by `group_counts`.
    let rated = totals["rated"].as_i64().unwrap_or_default();
    let not_app = totals["usually_not_appropriate"]
        .as_i64()
        .unwrap_or_default();
    Ok(json!({
        "filters": filters
            .to_query()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<serde_json::Map<_, _>>(),
        "calls": calls,
        "orders": totals["orders"],
        "orders_evaluated": evaluated,
        "orders_rated": rated,
        "usually_appropriate": totals["usually_appropriate"],
        "may_be_appropriate": totals["may_be_appropriate"],
        "not_appropriate": not_app,
        "not_appropriate_share": share(not_app, rated),
        "by_outcome": by_outcome,
        "by_service": by_service,
        "by_variant": by_variant,
        "by_procedure": by_procedure,
        "by_user": by_user,
        "timeline": {"bucket": bucket, "points": timeline},
        "feedback": {
            "cards_issued": cards,
            "cards_with_feedback": with_fb,
            "cards_accepted": acc,
            "cards_overridden": ovr,
            "override_rate": share(ovr, with_fb),
            "override_rate_of_cards_issued": share(ovr, cards),
            "suggestions_accepted": sugg,
            "cards_accepted_known": acc_known,
            "suggestions_accepted_known": sugg_known,
            "accepted_entries_unknown_suggestion": acc_unknown,
            "entries": entries,
            "unlinked_entries": unlinked,
        },
        "override_reasons": override_reasons,
        "delivery": delivery,
    }))
}

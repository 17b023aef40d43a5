//! The feedback list, each entry with the evaluation that issued its card.

use super::evaluations::{EVAL_COLUMNS, eval_from_row};
use super::filters::{FeedbackFilters, Page};
use super::{QueryError, fetch_all, json_list};
use crate::audit::db::Db;
use crate::audit::records::ms_to_rfc3339;
use crate::audit::sql::Bind;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

/// One feedback entry, with the evaluation it belongs to when known.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackItem {
    pub feedback_id: String,
    pub received_at: String,
    pub service_id: String,
    pub card_uuid: String,
    pub outcome: String,
    pub outcome_timestamp: String,
    pub accepted_suggestions: Vec<String>,
    /// `accepted` entries: whether every accepted suggestion id was issued on that card
    /// (`false` also when the card is not in this store); `null` for `overridden` entries and
    /// entries stored before the check existed.
    pub suggestion_known: Option<bool>,
    pub override_reason: Option<Value>,
    pub user_comment: Option<String>,
    pub delivery: String,
    /// The evaluation that issued the card (`null` when the card is unknown to this store).
    pub evaluation: Option<Value>,
}

pub(super) const FEEDBACK_COLUMNS: &str = "f.feedback_id, f.received_at_ms, f.service_id, f.card_uuid, \
    f.outcome, f.outcome_at_ms, f.accepted_suggestions, f.override_system, f.override_code, \
    f.override_display, f.user_comment, f.delivery, f.suggestion_known";

pub(super) fn feedback_from_row(r: &AnyRow) -> Result<FeedbackItem, QueryError> {
    let system: Option<String> = r.try_get("override_system")?;
    let code: Option<String> = r.try_get("override_code")?;
    let display: Option<String> = r.try_get("override_display")?;
    let override_reason = match (&system, &code) {
        (Some(s), Some(c)) => {
            let mut v = json!({"system": s, "code": c});
            if let Some(d) = display {
                v["display"] = json!(d);
            }
            Some(v)
        }
        _ => None,
    };
    Ok(FeedbackItem {
        feedback_id: r.try_get("feedback_id")?,
        received_at: ms_to_rfc3339(r.try_get("received_at_ms")?),
        service_id: r.try_get("service_id")?,
        card_uuid: r.try_get("card_uuid")?,
        outcome: r.try_get("outcome")?,
        outcome_timestamp: ms_to_rfc3339(r.try_get("outcome_at_ms")?),
        accepted_suggestions: json_list(r.try_get("accepted_suggestions")?),
        suggestion_known: r
            .try_get::<Option<i64>, _>("suggestion_known")?
            .map(|k| k != 0),
        override_reason,
        user_comment: r.try_get("user_comment")?,
        delivery: r.try_get("delivery")?,
        evaluation: None,
    })
}

/// Feedback rows on any of `cards`, oldest outcome first (one query for a whole page).
pub(super) async fn feedback_rows_for_cards(
    db: &Db,
    cards: Vec<String>,
) -> Result<Vec<AnyRow>, QueryError> {
    let placeholders: Vec<String> = (1..=cards.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {FEEDBACK_COLUMNS} FROM audit_feedback f WHERE f.card_uuid IN ({}) \
         ORDER BY f.outcome_at_ms, f.feedback_id",
        placeholders.join(", ")
    );
    fetch_all(db, sql, cards.into_iter().map(Bind::text).collect()).await
}

pub async fn list_feedback(
    db: &Db,
    filters: &FeedbackFilters,
    page: Page,
) -> Result<(i64, Vec<FeedbackItem>), QueryError> {
    let build = |binds: &mut Vec<Bind>| {
        let mut conds = vec![];
        if let Some(v) = filters.from_ms {
            binds.push(Bind::int(v));
            conds.push(format!("f.received_at_ms >= ${}", binds.len()));
        }
        if let Some(v) = filters.to_ms {
            binds.push(Bind::int(v));
            conds.push(format!("f.received_at_ms < ${}", binds.len()));
        }
        for (col, v) in [
            ("f.service_id", &filters.service),
            ("f.outcome", &filters.outcome),
            ("f.card_uuid", &filters.card),
        ] {
            if let Some(v) = v {
                binds.push(Bind::text(v.clone()));
                conds.push(format!("{col} = ${}", binds.len()));
            }
        }
        match filters.linked {
            Some(true) => conds.push(
                "EXISTS (SELECT 1 FROM audit_orders lo WHERE lo.card_uuid = f.card_uuid)".into(),
            ),
            Some(false) => conds.push(
                "NOT EXISTS (SELECT 1 FROM audit_orders lo WHERE lo.card_uuid = f.card_uuid)"
                    .into(),
            ),
            None => {}
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        }
    };
    let mut binds = vec![];
    let w = build(&mut binds);
    let rows = fetch_all(
        db,
        format!("SELECT COUNT(*) FROM audit_feedback f {w}"),
        binds,
    )
    .await?;
    let total: i64 = rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
    let mut binds = vec![];
    let w = build(&mut binds);
    binds.push(Bind::int(page.limit));
    let l = binds.len();
    binds.push(Bind::int(page.offset));
    let sql = format!(
        "SELECT {FEEDBACK_COLUMNS}, \
         (SELECT o.call_id FROM audit_orders o WHERE o.card_uuid = f.card_uuid LIMIT 1) AS e_call \
         FROM audit_feedback f {w} ORDER BY f.received_at_ms DESC, f.feedback_id LIMIT ${l} OFFSET ${}",
        l + 1
    );
    let rows = fetch_all(db, sql, binds).await?;
    let mut items = rows
        .iter()
        .map(|r| {
            let fb = feedback_from_row(r)?;
            let linked = r.try_get::<Option<String>, _>("e_call")?.is_some();
            Ok((fb, linked))
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    // The evaluations behind the linked cards, in one query for the whole page (never one per
    // row): the newest order per card, as the evaluation list would show it first.
    let mut cards: Vec<String> = items
        .iter()
        .filter(|(_, linked)| *linked)
        .map(|(fb, _)| fb.card_uuid.clone())
        .collect();
    cards.sort_unstable();
    cards.dedup();
    let mut newest: HashMap<String, Value> = HashMap::new();
    if !cards.is_empty() {
        let placeholders: Vec<String> = (1..=cards.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {EVAL_COLUMNS} FROM audit_orders o JOIN audit_calls c ON c.call_id = o.call_id \
             WHERE o.card_uuid IN ({}) \
             ORDER BY o.received_at_ms DESC, o.call_id, o.order_index",
            placeholders.join(", ")
        );
        for r in &fetch_all(db, sql, cards.into_iter().map(Bind::text).collect()).await? {
            let e = eval_from_row(r)?;
            let Some(card) = e.card_uuid.clone() else {
                continue;
            };
            newest.entry(card).or_insert_with(|| {
                json!({
                    "call_id": e.call_id,
                    "order_index": e.order_index,
                    "received_at": e.received_at,
                    "hook_instance": e.hook_instance,
                    "user_id": e.user_id,
                    "order_ref": e.order_ref,
                    "procedure_id": e.procedure_id,
                    "chosen_variant": e.chosen_variant,
                    "rating": e.rating,
                    "category": e.category,
                    "pama_rating": e.pama_rating,
                })
            });
        }
    }
    let items = items
        .drain(..)
        .map(|(mut fb, linked)| {
            if linked {
                fb.evaluation = newest.get(&fb.card_uuid).cloned();
            }
            fb
        })
        .collect();
    Ok((total, items))
}

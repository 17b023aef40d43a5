//! Export: keyset-paged evaluations (oldest first) and their CSV form.

use super::evaluations::{EVAL_COLUMNS, EvaluationItem, attach_feedback, eval_from_row};
use super::filters::Filters;
use super::{QueryError, fetch_all};
use crate::audit::db::Db;
use crate::audit::sql::Bind;
use serde_json::Value;

/// Position after the last exported row: (received_at_ms, call_id, order_index).
pub type ExportCursor = (i64, String, i64);

/// One page of an export, oldest first, after `after` (keyset pagination: constant cost per
/// page, no total).
pub async fn export_page(
    db: &Db,
    filters: &Filters,
    after: Option<&ExportCursor>,
    limit: i64,
) -> Result<Vec<EvaluationItem>, QueryError> {
    let mut binds = vec![];
    let mut w = filters.where_orders(&mut binds);
    if let Some((ms, call, idx)) = after {
        binds.push(Bind::int(*ms));
        let a = binds.len();
        binds.push(Bind::text(call.clone()));
        binds.push(Bind::int(*idx));
        let cond = format!(
            "(o.received_at_ms, o.call_id, o.order_index) > (${a}, ${}, ${})",
            a + 1,
            a + 2
        );
        w = if w.is_empty() {
            format!("WHERE {cond}")
        } else {
            format!("{w} AND {cond}")
        };
    }
    binds.push(Bind::int(limit));
    let sql = format!(
        "SELECT {EVAL_COLUMNS} FROM audit_orders o JOIN audit_calls c ON c.call_id = o.call_id {w} \
         ORDER BY o.received_at_ms, o.call_id, o.order_index LIMIT ${}",
        binds.len()
    );
    let rows = fetch_all(db, sql, binds).await?;
    let mut items = rows
        .iter()
        .map(eval_from_row)
        .collect::<Result<Vec<_>, QueryError>>()?;
    attach_feedback(db, &mut items).await?;
    Ok(items)
}

/// CSV header of the export.
pub const CSV_HEADER: &[&str] = &[
    "received_at",
    "call_id",
    "order_index",
    "service_id",
    "hook",
    "hook_instance",
    "user_id",
    "patient_id",
    "encounter_id",
    "order_ref",
    "order_codes",
    "selected",
    "outcome",
    "procedure_id",
    "procedure_name",
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
    "feedback_accepted",
    "feedback_overridden",
    "override_reasons",
    "user_comments",
    "knowledge_version",
    "latency_ms",
    "delivery",
    "source",
    "run_id",
];

/// Neutralizes spreadsheet formulas: a cell starting with `=`, `+`, `-`, `@`, tab or CR gets a
/// leading `'` (OWASP CSV injection advice).
pub(super) fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// One CSV record of an evaluation.
pub fn csv_record(e: &EvaluationItem) -> Vec<String> {
    let opt = |o: &Option<String>| o.as_deref().map(cell).unwrap_or_default();
    let accepted = e
        .feedback
        .iter()
        .filter(|f| f.outcome == "accepted")
        .count();
    let overridden = e
        .feedback
        .iter()
        .filter(|f| f.outcome == "overridden")
        .count();
    let reasons: Vec<String> = e
        .feedback
        .iter()
        .filter_map(|f| f.override_reason.as_ref())
        .map(|r| {
            r.get("display")
                .or_else(|| r.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let comments: Vec<String> = e
        .feedback
        .iter()
        .filter_map(|f| f.user_comment.clone())
        .collect();
    vec![
        e.received_at.clone(),
        e.call_id.clone(),
        e.order_index.to_string(),
        cell(&e.service_id),
        e.hook.clone(),
        cell(&e.hook_instance),
        cell(&e.user_id),
        cell(&e.patient_id),
        opt(&e.encounter_id),
        cell(&e.order_ref),
        cell(&e.order_codes.join(" ")),
        e.selected.to_string(),
        e.outcome.clone(),
        opt(&e.procedure_id),
        opt(&e.procedure_name),
        opt(&e.matched_code),
        cell(&e.candidate_variants.join(" ")),
        opt(&e.chosen_variant),
        e.rating.map(|r| r.to_string()).unwrap_or_default(),
        opt(&e.category),
        opt(&e.evidence),
        opt(&e.pama_rating),
        opt(&e.consult_id),
        cell(&e.assumptions.join(" | ")),
        cell(&e.deciding_facts.join(" | ")),
        opt(&e.card_uuid),
        cell(&e.suggestion_uuids.join(" ")),
        cell(
            &e.suggestions
                .iter()
                .map(|s| {
                    format!(
                        "{} ({})",
                        s.get("label").and_then(Value::as_str).unwrap_or(""),
                        s.get("rating").map(Value::to_string).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(" | "),
        ),
        cell(&e.safety_notes.join(" | ")),
        accepted.to_string(),
        overridden.to_string(),
        cell(&reasons.join(" | ")),
        cell(&comments.join(" | ")),
        cell(&e.knowledge_version),
        format!("{:.3}", e.latency_ms),
        e.delivery.clone(),
        e.source.clone(),
        cell(e.run_id.as_deref().unwrap_or("")),
    ]
}

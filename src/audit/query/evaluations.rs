//! The evaluation list, newest first, each with the feedback on its card.

use super::feedback::{FeedbackItem, feedback_from_row, feedback_rows_for_cards};
use super::filters::{Filters, Page};
use super::{QueryError, fetch_all, json_list};
use crate::audit::db::Db;
use crate::audit::records::ms_to_rfc3339;
use crate::audit::sql::Bind;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

/// One order evaluation as listed and exported.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationItem {
    pub received_at: String,
    pub received_at_ms: i64,
    pub call_id: String,
    pub order_index: i64,
    pub service_id: String,
    pub hook: String,
    pub hook_instance: String,
    pub user_id: String,
    pub patient_id: String,
    pub encounter_id: Option<String>,
    pub knowledge_version: String,
    pub guideline_id: String,
    pub latency_ms: f64,
    pub delivery: String,
    /// `live` or `batch`.
    pub source: String,
    /// The batch run that stored the record.
    pub run_id: Option<String>,
    pub order_ref: String,
    pub order_codes: Vec<String>,
    pub selected: bool,
    pub outcome: String,
    pub procedure_id: Option<String>,
    pub procedure_name: Option<String>,
    pub region: Option<String>,
    pub contrast: Option<String>,
    pub matched_code: Option<String>,
    pub candidate_variants: Vec<String>,
    pub chosen_variant: Option<String>,
    pub rating: Option<i64>,
    pub category: Option<String>,
    pub evidence: Option<String>,
    pub pama_rating: Option<String>,
    pub consult_id: Option<String>,
    pub assumptions: Vec<String>,
    pub deciding_facts: Vec<String>,
    pub card_uuid: Option<String>,
    pub suggestion_uuids: Vec<String>,
    /// The alternatives offered, best first.
    pub suggestions: Vec<Value>,
    pub safety_notes: Vec<String>,
    pub feedback: Vec<FeedbackItem>,
}

pub(super) const EVAL_COLUMNS: &str = "o.call_id, o.order_index, o.received_at_ms, o.service_id, o.hook, \
    o.hook_instance, o.user_id, c.patient_id, c.encounter_id, c.knowledge_version, \
    c.guideline_id, c.latency_ms, c.delivery, c.source, c.run_id, o.order_ref, o.order_codes, o.selected, o.outcome, \
    o.procedure_id, o.procedure_name, o.region, o.contrast, o.matched_code, o.candidate_variants, \
    o.chosen_variant, o.rating, o.category, o.evidence, o.pama_rating, o.consult_id, \
    o.assumptions, o.deciding_facts, o.card_uuid, o.suggestion_uuids, o.suggestions, \
    o.safety_notes";

pub(super) fn eval_from_row(r: &AnyRow) -> Result<EvaluationItem, QueryError> {
    let ms: i64 = r.try_get("received_at_ms")?;
    Ok(EvaluationItem {
        received_at: ms_to_rfc3339(ms),
        received_at_ms: ms,
        call_id: r.try_get("call_id")?,
        order_index: r.try_get("order_index")?,
        service_id: r.try_get("service_id")?,
        hook: r.try_get("hook")?,
        hook_instance: r.try_get("hook_instance")?,
        user_id: r.try_get("user_id")?,
        patient_id: r.try_get("patient_id")?,
        encounter_id: r.try_get("encounter_id")?,
        knowledge_version: r.try_get("knowledge_version")?,
        guideline_id: r.try_get("guideline_id")?,
        latency_ms: r.try_get("latency_ms")?,
        delivery: r.try_get("delivery")?,
        source: r.try_get("source")?,
        run_id: r.try_get("run_id")?,
        order_ref: r.try_get("order_ref")?,
        order_codes: json_list(r.try_get("order_codes")?),
        selected: r.try_get::<i64, _>("selected")? != 0,
        outcome: r.try_get("outcome")?,
        procedure_id: r.try_get("procedure_id")?,
        procedure_name: r.try_get("procedure_name")?,
        region: r.try_get("region")?,
        contrast: r.try_get("contrast")?,
        matched_code: r.try_get("matched_code")?,
        candidate_variants: json_list(r.try_get("candidate_variants")?),
        chosen_variant: r.try_get("chosen_variant")?,
        rating: r.try_get("rating")?,
        category: r.try_get("category")?,
        evidence: r.try_get("evidence")?,
        pama_rating: r.try_get("pama_rating")?,
        consult_id: r.try_get("consult_id")?,
        assumptions: json_list(r.try_get("assumptions")?),
        deciding_facts: json_list(r.try_get("deciding_facts")?),
        card_uuid: r.try_get("card_uuid")?,
        suggestion_uuids: json_list(r.try_get("suggestion_uuids")?),
        suggestions: r
            .try_get::<Option<String>, _>("suggestions")?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        safety_notes: json_list(r.try_get("safety_notes")?),
        feedback: vec![],
    })
}

/// A page of evaluations (newest first) plus the total matching.
pub async fn list_evaluations(
    db: &Db,
    filters: &Filters,
    page: Page,
) -> Result<(i64, Vec<EvaluationItem>), QueryError> {
    list_evaluations_ordered(db, filters, page, false).await
}

/// A page of evaluations, oldest first when `ascending` (exports), plus the total matching.
pub async fn list_evaluations_ordered(
    db: &Db,
    filters: &Filters,
    page: Page,
    ascending: bool,
) -> Result<(i64, Vec<EvaluationItem>), QueryError> {
    let mut binds = vec![];
    let w = filters.where_orders(&mut binds);
    let total_rows = fetch_all(
        db,
        format!("SELECT COUNT(*) FROM audit_orders o {w}"),
        binds,
    )
    .await?;
    let total: i64 = total_rows
        .first()
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0);
    let mut binds = vec![];
    let w = filters.where_orders(&mut binds);
    binds.push(Bind::int(page.limit));
    let l = binds.len();
    binds.push(Bind::int(page.offset));
    let sql = format!(
        "SELECT {EVAL_COLUMNS} FROM audit_orders o JOIN audit_calls c ON c.call_id = o.call_id {w} \
         ORDER BY o.received_at_ms {dir}, o.call_id, o.order_index LIMIT ${l} OFFSET ${}",
        l + 1,
        dir = if ascending { "ASC" } else { "DESC" },
    );
    let rows = fetch_all(db, sql, binds).await?;
    let mut items = rows
        .iter()
        .map(eval_from_row)
        .collect::<Result<Vec<_>, QueryError>>()?;
    attach_feedback(db, &mut items).await?;
    Ok((total, items))
}

pub(super) async fn attach_feedback(
    db: &Db,
    items: &mut [EvaluationItem],
) -> Result<(), QueryError> {
    let cards: Vec<String> = items.iter().filter_map(|i| i.card_uuid.clone()).collect();
    if cards.is_empty() {
        return Ok(());
    }
    let rows = feedback_rows_for_cards(db, cards).await?;
    for r in &rows {
        let fb = feedback_from_row(r)?;
        for i in items.iter_mut() {
            if i.card_uuid.as_deref() == Some(fb.card_uuid.as_str()) {
                i.feedback.push(fb.clone());
            }
        }
    }
    Ok(())
}

//! Read side of the audit trail: filters, the evaluation list, the feedback list, the summary and
//! the CSV export. Plain SQL with `$n` binds that runs unchanged on SQLite and PostgreSQL.

use super::db::Db;
use super::pseudonym::Pseudonymizer;
use super::records::ms_to_rfc3339;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A bad query parameter: (parameter name, message).
pub type ParamError = (String, String);

const OUTCOMES: &[&str] = &[
    "rated",
    "ambiguous",
    "no-vcf",
    "no-variant",
    "out-of-scope",
    "not-recognized",
    "not-evaluated",
];
const CATEGORIES: &[&str] = &[
    "usually-appropriate",
    "may-be-appropriate",
    "may-be-appropriate-disagreement",
    "usually-not-appropriate",
];
const PAMA: &[&str] = &["appropriate", "not-appropriate", "no-criteria-apply"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackFilter {
    /// At least one `accepted` entry for the order's card.
    Accepted,
    /// At least one `overridden` entry.
    Overridden,
    /// Any feedback.
    Any,
    /// A card was issued and no feedback came back.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    Day,
    Week,
}

impl Bucket {
    pub fn millis(self) -> i64 {
        match self {
            Bucket::Hour => 3_600_000,
            Bucket::Day => 86_400_000,
            Bucket::Week => 7 * 86_400_000,
        }
    }
}

/// Filters shared by the list, summary and export endpoints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filters {
    /// Received at or after (epoch ms).
    pub from_ms: Option<i64>,
    /// Received before (epoch ms).
    pub to_ms: Option<i64>,
    pub service: Option<String>,
    pub hook: Option<String>,
    /// Chosen variant id; `none` for orders without one.
    pub variant: Option<String>,
    /// Recognised procedure id; `none` for unrecognised orders.
    pub procedure: Option<String>,
    pub rating: Option<i64>,
    pub category: Option<String>,
    pub pama: Option<String>,
    /// Ordering user (pseudonym, or the raw id which is pseudonymized here).
    pub user: Option<String>,
    /// Engine outcome.
    pub outcome: Option<String>,
    pub feedback: Option<FeedbackFilter>,
    pub hook_instance: Option<String>,
    pub call: Option<String>,
    pub card: Option<String>,
    /// `committed` or `spooled`.
    pub delivery: Option<String>,
}

/// Pagination.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

enum Bind {
    Text(String),
    Int(i64),
}

fn parse_time(name: &str, v: &str, end: bool) -> Result<i64, ParamError> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(super::records::epoch_ms(t));
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(v, &fmt) {
        Ok(d) => {
            let d = if end { d.next_day().unwrap_or(d) } else { d };
            Ok(super::records::epoch_ms(d.midnight().assume_utc()))
        }
        Err(_) => Err((
            name.to_owned(),
            format!("{v:?} is not an RFC 3339 date-time or a YYYY-MM-DD date"),
        )),
    }
}

fn one_of(name: &str, v: &str, allowed: &[&str]) -> Result<String, ParamError> {
    if allowed.contains(&v) {
        Ok(v.to_owned())
    } else {
        Err((
            name.to_owned(),
            format!("{v:?} is not one of {}", allowed.join(", ")),
        ))
    }
}

impl Filters {
    /// Parses query parameters. `extra` names parameters the caller handles itself (pagination,
    /// bucket); any other unknown parameter is an error.
    pub fn parse(
        params: &[(String, String)],
        pseudonymizer: &Pseudonymizer,
        extra: &[&str],
    ) -> Result<Filters, ParamError> {
        let mut f = Filters::default();
        for (k, v) in params {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let s = || Some(v.to_owned());
            match k.as_str() {
                "from" => f.from_ms = Some(parse_time(k, v, false)?),
                "to" => f.to_ms = Some(parse_time(k, v, true)?),
                "service" => f.service = s(),
                "hook" => f.hook = Some(one_of(k, v, &["order-select", "order-sign"])?),
                "variant" => f.variant = s(),
                "procedure" => f.procedure = s(),
                "rating" => {
                    f.rating = Some(
                        v.parse::<i64>()
                            .ok()
                            .filter(|r| (1..=9).contains(r))
                            .ok_or_else(|| (k.clone(), format!("{v:?} is not a rating 1-9")))?,
                    )
                }
                "category" => f.category = Some(one_of(k, v, CATEGORIES)?),
                "pama" => f.pama = Some(one_of(k, v, PAMA)?),
                "user" => f.user = Some(pseudonymizer.apply_to_filter(v)),
                "outcome" => f.outcome = Some(one_of(k, v, OUTCOMES)?),
                "feedback" => {
                    f.feedback = Some(match v {
                        "accepted" => FeedbackFilter::Accepted,
                        "overridden" => FeedbackFilter::Overridden,
                        "any" => FeedbackFilter::Any,
                        "none" => FeedbackFilter::None,
                        _ => {
                            return Err((
                                k.clone(),
                                format!("{v:?} is not one of accepted, overridden, any, none"),
                            ));
                        }
                    })
                }
                "hook_instance" => f.hook_instance = s(),
                "call" => f.call = s(),
                "card" => f.card = s(),
                "delivery" => f.delivery = Some(one_of(k, v, &["committed", "spooled"])?),
                other if extra.contains(&other) => {}
                other => return Err((other.to_owned(), "unknown query parameter".into())),
            }
        }
        if let (Some(a), Some(b)) = (f.from_ms, f.to_ms)
            && a >= b
        {
            return Err(("to".into(), "must be after from".into()));
        }
        Ok(f)
    }

    /// `WHERE …` over `audit_orders o` (empty when there is no filter).
    fn where_orders(&self, binds: &mut Vec<Bind>) -> String {
        let mut conds: Vec<String> = vec![];
        let push = |binds: &mut Vec<Bind>, b: Bind| -> String {
            binds.push(b);
            format!("${}", binds.len())
        };
        if let Some(v) = self.from_ms {
            let p = push(binds, Bind::Int(v));
            conds.push(format!("o.received_at_ms >= {p}"));
        }
        if let Some(v) = self.to_ms {
            let p = push(binds, Bind::Int(v));
            conds.push(format!("o.received_at_ms < {p}"));
        }
        let text_eq = |conds: &mut Vec<String>,
                       binds: &mut Vec<Bind>,
                       col: &str,
                       v: &Option<String>,
                       nullable: bool| {
            if let Some(v) = v {
                if nullable && v == "none" {
                    conds.push(format!("{col} IS NULL"));
                } else {
                    binds.push(Bind::Text(v.clone()));
                    conds.push(format!("{col} = ${}", binds.len()));
                }
            }
        };
        text_eq(&mut conds, binds, "o.service_id", &self.service, false);
        text_eq(&mut conds, binds, "o.hook", &self.hook, false);
        text_eq(&mut conds, binds, "o.chosen_variant", &self.variant, true);
        text_eq(&mut conds, binds, "o.procedure_id", &self.procedure, true);
        text_eq(&mut conds, binds, "o.category", &self.category, false);
        text_eq(&mut conds, binds, "o.pama_rating", &self.pama, false);
        text_eq(&mut conds, binds, "o.user_id", &self.user, false);
        text_eq(&mut conds, binds, "o.outcome", &self.outcome, false);
        text_eq(
            &mut conds,
            binds,
            "o.hook_instance",
            &self.hook_instance,
            false,
        );
        text_eq(&mut conds, binds, "o.call_id", &self.call, false);
        text_eq(&mut conds, binds, "o.card_uuid", &self.card, false);
        if let Some(r) = self.rating {
            binds.push(Bind::Int(r));
            conds.push(format!("o.rating = ${}", binds.len()));
        }
        if let Some(d) = &self.delivery {
            binds.push(Bind::Text(d.clone()));
            conds.push(format!(
                "EXISTS (SELECT 1 FROM audit_calls dc WHERE dc.call_id = o.call_id AND dc.delivery = ${})",
                binds.len()
            ));
        }
        match self.feedback {
            Some(FeedbackFilter::Accepted) => conds.push(
                "EXISTS (SELECT 1 FROM audit_feedback ff WHERE ff.card_uuid = o.card_uuid AND ff.outcome = 'accepted')".into(),
            ),
            Some(FeedbackFilter::Overridden) => conds.push(
                "EXISTS (SELECT 1 FROM audit_feedback ff WHERE ff.card_uuid = o.card_uuid AND ff.outcome = 'overridden')".into(),
            ),
            Some(FeedbackFilter::Any) => conds.push(
                "EXISTS (SELECT 1 FROM audit_feedback ff WHERE ff.card_uuid = o.card_uuid)".into(),
            ),
            Some(FeedbackFilter::None) => conds.push(
                "o.card_uuid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM audit_feedback ff WHERE ff.card_uuid = o.card_uuid)".into(),
            ),
            None => {}
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        }
    }

    /// `WHERE …` over `audit_calls c` when every filter is a call-level one (time, service, hook,
    /// user, hook_instance, call, delivery); `None` when an order-level filter is set.
    fn where_calls(&self, binds: &mut Vec<Bind>) -> Option<String> {
        if self.variant.is_some()
            || self.procedure.is_some()
            || self.rating.is_some()
            || self.category.is_some()
            || self.pama.is_some()
            || self.outcome.is_some()
            || self.feedback.is_some()
            || self.card.is_some()
        {
            return None;
        }
        let mut conds: Vec<String> = vec![];
        if let Some(v) = self.from_ms {
            binds.push(Bind::Int(v));
            conds.push(format!("c.received_at_ms >= ${}", binds.len()));
        }
        if let Some(v) = self.to_ms {
            binds.push(Bind::Int(v));
            conds.push(format!("c.received_at_ms < ${}", binds.len()));
        }
        for (col, v) in [
            ("c.service_id", &self.service),
            ("c.hook", &self.hook),
            ("c.user_id", &self.user),
            ("c.hook_instance", &self.hook_instance),
            ("c.call_id", &self.call),
            ("c.delivery", &self.delivery),
        ] {
            if let Some(v) = v {
                binds.push(Bind::Text(v.clone()));
                conds.push(format!("{col} = ${}", binds.len()));
            }
        }
        Some(if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        })
    }

    /// True when only the time range (or nothing) is filtered.
    fn time_only(&self) -> bool {
        let mut f = self.clone();
        f.from_ms = None;
        f.to_ms = None;
        serde_json::to_value(&f).ok() == serde_json::to_value(Filters::default()).ok()
    }

    /// The filters as query parameters (for `next` links), pseudonyms as stored.
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = vec![];
        if let Some(v) = self.from_ms {
            q.push(("from".into(), ms_to_rfc3339(v)));
        }
        if let Some(v) = self.to_ms {
            q.push(("to".into(), ms_to_rfc3339(v)));
        }
        let mut t = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                q.push((k.into(), v.clone()));
            }
        };
        t("service", &self.service);
        t("hook", &self.hook);
        t("variant", &self.variant);
        t("procedure", &self.procedure);
        t("category", &self.category);
        t("pama", &self.pama);
        t("user", &self.user);
        t("outcome", &self.outcome);
        t("hook_instance", &self.hook_instance);
        t("call", &self.call);
        t("card", &self.card);
        t("delivery", &self.delivery);
        if let Some(r) = self.rating {
            q.push(("rating".into(), r.to_string()));
        }
        if let Some(fb) = self.feedback {
            let s = serde_json::to_value(fb)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            q.push(("feedback".into(), s));
        }
        q
    }
}

impl Page {
    pub fn parse(params: &[(String, String)], default_limit: i64) -> Result<Page, ParamError> {
        let mut page = Page {
            limit: default_limit,
            offset: 0,
        };
        for (k, v) in params {
            match k.as_str() {
                "limit" => {
                    page.limit = v
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| (k.clone(), "must be a number 1-1000".to_owned()))?
                }
                "offset" => {
                    page.offset = v
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| (k.clone(), "must be a number >= 0".to_owned()))?
                }
                _ => {}
            }
        }
        Ok(page)
    }
}

async fn fetch_all(db: &Db, sql: String, binds: Vec<Bind>) -> anyhow::Result<Vec<AnyRow>> {
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
        };
    }
    Ok(q.fetch_all(&db.pool).await?)
}

fn json_list(s: Option<String>) -> Vec<String> {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

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

const EVAL_COLUMNS: &str = "o.call_id, o.order_index, o.received_at_ms, o.service_id, o.hook, \
    o.hook_instance, o.user_id, c.patient_id, c.encounter_id, c.knowledge_version, \
    c.guideline_id, c.latency_ms, c.delivery, o.order_ref, o.order_codes, o.selected, o.outcome, \
    o.procedure_id, o.procedure_name, o.region, o.contrast, o.matched_code, o.candidate_variants, \
    o.chosen_variant, o.rating, o.category, o.evidence, o.pama_rating, o.consult_id, \
    o.assumptions, o.deciding_facts, o.card_uuid, o.suggestion_uuids, o.suggestions, \
    o.safety_notes";

fn eval_from_row(r: &AnyRow) -> anyhow::Result<EvaluationItem> {
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

const FEEDBACK_COLUMNS: &str = "f.feedback_id, f.received_at_ms, f.service_id, f.card_uuid, \
    f.outcome, f.outcome_at_ms, f.accepted_suggestions, f.override_system, f.override_code, \
    f.override_display, f.user_comment, f.delivery, f.suggestion_known";

fn feedback_from_row(r: &AnyRow) -> anyhow::Result<FeedbackItem> {
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

/// A page of evaluations (newest first) plus the total matching.
pub async fn list_evaluations(
    db: &Db,
    filters: &Filters,
    page: Page,
) -> anyhow::Result<(i64, Vec<EvaluationItem>)> {
    list_evaluations_ordered(db, filters, page, false).await
}

/// A page of evaluations, oldest first when `ascending` (exports), plus the total matching.
pub async fn list_evaluations_ordered(
    db: &Db,
    filters: &Filters,
    page: Page,
    ascending: bool,
) -> anyhow::Result<(i64, Vec<EvaluationItem>)> {
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
    binds.push(Bind::Int(page.limit));
    let l = binds.len();
    binds.push(Bind::Int(page.offset));
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
        .collect::<anyhow::Result<Vec<_>>>()?;
    attach_feedback(db, &mut items).await?;
    Ok((total, items))
}

/// Position after the last exported row: (received_at_ms, call_id, order_index).
pub type ExportCursor = (i64, String, i64);

/// One page of an export, oldest first, after `after` (keyset pagination: constant cost per
/// page, no total).
pub async fn export_page(
    db: &Db,
    filters: &Filters,
    after: Option<&ExportCursor>,
    limit: i64,
) -> anyhow::Result<Vec<EvaluationItem>> {
    let mut binds = vec![];
    let mut w = filters.where_orders(&mut binds);
    if let Some((ms, call, idx)) = after {
        binds.push(Bind::Int(*ms));
        let a = binds.len();
        binds.push(Bind::Text(call.clone()));
        binds.push(Bind::Int(*idx));
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
    binds.push(Bind::Int(limit));
    let sql = format!(
        "SELECT {EVAL_COLUMNS} FROM audit_orders o JOIN audit_calls c ON c.call_id = o.call_id {w} \
         ORDER BY o.received_at_ms, o.call_id, o.order_index LIMIT ${}",
        binds.len()
    );
    let rows = fetch_all(db, sql, binds).await?;
    let mut items = rows
        .iter()
        .map(eval_from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    attach_feedback(db, &mut items).await?;
    Ok(items)
}

async fn attach_feedback(db: &Db, items: &mut [EvaluationItem]) -> anyhow::Result<()> {
    let cards: Vec<String> = items.iter().filter_map(|i| i.card_uuid.clone()).collect();
    if cards.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=cards.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {FEEDBACK_COLUMNS} FROM audit_feedback f WHERE f.card_uuid IN ({}) \
         ORDER BY f.outcome_at_ms, f.feedback_id",
        placeholders.join(", ")
    );
    let rows = fetch_all(db, sql, cards.into_iter().map(Bind::Text).collect()).await?;
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

/// Filters of the feedback list.
#[derive(Debug, Clone, Default)]
pub struct FeedbackFilters {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub service: Option<String>,
    pub outcome: Option<String>,
    pub card: Option<String>,
    pub linked: Option<bool>,
}

impl FeedbackFilters {
    pub fn parse(params: &[(String, String)]) -> Result<FeedbackFilters, ParamError> {
        let mut f = FeedbackFilters::default();
        for (k, v) in params {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "from" => f.from_ms = Some(parse_time(k, v, false)?),
                "to" => f.to_ms = Some(parse_time(k, v, true)?),
                "service" => f.service = Some(v.to_owned()),
                "outcome" => f.outcome = Some(one_of(k, v, &["accepted", "overridden"])?),
                "card" => f.card = Some(v.to_owned()),
                "linked" => {
                    f.linked = Some(match v {
                        "true" => true,
                        "false" => false,
                        _ => return Err((k.clone(), "must be true or false".into())),
                    })
                }
                "limit" | "offset" => {}
                other => return Err((other.to_owned(), "unknown query parameter".into())),
            }
        }
        Ok(f)
    }
}

pub async fn list_feedback(
    db: &Db,
    filters: &FeedbackFilters,
    page: Page,
) -> anyhow::Result<(i64, Vec<FeedbackItem>)> {
    let build = |binds: &mut Vec<Bind>| {
        let mut conds = vec![];
        if let Some(v) = filters.from_ms {
            binds.push(Bind::Int(v));
            conds.push(format!("f.received_at_ms >= ${}", binds.len()));
        }
        if let Some(v) = filters.to_ms {
            binds.push(Bind::Int(v));
            conds.push(format!("f.received_at_ms < ${}", binds.len()));
        }
        for (col, v) in [
            ("f.service_id", &filters.service),
            ("f.outcome", &filters.outcome),
            ("f.card_uuid", &filters.card),
        ] {
            if let Some(v) = v {
                binds.push(Bind::Text(v.clone()));
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
    binds.push(Bind::Int(page.limit));
    let l = binds.len();
    binds.push(Bind::Int(page.offset));
    let sql = format!(
        "SELECT {FEEDBACK_COLUMNS}, \
         (SELECT o.call_id FROM audit_orders o WHERE o.card_uuid = f.card_uuid LIMIT 1) AS e_call \
         FROM audit_feedback f {w} ORDER BY f.received_at_ms DESC, f.feedback_id LIMIT ${l} OFFSET ${}",
        l + 1
    );
    let rows = fetch_all(db, sql, binds).await?;
    let mut items = vec![];
    for r in &rows {
        let mut fb = feedback_from_row(r)?;
        let call: Option<String> = r.try_get("e_call")?;
        if call.is_some() {
            let f = Filters {
                card: Some(fb.card_uuid.clone()),
                ..Filters::default()
            };
            let (_, evals) = list_evaluations(
                db,
                &f,
                Page {
                    limit: 1,
                    offset: 0,
                },
            )
            .await?;
            if let Some(e) = evals.into_iter().next() {
                fb.evaluation = Some(json!({
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
                }));
            }
        }
        items.push(fb);
    }
    Ok((total, items))
}

fn i(r: &AnyRow, idx: usize) -> i64 {
    r.try_get::<Option<i64>, _>(idx).ok().flatten().unwrap_or(0)
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
fn group_counts(r: &AnyRow, at: usize) -> Value {
    let orders = i(r, at);
    let rated = i(r, at + 1);
    let not_app = i(r, at + 4);
    json!({
        "orders": orders,
        "rated": rated,
        "usually_appropriate": i(r, at + 2),
        "may_be_appropriate": i(r, at + 3),
        "usually_not_appropriate": not_app,
        "not_appropriate_share": share(not_app, rated),
        "overridden": i(r, at + 5),
        "accepted": i(r, at + 6),
    })
}

/// The compliance summary for the filtered evaluations.
pub async fn summary(db: &Db, filters: &Filters, bucket: Bucket) -> anyhow::Result<Value> {
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
    let rows = fetch_all(db, sql, binds).await?;
    let t = rows
        .first()
        .ok_or_else(|| anyhow::anyhow!("no totals row"))?;
    let mut calls = i(t, 0);
    let evaluated = i(t, 1);
    let cards = i(t, 2);
    let totals = group_counts(t, 3);
    // Calls without draft orders count too when no order-level filter is set.
    let mut binds = vec![];
    if let Some(w) = filters.where_calls(&mut binds) {
        let rows = fetch_all(db, format!("SELECT COUNT(*) FROM audit_calls c {w}"), binds).await?;
        calls = rows.first().map(|r| i(r, 0)).unwrap_or(calls);
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
        .map(|r| json!({"outcome": r.try_get::<String, _>(0).unwrap_or_default(), "orders": i(r, 1)}))
        .collect();

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
        .map(|r| json!({"service": r.try_get::<String, _>(0).unwrap_or_default(), "orders": i(r, 1)}))
        .collect();

    let (sql, binds) = q(
        "o.chosen_variant, ",
        "GROUP BY o.chosen_variant",
        "ORDER BY 2 DESC, 1",
    );
    let by_variant: Vec<Value> = fetch_all(db, sql, binds)
        .await?
        .iter()
        .map(|r| {
            let mut v = group_counts(r, 1);
            v["variant"] = json!(r.try_get::<Option<String>, _>(0).ok().flatten());
            v
        })
        .collect();

    let (sql, binds) = q(
        "o.procedure_id, MAX(o.procedure_name), ",
        "GROUP BY o.procedure_id",
        "ORDER BY 3 DESC, 1",
    );
    let by_procedure: Vec<Value> = fetch_all(db, sql, binds)
        .await?
        .iter()
        .map(|r| {
            let mut v = group_counts(r, 2);
            v["procedure_id"] = json!(r.try_get::<Option<String>, _>(0).ok().flatten());
            v["procedure_name"] = json!(r.try_get::<Option<String>, _>(1).ok().flatten());
            v
        })
        .collect();

    let (sql, binds) = q(
        "o.user_id, ",
        "GROUP BY o.user_id",
        "ORDER BY 2 DESC, 1 LIMIT 25",
    );
    let by_user: Vec<Value> = fetch_all(db, sql, binds)
        .await?
        .iter()
        .map(|r| {
            let mut v = group_counts(r, 1);
            v["user"] = json!(r.try_get::<String, _>(0).unwrap_or_default());
            v
        })
        .collect();

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
            let t = i(r, 0);
            json!({
                "t": ms_to_rfc3339(t),
                "t_ms": t,
                "usually_appropriate": i(r, 1),
                "may_be_appropriate": i(r, 2),
                "usually_not_appropriate": i(r, 3),
                "unrated": i(r, 4),
            })
        })
        .collect();

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
    let rows = fetch_all(db, sql, binds).await?;
    let f = rows
        .first()
        .ok_or_else(|| anyhow::anyhow!("no feedback row"))?;
    let (entries, with_fb, acc, ovr, sugg) = (i(f, 0), i(f, 1), i(f, 2), i(f, 3), i(f, 4));
    let (acc_known, sugg_known, acc_unknown) = (i(f, 5), i(f, 6), i(f, 7));

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
            let code: Option<String> = r.try_get(1).ok().flatten();
            let display: Option<String> = r.try_get(2).ok().flatten();
            json!({
                "system": r.try_get::<Option<String>, _>(0).ok().flatten(),
                "code": code,
                "display": display.or_else(|| code.clone()).unwrap_or_else(|| "(no reason given)".into()),
                "count": i(r, 3),
                "with_comment": i(r, 4),
            })
        })
        .collect();

    // Feedback that matches no evaluation in this store (time range only).
    let unlinked = if filters.time_only() {
        let mut binds = vec![];
        let mut conds = vec![
            "NOT EXISTS (SELECT 1 FROM audit_orders o WHERE o.card_uuid = f.card_uuid)".to_owned(),
        ];
        if let Some(v) = filters.from_ms {
            binds.push(Bind::Int(v));
            conds.push(format!("f.received_at_ms >= ${}", binds.len()));
        }
        if let Some(v) = filters.to_ms {
            binds.push(Bind::Int(v));
            conds.push(format!("f.received_at_ms < ${}", binds.len()));
        }
        let rows = fetch_all(
            db,
            format!(
                "SELECT COUNT(*) FROM audit_feedback f WHERE {}",
                conds.join(" AND ")
            ),
            binds,
        )
        .await?;
        Some(rows.first().map(|r| i(r, 0)).unwrap_or(0))
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
        delivery.insert(r.try_get::<String, _>(0)?, json!(i(r, 1)));
    }

    let rated = totals["rated"].as_i64().unwrap_or(0);
    let not_app = totals["usually_not_appropriate"].as_i64().unwrap_or(0);
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
];

/// Neutralizes spreadsheet formulas: a cell starting with `=`, `+`, `-`, `@`, tab or CR gets a
/// leading `'` (OWASP CSV injection advice).
fn cell(s: &str) -> String {
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
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn filters_parse_and_reject() {
        let ps = Pseudonymizer::new(None);
        let f = Filters::parse(
            &p(&[
                ("from", "2026-01-01"),
                ("to", "2026-01-01"),
                ("variant", "V2"),
                ("rating", "3"),
            ]),
            &ps,
            &[],
        )
        .unwrap();
        assert_eq!(f.to_ms.unwrap() - f.from_ms.unwrap(), 86_400_000);
        assert_eq!(f.rating, Some(3));
        for bad in [
            ("rating", "10"),
            ("from", "yesterday"),
            ("category", "bad"),
            ("nope", "1"),
            ("feedback", "maybe"),
        ] {
            let e = Filters::parse(&p(&[bad]), &ps, &[]).unwrap_err();
            assert_eq!(e.0, bad.0);
        }
        assert!(Filters::parse(&p(&[("limit", "5")]), &ps, &["limit"]).is_ok());
        assert!(Filters::default().time_only());
        assert!(!f.time_only());
    }

    #[test]
    fn csv_cells_are_defused() {
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("V1"), "V1");
        assert_eq!(CSV_HEADER.len(), 36);
    }
}

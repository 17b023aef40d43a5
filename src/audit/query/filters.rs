//! Query-string parsing of the audit API and the WHERE clauses the filters become.

use crate::audit::pseudonym::Pseudonymizer;
use crate::audit::records::ms_to_rfc3339;
use crate::audit::sql::Bind;
use serde::Serialize;
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
    /// `live` (hook calls) or `batch` (`vcf-cds batch-audit --store`).
    pub source: Option<String>,
}

/// Pagination.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

fn parse_time(name: &str, v: &str, end: bool) -> Result<i64, ParamError> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(crate::audit::records::epoch_ms(t));
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(v, &fmt) {
        Ok(d) => {
            let d = if end { d.next_day().unwrap_or(d) } else { d };
            Ok(crate::audit::records::epoch_ms(d.midnight().assume_utc()))
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
                "source" => f.source = Some(one_of(k, v, &["live", "batch"])?),
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
    pub(super) fn where_orders(&self, binds: &mut Vec<Bind>) -> String {
        let mut conds: Vec<String> = vec![];
        let push = |binds: &mut Vec<Bind>, b: Bind| -> String {
            binds.push(b);
            format!("${}", binds.len())
        };
        if let Some(v) = self.from_ms {
            let p = push(binds, Bind::int(v));
            conds.push(format!("o.received_at_ms >= {p}"));
        }
        if let Some(v) = self.to_ms {
            let p = push(binds, Bind::int(v));
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
                    binds.push(Bind::text(v.clone()));
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
        text_eq(&mut conds, binds, "o.source", &self.source, false);
        if let Some(r) = self.rating {
            binds.push(Bind::int(r));
            conds.push(format!("o.rating = ${}", binds.len()));
        }
        if let Some(d) = &self.delivery {
            binds.push(Bind::text(d.clone()));
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
    /// user, hook_instance, call, delivery, source); `None` when an order-level filter is set.
    pub(super) fn where_calls(&self, binds: &mut Vec<Bind>) -> Option<String> {
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
            binds.push(Bind::int(v));
            conds.push(format!("c.received_at_ms >= ${}", binds.len()));
        }
        if let Some(v) = self.to_ms {
            binds.push(Bind::int(v));
            conds.push(format!("c.received_at_ms < ${}", binds.len()));
        }
        for (col, v) in [
            ("c.service_id", &self.service),
            ("c.hook", &self.hook),
            ("c.user_id", &self.user),
            ("c.hook_instance", &self.hook_instance),
            ("c.call_id", &self.call),
            ("c.delivery", &self.delivery),
            ("c.source", &self.source),
        ] {
            if let Some(v) = v {
                binds.push(Bind::text(v.clone()));
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
    pub(super) fn time_only(&self) -> bool {
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
        t("source", &self.source);
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

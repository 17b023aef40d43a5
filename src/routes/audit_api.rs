//! Compliance API under `/audit/api/`, protected by `Authorization: Bearer <admin_token>`
//! (separate from the CDS clients' JWTs). Without `admin_token` configured the API (and the
//! dashboard) answer 404.
//!
//! - `GET /audit/api/evaluations` — one item per evaluated order, newest first, with its
//!   feedback; filters (below) and `limit` (1-1000, default 50) / `offset`; `total` and `next`.
//! - `GET /audit/api/evaluations.csv`, `GET /audit/api/evaluations.json` — the whole filtered
//!   list (oldest first), streamed.
//! - `GET /audit/api/summary` — figures for the filtered evaluations; `bucket` = hour|day|week
//!   for the timeline.
//! - `GET /audit/api/feedback` — feedback entries with the evaluation they belong to; filters
//!   `from`, `to`, `service`, `outcome`, `card`, `linked` (true|false).
//! - `GET /audit/api/metrics` — audit counters (committed, spooled, backlog, undelivered, …) in
//!   Prometheus text format.
//!
//! Evaluation filters: `from`, `to` (RFC 3339 or YYYY-MM-DD; `to` exclusive, a date means the
//! whole day), `service`, `hook`, `variant` (`none` = no variant), `procedure` (`none`),
//! `rating` (1-9), `category`, `pama`, `user` (pseudonym or raw id), `outcome`, `feedback`
//! (accepted|overridden|any|none), `hook_instance`, `call`, `card`, `delivery`
//! (committed|spooled), `source` (live|batch). Unknown parameters are rejected (400 naming the
//! parameter).
//!
//! A failed query is never shown as figures: 503 OperationOutcome when the store cannot be
//! reached, 500 OperationOutcome when it failed the query.

use crate::audit::query::{self, Bucket, FeedbackFilters, Filters, Page, QueryError};
use crate::audit::{AuditStore, db::Db};
use crate::error::{ApiError, IssueType};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const REALM: &str = "Bearer realm=\"vcf-cds audit\"";

/// 404 when the audit API and dashboard are off (no `admin_token`).
pub fn check_admin_configured(state: &AppState) -> Result<&str, ApiError> {
    state
        .settings
        .admin_token
        .as_ref()
        .map(crate::configuration::Secret::expose)
        .ok_or_else(|| {
            ApiError::not_found("the audit API and dashboard are off (no admin_token configured)")
        })
}

/// 404 when the audit API is off, 401 without the right bearer token.
pub fn check_admin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let expected = check_admin_configured(state)?;
    let unauthorized = |diag: &str, www: String| ApiError {
        www_authenticate: Some(www),
        ..ApiError::new(StatusCode::UNAUTHORIZED, IssueType::Login, diag)
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        return Err(unauthorized(
            "the audit API needs Authorization: Bearer <admin token>",
            REALM.to_owned(),
        ));
    };
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    // Compare digests so the comparison takes the same time whatever the token.
    let a = Sha256::digest(token.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    if !bool::from(a.ct_eq(&b)) {
        return Err(unauthorized(
            "invalid admin token",
            format!("{REALM}, error=\"invalid_token\""),
        ));
    }
    Ok(())
}

/// Query string pairs.
pub fn params(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

fn bad_param((name, msg): query::ParamError) -> ApiError {
    ApiError::bad_request(name, msg)
}

/// A failed audit query is an error answer, never figures made up from it: 503 when the store
/// cannot be reached (try again later), 500 when it failed the query.
fn query_failed(e: QueryError) -> ApiError {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "audit store unavailable");
        unavailable()
    } else {
        tracing::error!(error = %e, "audit query failed");
        ApiError::internal("the audit store failed to answer the query")
    }
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        IssueType::Transient,
        "the audit store is unavailable; try again later",
    )
}

fn store_db(store: &AuditStore) -> Result<&Db, ApiError> {
    store.db().ok_or_else(|| {
        tracing::warn!("audit query on a disabled audit store");
        unavailable()
    })
}

fn json_response(v: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json")
        .body(v.to_string())
}

fn next_link(path: &str, filters: &Filters, page: Page, total: i64) -> Option<String> {
    let next = page.offset + page.limit;
    (next < total).then(|| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in filters.to_query() {
            q.append_pair(&k, &v);
        }
        q.append_pair("limit", &page.limit.to_string());
        q.append_pair("offset", &next.to_string());
        format!("{path}?{}", q.finish())
    })
}

/// `GET /audit/api/evaluations`
pub async fn evaluations(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_admin(&req, &state)?;
    let p = params(&req);
    let filters =
        Filters::parse(&p, state.audit.pseudonymizer(), &["limit", "offset"]).map_err(bad_param)?;
    let page = Page::parse(&p, 50).map_err(bad_param)?;
    let db = store_db(&state.audit)?;
    let (total, items) = query::list_evaluations(db, &filters, page)
        .await
        .map_err(query_failed)?;
    Ok(json_response(&json!({
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
        "items": items,
        "next": next_link("/audit/api/evaluations", &filters, page, total),
    })))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Export {
    Csv,
    Json,
}

async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: Export,
) -> Result<HttpResponse, ApiError> {
    check_admin(&req, &state)?;
    let p = params(&req);
    let mut filters = Filters::parse(&p, state.audit.pseudonymizer(), &[]).map_err(bad_param)?;
    // A fixed end, so rows arriving during the export do not shift the pages.
    let now_ms = crate::audit::records::epoch_ms(time::OffsetDateTime::now_utc()) + 1;
    filters.to_ms = Some(filters.to_ms.map_or(now_ms, |t| t.min(now_ms)));
    store_db(&state.audit)?;
    const PAGE: i64 = 500;
    let store = state.audit.clone();
    struct St {
        store: AuditStore,
        filters: Filters,
        after: Option<query::ExportCursor>,
        first: bool,
        started: bool,
        done: bool,
    }
    let st = St {
        store,
        filters,
        after: None,
        first: true,
        started: false,
        done: false,
    };
    let stream = futures_util::stream::unfold(st, move |mut st| async move {
        if st.done {
            return None;
        }
        let mut out = Vec::new();
        if !st.started {
            st.started = true;
            match kind {
                Export::Csv => {
                    let mut w = csv::Writer::from_writer(&mut out);
                    let _ = w.write_record(query::CSV_HEADER);
                    let _ = w.flush();
                }
                Export::Json => out.push(b'['),
            }
        }
        let db = st.store.db()?;
        let items = match query::export_page(db, &st.filters, st.after.as_ref(), PAGE).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "audit export aborted");
                st.done = true;
                return Some((
                    Err::<web::Bytes, actix_web::Error>(actix_web::error::ErrorServiceUnavailable(
                        "audit store unavailable",
                    )),
                    st,
                ));
            }
        };
        match kind {
            Export::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                for it in &items {
                    let _ = w.write_record(query::csv_record(it));
                }
                let _ = w.flush();
            }
            Export::Json => {
                for it in &items {
                    if !st.first {
                        out.push(b',');
                    }
                    st.first = false;
                    let _ = serde_json::to_writer(&mut out, it);
                    out.push(b'\n');
                }
            }
        }
        if let Some(last) = items.last() {
            st.after = Some((last.received_at_ms, last.call_id.clone(), last.order_index));
        }
        if (items.len() as i64) < PAGE {
            st.done = true;
            if kind == Export::Json {
                out.extend_from_slice(b"]\n");
            }
        }
        Some((Ok(web::Bytes::from(out)), st))
    });
    let (ct, name) = match kind {
        Export::Csv => ("text/csv; charset=utf-8", "vcf-cds-audit-evaluations.csv"),
        Export::Json => ("application/json", "vcf-cds-audit-evaluations.json"),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(ct)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .streaming(stream))
}

/// `GET /audit/api/evaluations.csv`
pub async fn evaluations_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    export(req, state, Export::Csv).await
}

/// `GET /audit/api/evaluations.json`
pub async fn evaluations_json(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    export(req, state, Export::Json).await
}

/// `GET /audit/api/summary`
pub async fn summary(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_admin(&req, &state)?;
    let p = params(&req);
    let filters =
        Filters::parse(&p, state.audit.pseudonymizer(), &["bucket"]).map_err(bad_param)?;
    let bucket = match p
        .iter()
        .find(|(k, _)| k == "bucket")
        .map(|(_, v)| v.as_str())
    {
        None | Some("") | Some("day") => Bucket::Day,
        Some("hour") => Bucket::Hour,
        Some("week") => Bucket::Week,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bucket",
                format!("{other:?} is not one of hour, day, week"),
            ));
        }
    };
    let db = store_db(&state.audit)?;
    let mut s = query::summary(db, &filters, bucket)
        .await
        .map_err(query_failed)?;
    s["audit"] = serde_json::to_value(state.audit.metrics()).unwrap_or_default();
    s["pseudonymized"] = json!(state.audit.pseudonymizer().enabled());
    Ok(json_response(&s))
}

/// `GET /audit/api/feedback`
pub async fn feedback(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_admin(&req, &state)?;
    let p = params(&req);
    let filters = FeedbackFilters::parse(&p).map_err(bad_param)?;
    let page = Page::parse(&p, 50).map_err(bad_param)?;
    let db = store_db(&state.audit)?;
    let (total, items) = query::list_feedback(db, &filters, page)
        .await
        .map_err(query_failed)?;
    Ok(json_response(&json!({
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
        "items": items,
    })))
}

/// `GET /audit/api/metrics`: the audit counters in Prometheus text format.
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_admin(&req, &state)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; version=0.0.4")
        .body(state.audit.metrics().prometheus()))
}

/// Registers the routes (called from `startup.rs`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit/api/evaluations", web::get().to(evaluations))
        .route("/audit/api/evaluations.csv", web::get().to(evaluations_csv))
        .route(
            "/audit/api/evaluations.json",
            web::get().to(evaluations_json),
        )
        .route("/audit/api/summary", web::get().to(summary))
        .route("/audit/api/feedback", web::get().to(feedback))
        .route("/audit/api/metrics", web::get().to(metrics));
}

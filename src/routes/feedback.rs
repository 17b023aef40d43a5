//! `POST /cds-services/{id}/feedback`: CDS Hooks 2.0 feedback, validated and stored in the audit
//! trail before the answer (see `crate::audit::feedback` for the rules).
//!
//! Answers: 200 `{"received": n}` once every entry is stored or durably spooled (a repeated entry
//! is stored once); 503 when not even the spool could take it (the client may resend);
//! 400 OperationOutcome naming each bad element (`feedback[1].outcome`), nothing stored; 404 for
//! an unknown service; 413 / 415 as for service calls. A card uuid this service does not know is
//! accepted and stored unlinked (it may come from a record still in the spool, or from another
//! instance with its own store); the dashboard and `GET /audit/api/feedback?linked=false` show
//! such entries.

use crate::audit::feedback::parse_feedback_json;
use crate::error::{ApiError, Issue, IssueType};
use crate::routes::body;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

pub async fn feedback(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let service = crate::routes::service_or_404(&id)?;
    let bytes = body::read_json(&req, payload, state.settings.max_body_bytes).await?;
    let received_at = time::OffsetDateTime::now_utc();
    let entries =
        parse_feedback_json(&bytes, service.id, received_at).map_err(|problems| ApiError {
            status: StatusCode::BAD_REQUEST,
            issues: problems
                .into_iter()
                .map(|p| Issue {
                    code: IssueType::Invalid,
                    diagnostics: if p.path.is_empty() {
                        p.message
                    } else {
                        format!("{}: {}", p.path, p.message)
                    },
                    expression: (!p.path.is_empty()).then_some(p.path),
                })
                .collect(),
            www_authenticate: None,
        })?;
    let n = entries.len();
    let delivery = state.audit.record_feedback(entries).await;
    tracing::info!(
        service = service.id,
        entries = n,
        delivery = delivery.as_str(),
        "feedback recorded"
    );
    if !delivery.is_durable() {
        // Unlike advice, feedback can wait: ask the client to send it again (idempotent).
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueType::Transient,
            "feedback could not be stored durably; send it again later",
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(serde_json::json!({ "received": n }).to_string()))
}

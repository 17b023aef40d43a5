//! `POST /cds-services/{id}`: one hook call.

use crate::auth::VerifiedClient;
use crate::cds::pipeline;
use crate::error::ApiError;
use crate::routes::body;
use crate::state::AppState;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

pub async fn call_service(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let received_at = time::OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    let id = path.into_inner();
    let service = crate::routes::service_or_404(&id)?;
    let bytes = body::read_json(&req, payload, state.settings.max_body_bytes).await?;
    // security (issue 5): the client verified by the auth middleware (Anonymous in open mode).
    let client = req
        .extensions()
        .get::<VerifiedClient>()
        .cloned()
        .unwrap_or(VerifiedClient::Anonymous);
    let processed = pipeline::process_for(&state, service, &bytes, &client).await?;
    // The answer is released only once its audit records are committed (or spooled).
    let record = processed.audit_record(
        service,
        received_at,
        started.elapsed().as_secs_f64() * 1000.0,
    );
    state.audit.record_hook_call(record).await;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(processed.body.to_string()))
}

//! `POST /cds-services/{id}`: one hook call.

use crate::audit::HookCallRecord;
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
    let pipeline::Processed {
        request,
        evaluation,
        body,
    } = pipeline::process_for(&state, service, &bytes, &client).await?;
    // The answer is released only once its audit records are committed (or spooled). The
    // request and evaluation are not needed after this: their parts move into the record.
    let record = HookCallRecord {
        received_at,
        service_id: service.id.to_owned(),
        hook: request.hook.as_str().to_owned(),
        hook_instance: request.hook_instance,
        user_id: request.user_id,
        patient_id: request.patient_id,
        encounter_id: request.encounter_id,
        fhir_server: request.fhir_server,
        knowledge_version: evaluation.knowledge_version,
        guideline_id: evaluation.guideline_id,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        orders: evaluation.orders,
    };
    state.audit.record_hook_call(record).await;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

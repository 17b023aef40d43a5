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
    let processed = pipeline::process_for(&state, service, &bytes, &client).await?;
    // The answer is released only once its audit records are committed (or spooled).
    let record = HookCallRecord {
        received_at,
        service_id: service.id.to_owned(),
        hook: processed.request.hook.as_str().to_owned(),
        hook_instance: processed.request.hook_instance.clone(),
        user_id: processed.request.user_id.clone(),
        patient_id: processed.request.patient_id.clone(),
        encounter_id: processed.request.encounter_id.clone(),
        fhir_server: processed.request.fhir_server.clone(),
        knowledge_version: processed.evaluation.knowledge_version.clone(),
        guideline_id: processed.evaluation.guideline_id.clone(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        orders: processed.evaluation.orders.clone(),
    };
    state.audit.record_hook_call(record).await;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(processed.body.to_string()))
}

//! `POST /cds-services/{id}`: one hook call.

use crate::auth::VerifiedClient;
use crate::cds::pipeline;
use crate::error::ApiError;
use crate::routes::body;
use crate::state::AppState;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use std::sync::OnceLock;
use tokio::sync::Semaphore;

/// Hook calls evaluated at once, process-wide: one per core. Parsing and evaluating a large
/// request is CPU work; run on an actix worker it would stall every connection of that worker
/// (requests queued behind it time out with 408 before their headers are read), and run without
/// a bound, many large requests at once would multiply the memory. So the work runs on the
/// blocking pool, at most this many at a time; the others wait (holding only their body).
fn evaluation_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS
        .get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// Bodies up to this size are evaluated on the actix worker itself: a typical call (10 KB, one
/// order) takes a few hundred microseconds of CPU; the blocking pool would add two thread
/// switches and a slot wait to each, and a slot held across the FHIR fetches of a fetch-mode
/// call would let only one call per core fetch at a time (issue 12). Their memory is bounded
/// by their size. Larger bodies, whose parsing and evaluation can take long, go through
/// [`run_bounded`].
const INLINE_BODY_BYTES: usize = 64 * 1024;

/// [`pipeline::process_for`] in an evaluation slot, off the actix worker thread. FHIR fetches
/// inside it still run on the worker's runtime (the worker stays free to drive them).
async fn run_bounded(
    state: web::Data<AppState>,
    service: &'static crate::cds::discovery::ServiceDef,
    bytes: web::Bytes,
    client: VerifiedClient,
    request_id: String,
    metrics: Option<web::Data<crate::metrics::Metrics>>,
) -> Result<pipeline::Processed, ApiError> {
    let _slot = evaluation_slots()
        .acquire()
        .await
        .map_err(|_| ApiError::internal("evaluation slots closed"))?;
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        runtime.block_on(pipeline::process_for(
            &state,
            service,
            &bytes,
            &client,
            Some(&request_id),
            metrics.as_ref().map(|m| m.get_ref()),
        ))
    })
    .await
    .map_err(|_| ApiError::internal("the evaluation task failed"))?
}

/// `POST /cds-services/{id}`: the services' own paths are routed by [`configure`]; this
/// answers the others (404 for an unknown service).
pub async fn call_service(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let service = crate::routes::service_or_404(&path.into_inner())?;
    call(service, req, payload, state).await
}

/// Routes `POST /cds-services/<id>` of each service as a path of its own. Issue 12: the router
/// matches a `{id}` pattern with a regular expression, on every call (2 % of the workers' CPU
/// time in the profile); a path without a variable is a string comparison.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for service in crate::cds::discovery::SERVICES {
        cfg.route(
            &format!("/cds-services/{}", service.id),
            web::post().to(
                move |req: HttpRequest, payload: web::Payload, state: web::Data<AppState>| {
                    call(service, req, payload, state)
                },
            ),
        );
    }
}

/// One hook call to `service`.
async fn call(
    service: &'static crate::cds::discovery::ServiceDef,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let received_at = time::OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    let bytes = body::read_json(&req, payload, state.settings.max_body_bytes).await?;
    let in_flight = state.audit.call_started();
    // security (issue 5): the client verified by the auth middleware (Anonymous in open mode).
    let client = req
        .extensions()
        .get::<VerifiedClient>()
        .cloned()
        .unwrap_or(VerifiedClient::Anonymous);
    let request_id = crate::request_id::RequestId::of(&req);
    let metrics = req
        .app_data::<web::Data<crate::metrics::Metrics>>()
        .cloned();
    let processed = if bytes.len() <= INLINE_BODY_BYTES {
        pipeline::process_for(
            &state,
            service,
            &bytes,
            &client,
            Some(&request_id),
            metrics.as_ref().map(|m| m.get_ref()),
        )
        .await?
    } else {
        run_bounded(state.clone(), service, bytes, client, request_id, metrics).await?
    };
    // The answer is released only once its audit records are committed (or spooled). The
    // request and evaluation are not needed after this: their parts move into the record.
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (record, body) = processed.into_audit_record(service, received_at, latency_ms);
    state.audit.record_evaluated_call(record, in_flight).await;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

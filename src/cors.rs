//! CORS refusals as OperationOutcomes. actix-cors answers a refused preflight (origin, method
//! or header not allowed) with a plain-text 400; every error of this service is an
//! OperationOutcome, so this middleware, wrapped around the CORS middleware, rewrites those
//! answers. The status stays 400; the diagnostics say which check failed, never echoing the
//! request's headers.

use crate::error::{ApiError, IssueType};
use actix_web::ResponseError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

pub async fn refusals_as_outcome(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let refusal = res
        .response()
        .error()
        .and_then(|e| e.as_error::<actix_cors::CorsError>())
        .map(|e| e.to_string());
    let Some(why) = refusal else {
        return Ok(res.map_into_boxed_body());
    };
    let status = res.status();
    let (req, old) = res.into_parts();
    let mut outcome = ApiError::new(
        status,
        IssueType::Security,
        format!("CORS request refused: {why} (allowed origins are set by cors_origins)"),
    )
    .error_response();
    // Keep what actix-cors set for caches (`Vary: Origin, ...`).
    for (name, value) in old.headers() {
        if name == actix_web::http::header::VARY {
            outcome.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(req, outcome))
}

//! `POST /cds-services/{id}`: one hook call.

use crate::cds::discovery;
use crate::cds::pipeline;
use crate::error::ApiError;
use crate::routes::body;
use crate::startup::AppState;
use actix_web::{HttpRequest, HttpResponse, web};

pub async fn call_service(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let service = discovery::service(&id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no CDS service {:?}; GET /cds-services lists the services",
            id.chars().take(100).collect::<String>()
        ))
    })?;
    let bytes = body::read_json(&req, payload, state.settings.max_body_bytes).await?;
    let processed = pipeline::process(&state, service, &bytes).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(processed.body.to_string()))
}

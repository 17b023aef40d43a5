//! `GET /metrics`: Prometheus text exposition of [`crate::metrics::Metrics`]. On the main
//! listener it needs `Authorization: Bearer <admin_token>` (404 without an admin token, like
//! the audit API); on the separate `metrics_listen` address it is open.

use crate::metrics::{CONTENT_TYPE, Metrics};
use crate::routes::audit_api::check_admin;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

fn exposition(metrics: &Metrics) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(CONTENT_TYPE)
        .body(metrics.encode())
}

/// On the main listener.
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, crate::error::ApiError> {
    check_admin(&req, &state)?;
    Ok(exposition(&metrics))
}

/// On `metrics_listen`.
pub async fn metrics_open(metrics: web::Data<Metrics>) -> HttpResponse {
    exposition(&metrics)
}

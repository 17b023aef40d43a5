//! Liveness and readiness.

use crate::startup::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: knowledge loaded and the audit store reachable.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let knowledge = json!({
        "status": "ok",
        "version": state.knowledge.version,
        "guideline": state.knowledge.guideline.id,
    });
    HttpResponse::Ok().json(json!({"status": "ok", "knowledge": knowledge}))
}

//! Liveness and readiness.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: knowledge loaded; audit store state. An unreachable audit store makes the
/// answer `"status": "degraded"` but stays 200: hook calls are still answered and their records
/// spooled durably (advice must not block ordering); alert on `audit.store_up` instead.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let knowledge = json!({
        "status": "ok",
        "version": state.knowledge.version,
        "guideline": state.knowledge.guideline.id,
    });
    let m = state.audit.metrics();
    let audit = json!({
        "status": if state.audit.ready() { "ok" } else { "unavailable" },
        "store": state.audit.location().backend().name(),
        "store_up": m.store_up,
        "spool_backlog": m.spool_backlog,
        "undelivered": m.undelivered,
        "records_committed": m.records_committed,
    });
    let status = if state.audit.ready() {
        "ok"
    } else {
        "degraded"
    };
    HttpResponse::Ok().json(json!({"status": status, "knowledge": knowledge, "audit": audit}))
}

//! Liveness and readiness.

use crate::lifecycle::{Lifecycle, Phase};
use crate::startup::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 503 while starting (`"status": "starting"`) and while draining after
/// SIGTERM/SIGINT (`"draining"`). The knowledge is loaded before the listener opens (a file that
/// does not load stops start-up), and its version is reported. An unreachable audit store makes
/// the answer `"status": "degraded"` but stays 200: hook calls are still answered and their
/// records spooled durably (advice must not block ordering); alert on `audit.store_up` instead,
/// or set `ready_requires_audit_store` to answer 503 (`"unavailable"`).
pub async fn readyz(state: web::Data<AppState>, lifecycle: web::Data<Lifecycle>) -> HttpResponse {
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
    let store_up = state.audit.ready();
    let (status, ready) = match lifecycle.phase() {
        Phase::Starting => ("starting", false),
        Phase::Draining => ("draining", false),
        Phase::Ready if store_up => ("ok", true),
        Phase::Ready if state.settings.ready_requires_audit_store => ("unavailable", false),
        Phase::Ready => ("degraded", true),
    };
    let body = json!({"status": status, "knowledge": knowledge, "audit": audit});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

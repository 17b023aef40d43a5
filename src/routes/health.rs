//! Liveness and readiness.

use crate::lifecycle::{Lifecycle, Phase};
use crate::state::AppState;
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test};

    /// The phases a load balancer sees: 503 while starting and draining, 200 when ready.
    #[actix_web::test]
    async fn readiness_follows_the_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::audit::testing::settings_in(dir.path(), None);
        let audit = crate::audit::AuditStore::open(&settings).await.unwrap();
        let state = AppState::new(settings, audit).unwrap();
        let lifecycle = web::Data::new(Lifecycle::default());
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(state))
                .app_data(lifecycle.clone())
                .route("/readyz", web::get().to(readyz)),
        )
        .await;
        let get = || test::TestRequest::get().uri("/readyz").to_request();
        let expect = [
            (None, 503, "starting"),
            (Some(Phase::Ready), 200, "ok"),
            (Some(Phase::Draining), 503, "draining"),
        ];
        for (phase, status, word) in expect {
            match phase {
                Some(Phase::Ready) => lifecycle.set_ready(),
                Some(Phase::Draining) => lifecycle.set_draining(),
                _ => {}
            }
            let resp = test::call_service(&app, get()).await;
            assert_eq!(resp.status().as_u16(), status, "{word}");
            let body: serde_json::Value = test::read_body_json(resp).await;
            assert_eq!(body["status"], word);
            assert!(body["knowledge"]["version"].is_string());
        }
    }
}

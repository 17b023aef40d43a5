//! `X-Request-Id`: honoured when it is a plain token, generated otherwise, echoed on every
//! answer (errors included), and named by the access log line and the hook span.

use crate::helpers::*;
use crate::process::{ServerProcess, audit_env};

fn echoed(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .expect("X-Request-Id on the answer")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn incoming_ids_are_echoed_and_missing_or_unsafe_ones_replaced() {
    let app = spawn_app().await;
    let with = |id: &str| {
        app.client
            .get(format!("{}/healthz", app.address))
            .header("X-Request-Id", id)
            .send()
    };
    let r = with("lb-7f3a:42").await.unwrap();
    assert_eq!(echoed(&r), "lb-7f3a:42");

    let r = app.get("/healthz").await;
    let generated = echoed(&r);
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    assert_ne!(
        echoed(&app.get("/healthz").await),
        generated,
        "one id per request"
    );

    for unsafe_id in ["has space", "{\"json\":1}", &"x".repeat(129)] {
        let r = with(unsafe_id).await.unwrap();
        let id = echoed(&r);
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "{unsafe_id:?} replaced, got {id}"
        );
    }

    // Error answers carry it too: an unknown path, a bad hook request.
    let r = app
        .client
        .get(format!("{}/nope", app.address))
        .header("X-Request-Id", "err-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(echoed(&r), "err-1");
    let r = app
        .client
        .post(format!("{}/cds-services/vcf-order-select", app.address))
        .header("X-Request-Id", "err-2")
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(echoed(&r), "err-2");
}

#[tokio::test]
async fn access_log_and_hook_span_name_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let env = audit_env(dir.path());
    let server = tokio::task::spawn_blocking(move || ServerProcess::start(&env))
        .await
        .unwrap();
    let hook = read_json(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("hooks/v1-new-symptomatic-no-malignancy.json"),
    );
    let r = reqwest::Client::new()
        .post(format!("{}/cds-services/vcf-order-select", server.address))
        .header("X-Request-Id", "trace-abc-1")
        .json(&hook)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(echoed(&r), "trace-abc-1");
    // The access line is written after the answer; give the log pipe a moment.
    let mut logs = vec![];
    for _ in 0..100 {
        logs = server.logs();
        if logs
            .iter()
            .any(|l| l["message"] == "request" && l["span"]["request_id"] == "trace-abc-1")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let access = logs
        .iter()
        .find(|l| l["message"] == "request" && l["path"] == "/cds-services/vcf-order-select")
        .unwrap_or_else(|| panic!("no access log line: {logs:?}"));
    assert_eq!(access["span"]["request_id"], "trace-abc-1", "{access}");
    assert_eq!(access["status"], 200);
    let hook_event = logs
        .iter()
        .find(|l| l["message"] == "hook evaluated")
        .unwrap_or_else(|| panic!("no hook event: {logs:?}"));
    assert_eq!(hook_event["span"]["name"], "hook");
    assert_eq!(
        hook_event["span"]["request_id"], "trace-abc-1",
        "{hook_event}"
    );
    // No patient data in either line.
    for line in [access, hook_event] {
        assert!(!line.to_string().contains("pat-v1a"), "{line}");
    }
}

/// Browser CDS clients (CORS) may send the header and read the answer's.
#[tokio::test]
async fn cors_allows_and_exposes_the_request_id() {
    let app = spawn_app().await;
    let origin = "https://sandbox.cds-hooks.org";
    let r = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/cds-services/vcf-order-select", app.address),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type,x-request-id",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-request-id"), "{allowed}");
    let r = app
        .client
        .get(format!("{}/cds-services", app.address))
        .header("Origin", origin)
        .header("X-Request-Id", "browser-1")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed(&r), "browser-1");
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

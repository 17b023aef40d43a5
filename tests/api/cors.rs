use crate::helpers::*;

const SANDBOX: &str = "https://sandbox.cds-hooks.org";

#[tokio::test]
async fn preflight_from_the_sandbox_is_allowed_without_authentication() {
    let app = spawn_app().await;
    let r = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/cds-services/vcf-order-select", app.address),
        )
        .header("Origin", SANDBOX)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], SANDBOX);
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    // Never a wildcard, and never a wildcard together with credentials.
    assert_ne!(h["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn simple_requests_echo_only_allowed_origins() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/cds-services", app.address))
        .header("Origin", SANDBOX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], SANDBOX);

    let r = app
        .client
        .get(format!("{}/cds-services", app.address))
        .header("Origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // Answered (no preflight was needed), but the browser withholds it from that origin.
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn configured_origins_replace_the_default() {
    let app = spawn_app_with(|s| s.cors_origins = vec!["https://ehr.example.org".into()]).await;
    let r = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/cds-services", app.address),
        )
        .header("Origin", "https://ehr.example.org")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ehr.example.org"
    );
    assert!(
        r.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
}

/// A refused preflight is an OperationOutcome like every other error (actix-cors alone answers
/// plain text).
#[tokio::test]
async fn refused_preflight_answers_with_an_operation_outcome() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str, headers: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/cds-services/vcf-order-select", app.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", headers)
            .send()
    };
    // An origin not in cors_origins (a locally built sandbox, say).
    let r = preflight("http://localhost:3000", "content-type")
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let outcome = assert_outcome(r, 400).await;
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("Origin is not allowed") && diagnostics.contains("cors_origins"),
        "{diagnostics}"
    );
    assert_eq!(outcome["issue"][0]["code"], "security");
    // An allowed origin asking for a header that is not allowed.
    let r = preflight(SANDBOX, "x-not-allowed").await.unwrap();
    let outcome = assert_outcome(r, 400).await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("request headers are not allowed"),
        "{outcome}"
    );
}

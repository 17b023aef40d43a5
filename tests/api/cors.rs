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

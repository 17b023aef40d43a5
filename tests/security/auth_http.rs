//! The auth middleware in front of CDS routes: which calls need a JWT, the audience it checks,
//! the 401 answer, and the VerifiedClient handed to handlers.

use crate::support::{TestKey, claims, jwks};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, test, web};
use serde_json::{Value, json};
use std::io::Write;
use vcf_cds::auth::middleware::require_auth;
use vcf_cds::auth::{Authenticator, VerifiedClient};
use vcf_cds::configuration::{Settings, TrustedIssuer};

const ISS: &str = "https://ehr.example.org";

async fn whoami(req: HttpRequest) -> HttpResponse {
    let client = req.extensions().get::<VerifiedClient>().cloned();
    HttpResponse::Ok().json(json!({
        "iss": client.as_ref().and_then(|c| c.iss().map(str::to_owned)),
        "anonymous": client.as_ref().map(|c| c.is_anonymous()),
    }))
}

fn settings(key: &TestKey, open_discovery: bool) -> (Settings, tempfile::NamedTempFile) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(jwks(&[key]).to_string().as_bytes()).unwrap();
    let s = Settings {
        trusted_issuers: vec![TrustedIssuer {
            iss: ISS.into(),
            jwks_url: None,
            jwks_file: Some(f.path().to_owned()),
            algorithms: vec!["ES384".into(), "RS384".into()],
            tenant: None,
            jku_allowlist: vec![],
            fhir_servers: vec![],
        }],
        open_discovery,
        ..Settings::default()
    };
    (s, f)
}

macro_rules! app {
    ($settings:expr) => {{
        let auth = web::Data::new(Authenticator::new(&$settings).unwrap());
        test::init_service(
            App::new()
                .app_data(auth)
                .wrap(from_fn(require_auth))
                .route("/cds-services", web::get().to(whoami))
                .route("/cds-services/{id}", web::post().to(whoami))
                .route("/cds-services/{id}/feedback", web::post().to(whoami))
                .route("/healthz", web::get().to(whoami)),
        )
        .await
    }};
}

fn token(key: &TestKey, aud: &str) -> String {
    format!("Bearer {}", key.sign(json!({}), &claims(ISS, aud)))
}

#[actix_web::test]
async fn service_and_feedback_calls_need_a_valid_jwt() {
    let key = TestKey::es384("k1");
    let (s, _f) = settings(&key, true);
    let app = app!(s);
    let base = "http://127.0.0.1:8080";
    for path in [
        "/cds-services/vcf-order-select",
        "/cds-services/vcf-order-select/feedback",
    ] {
        // Missing header.
        let resp = test::call_service(&app, test::TestRequest::post().uri(path).to_request()).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers().get("www-authenticate").unwrap(),
            "Bearer realm=\"vcf-cds\""
        );
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/fhir+json"
        );
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert_eq!(body["issue"][0]["code"], "login");
        assert_eq!(body["issue"][0]["diagnostics"], "authentication failed");

        // Valid, audience = base URL + path (query ignored).
        let req = test::TestRequest::post()
            .uri(&format!("{path}?x=1"))
            .insert_header(("authorization", token(&key, &format!("{base}{path}"))))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), 200);
        let body: Value = test::read_body_json(resp).await;
        assert_eq!(body["iss"], ISS);

        // Token for another endpoint.
        let req = test::TestRequest::post()
            .uri(path)
            .insert_header((
                "authorization",
                token(&key, &format!("{base}/cds-services/other")),
            ))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers().get("www-authenticate").unwrap(),
            "Bearer realm=\"vcf-cds\", error=\"invalid_token\""
        );
        let body = test::read_body(resp).await;
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("aud"), "401 body leaks the reason: {text}");
    }
    // Two Authorization headers.
    let req = test::TestRequest::post()
        .uri("/cds-services/x")
        .append_header((
            "authorization",
            token(&key, &format!("{base}/cds-services/x")),
        ))
        .append_header((
            "authorization",
            token(&key, &format!("{base}/cds-services/x")),
        ))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 401);
    // Non-CDS routes and CORS preflight pass without a token.
    let resp =
        test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(resp.status(), 200);
    let req = test::TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/cds-services/x")
        .to_request();
    assert_ne!(test::call_service(&app, req).await.status(), 401);
}

#[actix_web::test]
async fn discovery_open_or_closed() {
    let key = TestKey::es384("k1");
    let (s, _f) = settings(&key, true);
    let app = app!(s);
    let resp = test::call_service(
        &app,
        test::TestRequest::get().uri("/cds-services").to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);

    let (s, _f) = settings(&key, false);
    let app = app!(s);
    let resp = test::call_service(
        &app,
        test::TestRequest::get().uri("/cds-services").to_request(),
    )
    .await;
    assert_eq!(resp.status(), 401);
    let req = test::TestRequest::get()
        .uri("/cds-services")
        .insert_header((
            "authorization",
            token(&key, "http://127.0.0.1:8080/cds-services"),
        ))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 200);
}

#[actix_web::test]
async fn audience_uses_the_public_base_url() {
    let key = TestKey::es384("k1");
    let (mut s, _f) = settings(&key, true);
    s.public_base_url = Some("https://cds.example.org/prefix/".into());
    let app = app!(s);
    let path = "/cds-services/vcf-order-sign";
    let req = test::TestRequest::post()
        .uri(path)
        .insert_header((
            "authorization",
            token(
                &key,
                "https://cds.example.org/prefix/cds-services/vcf-order-sign",
            ),
        ))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 200);
    // The listen address is not the audience behind a proxy.
    let req = test::TestRequest::post()
        .uri(path)
        .insert_header((
            "authorization",
            token(&key, &format!("http://127.0.0.1:8080{path}")),
        ))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 401);
}

#[actix_web::test]
async fn open_mode_marks_calls_anonymous() {
    let s = Settings::default();
    let app = app!(s);
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/cds-services/x")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["anonymous"], true);
}

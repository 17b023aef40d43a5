//! No PHI or secrets in logs (issue 5, point 4): the tracing output of full request cycles
//! (valid calls with prefetch and with FHIR fetches, failing calls of every kind), captured at
//! debug level for every crate, contains none of the JWTs, the FHIR access token, the patient's
//! name, birth date or raw id.
//!
//! Its own test binary: it installs the process-wide tracing subscriber.

#[path = "security/support/mod.rs"]
mod support;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use support::{TestKey, claims, jwks, now};
use vcf_cds::configuration::{LogFormat, Settings, TrustedIssuer};
use vcf_cds::startup::Application;

const ISS: &str = "https://ehr.example.org";
const BASE: &str = "https://cds.example.test";
const PATIENT_ID: &str = "pat-SECRET-4711";
const GIVEN: &str = "Zebulon";
const FAMILY: &str = "Quixotewski";
const BIRTH: &str = "1937-05-14";
const ACCESS_TOKEN: &str = "acc-tok-SECRET-9f8e7d6c";

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A FHIR server on 127.0.0.1 whose answers are full of PHI, some of it malformed (so error
/// paths that might echo values run too).
fn fhir_stub() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|req: HttpRequest| async move {
            let path = req.path().to_owned();
            let body = if path.contains("/Patient") {
                json!({"resourceType": "Patient", "id": PATIENT_ID,
                       "name": [{"given": [GIVEN], "family": FAMILY}], "birthDate": BIRTH})
            } else if path.contains("/Condition") {
                json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                    "resourceType": "Condition", "id": "c1",
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}],
                             "text": format!("fracture of {GIVEN} {FAMILY}")},
                    "subject": {"reference": format!("Patient/{PATIENT_ID}")},
                    "onsetDateTime": BIRTH}}]})
            } else if path.contains("/Procedure") {
                // Malformed: a name where a code belongs, an invalid date built from the birth date.
                json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                    "resourceType": "Procedure", "id": "x", "status": format!("{GIVEN} {FAMILY}"),
                    "performedDateTime": format!("{BIRTH}T99:99")}}]})
            } else {
                json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                    "resourceType": "Observation", "id": "o1", "status": "final",
                    "code": {"text": FAMILY}, "effectiveDateTime": format!("{BIRTH}x")}}]})
            };
            HttpResponse::Ok()
                .content_type("application/fhir+json")
                .body(body.to_string())
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}/fhir")
}

fn request(with_prefetch: bool, fhir_server: &str) -> Value {
    let mut r = json!({
        "hook": "order-select",
        "hookInstance": "6c0a8d6e-1f1b-4c39-9d2e-6f9b8f9d0a11",
        "fhirServer": fhir_server,
        "fhirAuthorization": {"access_token": ACCESS_TOKEN, "token_type": "Bearer",
            "expires_in": 300, "scope": "patient/*.read", "subject": "cds-service"},
        "context": {
            "userId": "Practitioner/dr-1",
            "patientId": PATIENT_ID,
            "selections": ["ServiceRequest/sr-1"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
                "resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
                "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]},
                "subject": {"reference": format!("Patient/{PATIENT_ID}")}}}]}
        }
    });
    if with_prefetch {
        r["prefetch"] = json!({
            "patient": {"resourceType": "Patient", "id": PATIENT_ID,
                "name": [{"given": [GIVEN], "family": FAMILY}], "birthDate": BIRTH},
            "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                "resourceType": "Condition", "id": "c1",
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}]},
                "subject": {"reference": format!("Patient/{PATIENT_ID}")}, "onsetDateTime": BIRTH}}]},
            "procedures": {"resourceType": "Bundle", "type": "searchset", "entry": []},
            "observations": {"resourceType": "Bundle", "type": "searchset", "entry": []},
            "reports": {"resourceType": "Bundle", "type": "searchset", "entry": []}
        });
    }
    r
}

#[actix_web::test]
async fn logs_of_full_request_cycles_hold_no_phi_or_secrets() {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Capture(logs.clone());
    vcf_cds::telemetry::init(LogFormat::Json, "debug", move || sink.clone());

    let key = TestKey::es384("k1");
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[&key]).to_string()).unwrap();
    let fhir = fhir_stub();
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        public_base_url: Some(BASE.into()),
        audit_db: dir.path().join("audit.sqlite").display().to_string(),
        audit_spool_dir: dir.path().join("spool"),
        trusted_fhir_servers: vec![fhir.clone()],
        trusted_issuers: vec![TrustedIssuer {
            iss: ISS.into(),
            jwks_url: None,
            jwks_file: Some(jwks_path),
            algorithms: vec!["ES384".into()],
            tenant: None,
            jku_allowlist: vec![],
            fhir_servers: vec![],
        }],
        log_format: LogFormat::Json,
        log_level: "debug".into(),
        ..Settings::default()
    };
    let app = Application::build(settings).await.unwrap();
    let addr = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let path = "/cds-services/vcf-order-select";
    let aud = format!("{BASE}{path}");
    let mut jwts = Vec::new();
    let mut jwt_for = |aud: &str, exp_offset: i64| {
        let mut c = claims(ISS, aud);
        c["exp"] = json!(now() + exp_offset);
        c["iat"] = json!(now() - 600);
        let t = key.sign(json!({}), &c);
        jwts.push(t.clone());
        t
    };
    let valid = jwt_for(&aud, 300);
    let valid2 = jwt_for(&aud, 300);
    let valid3 = jwt_for(&aud, 300);
    let expired = jwt_for(&aud, -3600);
    let wrong_aud = jwt_for(&format!("{BASE}/cds-services/other"), 300);

    let calls: Vec<(Option<&str>, Value, u16)> = vec![
        // Valid with prefetch (name, birth date, access token in the body).
        (Some(&valid), request(true, &fhir), 200),
        // Replay of the same JWT.
        (Some(&valid), request(true, &fhir), 401),
        // Valid without prefetch: everything is fetched from the FHIR server with the token,
        // and some of its answers are malformed.
        (Some(&valid2), request(false, &fhir), 0),
        (Some(&expired), request(true, &fhir), 401),
        (Some(&wrong_aud), request(true, &fhir), 401),
        (None, request(true, &fhir), 401),
        // Valid JWT, invalid birth date in the prefetched Patient.
        (
            Some(&valid3),
            {
                let mut r = request(true, &fhir);
                r["prefetch"]["patient"]["birthDate"] = json!(format!("{BIRTH}x"));
                r
            },
            400,
        ),
    ];
    for (jwt, body, want) in calls {
        let mut req = http
            .post(format!("{addr}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = jwt {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        if want != 0 {
            assert_eq!(status, want, "{text}");
        } else {
            assert!(status == 200 || status == 412, "{status} {text}");
        }
    }
    // An unparseable body carrying the name, and a malformed bearer token.
    let resp = http
        .post(format!("{addr}{path}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", jwt_for(&aud, 300)))
        .body(format!(
            "{{\"hook\": \"order-select\", \"name\": \"{GIVEN} {FAMILY}\", {BIRTH}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http
        .post(format!("{addr}{path}"))
        .header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}.{GIVEN}.{BIRTH}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Let the last log lines land.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("authentication failed") && text.contains("\"request\""),
        "log capture did not work:\n{text}"
    );
    let mut secrets: Vec<(&str, String)> = vec![
        ("FHIR access token", ACCESS_TOKEN.into()),
        ("given name", GIVEN.into()),
        ("family name", FAMILY.into()),
        ("birth date", BIRTH.into()),
        ("raw patient id", PATIENT_ID.into()),
    ];
    for j in &jwts {
        secrets.push(("JWT", j.clone()));
        // Any of its three parts on its own (header, claims, signature).
        for part in j.split('.') {
            secrets.push(("JWT part", part.to_owned()));
        }
    }
    for (what, secret) in secrets {
        if let Some(at) = text.find(&secret) {
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("{what} found in the logs:\n{}", &text[start..end]);
        }
    }
}

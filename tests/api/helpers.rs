//! Test harness: the real application on a random loopback port, and an in-process FHIR server
//! stub (also on loopback) that serves canned responses and records what was asked, with which
//! token.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use vcf_cds::configuration::Settings;
use vcf_cds::startup::Application;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// Keeps the audit database and spool alive for the test's duration.
    pub _dir: tempfile::TempDir,
}

/// Settings every test starts from: loopback, random port, files in a temp dir.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        audit_db: dir.join("audit.sqlite").display().to_string(),
        audit_spool_dir: dir.join("spool"),
        log_level: "warn".into(),
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path());
    configure(&mut settings);
    start(settings, dir).await
}

/// Starts the application with `settings`; `dir` holds its files for the test's duration.
pub async fn start(settings: Settings, dir: tempfile::TempDir) -> TestApp {
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_raw(path, "application/json", body.to_string().into_bytes())
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn call(&self, service: &str, body: &Value) -> reqwest::Response {
        self.post_json(&format!("/cds-services/{service}"), body)
            .await
    }
}

/// Asserts an OperationOutcome error answer and returns it.
pub async fn assert_outcome(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.contains("json"), "error body must be JSON, got {ct:?}");
    let body: Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert!(
        body["issue"].as_array().is_some_and(|i| !i.is_empty()),
        "{body}"
    );
    body
}

/// The JSON paths named by an OperationOutcome.
pub fn expressions(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect()
}

/// Path of a file under `fixtures/reference/` (public reference data carried into the
/// repository; sources and licences in `fixtures/reference/README.md`).
pub fn reference_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/reference")
        .join(rel)
}

pub fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A minimal valid order-select request for patient `p1` with one lumbar MRI order.
pub fn order_select() -> Value {
    json!({
        "hook": "order-select",
        "hookInstance": "6c0a8d6e-1f1b-4c39-9d2e-6f9b8f9d0a11",
        "context": {
            "userId": "Practitioner/dr-1",
            "patientId": "p1",
            "encounterId": "enc-1",
            "selections": ["ServiceRequest/sr-1"],
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {
                    "resourceType": "ServiceRequest",
                    "id": "sr-1",
                    "status": "draft",
                    "intent": "order",
                    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148",
                        "display": "MRI lumbar spine without contrast"}]},
                    "subject": {"reference": "Patient/p1"}
                }}]
            }
        }
    })
}

/// Complete prefetch for `order_select()`: patient, conditions, procedures, observations, reports.
pub fn full_prefetch() -> Value {
    json!({
        "patient": {"resourceType": "Patient", "id": "p1", "birthDate": "1948-03-02"},
        "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Condition", "id": "c1",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}]},
                "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2026-11-20"}}
        ]},
        "procedures": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "observations": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "reports": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "allergies": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "devices": {"resourceType": "Bundle", "type": "searchset", "entry": []}
    })
}

/// One request the FHIR stub received.
#[derive(Debug, Clone)]
pub struct StubRequest {
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
}

/// What the stub answers for a resource type (and optional `page` query value).
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub body: Value,
    pub location: Option<String>,
}

#[derive(Default)]
struct StubState {
    requests: Mutex<Vec<StubRequest>>,
    responses: Mutex<HashMap<String, Canned>>,
    delay_ms: Mutex<u64>,
}

pub struct FhirStub {
    /// Base URL, e.g. `http://127.0.0.1:4321/fhir`.
    pub base: String,
    state: Arc<StubState>,
}

impl FhirStub {
    pub async fn start() -> FhirStub {
        let state = Arc::new(StubState::default());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(stub_handler))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        FhirStub {
            base: format!("http://127.0.0.1:{port}/fhir"),
            state,
        }
    }

    /// Answer for `resource_type` (searches and reads), optionally for one `page` only.
    pub fn respond(&self, key: &str, status: u16, body: Value) {
        self.state.responses.lock().unwrap().insert(
            key.to_owned(),
            Canned {
                status,
                body,
                location: None,
            },
        );
    }

    pub fn redirect(&self, key: &str, location: &str) {
        self.state.responses.lock().unwrap().insert(
            key.to_owned(),
            Canned {
                status: 302,
                body: json!({}),
                location: Some(location.to_owned()),
            },
        );
    }

    pub fn delay(&self, ms: u64) {
        *self.state.delay_ms.lock().unwrap() = ms;
    }

    pub fn requests(&self) -> Vec<StubRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn requests_for(&self, resource_type: &str) -> Vec<StubRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(&format!("/fhir/{resource_type}")))
            .collect()
    }
}

async fn stub_handler(req: HttpRequest, state: web::Data<StubState>) -> HttpResponse {
    let path = req.path().to_owned();
    let query = req.query_string().to_owned();
    state.requests.lock().unwrap().push(StubRequest {
        path: path.clone(),
        query: query.clone(),
        authorization: req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    let delay = *state.delay_ms.lock().unwrap();
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let resource_type = path
        .trim_start_matches("/fhir/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let page = query
        .split('&')
        .find_map(|p| p.strip_prefix("page="))
        .map(str::to_owned);
    let responses = state.responses.lock().unwrap();
    let canned = page
        .and_then(|p| responses.get(&format!("{resource_type}#{p}")))
        .or_else(|| responses.get(&resource_type))
        .cloned();
    drop(responses);
    match canned {
        Some(c) => {
            let mut resp = HttpResponse::build(actix_web::http::StatusCode::from_u16(c.status).unwrap());
            if let Some(loc) = c.location {
                resp.insert_header(("Location", loc));
            }
            resp.content_type("application/fhir+json").body(c.body.to_string())
        }
        None if path.matches('/').count() >= 3 => HttpResponse::NotFound()
            .content_type("application/fhir+json")
            .body(json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}).to_string()),
        None => HttpResponse::Ok()
            .content_type("application/fhir+json")
            .body(json!({"resourceType": "Bundle", "type": "searchset", "total": 0}).to_string()),
    }
}

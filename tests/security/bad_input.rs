//! The bad-input corpus (`tests/corpus/bad/`, listed with expected statuses in `index.tsv`)
//! against the real server: every request gets its 4xx with an OperationOutcome, never a 5xx or a
//! dropped connection, and the service is healthy and still answers a valid call afterwards.

use serde_json::Value;
use std::path::PathBuf;
use vcf_cds::configuration::Settings;
use vcf_cds::startup::Application;

struct Case {
    file: String,
    method: String,
    path: String,
    content_type: Option<String>,
    status: u16,
    description: String,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad")
}

fn cases() -> Vec<Case> {
    let index = std::fs::read_to_string(corpus_dir().join("index.tsv")).unwrap();
    index
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 6, "bad index line: {l}");
            Case {
                file: f[0].into(),
                method: f[1].into(),
                path: f[2].into(),
                content_type: (f[3] != "-").then(|| f[3].to_owned()),
                status: f[4].parse().unwrap(),
                description: f[5].into(),
            }
        })
        .collect()
}

#[tokio::test]
async fn every_bad_request_gets_a_4xx_outcome_and_the_service_stays_healthy() {
    let cases = cases();
    assert!(
        cases.len() >= 60,
        "the corpus has only {} requests",
        cases.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        max_body_bytes: 512 * 1024,
        audit_db: dir.path().join("audit.sqlite").display().to_string(),
        audit_spool_dir: dir.path().join("spool"),
        log_level: "error".into(),
        ..Settings::default()
    };
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let mut failures = Vec::new();
    for case in &cases {
        let body = std::fs::read(corpus_dir().join(&case.file)).unwrap();
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut req = client.request(method, format!("{base}{}", case.path));
        if let Some(ct) = &case.content_type {
            req = req.header("content-type", ct);
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: no answer ({e})", case.file));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.text().await.unwrap_or_default();
        let outcome: Option<Value> = serde_json::from_str(&text).ok();
        let is_outcome = outcome
            .as_ref()
            .is_some_and(|o| o["resourceType"] == "OperationOutcome" && o["issue"][0].is_object());
        if status != case.status || !(400..500).contains(&status) || !is_outcome {
            failures.push(format!(
                "{} ({}): expected {}, got {status} {content_type} {}",
                case.file,
                case.description,
                case.status,
                text.chars().take(300).collect::<String>()
            ));
        } else if content_type != "application/fhir+json" {
            failures.push(format!("{}: content type {content_type}", case.file));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus requests misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Still healthy, and still serving a valid call.
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let valid = valid_request();
    let resp = client
        .post(format!("{base}/cds-services/vcf-order-select"))
        .header("content-type", "application/json")
        .body(valid)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

/// The corpus generator's base request (valid).
fn valid_request() -> String {
    serde_json::json!({
        "hook": "order-select",
        "hookInstance": "6c0a8d6e-1f1b-4c39-9d2e-6f9b8f9d0a11",
        "context": {
            "userId": "Practitioner/dr-1",
            "patientId": "p1",
            "selections": ["ServiceRequest/sr-1"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
                "resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
                "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]},
                "subject": {"reference": "Patient/p1"}}}]}
        },
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "p1", "birthDate": "1948-03-02"},
            "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": []},
            "procedures": {"resourceType": "Bundle", "type": "searchset", "entry": []},
            "observations": {"resourceType": "Bundle", "type": "searchset", "entry": []},
            "reports": {"resourceType": "Bundle", "type": "searchset", "entry": []}
        }
    })
    .to_string()
}

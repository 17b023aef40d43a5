//! The CDS Hooks sandbox's own request shape (issue 9), driven the way its PAMA screen drives
//! the service:
//! - prefetch resolved by the client as a form-encoded `POST [base]/{type}/_search` of our
//!   discovery templates (the sandbox's `service-exchange.js`), emulated here by parsing each
//!   template's query as a form body;
//! - `draftOrders` a Bundle without `type`, the ServiceRequest with intent `plan` and a SNOMED
//!   CT reason (as in the Argonaut PAMA examples);
//! - the suggestion applied as the PAMA screen applies it: the `update` action's resource
//!   replaces the draft order with the same id, and the service is called again.
//!
//! The data missing from prefetch (`devices`) is fetched by the service from a FHIR server.

use crate::helpers::*;
use serde_json::{Value, json};
use time::OffsetDateTime;

const PATIENT: &str = "pat-sbx";

fn day(days_ago: i64) -> String {
    let d = OffsetDateTime::now_utc().date() - time::Duration::days(days_ago);
    d.to_string()
}

fn condition(id: &str, code: &str, display: &str, onset: &str) -> Value {
    json!({"resourceType": "Condition", "id": id,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code, "display": display}]},
        "subject": {"reference": format!("Patient/{PATIENT}")}, "onsetDateTime": onset})
}

/// The patient's chart, as a FHIR server would hold it (ACR VCF variant 1: a new osteoporotic
/// VCF with back pain, no malignancy).
fn chart() -> Vec<Value> {
    vec![
        json!({"resourceType": "Patient", "id": PATIENT, "birthDate": "1950-05-01"}),
        condition(
            "sbx-c1",
            "M80.08XA",
            "Age-related osteoporosis with current pathological fracture, vertebra(e), initial encounter for fracture",
            &day(10),
        ),
        condition("sbx-c2", "M54.50", "Low back pain, unspecified", &day(12)),
        json!({"resourceType": "Observation", "id": "sbx-o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "98979-8"}]},
            "subject": {"reference": format!("Patient/{PATIENT}")},
            "effectiveDateTime": day(20),
            "valueQuantity": {"value": 72, "unit": "mL/min/{1.73_m2}"}}),
    ]
}

/// The sandbox's prefetch: each template is resolved and sent as a form-encoded `_search`; the
/// server answers a searchset. Here the form body is parsed as a FHIR server would parse it
/// and the chart filtered by `patient` (and `code` tokens, which must survive form encoding).
fn sandbox_prefetch(templates: &serde_json::Map<String, Value>, skip: &[&str]) -> Value {
    let chart = chart();
    let mut prefetch = serde_json::Map::new();
    for (key, template) in templates {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let t = template
            .as_str()
            .unwrap()
            .replace("{{context.patientId}}", PATIENT);
        let (path, query) = t.split_once('?').unwrap_or((&t, ""));
        if query.is_empty() {
            // A read (`Patient/{id}`): GET.
            let (ty, id) = path.split_once('/').unwrap();
            let r = chart
                .iter()
                .find(|r| r["resourceType"] == ty && r["id"] == id)
                .cloned()
                .unwrap_or(Value::Null);
            prefetch.insert(key.clone(), r);
            continue;
        }
        // POST {base}/{type}/_search, Content-Type: application/x-www-form-urlencoded.
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(url::form_urlencoded::parse(query.as_bytes()))
            .finish();
        let params: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let patient = params.iter().find(|(k, _)| k == "patient").map(|(_, v)| v);
        assert_eq!(patient.map(String::as_str), Some(PATIENT), "{key}: {t}");
        let codes: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k == "code")
            .flat_map(|(_, v)| v.split(','))
            .map(|tok| {
                let (s, c) = tok
                    .split_once('|')
                    .unwrap_or_else(|| panic!("{key}: code token {tok:?} is not system|code"));
                (s.to_owned(), c.to_owned())
            })
            .collect();
        let entries: Vec<Value> = chart
            .iter()
            .filter(|r| r["resourceType"] == path)
            .filter(|r| {
                codes.is_empty()
                    || r["code"]["coding"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| {
                            codes
                                .iter()
                                .any(|(s, k)| c["system"] == s.as_str() && c["code"] == k.as_str())
                        })
                    })
            })
            .map(|r| json!({"resource": r}))
            .collect();
        prefetch.insert(
            key.clone(),
            json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
        );
    }
    Value::Object(prefetch)
}

fn draft(code: &str, display: &str) -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "id": "sbx-order-1",
        "meta": {"lastUpdated": "2026-11-28T09:00:00Z"},
        "extension": [{"url": "http://example.org/ehr/ordering-context", "valueString": "clinic"}],
        "status": "draft",
        "intent": "plan",
        "priority": "routine",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": code, "display": display}], "text": display},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "requester": {"reference": "Practitioner/sbx-dr"},
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "42942008",
            "display": "Compression fracture of vertebral column"}]}],
        "note": [{"text": "Pain since a fall from standing"}]
    })
}

fn request(order: &Value, prefetch: Value, instance: &str, fhir_server: Option<&str>) -> Value {
    let mut v = json!({
        "hook": "order-select",
        "hookInstance": instance,
        "context": {
            "userId": "Practitioner/sbx-dr",
            "patientId": PATIENT,
            "selections": ["ServiceRequest/sbx-order-1"],
            // The sandbox sends the draft orders as a Bundle without `type`.
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": order}]}
        },
        "prefetch": prefetch
    });
    if let Some(s) = fhir_server {
        v["fhirServer"] = json!(s);
    }
    v
}

fn pama_code(action: &Value) -> Option<String> {
    action["resource"]["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == "http://fhir.org/argonaut/Extension/pama-rating")
        .and_then(|e| e["valueCodeableConcept"]["coding"][0]["code"].as_str())
        .map(str::to_owned)
}

async fn templates(app: &TestApp) -> serde_json::Map<String, Value> {
    let d: Value = app.get("/cds-services").await.json().await.unwrap();
    d["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "vcf-order-select")
        .unwrap()["prefetch"]
        .as_object()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn update_suggestion_applies_cleanly_and_the_result_is_rated_appropriate() {
    let app = spawn_app().await;
    let stub = FhirStub::start().await;
    stub.respond(
        "Device",
        200,
        json!({"resourceType": "Bundle", "type": "searchset", "entry": []}),
    );
    let templates = templates(&app).await;
    let prefetch = sandbox_prefetch(&templates, &["devices"]);
    let order = draft("72149", "MRI lumbar spine with contrast");
    let r = app
        .call(
            "vcf-order-select",
            &request(
                &order,
                prefetch.clone(),
                "0a9b1c2d-0000-4000-8000-000000000001",
                Some(&stub.base),
            ),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    // The missing key was fetched from the FHIR server.
    assert_eq!(
        stub.requests_for("Device").len(),
        1,
        "{:?}",
        stub.requests()
    );
    let card = body["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["indicator"] == "warning")
        .unwrap_or_else(|| panic!("a warning card: {body}"));
    let suggestion = &card["suggestions"][0];
    assert_eq!(suggestion["isRecommended"], true);
    let actions = suggestion["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "one update action: {suggestion}");
    let action = &actions[0];
    assert_eq!(action["type"], "update");
    let updated = action["resource"].as_object().unwrap();
    // Same order (id), new code; every other element byte-identical.
    for (k, v) in order.as_object().unwrap() {
        match k.as_str() {
            "code" => assert_ne!(&updated[k], v),
            "extension" => {}
            _ => assert_eq!(
                serde_json::to_string(&updated[k]).unwrap(),
                serde_json::to_string(v).unwrap(),
                "{k} changed"
            ),
        }
    }
    for k in updated.keys() {
        assert!(order.get(k).is_some(), "{k} added to the order");
    }
    let ext = updated["extension"].as_array().unwrap();
    assert_eq!(
        ext[0], order["extension"][0],
        "the EHR's own extension is kept"
    );
    assert_eq!(pama_code(action).as_deref(), Some("appropriate"));
    assert!(
        updated["code"]["coding"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "72148"),
        "MRI lumbar without contrast: {}",
        updated["code"]
    );

    // Apply it as the sandbox does (replace the draft with the update's resource) and ask again.
    let applied = Value::Object(updated.clone());
    let r = app
        .call(
            "vcf-order-select",
            &request(
                &applied,
                prefetch,
                "0a9b1c2d-0000-4000-8000-000000000002",
                Some(&stub.base),
            ),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    let rating = body["systemActions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["resource"]["id"] == "sbx-order-1")
        .expect("rated");
    assert_eq!(pama_code(rating).as_deref(), Some("appropriate"), "{body}");
    let legacy = &body["extension"]["systemActions"][0];
    assert_eq!(pama_code(legacy).as_deref(), Some("appropriate"));
    assert!(
        !body["cards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["indicator"] == "warning"),
        "{body}"
    );
}

#[tokio::test]
async fn mr_unsafe_device_from_the_fhir_server_gives_a_safety_card_on_an_appropriate_mri() {
    let app = spawn_app().await;
    let stub = FhirStub::start().await;
    stub.respond(
        "Device",
        200,
        json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
            "resourceType": "Device", "id": "dev-1", "status": "active",
            "deviceName": [{"name": "Implantable pulse generator", "type": "user-friendly-name"}],
            "safety": [{"coding": [{"system": "urn:oid:2.16.840.1.113883.3.26.1.1",
                "code": "C106047", "display": "Magnetic Resonance Unsafe"}]}],
            "patient": {"reference": format!("Patient/{PATIENT}")}}}]}),
    );
    let templates = templates(&app).await;
    let prefetch = sandbox_prefetch(&templates, &["devices"]);
    let order = draft("72148", "MRI lumbar spine without contrast");
    let r = app
        .call(
            "vcf-order-select",
            &request(
                &order,
                prefetch,
                "0a9b1c2d-0000-4000-8000-000000000003",
                Some(&stub.base),
            ),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    let rating = &body["systemActions"][0];
    assert_eq!(pama_code(rating).as_deref(), Some("appropriate"), "{body}");
    let card = body["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["indicator"] == "warning")
        .unwrap_or_else(|| panic!("a safety card: {body}"));
    let text = format!("{} {}", card["summary"], card["detail"]);
    assert!(text.contains("MRI"), "{text}");
    assert!(text.contains("Device/dev-1"), "{text}");
    assert!(
        card["overrideReasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["code"] != "prefers-alternative"),
        "safety reasons, not treatment reasons"
    );
}

#[tokio::test]
async fn replace_style_sends_delete_and_create() {
    let app =
        spawn_app_with(|s| s.suggestion_style = vcf_cds::configuration::SuggestionStyle::Replace)
            .await;
    let templates = templates(&app).await;
    let prefetch = sandbox_prefetch(&templates, &[]);
    let order = draft("72149", "MRI lumbar spine with contrast");
    let body: Value = app
        .call(
            "vcf-order-select",
            &request(
                &order,
                prefetch,
                "0a9b1c2d-0000-4000-8000-000000000004",
                None,
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = body["cards"][0]["suggestions"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["delete", "create"], "{body}");
}

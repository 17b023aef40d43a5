//! The official examples: spec order-select / order-sign (R4), Inferno CRD requests, PAMA
//! connectathon requests.

use crate::helpers::*;
use serde_json::{Value, json};

fn envelope(hook: &str, context: Value) -> Value {
    json!({
        "hook": hook,
        "hookInstance": "0d7b4b0e-3a9e-4d41-9d7e-2a7c1b3c9f00",
        "context": context["context"].clone(),
    })
}

#[tokio::test]
async fn spec_order_select_and_order_sign_examples_are_accepted() {
    let app = spawn_app().await;
    let select = read_json(&reference_file(
        "cds-hooks-spec/order-select-L0050-example-r4.json",
    ));
    let r = app
        .call("vcf-order-select", &envelope("order-select", select))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    // NutritionOrder and MedicationRequest: not this guideline's business.
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"cards": []}));

    let sign = read_json(&reference_file(
        "cds-hooks-spec/order-sign-L0052-example-r4.json",
    ));
    let r = app
        .call("vcf-order-sign", &envelope("order-sign", sign))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"cards": []}));
}

#[tokio::test]
async fn inferno_requests_are_accepted() {
    let app = spawn_app().await;
    for (file, service) in [
        ("order_select_hook_request.json", "vcf-order-select"),
        ("order_sign_hook_request.json", "vcf-order-sign"),
    ] {
        let v = read_json(&reference_file(&format!("inferno-crd/{file}")));
        let r = app.call(service, &v).await;
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"cards": []}),
            "{file}"
        );
    }
}

#[tokio::test]
async fn pama_connectathon_requests() {
    let app = spawn_app().await;
    let dir = "argonaut-pama";
    // Scenario 1 (CT lumbar spine without and with contrast) as published: no prefetch and an
    // external fhirServer that is not trusted here, so the conditions cannot be obtained.
    let mut v = read_json(&reference_file(&format!(
        "{dir}/scenario-01-outbound-request.json"
    )));
    let outcome = assert_outcome(app.call("vcf-order-select", &v).await, 412).await;
    assert_eq!(expressions(&outcome), ["prefetch.conditions"]);

    // With the patient's data prefetched: no fracture on record, so this guideline does not
    // apply and the order is rated `no-criteria-apply` without a card.
    v["prefetch"] = json!({
        "patient": {"resourceType": "Patient", "id": "MRI-59879846", "birthDate": "1961-04-10"},
        "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "procedures": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "observations": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "reports": {"resourceType": "Bundle", "type": "searchset", "entry": []}
    });
    let body: Value = app.call("vcf-order-select", &v).await.json().await.unwrap();
    assert_eq!(body["cards"], json!([]));
    let ext = &body["systemActions"][0]["resource"]["extension"][0];
    assert_eq!(
        ext["valueCodeableConcept"]["coding"][0]["code"],
        "no-criteria-apply"
    );

    // With a recent osteoporotic L-spine fracture the same order is usually not appropriate.
    v["prefetch"]["conditions"]["entry"] = json!([{"resource": {"resourceType": "Condition",
        "id": "c1", "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}]},
        "recordedDate": "2026-11-01"}}]);
    v["context"]["draftOrders"]["entry"][0]["resource"]["authoredOn"] = json!("2026-11-20");
    let body: Value = app.call("vcf-order-select", &v).await.json().await.unwrap();
    assert_eq!(body["cards"][0]["indicator"], "warning");
    let ext = &body["systemActions"][0]["resource"]["extension"][0];
    assert_eq!(
        ext["valueCodeableConcept"]["coding"][0]["code"],
        "not-appropriate"
    );
    assert_eq!(body["extension"]["systemActions"], body["systemActions"]);

    // Scenario 2 (CT angiogram of the chest) is not a procedure of this guideline: no patient
    // data is needed, nothing is fetched, no card; as advanced imaging (CPT 71275, in the
    // knowledge file's CT ranges) it is rated "no-criteria-apply" so the EHR's rating box does
    // not keep a stale value (issue 9, `rate_out_of_scope_imaging`).
    let v = read_json(&reference_file(&format!(
        "{dir}/scenario-02-outbound-request.json"
    )));
    let r = app.call("vcf-order-select", &v).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["cards"], json!([]));
    let ext = &body["systemActions"][0]["resource"]["extension"][0];
    assert_eq!(
        ext["valueCodeableConcept"]["coding"][0]["code"],
        "no-criteria-apply"
    );
    assert_eq!(
        body["systemActions"][0]["resource"]["id"],
        v["context"]["draftOrders"]["entry"][0]["resource"]["id"]
    );

    // Switched off: nothing, as before.
    let off = spawn_app_with(|s| s.rate_out_of_scope_imaging = false).await;
    let r = off.call("vcf-order-select", &v).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"cards": []}));
}

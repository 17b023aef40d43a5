//! Prefetch present / absent / null / OperationOutcome / empty, and the FHIR server fallback
//! against an in-process stub that records what was asked and with which token.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "secret-access-token-123";

fn with_server(stub: &FhirStub, token: bool) -> Value {
    let mut v = order_select();
    v["fhirServer"] = json!(stub.base);
    if token {
        v["fhirAuthorization"] = json!({
            "access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
            "scope": "patient/Patient.read patient/Condition.read", "subject": "vcf-cds"
        });
    }
    v
}

fn condition_bundle() -> Value {
    full_prefetch()["conditions"].clone()
}

#[tokio::test]
async fn complete_prefetch_needs_no_fetch() {
    let stub = FhirStub::start().await;
    let app = spawn_app().await;
    let mut v = with_server(&stub, true);
    v["prefetch"] = full_prefetch();
    let r = app.call("vcf-order-select", &v).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["cards"].is_array());
    assert!(stub.requests().is_empty(), "{:?}", stub.requests());
}

#[tokio::test]
async fn absent_keys_are_fetched_with_the_token() {
    let stub = FhirStub::start().await;
    stub.respond("Condition", 200, condition_bundle());
    stub.respond(
        "Patient",
        200,
        json!({"resourceType": "Patient", "id": "p1", "birthDate": "1950"}),
    );
    let app = spawn_app().await;
    let r = app
        .call("vcf-order-select", &with_server(&stub, true))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 7, "{reqs:?}");
    for r in &reqs {
        assert_eq!(
            r.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
    }
    let patient = stub.requests_for("Patient");
    assert_eq!(patient[0].path, "/fhir/Patient/p1");
    let conditions = stub.requests_for("Condition");
    assert_eq!(conditions[0].query, "patient=p1");
    assert!(
        stub.requests_for("Procedure")[0]
            .query
            .starts_with("patient=p1")
    );
    assert!(
        stub.requests_for("Observation")[0]
            .query
            .starts_with("patient=p1")
    );
    assert!(
        stub.requests_for("DiagnosticReport")[0]
            .query
            .contains("category=")
    );
}

#[tokio::test]
async fn only_missing_keys_are_fetched() {
    let stub = FhirStub::start().await;
    let app = spawn_app().await;
    let mut v = with_server(&stub, false);
    let mut prefetch = full_prefetch();
    prefetch.as_object_mut().unwrap().remove("procedures");
    v["prefetch"] = prefetch;
    let r = app.call("vcf-order-select", &v).await;
    assert_eq!(r.status().as_u16(), 200);
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].path.ends_with("/Procedure"));
    // No fhirAuthorization: no Authorization header.
    assert!(reqs[0].authorization.is_none());
}

#[tokio::test]
async fn null_means_no_data_and_is_confirmed_when_possible() {
    // Without a FHIR server, null is taken as "no data": no 412.
    let app = spawn_app().await;
    let mut v = order_select();
    v["prefetch"] = json!({"patient": null, "conditions": null, "procedures": null,
        "observations": null, "reports": null});
    assert_eq!(
        app.call("vcf-order-select", &v).await.status().as_u16(),
        200
    );

    // With a usable FHIR server, null keys are re-asked.
    let stub = FhirStub::start().await;
    let mut v2 = with_server(&stub, true);
    v2["prefetch"] = v["prefetch"].clone();
    assert_eq!(
        app.call("vcf-order-select", &v2).await.status().as_u16(),
        200
    );
    assert_eq!(stub.requests().len(), 7);

    // A failing confirmation keeps the client's "no data": still 200.
    stub.respond("Condition", 500, json!({}));
    assert_eq!(
        app.call("vcf-order-select", &v2).await.status().as_u16(),
        200
    );
}

#[tokio::test]
async fn operation_outcome_and_empty_bundle_are_taken_as_they_are() {
    let stub = FhirStub::start().await;
    let app = spawn_app().await;
    let mut v = with_server(&stub, true);
    let mut prefetch = full_prefetch();
    prefetch["conditions"] = json!({"resourceType": "Bundle", "type": "searchset", "total": 0});
    prefetch["procedures"] = json!({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "timeout", "diagnostics": "procedure search timed out"}]});
    v["prefetch"] = prefetch;
    let r = app.call("vcf-order-select", &v).await;
    assert_eq!(r.status().as_u16(), 200);
    // Neither the empty Bundle nor the OperationOutcome triggers a fetch.
    assert!(stub.requests().is_empty(), "{:?}", stub.requests());
}

#[tokio::test]
async fn missing_conditions_without_a_server_is_412() {
    let app = spawn_app().await;
    let mut v = order_select();
    let mut prefetch = full_prefetch();
    prefetch.as_object_mut().unwrap().remove("conditions");
    v["prefetch"] = prefetch;
    let outcome = assert_outcome(app.call("vcf-order-select", &v).await, 412).await;
    assert_eq!(expressions(&outcome), ["prefetch.conditions"]);
    assert_eq!(outcome["issue"][0]["code"], "processing");
    let text = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(text.contains("fhirServer"), "{text}");
}

#[tokio::test]
async fn untrusted_servers_are_never_called() {
    let stub = FhirStub::start().await;
    // A configured allowlist that does not include the stub: loopback is no longer implied.
    let app =
        spawn_app_with(|s| s.trusted_fhir_servers = vec!["https://fhir.example.org/r4".into()])
            .await;
    let outcome = assert_outcome(
        app.call("vcf-order-select", &with_server(&stub, true))
            .await,
        412,
    )
    .await;
    let text = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(text.contains("not a trusted FHIR server"), "{text}");
    assert!(!text.contains(TOKEN));
    assert!(
        stub.requests().is_empty(),
        "untrusted server was called: {:?}",
        stub.requests()
    );

    // The same server once listed is used.
    let base = stub.base.clone();
    let app = spawn_app_with(move |s| s.trusted_fhir_servers = vec![base]).await;
    assert_eq!(
        app.call("vcf-order-select", &with_server(&stub, true))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(stub.requests().len(), 7);
}

#[tokio::test]
async fn server_errors_on_required_data_are_412_and_on_optional_data_are_tolerated() {
    let stub = FhirStub::start().await;
    let app = spawn_app().await;
    stub.respond("Procedure", 500, json!({}));
    stub.respond("Observation", 403, json!({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "forbidden", "diagnostics": "scope does not cover Observation"}]}));
    assert_eq!(
        app.call("vcf-order-select", &with_server(&stub, true))
            .await
            .status()
            .as_u16(),
        200
    );

    stub.respond("Condition", 500, json!({}));
    let outcome = assert_outcome(
        app.call("vcf-order-select", &with_server(&stub, true))
            .await,
        412,
    )
    .await;
    let text = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(text.contains("HTTP 500"), "{text}");

    stub.respond(
        "Condition",
        200,
        json!({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "exception", "diagnostics": "database unavailable"}]}),
    );
    let outcome = assert_outcome(
        app.call("vcf-order-select", &with_server(&stub, true))
            .await,
        412,
    )
    .await;
    let text = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    // The server's issue code, never its free text (which could carry patient data).
    assert!(text.contains("issue code exception"), "{text}");
    assert!(!text.contains("database unavailable"), "{text}");
}

#[tokio::test]
async fn slow_servers_hit_the_deadline() {
    let stub = FhirStub::start().await;
    stub.delay(3000);
    let app = spawn_app_with(|s| {
        s.fhir_timeout_ms = 200;
        s.fhir_deadline_ms = 300;
    })
    .await;
    let start = Instant::now();
    let outcome = assert_outcome(
        app.call("vcf-order-select", &with_server(&stub, true))
            .await,
        412,
    )
    .await;
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_millis(2500),
        "deadline not enforced: {elapsed:?}"
    );
    let text = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(text.contains("timed out"), "{text}");
}

#[tokio::test]
async fn searchset_pages_are_followed_within_the_base_only() {
    let stub = FhirStub::start().await;
    let mut page1 = condition_bundle();
    page1["link"] =
        json!([{"relation": "next", "url": format!("{}/Condition?patient=p1&page=2", stub.base)}]);
    stub.respond("Condition", 200, page1);
    let mut page2 = condition_bundle();
    page2["link"] =
        json!([{"relation": "next", "url": "https://elsewhere.example.org/fhir/Condition?page=3"}]);
    stub.respond("Condition#2", 200, page2);
    let app = spawn_app().await;
    assert_eq!(
        app.call("vcf-order-select", &with_server(&stub, true))
            .await
            .status()
            .as_u16(),
        200
    );
    let pages: Vec<String> = stub
        .requests_for("Condition")
        .into_iter()
        .map(|r| r.query)
        .collect();
    assert_eq!(pages, ["patient=p1", "patient=p1&page=2"]);
}

#[tokio::test]
async fn paginated_prefetch_is_completed_from_the_server() {
    let stub = FhirStub::start().await;
    stub.respond("Condition", 200, condition_bundle());
    let app = spawn_app().await;
    let mut v = with_server(&stub, true);
    let mut prefetch = full_prefetch();
    prefetch["conditions"]["link"] =
        json!([{"relation": "next", "url": format!("{}/Condition?patient=p1&page=2", stub.base)}]);
    v["prefetch"] = prefetch;
    assert_eq!(
        app.call("vcf-order-select", &v).await.status().as_u16(),
        200
    );
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].query, "patient=p1&page=2");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let stub = FhirStub::start().await;
    let other = FhirStub::start().await;
    stub.redirect("Condition", &format!("{}/Condition?patient=p1", other.base));
    let app = spawn_app().await;
    let outcome = assert_outcome(
        app.call("vcf-order-select", &with_server(&stub, true))
            .await,
        412,
    )
    .await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("redirect")
    );
    assert!(other.requests().is_empty(), "the token followed a redirect");
}

#[tokio::test]
async fn nothing_is_fetched_when_no_order_needs_it() {
    let stub = FhirStub::start().await;
    let app = spawn_app().await;
    let mut v = with_server(&stub, true);
    v["context"]["draftOrders"]["entry"] = json!([{"resource": {
        "resourceType": "MedicationRequest", "id": "m1", "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/p1"}}}]);
    v["context"]["selections"] = json!(["MedicationRequest/m1"]);
    let r = app.call("vcf-order-select", &v).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"cards": []}));
    assert!(stub.requests().is_empty());
}

/// Issue 8: report text arrives as base64 `presentedForm`; a malformed one is a client mistake:
/// 400 naming the element, never a 500, and the report's content is not echoed.
#[tokio::test]
async fn invalid_base64_report_text_is_400_naming_the_element() {
    let app = spawn_app().await;
    let mut v = order_select();
    let mut prefetch = full_prefetch();
    prefetch["reports"] = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": {"resourceType": "DiagnosticReport", "id": "r1", "status": "final",
          "code": {"text": "MR Lumbar spine"},
          "presentedForm": [{"contentType": "text/plain", "data": "!!not base64 SECRET!!"}]}}]});
    v["prefetch"] = prefetch;
    let outcome = assert_outcome(app.call("vcf-order-select", &v).await, 400).await;
    let paths = expressions(&outcome);
    assert!(
        paths.iter().any(|p| p.ends_with("presentedForm[0].data")),
        "{paths:?}"
    );
    assert!(!outcome.to_string().contains("SECRET"), "{outcome}");
}

//! Every client mistake gets the right 4xx and an OperationOutcome naming what is wrong.

use crate::helpers::*;
use serde_json::{Value, json};

type Mutation = fn(&mut Value);

/// (case, mutation of a valid order-select request with full prefetch, expected JSON path)
fn bad_requests() -> Vec<(&'static str, Mutation, &'static str)> {
    vec![
        (
            "missing hook",
            |v| {
                v.as_object_mut().unwrap().remove("hook");
            },
            "hook",
        ),
        ("wrong hook", |v| v["hook"] = json!("order-sign"), "hook"),
        ("hook not a string", |v| v["hook"] = json!(5), "hook"),
        (
            "missing hookInstance",
            |v| {
                v.as_object_mut().unwrap().remove("hookInstance");
            },
            "hookInstance",
        ),
        (
            "empty hookInstance",
            |v| v["hookInstance"] = json!(""),
            "hookInstance",
        ),
        (
            "missing context",
            |v| {
                v.as_object_mut().unwrap().remove("context");
            },
            "context",
        ),
        (
            "context not an object",
            |v| v["context"] = json!([]),
            "context",
        ),
        (
            "missing userId",
            |v| {
                v["context"].as_object_mut().unwrap().remove("userId");
            },
            "context.userId",
        ),
        (
            "userId not a reference",
            |v| v["context"]["userId"] = json!("dr-1"),
            "context.userId",
        ),
        (
            "userId of a wrong type",
            |v| v["context"]["userId"] = json!("Device/1"),
            "context.userId",
        ),
        (
            "missing patientId",
            |v| {
                v["context"].as_object_mut().unwrap().remove("patientId");
            },
            "context.patientId",
        ),
        (
            "patientId with a slash",
            |v| v["context"]["patientId"] = json!("Patient/p1"),
            "context.patientId",
        ),
        (
            "missing draftOrders",
            |v| {
                v["context"].as_object_mut().unwrap().remove("draftOrders");
            },
            "context.draftOrders",
        ),
        (
            "draftOrders not a Bundle",
            |v| v["context"]["draftOrders"]["resourceType"] = json!("ServiceRequest"),
            "context.draftOrders.resourceType",
        ),
        (
            "entry without resource",
            |v| v["context"]["draftOrders"]["entry"] = json!([{}]),
            "context.draftOrders.entry[0].resource",
        ),
        (
            "entry without resourceType",
            |v| {
                v["context"]["draftOrders"]["entry"][0]["resource"]
                    .as_object_mut()
                    .unwrap()
                    .remove("resourceType");
            },
            "context.draftOrders.entry[0].resource.resourceType",
        ),
        (
            "invalid Bundle.type",
            |v| v["context"]["draftOrders"]["type"] = json!("subscription-notification"),
            "context.draftOrders.type",
        ),
        (
            "invalid order status",
            |v| v["context"]["draftOrders"]["entry"][0]["resource"]["status"] = json!("pending"),
            "context.draftOrders.entry[0].resource.status",
        ),
        (
            "invalid authoredOn",
            |v| {
                v["context"]["draftOrders"]["entry"][0]["resource"]["authoredOn"] =
                    json!("2024-05-01T10:14")
            },
            "context.draftOrders.entry[0].resource.authoredOn",
        ),
        (
            "coding not an array",
            |v| {
                v["context"]["draftOrders"]["entry"][0]["resource"]["code"]["coding"] =
                    json!({"code": "72148"})
            },
            "context.draftOrders.entry[0].resource.code.coding",
        ),
        (
            "order for another patient",
            |v| {
                v["context"]["draftOrders"]["entry"][0]["resource"]["subject"]["reference"] =
                    json!("Patient/other")
            },
            "context.draftOrders.entry[0].resource.subject.reference",
        ),
        (
            "missing selections",
            |v| {
                v["context"].as_object_mut().unwrap().remove("selections");
            },
            "context.selections",
        ),
        (
            "empty selections",
            |v| v["context"]["selections"] = json!([]),
            "context.selections",
        ),
        (
            "selection not Type/id",
            |v| v["context"]["selections"] = json!(["sr-1"]),
            "context.selections[0]",
        ),
        (
            "selection not in draftOrders",
            |v| v["context"]["selections"] = json!(["ServiceRequest/other"]),
            "context.selections[0]",
        ),
        (
            "fhirAuthorization without fhirServer",
            |v| v["fhirAuthorization"] = json!({"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "vcf-cds"}),
            "fhirAuthorization",
        ),
        (
            "fhirAuthorization without token",
            |v| {
                v["fhirServer"] = json!("https://fhir.example.org/r4");
                v["fhirAuthorization"] = json!({"token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "vcf-cds"});
            },
            "fhirAuthorization.access_token",
        ),
        (
            "fhirAuthorization wrong token_type",
            |v| {
                v["fhirServer"] = json!("https://fhir.example.org/r4");
                v["fhirAuthorization"] = json!({"access_token": "t", "token_type": "MAC", "expires_in": 300, "scope": "patient/*.read", "subject": "vcf-cds"});
            },
            "fhirAuthorization.token_type",
        ),
        (
            "fhirServer not a URL",
            |v| v["fhirServer"] = json!("not a url"),
            "fhirServer",
        ),
        (
            "prefetch not an object",
            |v| v["prefetch"] = json!([]),
            "prefetch",
        ),
        (
            "prefetch with a wrong resourceType",
            |v| v["prefetch"]["patient"] = json!({"resourceType": "Condition", "id": "x"}),
            "prefetch.patient.resourceType",
        ),
        (
            "prefetch Condition with a bad date",
            |v| {
                v["prefetch"]["conditions"]["entry"][0]["resource"]["onsetDateTime"] =
                    json!("2024-02-30")
            },
            "prefetch.conditions.entry[0].resource.onsetDateTime",
        ),
        (
            "prefetch Patient with a bad birthDate",
            |v| v["prefetch"]["patient"]["birthDate"] = json!("1970-13-45"),
            "prefetch.patient.birthDate",
        ),
    ]
}

fn valid() -> Value {
    let mut v = order_select();
    v["prefetch"] = full_prefetch();
    v
}

#[tokio::test]
async fn bad_requests_get_400_naming_the_element() {
    let app = spawn_app().await;
    // The unmodified request is fine, so each failure below is due to its mutation.
    let ok = app.call("vcf-order-select", &valid()).await;
    assert_eq!(ok.status().as_u16(), 200);
    for (case, mutate, path) in bad_requests() {
        let mut v = valid();
        mutate(&mut v);
        let resp = app.call("vcf-order-select", &v).await;
        assert_eq!(resp.status().as_u16(), 400, "{case}");
        let outcome = assert_outcome(resp, 400).await;
        let paths = expressions(&outcome);
        assert!(
            paths.iter().any(|p| p == path),
            "{case}: expected expression {path:?}, got {paths:?} in {outcome}"
        );
        assert_eq!(outcome["issue"][0]["code"], "invalid", "{case}");
    }
}

#[tokio::test]
async fn malformed_bodies_get_400() {
    let app = spawn_app().await;
    let valid = valid().to_string();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "truncated JSON",
            valid.as_bytes()[..valid.len() / 2].to_vec(),
        ),
        ("not JSON", b"hello".to_vec()),
        ("JSON array", b"[]".to_vec()),
        ("JSON string", b"\"order-select\"".to_vec()),
        (
            "duplicate keys",
            br#"{"hook":"order-select","hook":"order-select"}"#.to_vec(),
        ),
        ("not UTF-8", vec![0xff, 0xfe, 0x7b]),
        (
            "lone surrogate",
            br#"{"hook":"order-select","hookInstance":"\ud800"}"#.to_vec(),
        ),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
    ];
    for (case, body) in bodies {
        let r = app
            .post_raw("/cds-services/vcf-order-select", "application/json", body)
            .await;
        let outcome = assert_outcome(r, 400).await;
        assert!(
            outcome["issue"][0]["diagnostics"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{case}"
        );
    }
    // Still healthy.
    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
}

#[tokio::test]
async fn unknown_service_is_404() {
    let app = spawn_app().await;
    let outcome = assert_outcome(app.call("no-such-service", &valid()).await, 404).await;
    assert_eq!(outcome["issue"][0]["code"], "not-found");
}

#[tokio::test]
async fn get_on_a_service_is_405() {
    let app = spawn_app().await;
    assert_outcome(app.get("/cds-services/vcf-order-select").await, 405).await;
}

#[tokio::test]
async fn non_json_media_types_are_415() {
    let app = spawn_app().await;
    let body = valid().to_string().into_bytes();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let r = app
            .post_raw("/cds-services/vcf-order-select", ct, body.clone())
            .await;
        let outcome = assert_outcome(r, 415).await;
        assert_eq!(outcome["issue"][0]["code"], "not-supported", "{ct}");
    }
    let r = app
        .client
        .post(format!("{}/cds-services/vcf-order-select", app.address))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_outcome(r, 415).await;
    // application/fhir+json with a charset is JSON.
    let r = app
        .post_raw(
            "/cds-services/vcf-order-select",
            "application/fhir+json; charset=utf-8",
            body,
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = spawn_app_with(|s| s.max_body_bytes = 4096).await;
    let mut v = valid();
    v["context"]["draftOrders"]["entry"][0]["resource"]["note"] =
        json!([{"text": "x".repeat(8000)}]);
    let outcome = assert_outcome(app.call("vcf-order-select", &v).await, 413).await;
    assert_eq!(outcome["issue"][0]["code"], "too-long");
    // Chunked upload without Content-Length is cut off too.
    let body = v.to_string().into_bytes();
    let stream = futures_util::stream::iter(
        body.chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = app
        .client
        .post(format!("{}/cds-services/vcf-order-select", app.address))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_outcome(r, 413).await;
}

#[tokio::test]
async fn default_limit_is_five_megabytes() {
    let app = spawn_app().await;
    let mut v = valid();
    v["context"]["draftOrders"]["entry"][0]["resource"]["note"] =
        json!([{"text": "x".repeat(4 * 1024 * 1024)}]);
    assert_eq!(
        app.call("vcf-order-select", &v).await.status().as_u16(),
        200
    );
    v["context"]["draftOrders"]["entry"][0]["resource"]["note"] =
        json!([{"text": "x".repeat(5 * 1024 * 1024)}]);
    assert_outcome(app.call("vcf-order-select", &v).await, 413).await;
}

use crate::helpers::*;
use serde_json::Value;

#[tokio::test]
async fn lists_order_select_and_order_sign_services() {
    let app = spawn_app().await;
    let r = app.get("/cds-services").await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    let services = body["services"].as_array().expect("services array");
    assert_eq!(services.len(), 2);
    let hooks: Vec<&str> = services
        .iter()
        .map(|s| s["hook"].as_str().unwrap())
        .collect();
    assert_eq!(hooks, ["order-select", "order-sign"]);
    for s in services {
        for field in ["id", "title", "description", "usageRequirements"] {
            assert!(
                s[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} missing in {s}"
            );
        }
        let prefetch = s["prefetch"].as_object().expect("prefetch");
        let keys: Vec<&str> = prefetch.keys().map(String::as_str).collect();
        for key in [
            "patient",
            "conditions",
            "procedures",
            "observations",
            "reports",
            "allergies",
            "devices",
        ] {
            assert!(keys.contains(&key), "prefetch key {key} missing: {keys:?}");
        }
        assert_eq!(prefetch["patient"], "Patient/{{context.patientId}}");
        // All statuses: resolved cancer still matters, so no clinical-status filter.
        assert_eq!(
            prefetch["conditions"],
            "Condition?patient={{context.patientId}}"
        );
        for template in prefetch.values() {
            let t = template.as_str().unwrap();
            // Only root-level primitive context tokens are allowed by the spec.
            for token in t.match_indices("{{").map(|(i, _)| &t[i..]) {
                assert!(
                    token.starts_with("{{context.patientId}}"),
                    "unexpected prefetch token in {t}"
                );
            }
        }
        // Each service is reachable at /cds-services/{id} (an empty body is a client error,
        // not a 404).
        let r = app
            .post_raw(
                &format!("/cds-services/{}", s["id"].as_str().unwrap()),
                "application/json",
                b"{}".to_vec(),
            )
            .await;
        assert_outcome(r, 400).await;
    }
}

use crate::helpers::*;

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status().as_u16(), 200);
    let r = app.get("/readyz").await;
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["knowledge"]["guideline"], "acr-ac-management-of-vcf");
}

#[tokio::test]
async fn unknown_paths_get_an_operation_outcome() {
    let app = spawn_app().await;
    assert_outcome(app.get("/nope").await, 404).await;
    let r = app
        .client
        .delete(format!("{}/cds-services", app.address))
        .send()
        .await
        .unwrap();
    assert_outcome(r, 405).await;
}

#[tokio::test]
async fn knowledge_file_replaces_the_compiled_in_knowledge() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge/acr-vcf-2022.toml"),
    )
    .unwrap();
    let replaced = text.replacen("version = \"", "version = \"reviewed-copy-", 1);
    assert_ne!(replaced, text);
    let file = dir.path().join("reviewed.toml");
    std::fs::write(&file, &replaced).unwrap();
    let app = spawn_app_with(|s| s.knowledge_file = Some(file.clone())).await;
    let body: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert!(
        body["knowledge"]["version"]
            .as_str()
            .unwrap()
            .starts_with("reviewed-copy-"),
        "{body}"
    );

    // A replacement that fails validation stops start-up instead of serving wrong advice.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        text.replacen("rating = 9, median = 9", "rating = 2, median = 2", 1),
    )
    .unwrap();
    let mut settings = test_settings(dir.path());
    settings.knowledge_file = Some(broken);
    let err = vcf_cds::startup::Application::build(settings)
        .await
        .err()
        .expect("must fail");
    assert!(format!("{err:#}").contains("validation"), "{err:#}");
}

/// An unreachable audit store: 200 "degraded" by default (the spool keeps advice flowing), 503
/// "unavailable" with `ready_requires_audit_store`.
#[tokio::test]
async fn unreachable_audit_store_is_degraded_unless_required() {
    for (required, status, word) in [(false, 200, "degraded"), (true, 503, "unavailable")] {
        let app = spawn_app_with(|s| {
            // Nothing listens on port 1: the store is unreachable from the start.
            s.audit_db = "postgres://audit@127.0.0.1:1/audit".into();
            s.audit_write_timeout_ms = 300;
            s.ready_requires_audit_store = required;
        })
        .await;
        let r = app.get("/readyz").await;
        assert_eq!(r.status().as_u16(), status, "required = {required}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], word, "{body}");
        assert_eq!(body["audit"]["store_up"], false);
        // Liveness is unaffected, and advice still flows (records spooled).
        assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
        let hook = read_json(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("hooks/v1-new-symptomatic-no-malignancy.json"),
        );
        assert_eq!(
            app.call("vcf-order-select", &hook).await.status().as_u16(),
            200
        );
    }
}

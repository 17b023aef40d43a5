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

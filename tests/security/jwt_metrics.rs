//! `vcf_cds_jwt_failures_total` by reason, on a real server process verifying JWTs.

use crate::process::{ServerProcess, audit_env};
use crate::support::{TestKey, claims, jwks};
use serde_json::json;

const ISS: &str = "https://ehr.example.test";
const BASE: &str = "http://cds.example.test";
const ADMIN: &str = "jwt-metrics-admin-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_are_counted_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::es384("k1");
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[&key]).to_string()).unwrap();
    let mut env = audit_env(dir.path());
    env.insert(
        "VCF_CDS_TRUSTED_ISSUERS".to_string(),
        format!(r#"[{{iss="{ISS}", jwks_file="{}"}}]"#, jwks_path.display()),
    );
    env.insert("VCF_CDS_PUBLIC_BASE_URL".to_string(), BASE.to_string());
    env.insert("VCF_CDS_ADMIN_TOKEN".to_string(), ADMIN.to_string());
    let server = tokio::task::spawn_blocking(move || ServerProcess::start(&env))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let hook: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("hooks/v1-new-symptomatic-no-malignancy.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let call = |auth: Option<String>| {
        let mut r = client
            .post(format!("{}/cds-services/vcf-order-select", server.address))
            .json(&hook);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    let aud = format!("{BASE}/cds-services/vcf-order-select");
    let good = key.sign(json!({}), &claims(ISS, &aud));
    assert_eq!(
        call(Some(format!("Bearer {good}"))).await.unwrap().status(),
        200
    );
    assert_eq!(
        call(Some(format!("Bearer {good}"))).await.unwrap().status(),
        401
    );
    assert_eq!(call(None).await.unwrap().status(), 401);
    assert_eq!(call(None).await.unwrap().status(), 401);
    let wrong_aud = key.sign(json!({}), &claims(ISS, "https://elsewhere.example/x"));
    assert_eq!(
        call(Some(format!("Bearer {wrong_aud}")))
            .await
            .unwrap()
            .status(),
        401
    );

    let text = client
        .get(format!("{}/metrics", server.address))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |reason: &str| -> f64 {
        let series = format!(r#"vcf_cds_jwt_failures_total{{reason="{reason}"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(count("replayed"), 1.0);
    assert_eq!(count("missing_header"), 2.0);
    assert_eq!(count("wrong_audience"), 1.0);
    assert!(!text.contains(ISS), "no issuer or token values in labels");
}

//! `GET /metrics` on a real server process (its own counters): exact counts for a known series
//! of calls, the admin-token protection on the main listener, and `metrics_listen`.

use crate::fhir_store::FhirStore;
use crate::helpers::*;
use crate::process::{ServerProcess, audit_env};
use serde_json::json;

const ADMIN: &str = "metrics-test-admin-token";

/// The value of one sample line, `name{labels} value` (labels in the exposition's order).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_cards_ratings_fetches_and_audit() {
    let store = FhirStore::start().await;
    let loaded = std::process::Command::new(env!("CARGO_BIN_EXE_vcf-cds"))
        .args(["fixtures", "load", "--fhir-server", &store.base])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/patients"))
        .output()
        .unwrap();
    assert!(loaded.status.success());
    let dir = tempfile::tempdir().unwrap();
    let mut env = audit_env(dir.path());
    env.insert("VCF_CDS_ADMIN_TOKEN".to_string(), ADMIN.into());
    env.insert("VCF_CDS_FHIR_TIMEOUT_MS".to_string(), "10000".into());
    env.insert("VCF_CDS_FHIR_DEADLINE_MS".to_string(), "20000".into());
    let server = tokio::task::spawn_blocking(move || ServerProcess::start(&env))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.address);

    // Two V1 calls (prefetch, then fetch mode from the FHIR server), one call whose FHIR server
    // cannot be reached (412: no Conditions), one unknown path.
    let hook = read_json(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("hooks/v1-new-symptomatic-no-malignancy.json"),
    );
    let post = |body: serde_json::Value| {
        client
            .post(url("/cds-services/vcf-order-select"))
            .json(&body)
            .send()
    };
    assert_eq!(post(hook.clone()).await.unwrap().status(), 200);
    let mut fetch = hook.clone();
    fetch.as_object_mut().unwrap().remove("prefetch");
    fetch["fhirServer"] = json!(store.base);
    assert_eq!(post(fetch.clone()).await.unwrap().status(), 200);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!(
        "http://127.0.0.1:{}/fhir",
        free.local_addr().unwrap().port()
    );
    drop(free);
    fetch["fhirServer"] = json!(dead);
    assert_eq!(post(fetch).await.unwrap().status(), 412);
    assert_eq!(client.get(url("/nope")).send().await.unwrap().status(), 404);

    // The admin token guards /metrics on the main listener.
    assert_eq!(
        client.get(url("/metrics")).send().await.unwrap().status(),
        401
    );
    let r = client
        .get(url("/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();

    let req = |status: u16| {
        format!(
            r#"vcf_cds_http_requests_total{{route="/cds-services/{{id}}",method="POST",status="{status}"}}"#
        )
    };
    assert_eq!(sample(&text, &req(200)), 2.0);
    assert_eq!(sample(&text, &req(412)), 1.0);
    assert_eq!(
        sample(
            &text,
            r#"vcf_cds_http_requests_total{route="unmatched",method="GET",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"vcf_cds_http_request_duration_seconds_count{route="/cds-services/{id}",method="POST"}"#
        ),
        3.0
    );
    // Both V1 answers: one warning card, "not-appropriate" for variant V1.
    assert_eq!(
        sample(&text, r#"vcf_cds_cards_total{indicator="warning"}"#),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"vcf_cds_ratings_total{pama="not-appropriate",variant="V1"}"#
        ),
        2.0
    );
    // Fetch mode: one fetch per prefetch key; the dead server: connection failures.
    for kind in [
        "patient",
        "conditions",
        "procedures",
        "observations",
        "reports",
    ] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"vcf_cds_fhir_fetches_total{{kind="{kind}"}}"#)
            ),
            2.0,
            "{kind}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(r#"vcf_cds_fhir_fetch_duration_seconds_count{{kind="{kind}"}}"#)
            ),
            2.0
        );
    }
    assert_eq!(
        sample(
            &text,
            r#"vcf_cds_fhir_fetch_failures_total{kind="conditions",reason="connect"}"#
        ),
        1.0
    );
    // Audit: both answered calls committed (the 412 is not an evaluation), nothing spooled.
    assert_eq!(sample(&text, "vcf_cds_audit_records_committed_total"), 2.0);
    assert!(sample(&text, "vcf_cds_audit_commit_duration_seconds_count") >= 1.0);
    assert!(sample(&text, "vcf_cds_audit_commit_batch_size_count") >= 1.0);
    assert_eq!(sample(&text, "vcf_cds_audit_commit_batch_size_sum"), 2.0);
    assert_eq!(sample(&text, "vcf_cds_audit_records_spooled_total"), 0.0);
    assert_eq!(sample(&text, "vcf_cds_audit_spool_backlog"), 0.0);
    assert_eq!(sample(&text, "vcf_cds_audit_store_up"), 1.0);
    assert_eq!(sample(&text, "vcf_cds_ready"), 1.0);
    // Every /audit/api/metrics counter is folded in, with the same value.
    let audit = client
        .get(url("/audit/api/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in audit.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.split_once(' ').unwrap();
        assert_eq!(sample(&text, name), value.parse::<f64>().unwrap(), "{name}");
    }
    // No patient or user identifiers in any label.
    assert!(!text.contains("pat-v1a") && !text.contains("Practitioner"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_metrics_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = audit_env(dir.path());
    env.insert("VCF_CDS_METRICS_LISTEN".to_string(), "127.0.0.1:0".into());
    let server = tokio::task::spawn_blocking(move || ServerProcess::start(&env))
        .await
        .unwrap();
    // "metrics listening" is logged just after "vcf-cds listening" (which start() waits for):
    // wait for it rather than race it on a loaded machine.
    let mut metrics_addr = None;
    for _ in 0..100 {
        metrics_addr = server
            .logs()
            .iter()
            .find(|l| l["message"] == "metrics listening")
            .and_then(|l| l["address"].as_str().map(str::to_owned));
        if metrics_addr.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let metrics_addr = metrics_addr.expect("metrics listening line");
    let client = reqwest::Client::new();
    // Main listener: no admin token configured, so /metrics is off there.
    let r = client
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        client
            .get(format!("{}/healthz", server.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let text = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(
            &text,
            r#"vcf_cds_http_requests_total{route="/healthz",method="GET",status="200"}"#
        ),
        1.0
    );
    // Only /metrics there.
    let r = client
        .get(format!("http://{metrics_addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

//! Graceful shutdown of the real binary: SIGTERM (and SIGINT) under load. Every request the
//! server took got its answer, every answer has its audit record (and nothing has a record
//! without an answer), in-flight requests finished after the signal, and the exit code is 0.
//! A request on a connection still in the kernel's queue when the listener closes gets no
//! response (the server never took it); such a request must not have a record either.

use crate::helpers::*;
use crate::process::{ServerProcess, audit_env};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Hook calls in fetch mode against a FHIR server that takes `delay_ms` per answer, so calls are
/// in flight when the signal arrives.
async fn slow_fhir(delay_ms: u64) -> FhirStub {
    let stub = FhirStub::start().await;
    let patient = read_json(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/patients/v1-osteoporotic-l1.json"),
    );
    let of = |rt: &str| -> Value {
        let entries: Vec<Value> = patient["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == rt)
            .cloned()
            .collect();
        json!({"resourceType": "Bundle", "type": "searchset", "entry": entries})
    };
    let person = patient["entry"][0]["resource"].clone();
    stub.respond("Patient", 200, person);
    for rt in ["Condition", "Procedure", "Observation", "DiagnosticReport"] {
        stub.respond(rt, 200, of(rt));
    }
    stub.delay(delay_ms);
    stub
}

async fn drain_under_load(signal: &str) {
    let stub = slow_fhir(700).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.sqlite");
    let mut env = audit_env(dir.path());
    env.insert("VCF_CDS_FHIR_TIMEOUT_MS".to_string(), "10000".into());
    env.insert("VCF_CDS_FHIR_DEADLINE_MS".to_string(), "20000".into());
    env.insert("VCF_CDS_SHUTDOWN_GRACE_MS".to_string(), "15000".into());
    let mut server = tokio::task::spawn_blocking(move || ServerProcess::start(&env))
        .await
        .unwrap();
    let address = server.address.clone();
    let mut request = read_json(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("hooks/v1-new-symptomatic-no-malignancy.json"),
    );
    request.as_object_mut().unwrap().remove("prefetch");
    request["fhirServer"] = json!(stub.base);

    // One connection per request: a refused connection is a request the server never took.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let answered: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let broken: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Instant::now() + Duration::from_secs(20);
    let mut workers = Vec::new();
    for w in 0..6 {
        let (client, answered, broken, address) = (
            client.clone(),
            answered.clone(),
            broken.clone(),
            address.clone(),
        );
        let mut request = request.clone();
        workers.push(tokio::spawn(async move {
            for n in 0.. {
                if Instant::now() > stop {
                    break;
                }
                let instance = format!("drain-{w}-{n}");
                request["hookInstance"] = json!(instance);
                let sent = client
                    .post(format!("{address}/cds-services/vcf-order-select"))
                    .json(&request)
                    .send()
                    .await;
                match sent {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(_) if status == 200 => {
                                answered.lock().unwrap().insert(instance, Instant::now());
                            }
                            Ok(_) => broken
                                .lock()
                                .unwrap()
                                .push(format!("{instance}: HTTP {status}")),
                            Err(e) => broken
                                .lock()
                                .unwrap()
                                .push(format!("{instance}: body lost: {e}")),
                        }
                    }
                    // The listener is closed: the server stopped taking requests.
                    Err(e) if e.is_connect() => break,
                    // No response at all: a connection the kernel queued but the server never
                    // took (reset when the listener closed). It must have no audit record
                    // (checked below: records = answered calls).
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let signalled = Instant::now();
    server.signal(signal);
    for w in workers {
        w.await.unwrap();
    }
    let code = tokio::task::spawn_blocking(move || {
        let code = server.wait_exit(Duration::from_secs(30));
        (code, server)
    })
    .await
    .unwrap();
    let (code, server) = code;
    assert_eq!(
        code,
        Some(0),
        "exit code after {signal}: {:?}",
        server.raw_lines()
    );

    let broken = broken.lock().unwrap().clone();
    assert!(
        broken.is_empty(),
        "requests taken but not answered: {broken:?}"
    );
    let answered = answered.lock().unwrap().clone();
    let finished_after = answered.values().filter(|t| **t > signalled).count();
    assert!(
        finished_after > 0,
        "no request was in flight at the signal: the test did not test draining"
    );
    let logs = server.logs();
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutting down"))
            && l["signal"] == format!("SIG{signal}")),
        "{logs:?}"
    );

    // The audit trail holds exactly the answered calls.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT hook_instance FROM audit_calls")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let stored: BTreeSet<String> = rows.into_iter().map(|r| r.0).collect();
    let answered_set: BTreeSet<String> = answered.keys().cloned().collect();
    assert_eq!(stored, answered_set, "audit records = answered calls");
    eprintln!(
        "shutdown on SIG{signal}: {} calls answered, {finished_after} of them after the signal, all recorded",
        answered.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_and_records_every_taken_request() {
    drain_under_load("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_the_same_way() {
    drain_under_load("INT").await;
}

/// Requests still running when `shutdown_grace_ms` is over are cut: the process does not wait
/// for them, still exits 0, and no call has a record without its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_bounds_the_drain() {
    let stub = slow_fhir(4000).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.sqlite");
    let mut env = audit_env(dir.path());
    env.insert("VCF_CDS_FHIR_TIMEOUT_MS".to_string(), "10000".into());
    env.insert("VCF_CDS_FHIR_DEADLINE_MS".to_string(), "20000".into());
    env.insert("VCF_CDS_SHUTDOWN_GRACE_MS".to_string(), "300".into());
    let mut server = tokio::task::spawn_blocking(move || ServerProcess::start(&env))
        .await
        .unwrap();
    let mut request = read_json(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("hooks/v1-new-symptomatic-no-malignancy.json"),
    );
    request.as_object_mut().unwrap().remove("prefetch");
    request["fhirServer"] = json!(stub.base);
    let url = format!("{}/cds-services/vcf-order-select", server.address);
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&request)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // The call is waiting for the FHIR server (4 s) when the signal arrives.
    while stub.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled = Instant::now();
    server.signal("TERM");
    let (code, server) = tokio::task::spawn_blocking(move || {
        let code = server.wait_exit(Duration::from_secs(30));
        (code, server)
    })
    .await
    .unwrap();
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "{:?}", server.raw_lines());
    assert!(
        took < Duration::from_millis(3500),
        "the drain waited for the slow call ({took:?}) instead of ending at the grace period"
    );
    assert!(
        in_flight.await.unwrap().is_err(),
        "the cut call got no answer"
    );
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l["message"] == "shutdown grace period over: closing open connections"),
        "{:?}",
        server.raw_lines()
    );
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_calls")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0, "no record for a call that got no answer");
}

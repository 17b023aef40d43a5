//! Bounded work per request (issue 13, point 7): at most `max_draft_orders` draft orders per
//! call (a 400 OperationOutcome naming the limit beyond it), and the memory of worst-case
//! requests bounded by their body size times a small constant, measured on the real binary.

use crate::helpers::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `n` draft ServiceRequests, all selected: MRI lumbar spine with contrast, usually not
/// appropriate for the prefetched recent osteoporotic fracture, so every one gets a warning card
/// with suggestions (the largest answer per order).
pub fn with_orders(mut request: Value, n: usize) -> Value {
    let entries: Vec<Value> = (0..n)
        .map(|i| {
            json!({"resource": {
                "resourceType": "ServiceRequest", "id": format!("sr-{i}"), "status": "draft",
                "intent": "order", "authoredOn": "2026-11-25",
                "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72149"}]},
                "subject": {"reference": "Patient/p1"}}})
        })
        .collect();
    request["context"]["selections"] = json!(
        (0..n)
            .map(|i| format!("ServiceRequest/sr-{i}"))
            .collect::<Vec<_>>()
    );
    request["context"]["draftOrders"]["entry"] = json!(entries);
    request
}

#[tokio::test]
async fn more_draft_orders_than_max_draft_orders_is_400_naming_the_limit() {
    let app = spawn_app_with(|s| {
        s.max_draft_orders = 5;
        s.group_cards_over = 0; // one card per order, as before grouping
    })
    .await;
    let mut base = order_select();
    base["prefetch"] = full_prefetch();

    let r = app
        .call("vcf-order-select", &with_orders(base.clone(), 5))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["cards"].as_array().unwrap().len(), 5, "{body}");

    for service in ["vcf-order-select", "vcf-order-sign"] {
        let mut req = with_orders(base.clone(), 6);
        if service == "vcf-order-sign" {
            req["hook"] = json!("order-sign");
        }
        let outcome = assert_outcome(app.call(service, &req).await, 400).await;
        assert_eq!(expressions(&outcome), ["context.draftOrders.entry"]);
        let text = outcome["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(
            text.contains("6 draft orders")
                && text.contains("at most 5")
                && text.contains("max_draft_orders"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_default_limit_is_100() {
    let app = spawn_app().await;
    let mut base = order_select();
    base["prefetch"] = full_prefetch();
    let r = app
        .call("vcf-order-select", &with_orders(base.clone(), 100))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let outcome = assert_outcome(
        app.call("vcf-order-select", &with_orders(base, 101)).await,
        400,
    )
    .await;
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("at most 100"),
        "{outcome}"
    );
}

// ---- Memory of worst-case requests, on the real binary ----

/// Concurrent worst-case requests.
const CONCURRENT: usize = 16;
/// The stated bound: the server's peak resident memory (VmHWM) while answering the requests
/// exceeds its idle resident memory by less than this many times the bytes of the bodies sent
/// at once.
/// Measured (debug build, 2 cores): 332 MiB over an idle 30 MiB for 16 requests of 5 MiB,
/// 4.2 x; one such request alone adds about 47 MiB. Without `max_draft_orders` a 5 MiB
/// body could carry some 25,000 orders and a card each, far past this bound.
const MEMORY_FACTOR: u64 = 8;

/// `group_cards_over` of the measured server: 0, one card per order (the worst case).
const GROUP_CARDS_OVER: usize = 0;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server process, killed when dropped (also when an assertion fails first).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &Path, port: u16, group_cards_over: usize) -> Server {
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_vcf-cds"))
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VCF_CDS_LISTEN", format!("127.0.0.1:{port}"))
        .env("VCF_CDS_LOG_LEVEL", "warn")
        .env("VCF_CDS_GROUP_CARDS_OVER", group_cards_over.to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Server)
        .expect("vcf-cds starts")
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM` = peak resident set), in bytes.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// The largest accepted request: `max_draft_orders` (100) orders, all selected, and a prefetch
/// padded with Conditions up to just under `max_body_bytes` (5 MiB).
fn worst_case_body(max_body: usize) -> Vec<u8> {
    let mut base = order_select();
    base["prefetch"] = full_prefetch();
    let mut req = with_orders(base, 100);
    let filler = |i: usize| {
        json!({"resource": {"resourceType": "Condition", "id": format!("pad-{i:06}"),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.50"}], "text": "Low back pain, unspecified"},
            "subject": {"reference": "Patient/p1"}, "recordedDate": "2026-10-01"}})
    };
    let per = filler(0).to_string().len() + 1;
    let room = max_body - req.to_string().len() - 1024;
    let entries = req["prefetch"]["conditions"]["entry"]
        .as_array_mut()
        .unwrap();
    entries.extend((0..room / per).map(filler));
    let body = req.to_string().into_bytes();
    assert!(
        body.len() <= max_body && body.len() > max_body * 9 / 10,
        "{}",
        body.len()
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_worst_case_requests_stay_within_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Grouping off: the worst case is one card per order (orders with safety notes, or all
    // different, are never grouped), the largest answer the service can give.
    let server = start_server(dir.path(), port, GROUP_CARDS_OVER);
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server not ready in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = worst_case_body(vcf_cds::configuration::Settings::default().max_body_bytes);
    // The idle server's resident memory, then one request alone (lazy initialisation).
    let baseline = proc_status_bytes(pid, "VmRSS");
    let t0 = Instant::now();
    let warm = client
        .post(format!("{base}/cds-services/vcf-order-select"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status().as_u16(), 200);
    let warm: Value = warm.json().await.unwrap();
    assert_eq!(
        warm["cards"].as_array().unwrap().len(),
        if GROUP_CARDS_OVER == 0 { 100 } else { 1 }
    );
    eprintln!(
        "one worst-case request alone: {:?}, peak RSS {:.1} MiB",
        t0.elapsed(),
        proc_status_bytes(pid, "VmHWM") as f64 / (1024.0 * 1024.0)
    );

    let sends = (0..CONCURRENT).map(|_| {
        let client = client.clone();
        let url = format!("{base}/cds-services/vcf-order-select");
        let body = body.clone();
        tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let answer = r.bytes().await.unwrap().len();
            (status, answer)
        })
    });
    let results = futures_util::future::join_all(sends).await;
    let peak = proc_status_bytes(pid, "VmHWM");
    drop(server);

    let results: Vec<(u16, usize)> = results.into_iter().map(Result::unwrap).collect();
    let answer_bytes = results.iter().map(|r| r.1).max().unwrap();
    // Evaluation runs off the actix workers, at most one per core: every request is answered
    // (none times out waiting for its headers to be read).
    let answered = results.iter().filter(|r| r.0 == 200).count();
    assert_eq!(answered, CONCURRENT, "{results:?}");
    let sent = (answered * body.len()) as u64;
    let growth = peak.saturating_sub(baseline);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "{CONCURRENT} concurrent requests of {:.2} MiB (100 orders, answers of {:.2} MiB): \
         peak RSS {:.1} MiB, {:.1} MiB over the idle {:.1} MiB ({:.2} x the bytes sent)",
        mib(body.len() as u64),
        mib(answer_bytes as u64),
        mib(peak),
        mib(growth),
        mib(baseline),
        growth as f64 / sent as f64
    );
    assert!(
        growth < MEMORY_FACTOR * sent,
        "peak RSS grew by {:.1} MiB for {:.1} MiB of concurrent bodies answered (bound: {MEMORY_FACTOR} x)",
        mib(growth),
        mib(sent)
    );
}

/// 100 orders with the same warning (issue 13): one grouped card instead of 100, each order's
/// suggestions still on it, each order still rated; a smaller answer than one card per order.
#[tokio::test]
async fn one_hundred_identical_warnings_are_one_card() {
    let mut req = order_select();
    req["prefetch"] = full_prefetch();
    let req = with_orders(req, 100);
    let grouped = spawn_app().await;
    let ungrouped = spawn_app_with(|s| s.group_cards_over = 0).await;
    let answer = |app: TestApp| {
        let req = req.clone();
        async move {
            let r = app.call("vcf-order-select", &req).await;
            assert_eq!(r.status().as_u16(), 200);
            r.bytes().await.unwrap()
        }
    };
    let (g, u) = (answer(grouped).await, answer(ungrouped).await);
    let (gv, uv): (Value, Value) = (
        serde_json::from_slice(&g).unwrap(),
        serde_json::from_slice(&u).unwrap(),
    );
    assert_eq!(uv["cards"].as_array().unwrap().len(), 100);
    let cards = gv["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1);
    assert!(
        cards[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("100 orders: ")
    );
    let per_order: usize = uv["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["suggestions"].as_array().unwrap().len())
        .sum();
    assert_eq!(cards[0]["suggestions"].as_array().unwrap().len(), per_order);
    // One rating update per order either way (consult ids are fresh uuids, so compare targets).
    let rated = |v: &Value| -> Vec<String> {
        v["systemActions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["resource"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(rated(&gv), rated(&uv));
    assert_eq!(rated(&gv).len(), 100);
    assert!(g.len() < u.len(), "{} >= {}", g.len(), u.len());
    eprintln!(
        "100 identical warnings: {} bytes grouped, {} bytes one card per order",
        g.len(),
        u.len()
    );
}

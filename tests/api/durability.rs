//! kill -9 under load loses no audit record of an answer that was sent.
//!
//! Runs the real binary, sends concurrent hook calls (each with its own `hookInstance`), notes
//! every `hookInstance` whose 200 answer was fully received, SIGKILLs the process mid-load,
//! restarts it on the same audit store and spool, waits for the spool to be replayed, and checks
//! that every answered call has its audit record (and none twice). Figures are printed and
//! written to `test-artifacts/durability-<scenario>.json`.
//!
//! Scenarios: SQLite store (always); store unreachable so every record goes to the spool, then
//! the restart replays the spool into a SQLite store (always); PostgreSQL (ignored by default:
//! run with `-- --include-ignored` and `VCF_TEST_POSTGRES_URL` set; CI does).

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 32;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the server process when the test ends, also when an assertion fails before the
/// scenario's own kill (a panicking test must not leave a server running).
struct KillOnDrop(Arc<Mutex<Child>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let mut child = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start(dir: &Path, port: u16, audit_db: &str, run: u32) -> Child {
    let log = std::fs::File::create(dir.join(format!("serve-{run}.log"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_vcf-cds"))
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VCF_CDS_LISTEN", format!("127.0.0.1:{port}"))
        .env("VCF_CDS_AUDIT_DB", audit_db)
        .env("VCF_CDS_AUDIT_SPOOL_DIR", dir.join("spool"))
        .env("VCF_CDS_AUDIT_WRITE_TIMEOUT_MS", "500")
        .env("VCF_CDS_AUDIT_RETRY_INTERVAL_MS", "200")
        .env("VCF_CDS_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("vcf-cds starts")
}

async fn wait_ready(client: &reqwest::Client, base: &str, drained: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && let Ok(v) = r.json::<Value>().await
        {
            let backlog = v["audit"]["spool_backlog"].as_u64().unwrap_or(u64::MAX);
            if !drained || (backlog == 0 && v["audit"]["store_up"] == true) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "server not ready in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn request(hook_instance: &str) -> Value {
    let mut r = order_select();
    r["hookInstance"] = json!(hook_instance);
    r["prefetch"] = full_prefetch();
    r
}

struct LoadResult {
    sent: u64,
    answered: BTreeSet<String>,
    elapsed: Duration,
}

/// Concurrent hook calls until the server dies (killed after `kill_after`).
async fn load_and_kill(base: &str, child: Arc<Mutex<Child>>, kill_after: Duration) -> LoadResult {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(Mutex::new(BTreeSet::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..WORKERS {
        let (client, base, sent, answered, killed) = (
            client.clone(),
            base.to_owned(),
            sent.clone(),
            answered.clone(),
            killed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Bounded: stops at the kill, or after 60 s whatever happens.
            while !killed.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(60) {
                let hi = uuid::Uuid::new_v4().to_string();
                sent.fetch_add(1, Ordering::Relaxed);
                let r = client
                    .post(format!("{base}/cds-services/vcf-order-select"))
                    .json(&request(&hi))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        if r.bytes().await.is_ok() {
                            answered.lock().unwrap().insert(hi);
                        }
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => {
                        if killed.load(Ordering::Acquire) {
                            break;
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(kill_after).await;
    // SIGKILL: no shutdown hook runs.
    child.lock().unwrap().kill().expect("kill -9");
    let elapsed = started.elapsed();
    killed.store(true, Ordering::Release);
    let _ = child.lock().unwrap().wait();
    for t in tasks {
        t.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    LoadResult {
        sent: sent.load(Ordering::Relaxed),
        answered,
        elapsed,
    }
}

async fn stored_hook_instances(audit_db: &str) -> (BTreeSet<String>, i64) {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let url = if audit_db.starts_with("postgres") {
        audit_db.to_owned()
    } else {
        format!("sqlite://{audit_db}?mode=ro")
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT hook_instance FROM audit_calls")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let all: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    let n = all.len() as i64;
    (all.into_iter().collect(), n)
}

async fn scenario(name: &str, first_db: &str, second_db: &str, kill_after: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let first_db = first_db.replace("{dir}", &dir.path().display().to_string());
    let second_db = second_db.replace("{dir}", &dir.path().display().to_string());

    let child = Arc::new(Mutex::new(start(dir.path(), port, &first_db, 1)));
    let _first = KillOnDrop(child.clone());
    wait_ready(&client, &base, false).await;
    let result = load_and_kill(&base, child, kill_after).await;
    assert!(
        result.answered.len() > 50,
        "too few answers before the kill: {}",
        result.answered.len()
    );

    // Restart on the same spool (and store), let it replay.
    let restart = Instant::now();
    let second = KillOnDrop(Arc::new(Mutex::new(start(dir.path(), port, &second_db, 2))));
    let ready = wait_ready(&client, &base, true).await;
    let replay = restart.elapsed();
    let (stored, rows) = stored_hook_instances(&second_db).await;
    drop(second);

    let lost: Vec<&String> = result.answered.difference(&stored).collect();
    let figures = json!({
        "scenario": name,
        "requests_sent": result.sent,
        "responses_received": result.answered.len(),
        "records_found": stored.intersection(&result.answered).count(),
        "records_total": rows,
        "records_for_unanswered_requests": rows as usize - stored.intersection(&result.answered).count(),
        "duplicates": rows as usize - stored.len(),
        "lost": lost.len(),
        "load_seconds_before_kill": result.elapsed.as_secs_f64(),
        "answers_per_second": result.answered.len() as f64 / result.elapsed.as_secs_f64(),
        "restart_and_replay_seconds": replay.as_secs_f64(),
        "after_restart": ready["audit"],
    });
    eprintln!("durability {name}: {figures}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join(format!("durability-{name}.json")),
        serde_json::to_string_pretty(&figures).unwrap(),
    )
    .unwrap();
    assert!(
        lost.is_empty(),
        "{} answered calls have no audit record: {lost:?}",
        lost.len()
    );
    assert_eq!(rows as usize, stored.len(), "no record stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_record_sqlite() {
    scenario(
        "sqlite",
        "{dir}/audit.sqlite",
        "{dir}/audit.sqlite",
        Duration::from_millis(2500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_spooling_loses_no_record() {
    // The first run's store is unreachable (nothing listens on port 1): every answer is spooled.
    scenario(
        "spool",
        "postgres://audit@127.0.0.1:1/audit",
        "{dir}/audit.sqlite",
        Duration::from_millis(2500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VCF_TEST_POSTGRES_URL)"]
async fn kill_9_under_load_loses_no_record_postgres() {
    let url = vcf_cds::audit::testing::fresh_postgres_db()
        .await
        .expect("this test needs PostgreSQL: set VCF_TEST_POSTGRES_URL");
    scenario("postgres", &url, &url, Duration::from_millis(2500)).await;
}

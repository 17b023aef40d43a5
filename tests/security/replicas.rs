//! Two replicas of the real binary behind one PostgreSQL audit store (issue 10): a JWT accepted
//! by one is refused by the other (the shared `jti` cache), both write one audit trail that
//! either one's summary counts, and PostgreSQL going away under load loses no record of an
//! answer (spool, then replay). PostgreSQL reaches the replicas through a loopback TCP proxy
//! that the test cuts and restores.

use crate::process::ServerProcess;
use crate::support::{TestKey, claims, jwks};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

const ISS: &str = "https://ehr.example.test";
const BASE: &str = "http://cds.example.test";
const ADMIN: &str = "replica-test-admin-token";

/// A TCP proxy to `target` that can drop every connection and refuse new ones.
struct CutProxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl CutProxy {
    async fn start(target: String) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let cut = cut2.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        CutProxy { port, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn hook_request(instance: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("hooks/v1-new-symptomatic-no-malignancy.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["hookInstance"] = json!(instance);
    v
}

fn token(key: &TestKey) -> String {
    key.sign(
        json!({}),
        &claims(ISS, &format!("{BASE}/cds-services/vcf-order-select")),
    )
}

async fn call(client: &reqwest::Client, replica: &str, token: &str, instance: &str) -> u16 {
    match client
        .post(format!("{replica}/cds-services/vcf-order-select"))
        .bearer_auth(token)
        .json(&hook_request(instance))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            // Answered = the whole body received.
            match r.bytes().await {
                Ok(_) => status,
                Err(_) => 0,
            }
        }
        Err(_) => 0,
    }
}

async fn audit_metrics(client: &reqwest::Client, replica: &str) -> String {
    client
        .get(format!("{replica}/audit/api/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (VCF_TEST_POSTGRES_URL)"]
async fn two_replicas_share_jti_cache_audit_trail_and_survive_a_postgres_outage() {
    let db_url = vcf_cds::audit::testing::fresh_postgres_db()
        .await
        .expect("VCF_TEST_POSTGRES_URL must be set for this test");
    let direct = url::Url::parse(&db_url).unwrap();
    let target = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    );
    let proxy = CutProxy::start(target).await;
    let mut via_proxy = direct.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let key = Arc::new(TestKey::es384("k1"));
    let jwks_path = dir.path().join("jwks.json");
    std::fs::File::create(&jwks_path)
        .unwrap()
        .write_all(jwks(&[&key]).to_string().as_bytes())
        .unwrap();
    let start = |name: &str| {
        let mut env = BTreeMap::new();
        env.insert(
            "VCF_CDS_TRUSTED_ISSUERS".to_string(),
            format!(r#"[{{iss="{ISS}", jwks_file="{}"}}]"#, jwks_path.display()),
        );
        env.insert("VCF_CDS_PUBLIC_BASE_URL".to_string(), BASE.to_string());
        env.insert("VCF_CDS_AUDIT_DB".to_string(), via_proxy.to_string());
        env.insert(
            "VCF_CDS_AUDIT_SPOOL_DIR".to_string(),
            dir.path()
                .join(format!("spool-{name}"))
                .display()
                .to_string(),
        );
        env.insert("VCF_CDS_AUDIT_WRITE_TIMEOUT_MS".to_string(), "1000".into());
        env.insert("VCF_CDS_AUDIT_RETRY_INTERVAL_MS".to_string(), "200".into());
        env.insert("VCF_CDS_ADMIN_TOKEN".to_string(), ADMIN.into());
        env.insert("VCF_CDS_LOG_LEVEL".to_string(), "warn,vcf_cds=info".into());
        env
    };
    let (env_a, env_b) = (start("a"), start("b"));
    let a = tokio::task::spawn_blocking(move || ServerProcess::start(&env_a))
        .await
        .unwrap();
    let b = tokio::task::spawn_blocking(move || ServerProcess::start(&env_b))
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // 1. A token used on the first replica is refused on the second (and on the first again).
    let t1 = token(&key);
    assert_eq!(call(&client, &a.address, &t1, "replay-1").await, 200);
    assert_eq!(call(&client, &b.address, &t1, "replay-2").await, 401);
    assert_eq!(call(&client, &a.address, &t1, "replay-3").await, 401);
    let t2 = token(&key);
    assert_eq!(call(&client, &b.address, &t2, "replay-4").await, 200);
    assert_eq!(call(&client, &a.address, &t2, "replay-5").await, 401);

    // 2. Load on both replicas; PostgreSQL goes away for a while in the middle.
    let answered = Arc::new(Mutex::new(BTreeSet::from([
        "replay-1".to_string(),
        "replay-4".to_string(),
    ])));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let stop_at = Instant::now() + Duration::from_secs(6);
    let mut workers = Vec::new();
    for w in 0..8 {
        let replica = if w % 2 == 0 {
            a.address.clone()
        } else {
            b.address.clone()
        };
        let (client, answered, refused) = (client.clone(), answered.clone(), refused.clone());
        let k = key.clone();
        let token_of = move || token(&k);
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < stop_at {
                n += 1;
                let instance = format!("load-{w}-{n}");
                match call(&client, &replica, &token_of(), &instance).await {
                    200 => {
                        answered.lock().unwrap().insert(instance);
                    }
                    0 => {}
                    other => refused.lock().unwrap().push((instance, other)),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    proxy.restore();
    for w in workers {
        w.await.unwrap();
    }
    let refused = refused.lock().unwrap().clone();
    assert!(refused.is_empty(), "fresh tokens refused: {refused:?}");
    let answered = answered.lock().unwrap().clone();

    // Some answers went to the spools while PostgreSQL was away; wait for the replays.
    let deadline = Instant::now() + Duration::from_secs(60);
    let spooled = loop {
        let ma = audit_metrics(&client, &a.address).await;
        let mb = audit_metrics(&client, &b.address).await;
        let backlog =
            metric(&ma, "vcf_cds_audit_spool_backlog") + metric(&mb, "vcf_cds_audit_spool_backlog");
        // Nothing was held in memory only: the spool took every record.
        assert_eq!(metric(&ma, "vcf_cds_audit_volatile_total"), 0);
        assert_eq!(metric(&mb, "vcf_cds_audit_volatile_total"), 0);
        let spooled = metric(&ma, "vcf_cds_audit_records_spooled_total")
            + metric(&mb, "vcf_cds_audit_records_spooled_total");
        if backlog == 0 {
            break spooled;
        }
        assert!(Instant::now() < deadline, "spools not replayed: {ma}\n{mb}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        spooled > 0,
        "the outage spooled nothing: it did not test the spool"
    );

    // 3. One audit trail: every answered call exactly once, from both replicas.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db_url).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT hook_instance, COUNT(*) FROM audit_calls GROUP BY hook_instance")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let stored: BTreeMap<String, i64> = rows.into_iter().collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|i| !stored.contains_key(*i))
        .collect();
    assert!(
        missing.is_empty(),
        "answered calls without a record: {missing:?}"
    );
    let doubled: Vec<_> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "records stored twice: {doubled:?}");
    let from_a = answered.iter().filter(|i| i.starts_with("load-0-")).count();
    let from_b = answered.iter().filter(|i| i.starts_with("load-1-")).count();
    assert!(from_a > 0 && from_b > 0, "both replicas answered");
    eprintln!(
        "replicas: {} answered calls ({} spooled during the outage), all stored once",
        answered.len(),
        spooled
    );

    // The summary on either replica counts both replicas' calls.
    for replica in [&a.address, &b.address] {
        let summary: Value = client
            .get(format!("{replica}/audit/api/summary"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            summary["calls"].as_u64(),
            Some(stored.len() as u64),
            "{summary}"
        );
    }
    // The shared cache holds the accepted tokens.
    let (jtis,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM auth_jti_seen")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(jtis >= 2, "{jtis}");
}

//! `vcf-cds batch-audit` and `vcf-cds synth`, run as a user runs them (the real binary): the
//! synthetic export's known answers, judgement as of the order date, Bundle and NDJSON inputs
//! giving the same result, malformed input reported and skipped, and agreement with the live
//! server on every `hooks/` example.

use crate::audit_helpers::*;
use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vcf_cds(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vcf-cds"))
        .args(args)
        .env_remove("VCF_CDS_CONFIG")
        .env_remove("VCF_CDS_AUDIT_PSEUDONYM_KEY")
        .output()
        .expect("run vcf-cds")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs batch-audit and returns (exit code, stderr, rows by order id).
fn audit(inputs: &[&Path], out: &Path) -> (i32, String, HashMap<String, Value>) {
    let mut args = vec!["batch-audit", "--quiet", "--out", p(out)];
    args.extend(inputs.iter().map(|i| p(i)));
    let o = vcf_cds(&args);
    let rows = std::fs::read_to_string(out.join("orders.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["order"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    (o.status.code().unwrap_or(-1), text(&o.stderr), rows)
}

fn synth(dir: &Path, patients: &str, seed: &str, extra: &[&str]) {
    let mut args = vec![
        "synth",
        "--patients",
        patients,
        "--seed",
        seed,
        "--out",
        p(dir),
    ];
    args.extend(extra);
    let o = vcf_cds(&args);
    assert!(o.status.success(), "synth: {}", text(&o.stderr));
}

fn hooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks")
}

/// The resources of a hooks/ example's prefetch, and its draft order.
fn example(file: &str) -> (Vec<Value>, Value) {
    let v = read_json(&hooks_dir().join(file));
    let pre = &v["prefetch"];
    let mut resources = vec![pre["patient"].clone()];
    for key in ["conditions", "procedures", "observations", "reports"] {
        for e in pre[key]["entry"].as_array().into_iter().flatten() {
            resources.push(e["resource"].clone());
        }
    }
    let order = v["context"]["draftOrders"]["entry"][0]["resource"].clone();
    (resources, order)
}

fn write_ndjson(path: &Path, resources: &[Value]) {
    let text: String = resources.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_synthetic_export_gets_its_expected_answers() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    synth(&export, "700", "11", &[]);
    let (code, stderr, rows) = audit(&[&export], &dir.path().join("out"));
    assert_eq!(code, 0, "{stderr}");
    let expected = std::fs::read_to_string(export.join("expected-sample.csv")).unwrap();
    let mut checked = 0;
    let mut trapped = 0;
    for line in expected.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let row = &rows[f[0]];
        assert_eq!(row["variant"], f[3], "{line}: {row}");
        assert_eq!(row["rating"].to_string(), f[4], "{line}");
        assert_eq!(row["category"], f[5], "{line}");
        checked += 1;
        trapped += usize::from(f[6] == "yes");
    }
    assert_eq!(checked, 7);
    // The sample includes patients whose malignancy was recorded after the order.
    assert!(trapped >= 1, "seed 11 traps at least one sampled patient");
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        summary["orders_read"].as_u64().unwrap() as usize,
        rows.len()
    );
    assert!(summary["orders_without_date"].as_u64().unwrap() > 0);
    let html = std::fs::read_to_string(dir.path().join("out/report.html")).unwrap();
    assert!(html.contains("How to read this"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "self-contained: no external resources"
    );
}

#[test]
fn a_cancer_recorded_after_the_order_does_not_change_its_rating() {
    // hooks/v1: new symptomatic osteoporotic fracture, no malignancy: V1 (ACR variant 1).
    // With a malignancy on record the ACR variant is 2 (new symptomatic VCF, known malignancy).
    let (resources, order) = example("v1-new-symptomatic-no-malignancy.json");
    let (v4, _) = example("v4-asymptomatic-malignancy.json");
    let myeloma = v4.iter().find(|r| r["id"] == "v4a-c1").unwrap().clone();
    let patient = resources[0]["id"].as_str().unwrap().to_owned();
    let with_date = |id: &str, recorded: &str| {
        let mut c = myeloma.clone();
        c["id"] = json!(id);
        c["subject"] = json!({"reference": format!("Patient/{patient}")});
        c["onsetDateTime"] = json!(recorded);
        c["recordedDate"] = json!(recorded);
        c
    };
    let later = with_date("later", "2026-12-15");
    let earlier = with_date("earlier", "2026-11-01");
    let mut o = order.clone();
    o["authoredOn"] = json!("2026-11-27T10:00:00Z");

    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: Option<&Value>| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut all = resources.clone();
        all.extend(extra.cloned());
        write_ndjson(&d.join("Resources.ndjson"), &all);
        write_ndjson(&d.join("ServiceRequest.ndjson"), std::slice::from_ref(&o));
        let (code, stderr, rows) = audit(&[&d], &dir.path().join(format!("{name}-out")));
        assert_eq!(code, 0, "{stderr}");
        rows.into_values().next().unwrap()
    };
    let none = run("none", None);
    let after = run("after", Some(&later));
    let before = run("before", Some(&earlier));
    assert_eq!(none["variant"], "V1", "{none}");
    assert_eq!(none["rating"], 3);
    for k in [
        "variant",
        "rating",
        "category",
        "pama_rating",
        "top_alternative",
    ] {
        assert_eq!(
            after[k], none[k],
            "{k}: a diagnosis recorded after the order counts"
        );
    }
    assert_eq!(
        before["variant"], "V2",
        "the control: recorded before, it counts"
    );
}

#[test]
fn bundles_gzip_and_ndjson_give_identical_results() {
    let dir = tempfile::tempdir().unwrap();
    let sorted = |rows: HashMap<String, Value>| {
        let mut v: Vec<String> = rows.values().map(Value::to_string).collect();
        v.sort();
        v
    };
    synth(&dir.path().join("nd"), "150", "5", &[]);
    synth(&dir.path().join("bu"), "150", "5", &["--bundles"]);
    synth(&dir.path().join("gz"), "150", "5", &["--gzip"]);
    assert!(dir.path().join("gz/Condition.ndjson.gz").is_file());
    assert!(dir.path().join("bu/bundles/bundle-000000.json").is_file());
    let (c1, e1, nd) = audit(&[&dir.path().join("nd")], &dir.path().join("o1"));
    let (c2, e2, bu) = audit(&[&dir.path().join("bu")], &dir.path().join("o2"));
    let (c3, e3, gz) = audit(&[&dir.path().join("gz")], &dir.path().join("o3"));
    assert_eq!((c1, c2, c3), (0, 0, 0), "{e1}{e2}{e3}");
    assert!(nd.len() > 300);
    let nd = sorted(nd);
    assert_eq!(nd, sorted(bu));
    assert_eq!(nd, sorted(gz));
}

#[test]
fn malformed_lines_are_reported_with_file_and_line_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    let (resources, order) = example("v1-new-symptomatic-no-malignancy.json");
    let mut lines: Vec<String> = resources.iter().map(Value::to_string).collect();
    lines.insert(1, "{not json".into());
    lines.insert(
        2,
        r#"{"resourceType":"Condition","id":"bad-date","subject":{"reference":"Patient/pat-v1a"},"onsetDateTime":"yesterday"}"#.into(),
    );
    lines.insert(3, r#"{"resourceType":"Condition","id":"nobody"}"#.into());
    std::fs::write(export.join("Everything.ndjson"), lines.join("\n")).unwrap();
    let mut o = order.clone();
    o["authoredOn"] = json!("2026-11-27");
    let mut broken = order.clone();
    broken["id"] = json!("broken");
    broken["status"] = json!("pending");
    let mut undated = order.clone();
    undated["id"] = json!("undated");
    write_ndjson(&export.join("ServiceRequest.ndjson"), &[o, broken, undated]);
    std::fs::write(export.join("README.txt"), "not an input file").unwrap();

    let out = dir.path().join("out");
    let (code, stderr, rows) = audit(&[&export], &out);
    assert_eq!(code, 1, "exit status 1: done, with skipped items\n{stderr}");
    for needle in [
        "Everything.ndjson: line 2: not a FHIR resource",
        "Everything.ndjson: line 3: Condition.onsetDateTime",
        "Everything.ndjson: line 4: Condition has no Patient reference",
        "ServiceRequest.ndjson: line 2: ServiceRequest.status",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
    let skipped = std::fs::read_to_string(out.join("skipped.csv")).unwrap();
    assert_eq!(skipped.lines().count(), 5, "header + 4:\n{skipped}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["skipped"], 4);
    assert_eq!(summary["orders_without_date"], 1);
    // The rest of the run went on: the good order was rated as the live service rates it.
    assert_eq!(rows["ServiceRequest/o-v1a-1"]["variant"], "V1");
    assert_eq!(rows["ServiceRequest/undated"]["outcome"], "no-date");
    assert!(rows["ServiceRequest/undated"]["rating"].is_null());
    assert!(!rows.contains_key("ServiceRequest/broken"));
}

#[test]
fn a_missing_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-export");
    let o = vcf_cds(&[
        "batch-audit",
        p(&missing),
        "--out",
        p(&dir.path().join("o")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("no-such-export") && err.contains("cannot read"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = vcf_cds(&["batch-audit", p(&empty), "--out", p(&dir.path().join("o"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("holds no .ndjson"),
        "{}",
        text(&o.stderr)
    );
}

/// The PAMA code, ACR rating (if any) and its display of the live response's first system
/// action; `None` when the live answer carries no rating.
fn live_rating(body: &Value) -> Option<(String, Option<String>, String)> {
    let ext = body["systemActions"][0]["resource"]["extension"].as_array()?;
    let rating = ext
        .iter()
        .find(|e| e["url"] == "http://fhir.org/argonaut/Extension/pama-rating")?;
    let codings = rating["valueCodeableConcept"]["coding"].as_array()?;
    let acr = codings
        .iter()
        .find(|c| c["system"].as_str().is_some_and(|s| s.ends_with("#rating")));
    Some((
        codings[0]["code"].as_str()?.to_owned(),
        acr.and_then(|a| a["code"].as_str()).map(str::to_owned),
        acr.and_then(|a| a["display"].as_str())
            .unwrap_or_default()
            .to_owned(),
    ))
}

#[tokio::test]
async fn batch_agrees_with_the_live_server_on_every_hooks_example() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    // The live service judges an order without authoredOn as of today: so does the export.
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let mut files: Vec<String> = std::fs::read_dir(hooks_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    let mut live = Vec::new();
    let mut orders = Vec::new();
    for file in &files {
        let request = read_json(&hooks_dir().join(file));
        let r = app.call("vcf-order-select", &request).await;
        assert_eq!(r.status().as_u16(), 200, "{file}");
        let body: Value = r.json().await.unwrap();
        let (resources, mut order) = example(file);
        write_ndjson(&export.join(file.replace(".json", ".ndjson")), &resources);
        order["authoredOn"] = json!(today);
        live.push((file.clone(), order["id"].as_str().unwrap().to_owned(), body));
        orders.push(order);
    }
    write_ndjson(&export.join("ServiceRequest.ndjson"), &orders);
    let (code, stderr, rows) = tokio::task::spawn_blocking(move || {
        let out = dir.path().join("out");
        let r = audit(&[&export], &out);
        drop(dir);
        r
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    for (file, id, body) in live {
        let row = &rows[&format!("ServiceRequest/{id}")];
        match live_rating(&body) {
            Some((pama, rating, display)) => {
                assert_eq!(row["pama_rating"], pama, "{file}");
                match rating {
                    Some(rating) => {
                        assert_eq!(row["rating"].to_string(), rating, "{file}");
                        let variant = row["variant"].as_str().unwrap();
                        assert!(
                            display.contains(&format!("({variant})")),
                            "{file}: {display}"
                        );
                    }
                    None => assert!(row["rating"].is_null(), "{file}: {row}"),
                }
            }
            None => {
                assert!(row["pama_rating"].is_null(), "{file}: {row}");
                assert!(row["rating"].is_null(), "{file}: {row}");
            }
        }
        // The best alternative is the first suggestion of the live card.
        if let Some(card) = body["cards"].as_array().and_then(|c| c.first()) {
            assert_eq!(
                row["top_alternative"], card["suggestions"][0]["label"],
                "{file}"
            );
        }
    }
}

/// The report in headless Chromium: it renders its charts without any network, and a
/// screenshot is kept in `test-artifacts/batch-report.png`.
#[test]
#[ignore = "needs Chromium (on PATH, or CHROMIUM=/path/to/chromium)"]
fn the_report_renders_in_chromium() {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    synth(&export, "400", "2", &[]);
    let out = dir.path().join("out");
    let (code, stderr, _) = audit(&[&export], &out);
    assert_eq!(code, 0, "{stderr}");
    let page = format!("file://{}", out.join("report.html").display());
    let chromium = |extra: &[String], url: &str| {
        let o = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--hide-scrollbars",
                "--virtual-time-budget=5000",
                "--window-size=1280,2600",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .args(extra)
            .arg(url)
            .output()
            .expect("chromium runs");
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let dom = chromium(&["--dump-dom".into()], &format!("{page}#month-2025-01"));
    assert!(dom.contains("How to read this"));
    assert!(dom.matches("<rect").count() > 50, "the charts are drawn");
    // The anchor of a bar opens the table of its orders.
    let opened = dom
        .split("<details")
        .find(|d| d.contains("id=\"month-2025-01\""))
        .expect("a table for January 2025");
    assert!(opened.contains(" open="), "the linked table is open");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("batch-report.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&[format!("--screenshot={}", shot.display())], &page);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 50_000);
}

#[tokio::test]
async fn store_adds_batch_records_once_and_the_audit_api_filters_them_by_source() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    synth(&export, "40", "9", &[]);
    let db = dir.path().join("audit.sqlite");
    let run = {
        let (export, db, out) = (export.clone(), db.clone(), dir.path().join("out"));
        move || {
            let o = Command::new(env!("CARGO_BIN_EXE_vcf-cds"))
                .args([
                    "batch-audit",
                    "--quiet",
                    "--store",
                    "--out",
                    p(&out),
                    p(&export),
                ])
                .env_remove("VCF_CDS_CONFIG")
                .env("VCF_CDS_AUDIT_DB", &db)
                .env("VCF_CDS_AUDIT_PSEUDONYM_KEY", "batch-test-key-0123456789")
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o.stderr));
            text(&o.stdout)
        }
    };
    let first = tokio::task::spawn_blocking(run.clone()).await.unwrap();
    let second = tokio::task::spawn_blocking(run).await.unwrap();
    let added = |s: &str| -> u64 {
        let at = s.find(" orders added").unwrap_or_else(|| panic!("{s}"));
        s[..at].rsplit(' ').next().unwrap().parse().unwrap()
    };
    let stored = added(&first);
    assert!(stored > 100, "{first}");
    assert_eq!(added(&second), 0, "a re-run adds nothing: {second}");
    assert!(
        second.contains(&format!("{stored} already stored")),
        "{second}"
    );

    let db_url = p(&db).to_owned();
    let app = spawn_seeded(None, |s| {
        s.audit_db = db_url;
        s.audit_pseudonym_key = Some("batch-test-key-0123456789".into());
    })
    .await;
    let live = app
        .call(
            "vcf-order-select",
            &read_json(&hooks_dir().join("v1-new-symptomatic-no-malignancy.json")),
        )
        .await;
    assert_eq!(live.status().as_u16(), 200);
    // The live record is committed before the answer is sent (audit_write_timeout_ms).
    let batch = app
        .admin_json("/audit/api/evaluations?source=batch&limit=5")
        .await;
    assert_eq!(batch["total"], stored as i64);
    assert_eq!(batch["items"][0]["source"], "batch");
    assert!(batch["items"][0]["run_id"].is_string());
    let live = app.admin_json("/audit/api/evaluations?source=live").await;
    assert_eq!(live["total"], 1);
    let bad = app
        .admin_get("/audit/api/evaluations?source=elsewhere")
        .await;
    assert_eq!(bad.status().as_u16(), 400);
}

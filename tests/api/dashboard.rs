//! The dashboard in a real browser: headless Chromium loads `/audit/` from a server filled with
//! generated evaluations, the charts render, a URL filter works, and a screenshot is kept in
//! `test-artifacts/audit-dashboard.png`. Ignored by default (it needs Chromium); run it with
//! `-- --include-ignored` (CI does). A missing Chromium then fails the test.

use crate::audit_helpers::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// Runs headless Chromium with the given extra arguments; returns stdout.
async fn run_chromium(bin: PathBuf, profile: PathBuf, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--virtual-time-budget=15000",
                "--window-size=1440,2300",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (on PATH, or CHROMIUM=/path/to/chromium)"]
async fn dashboard_renders_charts_and_filters_in_chromium() {
    let bin = chromium().expect(
        "this test needs Chromium: apt-get install -y chromium, or set CHROMIUM=/path/to/chromium",
    );
    let data = generated(400).await;
    let v1 = data
        .calls
        .iter()
        .flat_map(|c| &c.orders)
        .filter(|o| o.chosen_variant.as_deref() == Some("V1"))
        .count();
    let app = spawn_seeded(Some(data), |_| {}).await;
    let profile = tempfile::tempdir().unwrap();

    // Whole trail.
    let url = format!("{}/audit/#token={ADMIN_TOKEN}", app.address);
    let dom = run_chromium(
        bin.clone(),
        profile.path().join("a"),
        vec!["--dump-dom".into(), url],
    )
    .await;
    assert!(
        dom.contains("data-state=\"ready\""),
        "page did not load: {dom:.2000}"
    );
    for chart in ["timeline", "variant", "procedure", "reasons", "users"] {
        assert!(
            dom.contains(&format!("data-chart=\"{chart}\"")),
            "chart {chart} missing"
        );
    }
    assert!(count(&dom, "class=\"bar c-ok\"") > 10, "timeline bars");
    assert!(count(&dom, "class=\"bar c-bad\"") > 10);
    assert_eq!(
        count(&dom, "<tr class=\"record\""),
        25,
        "one page of records"
    );
    assert!(
        !dom.contains(ADMIN_TOKEN),
        "the token must not stay in the page"
    );

    // A filter in the URL narrows charts and records.
    let url = format!("{}/audit/?variant=V1#token={ADMIN_TOKEN}", app.address);
    let dom = run_chromium(
        bin.clone(),
        profile.path().join("b"),
        vec!["--dump-dom".into(), url.clone()],
    )
    .await;
    assert!(dom.contains("data-state=\"ready\""));
    assert!(
        dom.contains(&format!("{v1} orders")),
        "records count for V1"
    );
    let rows = count(&dom, "<tr class=\"record\"");
    assert_eq!(rows, 25.min(v1));
    assert_eq!(
        count(&dom, "data-variant=\"V1\""),
        rows,
        "every listed record is V1"
    );
    assert!(dom.contains("variant: V1"), "active filter chip");

    // Screenshot kept as a test artefact.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, url) in [
        (
            "audit-dashboard.png",
            format!("{}/audit/#token={ADMIN_TOKEN}", app.address),
        ),
        ("audit-dashboard-variant-v1.png", url),
    ] {
        let shot = dir.join(name);
        let _ = std::fs::remove_file(&shot);
        run_chromium(
            bin.clone(),
            profile.path().join(name),
            vec![format!("--screenshot={}", shot.display()), url],
        )
        .await;
        let png = std::fs::read(&shot).expect("screenshot written");
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
        assert!(png.len() > 20_000, "{name} has content");
    }
}

#[tokio::test]
async fn dashboard_assets_are_served_locally_with_a_strict_policy() {
    let app = spawn_seeded(None, |_| {}).await;
    let r = app.get("/audit/").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    for asset in ["/audit/assets/app.js", "/audit/assets/app.css"] {
        let r = app.get(asset).await;
        assert_eq!(r.status(), 200, "{asset}");
        let text = r.text().await.unwrap();
        assert!(!text.contains("https://"), "{asset} loads nothing remote");
    }
    let r = app.get("/audit?variant=V1").await;
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/audit/?variant=V1");
}

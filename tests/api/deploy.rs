//! The container deployment (issue 10): `Dockerfile` and `docker-compose.yml` checked against
//! the service as far as possible without Docker. Every `VCF_CDS_*` value goes through the real
//! configuration loader (`vcf-cds config check`, the start-up path of `serve`); ports, paths
//! and health checks are compared with what the service and the image really use; the compose
//! file's fixture loader runs against a loopback FHIR server, and the hook examples are then
//! answered in fetch mode exactly as with prefetch.

use crate::fhir_store::FhirStore;
use crate::helpers::*;
use crate::hooks_examples::mask_uuids;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_vcf-cds");

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn compose() -> Value {
    let text = std::fs::read_to_string(repo("docker-compose.yml")).expect("docker-compose.yml");
    serde_norway::from_str(&text).expect("docker-compose.yml is valid YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(s.is_object(), "compose service {name} is missing");
    s
}

/// A compose `environment` mapping (or `KEY=value` list) as pairs.
fn environment(svc: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match &svc["environment"] {
        Value::Object(m) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.insert(k.clone(), v);
            }
        }
        Value::Array(a) => {
            for item in a {
                let (k, v) = item.as_str().unwrap().split_once('=').unwrap();
                out.insert(k.into(), v.into());
            }
        }
        _ => {}
    }
    for v in out.values() {
        // Interpolation would make the checked value differ from the deployed one.
        assert!(
            !v.contains('$'),
            "no ${{...}} interpolation in checked values: {v}"
        );
    }
    out
}

/// One Dockerfile instruction: keyword and its argument text (continuation lines joined).
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo("Dockerfile")).expect("Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (kw, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((kw.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

fn instructions<'a>(df: &'a [(String, String)], kw: &str) -> Vec<&'a str> {
    df.iter()
        .filter(|(k, _)| k == kw)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The runtime stage's `ENV` variables.
fn dockerfile_env(df: &[(String, String)]) -> BTreeMap<String, String> {
    let last_from = df.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let mut env = BTreeMap::new();
    for (_, v) in df[last_from..].iter().filter(|(k, _)| k == "ENV") {
        for pair in v.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=value form");
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    env
}

/// Runs the service binary with exactly `env` (nothing inherited but PATH).
fn run_with_env(args: &[&str], env: &BTreeMap<String, String>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear().stdin(Stdio::null());
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env);
    cmd.output().expect("run vcf-cds")
}

/// A start-up refusal: the CLI's exit code for start-up and configuration failures.
fn refused(status: &std::process::ExitStatus) -> bool {
    status.code() == Some(i32::from(vcf_cds::cli::exit::STARTUP))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn compose_environment_passes_the_configuration_loader() {
    let c = compose();
    let env = environment(service(&c, "vcf-cds"));
    assert!(!env.is_empty());
    for k in env.keys() {
        assert!(k.starts_with("VCF_CDS_"), "{k} is not a service setting");
    }
    let out = run_with_env(&["config", "check"], &env);
    assert!(
        out.status.success(),
        "compose environment refused: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("audit store postgres"),
        "{}",
        text(&out.stdout)
    );

    // The same check fails when a key is misspelt, naming it (so the test above can fail).
    let mut typo = env.clone();
    typo.insert("VCF_CDS_AUDIT_DBB".into(), "x".into());
    let out = run_with_env(&["config", "check"], &typo);
    assert!(refused(&out.status), "{:?}", out.status);
    assert!(
        text(&out.stderr).contains("audit_dbb"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn compose_services_agree_with_each_other_and_the_service() {
    let c = compose();
    let cds = service(&c, "vcf-cds");
    let pg = service(&c, "postgres");
    let hapi = service(&c, "hapi");
    let loader = service(&c, "fhir-fixtures");
    let env = environment(cds);
    let df = dockerfile();

    // Published port = the port the service listens on; HAPI's container port is 8080.
    let listen_port = port_of(&env["VCF_CDS_LISTEN"]);
    let ports: Vec<&str> = cds["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        ports
            .iter()
            .any(|p| p.ends_with(&format!(":{listen_port}"))),
        "{ports:?}"
    );
    assert!(
        hapi["image"]
            .as_str()
            .unwrap()
            .contains("hapiproject/hapi:")
    );
    assert!(hapi["ports"][0].as_str().unwrap().ends_with(":8080"));

    // The service fetches from the HAPI base URL the loader fills.
    let hapi_base = "http://hapi:8080/fhir";
    let trusted: Vec<String> = serde_json::from_str(&env["VCF_CDS_TRUSTED_FHIR_SERVERS"]).unwrap();
    assert_eq!(trusted, vec![hapi_base.to_string()]);
    let cmd: Vec<&str> = loader["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&cmd[..2], ["fixtures", "load"]);
    let at = cmd.iter().position(|a| *a == "--fhir-server").unwrap();
    assert_eq!(cmd[at + 1], hapi_base);
    // The fixtures directory the loader reads is the one the image ships.
    let fixtures_dir = *cmd.last().unwrap();
    let copies = instructions(&df, "COPY");
    assert!(
        copies.iter().any(|c| c.ends_with(&format!(
            "fixtures {}",
            fixtures_dir.trim_end_matches("/patients")
        ))),
        "the image copies fixtures/ to where the loader reads: {copies:?}"
    );
    assert!(repo("fixtures/patients").is_dir());
    assert_eq!(
        loader["image"], cds["image"],
        "the loader is the service's image"
    );

    // Audit store: the postgres service's database, user and password, on its default port.
    let url = url::Url::parse(&env["VCF_CDS_AUDIT_DB"]).unwrap();
    let pg_env = environment(pg);
    assert_eq!(url.host_str(), Some("postgres"));
    assert_eq!(url.port_or_known_default().or(url.port()), Some(5432));
    assert_eq!(url.username(), pg_env["POSTGRES_USER"]);
    assert_eq!(url.password(), Some(pg_env["POSTGRES_PASSWORD"].as_str()));
    assert_eq!(url.path().trim_start_matches('/'), pg_env["POSTGRES_DB"]);

    // Named volumes: PostgreSQL's data, and the service's data volume at the image's VOLUME.
    let named: BTreeSet<&str> = c["volumes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mount = |svc: &Value, target: &str| {
        svc["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|v| {
                let (src, dst) = v.as_str()?.split_once(':')?;
                (dst.trim_end_matches(":ro") == target).then(|| src.to_owned())
            })
    };
    let pg_vol = mount(pg, "/var/lib/postgresql/data").expect("postgres data volume");
    assert!(
        named.contains(pg_vol.as_str()),
        "{pg_vol} is a named volume"
    );
    let volume = instructions(&df, "VOLUME");
    let data_dir: Vec<String> = serde_json::from_str(volume[0]).unwrap();
    let cds_vol = mount(cds, &data_dir[0]).expect("service data volume at the image's VOLUME");
    assert!(named.contains(cds_vol.as_str()));
    assert!(
        env["VCF_CDS_AUDIT_SPOOL_DIR"].starts_with(&data_dir[0]),
        "spool in the volume"
    );

    // Health checks: the service's is the image's, and is the `health` probe of the binary the
    // image installs; every service_healthy dependency has one.
    let hc: Vec<&str> = cds["healthcheck"]["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let image_hc = instructions(&df, "HEALTHCHECK")[0];
    let image_cmd: Vec<String> =
        serde_json::from_str(image_hc.split_once("CMD ").unwrap().1).unwrap();
    assert_eq!(hc[0], "CMD");
    assert_eq!(
        hc[1..],
        image_cmd.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert_eq!(image_cmd[1], "health");
    assert!(
        copies
            .iter()
            .any(|c| c.ends_with(&format!(" {}", image_cmd[0]))),
        "{copies:?}"
    );
    for (name, svc) in c["services"].as_object().unwrap() {
        for (dep, cond) in svc["depends_on"].as_object().into_iter().flatten() {
            let cond = cond["condition"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} -> {dep}: no condition"));
            match cond {
                "service_healthy" => assert!(
                    c["services"][dep]["healthcheck"]["test"].is_array(),
                    "{name} waits for {dep} to be healthy, which has no health check"
                ),
                "service_completed_successfully" => {
                    assert_eq!(c["services"][dep]["restart"], "no", "{dep} runs once")
                }
                other => panic!("{name} -> {dep}: condition {other}"),
            }
        }
    }
    let deps = |svc: &Value| -> BTreeMap<String, String> {
        svc["depends_on"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["condition"].as_str().unwrap().to_owned()))
            .collect()
    };
    let cds_deps = deps(cds);
    assert_eq!(cds_deps["postgres"], "service_healthy");
    assert_eq!(cds_deps["fhir-fixtures"], "service_completed_successfully");
    assert_eq!(deps(loader)["hapi"], "service_healthy");
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_health_check_and_env_only_config() {
    let df = dockerfile();
    let froms = instructions(&df, "FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let runtime = froms.last().unwrap();
    assert!(
        runtime.contains("distroless") || runtime.contains("-slim"),
        "{runtime}"
    );
    let user = instructions(&df, "USER");
    let user = user.last().expect("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric uid");
    assert_ne!(uid, 0, "non-root");
    assert_eq!(
        instructions(&df, "ENTRYPOINT"),
        [r#"["/usr/local/bin/vcf-cds"]"#]
    );
    assert_eq!(instructions(&df, "CMD"), [r#"["serve"]"#]);
    assert!(
        instructions(&df, "ADD").is_empty(),
        "no ADD (remote fetches)"
    );

    let env = dockerfile_env(&df);
    let listen_port = port_of(&env["VCF_CDS_LISTEN"]);
    assert_eq!(
        instructions(&df, "EXPOSE"),
        [listen_port.to_string().as_str()]
    );
    let volume: Vec<String> = serde_json::from_str(instructions(&df, "VOLUME")[0]).unwrap();
    assert!(
        env["VCF_CDS_AUDIT_DB"].starts_with(&volume[0]),
        "SQLite store in the volume"
    );
    assert!(
        env["VCF_CDS_AUDIT_SPOOL_DIR"].starts_with(&volume[0]),
        "spool in the volume"
    );

    // The image's defaults listen on all interfaces, so the service refuses to start until it
    // is told whom to trust; with an issuer configured the same defaults are accepted.
    let out = run_with_env(&["config", "check"], &env);
    assert!(refused(&out.status), "{:?}", out.status);
    assert!(
        text(&out.stderr).contains("refusing to start"),
        "{}",
        text(&out.stderr)
    );
    let mut with_issuer = env.clone();
    with_issuer.insert(
        "VCF_CDS_TRUSTED_ISSUERS".into(),
        r#"[{iss="https://ehr.example.org", jwks_url="https://ehr.example.org/jwks"}]"#.into(),
    );
    let out = run_with_env(&["config", "check"], &with_issuer);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("audit store sqlite"),
        "{}",
        text(&out.stdout)
    );

    let ignore = std::fs::read_to_string(repo(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "the build context leaves out target/"
    );
}

/// `serve` with a bad environment stops at once (exit code 3), naming the key.
#[test]
fn bad_environment_stops_serve_naming_the_key() {
    let cases = [
        ("VCF_CDS_LISTN", "127.0.0.1:0", "listn"),
        ("VCF_CDS_MAX_BODY_BYTES", "lots", "max_body_bytes"),
        (
            "VCF_CDS_AUDIT_DB",
            "mysql://db.example.org/audit",
            "audit_db",
        ),
        ("VCF_CDS_AUDIT_DB", "postgres:///audit", "audit_db"),
    ];
    for (key, value, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut env = BTreeMap::new();
        env.insert("VCF_CDS_LISTEN".to_string(), "127.0.0.1:0".to_string());
        env.insert(
            "VCF_CDS_AUDIT_SPOOL_DIR".to_string(),
            dir.path().join("spool").display().to_string(),
        );
        if key != "VCF_CDS_AUDIT_DB" {
            env.insert(
                "VCF_CDS_AUDIT_DB".to_string(),
                dir.path().join("a.sqlite").display().to_string(),
            );
        }
        env.insert(key.to_string(), value.to_string());
        let mut child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .envs(&env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{key}={value}: serve did not stop");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(refused(&status), "{key}={value}: {status:?} {err}");
        assert!(err.to_lowercase().contains(named), "{key}={value}: {err}");
    }
}

#[tokio::test]
async fn health_command_probes_the_configured_port() {
    let app = spawn_app().await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let mut env = BTreeMap::new();
    // As in the image: an all-interfaces listen address, probed on loopback.
    env.insert("VCF_CDS_LISTEN".to_string(), format!("0.0.0.0:{port}"));
    for args in [&["health"][..], &["health", "--ready"][..]] {
        let env = env.clone();
        let out = tokio::task::spawn_blocking(move || run_with_env(args, &env))
            .await
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    // Nothing listening: failure, with the reason.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free_port = free.local_addr().unwrap().port();
    drop(free);
    env.insert(
        "VCF_CDS_LISTEN".to_string(),
        format!("127.0.0.1:{free_port}"),
    );
    let out = tokio::task::spawn_blocking(move || run_with_env(&["health"], &env))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/healthz"),
        "{}",
        text(&out.stderr)
    );
}

/// Every resource of every `fixtures/patients` file, keyed "Type/id".
fn fixture_resources() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(repo("fixtures/patients")).unwrap() {
        let bundle = read_json(&e.unwrap().path());
        for entry in bundle["entry"].as_array().unwrap() {
            let r = &entry["resource"];
            let key = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            );
            assert!(
                out.insert(key.clone(), r.clone()).is_none(),
                "duplicate fixture id {key}"
            );
        }
    }
    out
}

/// Runs the compose file's loader command against `base` instead of HAPI.
async fn run_loader(base: &str) -> Output {
    let c = compose();
    let mut args: Vec<String> = service(&c, "fhir-fixtures")["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let at = args.iter().position(|a| a == "--fhir-server").unwrap();
    args[at + 1] = base.to_owned();
    // The image's copy of fixtures/ is this checkout's.
    *args.last_mut().unwrap() = repo("fixtures/patients").display().to_string();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_remove("VCF_CDS_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn fixture_loader_creates_every_fixture_resource() {
    let store = FhirStore::start().await;
    let out = run_loader(&store.base).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = fixture_resources();
    assert_eq!(store.resources(), expected);
    assert!(text(&out.stdout).contains(&format!("loaded {} resources", expected.len())));
    // Idempotent: a second `docker compose up` updates, it does not duplicate.
    let out = run_loader(&store.base).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(store.resources(), expected);

    // An unreachable server is an error, not a silent success.
    let out = tokio::task::spawn_blocking(|| {
        Command::new(BIN)
            .args([
                "fixtures",
                "load",
                "--fhir-server",
                "http://127.0.0.1:9/fhir",
            ])
            .arg(repo("fixtures/patients"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn hook_examples_in_fetch_mode_match_prefetch_mode() {
    let store = FhirStore::start().await;
    assert!(run_loader(&store.base).await.status.success());
    let base = store.base.clone();
    let app = spawn_app_with(|s| {
        s.trusted_fhir_servers = vec![base];
        // A loaded CI machine must not turn a slow stub into "data unavailable".
        s.fhir_timeout_ms = 10_000;
        s.fhir_deadline_ms = 20_000;
    })
    .await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("hooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    // One per ACR variant plus the two issue-8 kyphoplasty cases.
    assert_eq!(files.len(), 11);
    for file in files {
        let with_prefetch = read_json(&file);
        let patient = with_prefetch["context"]["patientId"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut fetch_mode = with_prefetch.clone();
        fetch_mode.as_object_mut().unwrap().remove("prefetch");
        fetch_mode["fhirServer"] = json!(store.base);

        let before = store.searches().len();
        let r = app.call("vcf-order-select", &with_prefetch).await;
        assert_eq!(r.status(), 200, "{}", file.display());
        let mut a: Value = r.json().await.unwrap();
        assert_eq!(
            store.searches().len(),
            before,
            "prefetch mode fetches nothing"
        );

        let r = app.call("vcf-order-select", &fetch_mode).await;
        assert_eq!(r.status(), 200, "{}", file.display());
        let mut b: Value = r.json().await.unwrap();
        let fetched = &store.searches()[before..];
        assert!(
            fetched
                .iter()
                .any(|s| s.contains(&format!("Condition?patient={patient}"))),
            "{}: the service fetched the record: {fetched:?}",
            file.display()
        );
        mask_uuids(&mut a);
        mask_uuids(&mut b);
        assert_eq!(
            a,
            b,
            "{}: fetch mode answers as prefetch mode",
            file.display()
        );
    }
}

//! Safe defaults: open only on loopback (loudly), refuse other addresses unless
//! `--allow-unauthenticated`, JWT mode as soon as an issuer (or the sandbox) is trusted.

use clap::Parser;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vcf_cds::auth::{AuthMode, startup_mode};
use vcf_cds::cli::{Cli, Command as CliCommand, serve_settings};
use vcf_cds::configuration::{Settings, TrustedIssuer};

fn settings(listen: &str) -> Settings {
    Settings {
        listen: listen.into(),
        ..Settings::default()
    }
}

#[test]
fn modes() {
    assert_eq!(
        startup_mode(&settings("127.0.0.1:8080")),
        Ok(AuthMode::OpenLoopback)
    );
    assert_eq!(
        startup_mode(&settings("[::1]:8080")),
        Ok(AuthMode::OpenLoopback)
    );
    let err = startup_mode(&settings("0.0.0.0:8080")).unwrap_err();
    assert!(err.contains("refusing to start"), "{err}");
    assert!(err.contains("--allow-unauthenticated"), "{err}");
    assert!(startup_mode(&settings("192.0.2.10:8080")).is_err());
    let mut s = settings("0.0.0.0:8080");
    s.allow_unauthenticated = true;
    assert_eq!(startup_mode(&s), Ok(AuthMode::OpenUnauthenticated));
    assert!(
        AuthMode::OpenUnauthenticated
            .warning(&s)
            .unwrap()
            .contains("AUTHENTICATION IS OFF")
    );
    let mut s = settings("0.0.0.0:8080");
    s.trusted_issuers = vec![TrustedIssuer {
        iss: "https://ehr.example.org".into(),
        jwks_url: Some("https://ehr.example.org/jwks".into()),
        jwks_file: None,
        algorithms: vec!["ES384".into()],
        tenant: None,
        jku_allowlist: vec![],
        fhir_servers: vec![],
    }];
    assert_eq!(startup_mode(&s), Ok(AuthMode::Jwt));
    assert_eq!(AuthMode::Jwt.warning(&s), None);
    let mut s = settings("0.0.0.0:8080");
    s.trust_sandbox = true;
    assert_eq!(startup_mode(&s), Ok(AuthMode::Jwt));
}

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("VCF_CDS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn cli_flag_allows_a_non_loopback_address() {
    let cli = Cli::try_parse_from([
        "vcf-cds",
        "serve",
        "--listen",
        "192.0.2.10:8080",
        "--allow-unauthenticated",
    ])
    .unwrap();
    let CliCommand::Serve {
        config,
        listen,
        allow_unauthenticated,
    } = cli.command
    else {
        panic!("not serve")
    };
    let s = serve_settings(&config, listen, allow_unauthenticated).unwrap();
    assert_eq!(startup_mode(&s), Ok(AuthMode::OpenUnauthenticated));
}

#[test]
fn binary_refuses_non_loopback_without_issuers() {
    let dir = tempfile::tempdir().unwrap();
    // 192.0.2.0/24 is TEST-NET-1: the check happens before any bind.
    let out = clean_env(&mut Command::new(env!("CARGO_BIN_EXE_vcf-cds")))
        .args(["serve", "--listen", "192.0.2.10:8080"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to start"), "{stderr}");
}

#[test]
fn binary_warns_loudly_in_open_loopback_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = clean_env(&mut Command::new(env!("CARGO_BIN_EXE_vcf-cds")))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("VCF_CDS_LOG_FORMAT", "text")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    let mut found = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("AUTHENTICATION IS OFF") && line.contains("WARN") {
                    found = true;
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "no loud warning on stderr:\n{seen}");
}

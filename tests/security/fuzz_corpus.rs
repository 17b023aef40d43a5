//! Replays the committed fuzz corpora (`fuzz/corpus/`) through the same invariants as the fuzz
//! targets, so that what the fuzzers found stays covered by `cargo test` on stable.

use std::path::PathBuf;
use vcf_engine::evaluate::Hook;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn request_parse_corpus() {
    let inputs = corpus("request_parse");
    assert!(inputs.len() > 50);
    for (name, data) in inputs {
        for hook in [Hook::OrderSelect, Hook::OrderSign] {
            if let Err(e) = vcf_cds::cds::request::parse(&data, hook, 100) {
                assert!(e.status.is_client_error(), "{name}: {}", e.status);
                assert_eq!(e.outcome()["resourceType"], "OperationOutcome");
            }
        }
    }
}

#[test]
fn auth_token_corpus() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let auth = vcf_cds::auth::Authenticator::new(&vcf_cds::configuration::Settings {
        trust_sandbox: true,
        ..Default::default()
    })
    .unwrap();
    for (name, data) in corpus("auth_token") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        for header in [text.to_owned(), format!("Bearer {text}")] {
            let r = rt.block_on(auth.verify_jwt(Some(&header), "https://cds.example.org/x"));
            assert!(r.is_err(), "{name} verified");
        }
    }
}

#[test]
fn engine_corpus() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let state = vcf_cds::state::AppState::new(
        vcf_cds::configuration::Settings {
            listen: "192.0.2.1:8080".into(),
            ..Default::default()
        },
        vcf_cds::audit::AuditStore::disabled(),
    )
    .unwrap();
    for (name, data) in corpus("engine") {
        for service in vcf_cds::cds::discovery::SERVICES {
            if let Err(e) = rt.block_on(vcf_cds::cds::pipeline::process(&state, service, &data)) {
                assert!(
                    !e.status.is_server_error(),
                    "{name}: {} {:?}",
                    e.status,
                    e.issues
                );
            }
        }
    }
}

//! The command line's exit codes, from the real binary: 0 ok; 1 invalid input; 2 usage error or
//! unreadable input file; 3 start-up or configuration failure (README, "Command line").

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `vcf-cds args...` in an empty directory with no `VCF_CDS_*` variables, plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcf-cds"));
    cmd.args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("VCF_CDS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run vcf-cds")
}

#[track_caller]
fn assert_code(out: &Output, code: i32, stderr_needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(stderr_needle),
        "missing {stderr_needle:?} in stderr:\n{stderr}"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn zero_when_the_command_succeeds() {
    let hook = repo("hooks/v1-new-symptomatic-no-malignancy.json");
    let out = run(&["evaluate", hook.to_str().unwrap()], &[]);
    assert_code(&out, 0, "");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(body["cards"].is_array(), "{body}");
    assert_code(&run(&["knowledge", "check"], &[]), 0, "");
    assert_code(&run(&["--version"], &[]), 0, "");
}

#[test]
fn one_for_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    // Not JSON.
    let f = write(dir.path(), "truncated.json", "{\"hook\": \"order-select\",");
    assert_code(&run(&["evaluate", &f], &[]), 1, "not a JSON object");
    // No hook / a hook no service answers.
    let f = write(dir.path(), "nohook.json", "{\"context\": {}}");
    assert_code(&run(&["evaluate", &f], &[]), 1, "no \"hook\" string");
    let f = write(dir.path(), "pv.json", "{\"hook\": \"patient-view\"}");
    assert_code(&run(&["evaluate", &f], &[]), 1, "no service for hook");
    // A request the server would refuse with 400.
    let mut req: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("hooks/v1-new-symptomatic-no-malignancy.json")).unwrap(),
    )
    .unwrap();
    req["context"]
        .as_object_mut()
        .unwrap()
        .remove("draftOrders");
    let f = write(dir.path(), "invalid.json", &req.to_string());
    assert_code(&run(&["evaluate", &f], &[]), 1, "would answer HTTP 400");
    // The same through standard input.
    let out = Command::new(env!("CARGO_BIN_EXE_vcf-cds"))
        .args(["evaluate", "-"])
        .current_dir(dir.path())
        .stdin(std::fs::File::open(&f).unwrap())
        .output()
        .unwrap();
    assert_code(&out, 1, "would answer HTTP 400");
    // A knowledge file that fails validation or does not parse.
    let f = write(dir.path(), "bad.toml", "schema_version = 1\n");
    assert_code(
        &run(&["knowledge", "check", &f], &[]),
        1,
        "not valid TOML for the schema",
    );
}

#[test]
fn two_for_a_usage_error_or_an_unreadable_file() {
    assert_code(&run(&["evaluate"], &[]), 2, "Usage");
    assert_code(&run(&["evaluate", "--no-such-flag", "x.json"], &[]), 2, "");
    assert_code(&run(&["no-such-command"], &[]), 2, "");
    assert_code(
        &run(&["evaluate", "does-not-exist.json"], &[]),
        2,
        "cannot read does-not-exist.json",
    );
    let hook = repo("hooks/v1-new-symptomatic-no-malignancy.json");
    assert_code(
        &run(
            &[
                "evaluate",
                "--service",
                "no-such-service",
                hook.to_str().unwrap(),
            ],
            &[],
        ),
        2,
        "no CDS service",
    );
    assert_code(
        &run(&["knowledge", "check", "missing.toml"], &[]),
        2,
        "cannot read knowledge file",
    );
}

#[test]
fn three_for_a_start_up_or_configuration_failure() {
    let dir = tempfile::tempdir().unwrap();
    let hook = repo("hooks/v1-new-symptomatic-no-malignancy.json");
    let hook = hook.to_str().unwrap();
    // An unknown configuration key (file and environment), a missing config file.
    let cfg = write(dir.path(), "typo.toml", "max_body_byte = 10\n");
    assert_code(
        &run(&["evaluate", "--config", &cfg, hook], &[]),
        3,
        "max_body_byte",
    );
    assert_code(
        &run(&["evaluate", hook], &[("VCF_CDS_LOG_FORMAT", "xml")]),
        3,
        "",
    );
    assert_code(
        &run(&["serve", "--config", "missing.toml"], &[]),
        3,
        "does not exist",
    );
    // serve refuses an unauthenticated non-loopback address, and an invalid audit store.
    assert_code(
        &run(&["serve", "--listen", "0.0.0.0:0"], &[]),
        3,
        "refusing to start",
    );
    assert_code(
        &run(
            &["serve", "--listen", "127.0.0.1:0"],
            &[("VCF_CDS_AUDIT_DB", "mysql://nope")],
        ),
        3,
        "",
    );
    assert_code(
        &run(&["audit", "check"], &[("VCF_CDS_AUDIT_DB", "mysql://nope")]),
        3,
        "",
    );
}

//! `vcf-cds knowledge check`: prints the summary and OK for a valid file, every problem and a
//! non-zero exit code for a broken one.

use std::process::{Command, Output};

const KNOWLEDGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/knowledge/acr-vcf-2022.toml");

fn knowledge_check(file: Option<&std::path::Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcf-cds"));
    cmd.args(["knowledge", "check"]);
    if let Some(f) = file {
        cmd.arg(f);
    }
    cmd.env_remove("VCF_CDS_CONFIG");
    cmd.output().expect("run vcf-cds")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn compiled_in_knowledge_prints_summary_and_ok() {
    let out = knowledge_check(None);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    for needle in [
        "Management of Vertebral Compression Fractures (2022 update)",
        "variants: 9 (4 imaging, 5 treatment)",
        "rating rows: 71",
        "procedures: 17",
        "value sets: 21",
        "value-set exclusions: 3",
        "must be evidenced when present: vcf, malignancy_history",
        "report findings: 13",
        "sourced entries by confidence",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert_eq!(stdout.lines().last(), Some("OK"));
}

#[test]
fn the_repository_file_checks_ok_when_named() {
    let out = knowledge_check(Some(std::path::Path::new(KNOWLEDGE)));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("OK\n"));
}

#[test]
fn broken_file_lists_every_problem_and_exits_non_zero() {
    let original = std::fs::read_to_string(KNOWLEDGE).unwrap();
    let broken = original
        // V1 "CT spine area of interest with IV contrast" is usually not appropriate (3).
        .replacen(
            "{ procedure = \"CT_SPINE_W\", rating = 3, median = 3, category = \"usually-not-appropriate\"",
            "{ procedure = \"CT_SPINE_W\", rating = 8, median = 8, category = \"usually-not-appropriate\"",
            1,
        )
        .replacen("code = \"30679-5\"", "code = \"30679-4\"", 1)
        .replacen("procedure = \"PVA\", rating = 3", "procedure = \"KYPHO\", rating = 3", 1);
    assert_ne!(broken, original);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, broken).unwrap();
    let out = knowledge_check(Some(&path));
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(!text(&out.stdout).contains("OK"));
    for needle in [
        "failed validation (3 problems)",
        "variant V1: rating of CT_SPINE_W: rating 8 does not belong to category \"Usually not appropriate\"",
        "LOINC code \"30679-4\" fails the mod-10 check digit",
        "variant V5: rating of KYPHO: unknown procedure",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[test]
fn unparsable_or_missing_file_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "schema_version = 1\n").unwrap();
    let out = knowledge_check(Some(&path));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not valid TOML for the schema"));
    let out = knowledge_check(Some(&dir.path().join("missing.toml")));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read knowledge file"));
}

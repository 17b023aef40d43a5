//! The documentation stays true to the code where a machine can tell: every configuration key
//! is in the table of `docs/configuration.md`, and every relative link of the README and of
//! `docs/` points to a file of the repository.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_configuration_key_is_documented() {
    let doc = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let defaults = serde_json::to_value(vcf_cds::configuration::Settings::default()).unwrap();
    // Secrets are left out of serialization: named here.
    let secrets = ["admin_token".to_owned(), "audit_pseudonym_key".to_owned()];
    let keys: Vec<&String> = defaults
        .as_object()
        .unwrap()
        .keys()
        .chain(secrets.iter())
        .collect();
    assert!(keys.len() > 20, "{keys:?}");
    let missing: Vec<&&String> = keys
        .iter()
        .filter(|k| !doc.contains(&format!("| `{k}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
}

/// `](target)` links of a markdown text that are not URLs or in-page anchors.
fn relative_links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|t| !t.contains("://") && !t.starts_with('#') && !t.starts_with("mailto:"))
        .map(|t| t.split('#').next().unwrap().to_owned())
        .collect()
}

#[test]
fn relative_links_point_to_files_of_the_repository() {
    let mut docs: Vec<PathBuf> = vec![repo().join("README.md")];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    let mut broken = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let dir = doc.parent().unwrap_or(Path::new("."));
        for link in relative_links(&text) {
            if !dir.join(&link).exists() {
                broken.push(format!("{}: {link}", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

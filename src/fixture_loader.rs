//! `vcf-cds fixtures load`: puts FHIR test patients (the collection Bundles of
//! `fixtures/patients/`) into a FHIR server, so that the `hooks/` examples can be sent without
//! prefetch and the service fetches the record itself. The docker-compose demo runs it once
//! against its HAPI server.
//!
//! Each file becomes one FHIR `transaction` of `PUT Type/id` entries: the fixture ids are kept
//! (the hook examples name them) and a second run updates instead of duplicating.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// What was loaded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub files: usize,
    pub resources: usize,
}

/// The `transaction` Bundle for one fixture Bundle (or single resource), and its entry count.
pub fn transaction(doc: &Value) -> Result<Value, String> {
    let resources: Vec<&Value> = match doc["resourceType"].as_str() {
        Some("Bundle") => doc["entry"]
            .as_array()
            .map(|e| e.iter().map(|e| &e["resource"]).collect())
            .unwrap_or_default(),
        Some(_) => vec![doc],
        None => return Err("not a FHIR resource (no resourceType)".into()),
    };
    let mut entries = Vec::with_capacity(resources.len());
    for r in resources {
        let rt = r["resourceType"]
            .as_str()
            .ok_or("an entry has no resource.resourceType")?;
        let id = r["id"]
            .as_str()
            .ok_or_else(|| format!("a {rt} has no id (fixture ids are kept, so one is needed)"))?;
        entries.push(json!({
            "fullUrl": format!("{rt}/{id}"),
            "resource": r,
            "request": {"method": "PUT", "url": format!("{rt}/{id}")}
        }));
    }
    if entries.is_empty() {
        return Err("no resources".into());
    }
    Ok(json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
}

/// The JSON files named by `paths` (directories: their `*.json` files, sorted).
pub fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
    }
    if out.is_empty() {
        anyhow::bail!("no JSON files to load");
    }
    Ok(out)
}

/// Waits until `GET {base}/metadata` answers 200 (the server may still be starting), for at
/// most `wait`.
async fn wait_until_up(client: &reqwest::Client, base: &Url, wait: Duration) -> anyhow::Result<()> {
    let url = format!("{}/metadata", base.as_str().trim_end_matches('/'));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let last = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{url} did not answer 200 within {} s: {last}",
                wait.as_secs()
            );
        }
        eprintln!("waiting for {url}: {last}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Loads every file into the FHIR server at `base`, one transaction per file; stops at the
/// first failure (naming the file and the server's answer).
pub async fn load(base: &str, paths: &[PathBuf], wait: Duration) -> anyhow::Result<LoadReport> {
    let base = Url::parse(base).map_err(|e| anyhow::anyhow!("--fhir-server {base:?}: {e}"))?;
    if !matches!(base.scheme(), "http" | "https") {
        anyhow::bail!("--fhir-server must be an http(s) URL");
    }
    let files = files(paths)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    if !wait.is_zero() {
        wait_until_up(&client, &base, wait).await?;
    }
    let mut report = LoadReport::default();
    for file in &files {
        report.resources += load_file(&client, &base, file).await?;
        report.files += 1;
    }
    Ok(report)
}

async fn load_file(client: &reqwest::Client, base: &Url, file: &Path) -> anyhow::Result<usize> {
    let name = file.display();
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let tx = transaction(&doc).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let count = tx["entry"].as_array().map_or(0, Vec::len);
    let resp = client
        .post(base.as_str())
        .header("Content-Type", "application/fhir+json")
        .header("Accept", "application/fhir+json")
        .body(tx.to_string())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{name}: POST {base}: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "{name}: the FHIR server answered HTTP {status}: {}",
            body.chars().take(500).collect::<String>()
        );
    }
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let answered = answer["entry"].as_array().map_or(0, Vec::len);
    if answer["resourceType"] != "Bundle" || answered != count {
        anyhow::bail!("{name}: expected a transaction-response Bundle with {count} entries");
    }
    for e in answer["entry"].as_array().into_iter().flatten() {
        let st = e["response"]["status"].as_str().unwrap_or("");
        if !(st.starts_with("200") || st.starts_with("201")) {
            anyhow::bail!("{name}: an entry was answered {st:?}");
        }
    }
    println!("{name}: {count} resources");
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_becomes_puts_with_the_fixture_ids() {
        let doc = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1"}},
            {"resource": {"resourceType": "Condition", "id": "c1",
                "subject": {"reference": "Patient/p1"}}}
        ]});
        let tx = transaction(&doc).unwrap();
        assert_eq!(tx["type"], "transaction");
        assert_eq!(tx["entry"][1]["request"]["method"], "PUT");
        assert_eq!(tx["entry"][1]["request"]["url"], "Condition/c1");
        assert_eq!(
            tx["entry"][1]["resource"]["subject"]["reference"],
            "Patient/p1"
        );
    }

    #[test]
    fn resources_without_ids_or_type_are_refused() {
        let no_id = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Patient"}}]});
        assert!(transaction(&no_id).unwrap_err().contains("no id"));
        assert!(transaction(&json!({"id": "x"})).is_err());
        assert!(transaction(&json!({"resourceType": "Bundle", "entry": []})).is_err());
    }
}

//! `GET /openapi.json` against the real routes: every route the application registers (found in
//! the route registrations under `src/`) is described, and every described operation answers
//! on the running server with one of its documented statuses.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

const ADMIN: &str = "openapi-test-admin-token";

/// (METHOD, path) of every `.route("path", web::method()...)` under `src/`.
fn registered_routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let src = std::fs::read_to_string(&p).unwrap();
            let mut rest = src.as_str();
            while let Some(at) = rest.find("route(") {
                rest = &rest[at + "route(".len()..];
                let trimmed = rest.trim_start();
                let Some(lit) = trimmed.strip_prefix('"') else {
                    continue;
                };
                let path = &lit[..lit.find('"').unwrap()];
                let after = &lit[path.len()..];
                let method = after
                    .find("web::")
                    .map(|i| &after[i + 5..])
                    .and_then(|m| m.split_once("()"))
                    .map(|(m, _)| m.to_ascii_uppercase())
                    .unwrap_or_else(|| panic!("{}: route {path} has no method", p.display()));
                out.insert((method, path.to_owned()));
            }
        }
    }
    out
}

fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn check_refs(doc: &Value, v: &Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                assert!(resolve(doc, r).is_some(), "dangling $ref {r}");
            }
            o.values().for_each(|x| check_refs(doc, x));
        }
        Value::Array(a) => a.iter().for_each(|x| check_refs(doc, x)),
        _ => {}
    }
}

#[tokio::test]
async fn every_route_is_described_and_every_described_operation_answers() {
    let app = spawn_app_with(|s| s.admin_token = Some(ADMIN.into())).await;
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["servers"][0]["url"], "/",
        "no public_base_url: the document's origin"
    );
    check_refs(&doc, &doc);

    let routes = registered_routes();
    assert!(routes.len() >= 10, "route scan found {routes:?}");
    let documented = described(&doc);
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&routes).collect();
    assert!(
        phantom.is_empty(),
        "described but not registered: {phantom:?}"
    );

    let hook = read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/v1-new-symptomatic-no-malignancy.json"),
    );
    let mut ids = BTreeSet::new();
    for (method, path) in &documented {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        let op_id = op["operationId"].as_str().expect("operationId");
        assert!(
            ids.insert(op_id.to_owned()),
            "duplicate operationId {op_id}"
        );
        let url = format!(
            "{}{}",
            app.address,
            path.replace("{id}", "vcf-order-select")
        );
        let req = match method.as_str() {
            "GET" => app.client.get(&url),
            "POST" if path.ends_with("/feedback") => app.client.post(&url).json(&json!({})),
            "POST" => app.client.post(&url).json(&hook),
            other => panic!("unexpected method {other}"),
        };
        let resp = req.bearer_auth(ADMIN).send().await.unwrap();
        let status = resp.status().as_u16().to_string();
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("no such endpoint"),
            "{method} {path} is described but not served"
        );
        assert!(
            op["responses"].get(&status).is_some(),
            "{method} {path} answered {status}, which is not documented: {body}"
        );
    }
    // The main operations answer their success status.
    for (method, path, url) in [
        (
            "post",
            "/cds-services/{id}",
            "/cds-services/vcf-order-select",
        ),
        ("get", "/audit/api/summary", "/audit/api/summary"),
    ] {
        let req = if method == "post" {
            app.client.post(format!("{}{url}", app.address)).json(&hook)
        } else {
            app.client.get(format!("{}{url}", app.address))
        };
        let r = req.bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(r.status(), 200, "{method} {path}");
    }
}

#[tokio::test]
async fn servers_names_the_public_base_url() {
    let app =
        spawn_app_with(|s| s.public_base_url = Some("https://cds.example.org/vcf/".into())).await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["servers"][0]["url"], "https://cds.example.org/vcf");
}

//! A small in-memory FHIR R4 server on loopback standing in for the compose demo's HAPI: it
//! accepts `transaction` Bundles of PUTs (what `vcf-cds fixtures load` sends), reads by id, and
//! answers the searches of the service's prefetch templates (`patient`, token `code` and
//! `category`, `_sort=-date`, `_count`). A search parameter it does not implement is answered
//! 400, so a template change cannot silently pass against a stub that ignores it.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Store {
    /// "Type/id" -> resource.
    resources: Mutex<BTreeMap<String, Value>>,
    searches: Mutex<Vec<String>>,
}

pub struct FhirStore {
    /// Base URL, e.g. `http://127.0.0.1:4321/fhir`.
    pub base: String,
    store: Arc<Store>,
}

impl FhirStore {
    pub async fn start() -> FhirStore {
        let store = Arc::new(Store::default());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::from(store.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(handle))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        FhirStore {
            base: format!("http://127.0.0.1:{port}/fhir"),
            store,
        }
    }

    /// Every stored resource, keyed "Type/id".
    pub fn resources(&self) -> BTreeMap<String, Value> {
        self.store.resources.lock().unwrap().clone()
    }

    /// The searches and reads received (path and query).
    pub fn searches(&self) -> Vec<String> {
        self.store.searches.lock().unwrap().clone()
    }
}

fn fhir(status: actix_web::http::StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/fhir+json")
        .body(body.to_string())
}

fn outcome(status: actix_web::http::StatusCode, msg: &str) -> HttpResponse {
    fhir(
        status,
        json!({"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "processing", "diagnostics": msg}]}),
    )
}

async fn handle(req: HttpRequest, body: web::Bytes, store: web::Data<Store>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Some(rest) = req.path().strip_prefix("/fhir") else {
        return outcome(StatusCode::NOT_FOUND, "not under /fhir");
    };
    let parts: Vec<&str> = rest
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match (req.method().as_str(), parts.as_slice()) {
        ("GET", ["metadata"]) => fhir(
            StatusCode::OK,
            json!({"resourceType": "CapabilityStatement", "status": "active",
                   "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"]}),
        ),
        ("POST", []) => transaction(&store, &body),
        ("GET", [rt, id]) => {
            store.searches.lock().unwrap().push(req.path().to_owned());
            match store.resources.lock().unwrap().get(&format!("{rt}/{id}")) {
                Some(r) => fhir(StatusCode::OK, r.clone()),
                None => outcome(StatusCode::NOT_FOUND, "no such resource"),
            }
        }
        ("GET", [rt]) => {
            store
                .searches
                .lock()
                .unwrap()
                .push(format!("{}?{}", req.path(), req.query_string()));
            search(&store, rt, req.query_string())
        }
        _ => outcome(StatusCode::BAD_REQUEST, "not supported by the stub"),
    }
}

fn transaction(store: &Store, body: &[u8]) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Ok(tx) = serde_json::from_slice::<Value>(body) else {
        return outcome(StatusCode::BAD_REQUEST, "not JSON");
    };
    if tx["resourceType"] != "Bundle" || tx["type"] != "transaction" {
        return outcome(StatusCode::BAD_REQUEST, "not a transaction Bundle");
    }
    let mut resources = store.resources.lock().unwrap();
    let mut answers = Vec::new();
    for e in tx["entry"].as_array().into_iter().flatten() {
        let r = &e["resource"];
        let key = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        if e["request"]["method"] != "PUT" || e["request"]["url"] != key.as_str() {
            return outcome(StatusCode::BAD_REQUEST, "only PUT Type/id entries");
        }
        let status = if resources.insert(key.clone(), r.clone()).is_some() {
            "200 OK"
        } else {
            "201 Created"
        };
        answers
            .push(json!({"response": {"status": status, "location": format!("{key}/_history/1")}}));
    }
    fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "transaction-response", "entry": answers}),
    )
}

/// `system|code` tokens (comma = OR) matched against the codings of `concepts`.
fn token_matches(tokens: &str, concepts: &[&Value]) -> bool {
    tokens.split(',').any(|t| {
        let (system, code) = t.split_once('|').unwrap_or(("", t));
        concepts.iter().any(|cc| {
            cc["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["code"] == code && (system.is_empty() || c["system"] == system))
        })
    })
}

fn search(store: &Store, rt: &str, query: &str) -> HttpResponse {
    use actix_web::http::StatusCode;
    let resources = store.resources.lock().unwrap();
    let mut hits: Vec<Value> = resources
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{rt}/")))
        .map(|(_, v)| v.clone())
        .collect();
    let mut sort_by_date_desc = false;
    let mut count = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "patient" => {
                let want = format!("Patient/{value}");
                hits.retain(|r| r["subject"]["reference"] == want.as_str());
            }
            "code" => hits.retain(|r| token_matches(&value, &[&r["code"]])),
            "category" => hits.retain(|r| {
                let cats: Vec<&Value> = r["category"].as_array().into_iter().flatten().collect();
                token_matches(&value, &cats)
            }),
            "_sort" if value == "-date" => sort_by_date_desc = true,
            "_count" => count = value.parse::<usize>().ok(),
            other => {
                return outcome(
                    StatusCode::BAD_REQUEST,
                    &format!("search parameter {other} is not implemented by the stub"),
                );
            }
        }
    }
    if sort_by_date_desc {
        let date = |r: &Value| {
            r["effectiveDateTime"]
                .as_str()
                .or(r["issued"].as_str())
                .unwrap_or("")
                .to_owned()
        };
        hits.sort_by_key(|r| std::cmp::Reverse(date(r)));
    }
    if let Some(n) = count {
        hits.truncate(n);
    }
    let entries: Vec<Value> = hits
        .into_iter()
        .map(|r| json!({"resource": r, "search": {"mode": "match"}}))
        .collect();
    fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
    )
}

//! A loopback FHIR server stub for `scripts/bench-http.sh` (issue 12, fetch-mode rows): answers
//! the service's five prefetch queries (`Patient/{id}`, `Condition?…`, `Procedure?…`,
//! `Observation?…`, `DiagnosticReport?…`) with the prefetch values of a CDS Hooks request file,
//! so that a fetch-mode call sees the same patient record as the prefetch call. Anything else
//! is a 404 OperationOutcome.
//!
//! `cargo run --release --example fhir_stub -- --listen 127.0.0.1:8082 --hook hooks/v1-new-symptomatic-no-malignancy.json`
//! serves `http://127.0.0.1:8082/fhir/…`.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use clap::Parser;
use std::collections::HashMap;

#[derive(Parser)]
struct Args {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8082")]
    listen: String,
    /// CDS Hooks request whose `prefetch` members are served.
    #[arg(long, default_value = "hooks/v1-new-symptomatic-no-malignancy.json")]
    hook: std::path::PathBuf,
}

/// Resource type of the first path segment after `/fhir/` -> prefetch key.
const ROUTES: &[(&str, &str)] = &[
    ("Patient", "patient"),
    ("Condition", "conditions"),
    ("Procedure", "procedures"),
    ("Observation", "observations"),
    ("DiagnosticReport", "reports"),
];

const NOT_FOUND: &str =
    r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}"#;

async fn serve(req: HttpRequest, bodies: web::Data<HashMap<String, String>>) -> HttpResponse {
    let rest = req.path().strip_prefix("/fhir/").unwrap_or("");
    let resource_type = rest.split(['/', '?']).next().unwrap_or("");
    match bodies.get(resource_type) {
        Some(body) => HttpResponse::Ok()
            .content_type("application/fhir+json")
            .body(body.clone()),
        None => HttpResponse::NotFound()
            .content_type("application/fhir+json")
            .body(NOT_FOUND),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let hook: serde_json::Value = serde_json::from_slice(&std::fs::read(&args.hook)?)?;
    let mut bodies = HashMap::new();
    for (resource_type, key) in ROUTES {
        let value = &hook["prefetch"][key];
        if !value.is_null() {
            bodies.insert((*resource_type).to_owned(), value.to_string());
        }
    }
    let bodies = web::Data::new(bodies);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(bodies.clone())
                .default_service(web::to(serve))
        })
        // Two workers: the stub shares the machine with the service and the load generator.
        .workers(2)
        .bind(&args.listen)?
        .run()
        .await
    })?;
    Ok(())
}

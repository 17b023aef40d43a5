//! The framework's own limit for this payload, for `scripts/bench-http.sh` (issue 12): a
//! minimal actix-web server that reads the body, parses it with serde_json into a `Value` and
//! returns a fixed small card whose uuid is the request's `hookInstance`. No validation, no
//! engine, no audit. `GET /cds-services` returns a fixed small discovery document.
//!
//! `cargo run --release --example baseline_echo -- --listen 127.0.0.1:8081`

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
}

async fn call(body: web::Bytes) -> HttpResponse {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let uuid = v
        .get("hookInstance")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let card = serde_json::json!({
        "cards": [{
            "uuid": uuid,
            "summary": "Baseline: no evaluation",
            "indicator": "info",
            "source": {"label": "baseline_echo"}
        }]
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(card.to_string())
}

async fn discovery() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(
        r#"{"services":[{"hook":"order-select","id":"vcf-order-select","title":"baseline","description":"baseline"}]}"#,
    )
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    HttpServer::new(|| {
        App::new()
            // The request bodies of the benchmark are ~10 KB; actix's default limit is 256 KB.
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/cds-services", web::get().to(discovery))
            .route("/cds-services/{id}", web::post().to(call))
    })
    .bind(&args.listen)?
    .run()
    .await
}

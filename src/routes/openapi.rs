//! `GET /openapi.json`: the OpenAPI 3.1 description of every HTTP endpoint, kept as a JSON
//! document beside this file (`openapi.json`) and served with this deployment's base URL as its
//! server (its origin when `public_base_url` is unset). `tests/api/openapi.rs` checks it against the routes the application really
//! registers, in both directions.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use std::sync::OnceLock;

const DOCUMENT: &str = include_str!("openapi.json");

/// The document as shipped (without `servers`).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(DOCUMENT).expect("src/routes/openapi.json is JSON"))
}

pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    let mut doc = document().clone();
    // Behind a proxy the public URL is configured; otherwise the document's own origin ("/").
    let server = match &state.settings.public_base_url {
        Some(_) => state.settings.base_url(),
        None => "/".to_owned(),
    };
    doc["servers"] = json!([{ "url": server }]);
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn document_is_openapi_3_1() {
        let doc = super::document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
    }
}

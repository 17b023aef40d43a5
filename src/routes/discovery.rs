//! `GET /cds-services`.

use crate::state::AppState;
use actix_web::{HttpResponse, web};

pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.discovery.clone())
}

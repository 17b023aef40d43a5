//! Compliance dashboard at `/audit/`: a static page (HTML, JS, CSS compiled into the binary, no
//! CDN) that reads `/audit/api/*` with the admin token. The page itself holds no data; it asks
//! for the token (kept in the tab's sessionStorage) or takes it from the URL fragment
//! (`/audit/#token=…`, never sent to the server, removed from the address bar at once). Off
//! (404) without `admin_token`, like the API. Filters are URL query parameters
//! (`/audit/?variant=V1&from=2026-11-01`), so a view can be bookmarked or shared.

use crate::routes::audit_api::check_admin_configured;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

const INDEX: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str, cache: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, cache))
        .body(body)
}

async fn index(state: web::Data<AppState>) -> Result<HttpResponse, crate::error::ApiError> {
    check_admin_configured(&state)?;
    Ok(page("text/html; charset=utf-8", INDEX, "no-store"))
}

async fn redirect(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, crate::error::ApiError> {
    check_admin_configured(&state)?;
    let q = req.query_string();
    let to = if q.is_empty() {
        "/audit/".to_owned()
    } else {
        format!("/audit/?{q}")
    };
    Ok(HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, to))
        .finish())
}

async fn app_js(state: web::Data<AppState>) -> Result<HttpResponse, crate::error::ApiError> {
    check_admin_configured(&state)?;
    Ok(page("text/javascript; charset=utf-8", APP_JS, "no-cache"))
}

async fn app_css(state: web::Data<AppState>) -> Result<HttpResponse, crate::error::ApiError> {
    check_admin_configured(&state)?;
    Ok(page("text/css; charset=utf-8", APP_CSS, "no-cache"))
}

/// Registers the routes (called from `startup.rs`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(redirect))
        .route("/audit/", web::get().to(index))
        .route("/audit/assets/app.js", web::get().to(app_js))
        .route("/audit/assets/app.css", web::get().to(app_css));
}

//! The actix middleware applying [`Authenticator`] to the CDS endpoints.
//!
//! Wire it with `App::new().app_data(web::Data::new(authenticator)).wrap(from_fn(require_auth))`.
//! Which calls are checked ([`requires_auth`]): everything under `/cds-services` except
//! `OPTIONS` (CORS preflight) and, when `open_discovery` is on, `GET /cds-services`. The audience
//! is `Settings::base_url()` + the request path. On success the [`VerifiedClient`] is in the
//! request extensions (`req.extensions().get::<VerifiedClient>()`).

use super::{AuthFailure, Authenticator, VerifiedClient};
use crate::error::ApiError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};

/// True when a call must carry a valid JWT (in JWT mode).
pub fn requires_auth(method: &Method, path: &str, open_discovery: bool) -> bool {
    if method == Method::OPTIONS {
        return false;
    }
    let path = normalize_path(path);
    let under_services = path == "/cds-services" || path.starts_with("/cds-services/");
    if !under_services {
        return false;
    }
    let discovery = path.trim_end_matches('/') == "/cds-services";
    !(discovery && open_discovery && (method == Method::GET || method == Method::HEAD))
}

/// Percent-decodes and collapses repeated slashes, so `//cds-services` or `/%63ds-services`
/// cannot slip past the check if a later layer normalizes paths.
fn normalize_path(path: &str) -> String {
    let decoded = percent_decode(path);
    let mut out = String::with_capacity(decoded.len());
    let mut prev_slash = false;
    for c in decoded.chars() {
        if c == '/' {
            if !prev_slash {
                out.push(c);
            }
            prev_slash = true;
        } else {
            out.push(c);
            prev_slash = false;
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    // Invalid escapes stay as they are; invalid UTF-8 becomes U+FFFD.
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `actix_web::middleware::from_fn(require_auth)`.
pub async fn require_auth<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(auth) = req.app_data::<web::Data<Authenticator>>().cloned() else {
        tracing::error!("auth middleware installed without an Authenticator: refusing the call");
        let err = ApiError::internal("authentication is not configured");
        return Ok(req
            .into_response(err.error_response())
            .map_into_right_body());
    };
    let needs = requires_auth(req.method(), req.path(), auth.open_discovery());
    if !needs {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let audience = format!("{}{}", auth.base_url(), req.path());
    let headers: Vec<_> = req.headers().get_all(AUTHORIZATION).collect();
    let result = match headers.as_slice() {
        [] => auth.verify(None, &audience).await,
        [one] => match one.to_str() {
            Ok(v) => auth.verify(Some(v), &audience).await,
            Err(_) => auth.verify(Some("\u{0}"), &audience).await,
        },
        _ => {
            if auth.mode() == super::AuthMode::Jwt {
                tracing::debug!(reason = %AuthFailure::MultipleHeaders, "authentication failed");
                auth.count_failure(&AuthFailure::MultipleHeaders);
                Err(AuthFailure::MultipleHeaders.to_api_error())
            } else {
                Ok(VerifiedClient::Anonymous)
            }
        }
    };
    match result {
        Ok(client) => {
            req.extensions_mut().insert(client);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(err) => {
            tracing::info!(method = %req.method(), path = %req.path(), "authentication failed: 401");
            Ok(req
                .into_response(err.error_response())
                .map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_calls_need_auth() {
        let post = Method::POST;
        let get = Method::GET;
        assert!(requires_auth(&post, "/cds-services/vcf-order-select", true));
        assert!(requires_auth(
            &post,
            "/cds-services/vcf-order-select/feedback",
            true
        ));
        assert!(requires_auth(&post, "//cds-services/x", true));
        assert!(requires_auth(&post, "/%63ds-services/x", true));
        assert!(requires_auth(&post, "/cds-services", true));
        assert!(!requires_auth(&get, "/cds-services", true));
        assert!(!requires_auth(&get, "/cds-services/", true));
        assert!(requires_auth(&get, "/cds-services", false));
        assert!(requires_auth(&get, "/cds-services/x", true));
        assert!(!requires_auth(&Method::OPTIONS, "/cds-services/x", false));
        assert!(!requires_auth(&get, "/healthz", false));
        assert!(!requires_auth(&get, "/readyz", false));
        assert!(!requires_auth(&post, "/cds-services-other", false));
    }
}

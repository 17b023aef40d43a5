//! `X-Request-Id`: an incoming id is honoured when it is a plain token (1-128 characters of
//! letters, digits and `-_.:`; anything else could forge log lines), otherwise a UUID is
//! generated. The id is echoed in the response, carried by the `request` span (so the access
//! log line and every event of the call, including the `hook` span's, name it) and available
//! to handlers as [`RequestId`].

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

/// The id of the current request (request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id set by the middleware for `req` ("-" outside it, e.g. in unit tests).
    pub fn of(req: &HttpRequest) -> String {
        req.extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| "-".into())
    }
}

/// Whether a client-supplied id is safe to keep.
pub fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let value = HeaderValue::from_str(&id).expect("checked or generated id is a header value");
    match next.call(req).instrument(span).await {
        Ok(mut res) => {
            res.headers_mut()
                .insert(HeaderName::from_static(HEADER), value);
            Ok(res)
        }
        // An error from further in is rendered by actix later: wrap it so it carries the id.
        Err(e) => Err(WithRequestId(e, value).into()),
    }
}

/// An error whose rendered response carries the request id.
#[derive(Debug)]
struct WithRequestId(actix_web::Error, HeaderValue);

impl std::fmt::Display for WithRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl actix_web::ResponseError for WithRequestId {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.0.as_response_error().status_code()
    }

    fn error_response(&self) -> actix_web::HttpResponse<BoxBody> {
        let mut res = self.0.error_response();
        res.headers_mut()
            .insert(HeaderName::from_static(HEADER), self.1.clone());
        res
    }
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_plain_tokens_are_kept() {
        assert!(acceptable("abc-123_X.y:z"));
        assert!(acceptable(&"a".repeat(128)));
        assert!(!acceptable(""));
        assert!(!acceptable(&"a".repeat(129)));
        assert!(!acceptable("a b"));
        assert!(!acceptable("a\nb"));
        assert!(!acceptable("{\"x\":1}"));
    }
}

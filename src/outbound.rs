//! Outbound HTTP, one place for both callers (FHIR fetch and JWK Set fetch): the client
//! builder and the size-limited body reader. Which URLs may be called at all is decided in
//! [`crate::trust`].

use std::time::Duration;

/// The HTTP client for every outbound call: no redirects (a redirect could lead a bearer token
/// or a key fetch to another host), a total timeout and a connect timeout, no cookies. Bodies
/// must still be read with [`read_limited`].
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("vcf-cds/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("timed out")]
    Timeout,
    /// The transport failed mid-body (the message never carries the URL).
    #[error("could not read the response: {0}")]
    Transport(String),
}

impl ReadError {
    /// Maps a reqwest error without its URL (a URL may carry a query worth keeping out of logs).
    pub fn from_reqwest(e: reqwest::Error) -> ReadError {
        if e.is_timeout() {
            ReadError::Timeout
        } else {
            ReadError::Transport(e.without_url().to_string())
        }
    }
}

/// Reads a response body, failing once it exceeds `max_bytes` (checked against
/// `Content-Length` first, then while streaming, so an over-long body is never held whole).
pub async fn read_limited(
    mut resp: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, ReadError> {
    if let Some(len) = resp.content_length()
        && len > max_bytes as u64
    {
        return Err(ReadError::TooLarge(max_bytes));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::from_reqwest)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(ReadError::TooLarge(max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

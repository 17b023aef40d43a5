//! FHIR server fallback: fetches prefetch templates the client did not satisfy.
//!
//! Only from a trusted `fhirServer` (checked by the caller), with the client's bearer token,
//! under a per-call timeout and an overall deadline, following searchset `next` links up to a
//! bound and only while they stay under the same base URL. Redirects are never followed (a
//! redirect could lead the token to another host). The token is never logged.

use crate::configuration::Settings;
use crate::outbound::{self, ReadError};
use crate::trust::is_under;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;
use vcf_engine::fhir::{AnyResource, OperationOutcome};

/// Reusable HTTP client for FHIR fetches.
#[derive(Clone)]
pub struct FhirClient {
    /// Used where a thread's own client cannot be built (never expected: same settings).
    http: reqwest::Client,
    timeout: Duration,
    /// Tells this client's thread-local copies from another `FhirClient`'s (tests build many).
    id: u64,
    max_pages: u32,
    max_bytes: usize,
}

thread_local! {
    /// Each thread's own HTTP client (issue 12). A pooled connection's task runs on the runtime
    /// of the thread that opened it; with one client shared by the two actix workers, half of
    /// the fetches used a connection owned by the other worker, and every request and answer
    /// crossed threads (an eventfd write and a wake-up each way). With a client per thread,
    /// each worker's connections stay on its own runtime.
    static THREAD_CLIENT: std::cell::RefCell<Option<(u64, reqwest::Client)>> =
        const { std::cell::RefCell::new(None) };
}

/// Where to fetch from and with which token.
#[derive(Clone)]
pub struct FetchTarget {
    /// Base URL, always ending in `/` so that relative templates resolve under it.
    pub base: Url,
    pub token: Option<String>,
}

impl std::fmt::Debug for FetchTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchTarget")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Result of fetching one template.
#[derive(Debug)]
pub enum Fetched {
    /// Resources found (all pages up to the bound); `truncated` when more pages were left.
    Resources {
        resources: Vec<AnyResource>,
        truncated: bool,
    },
    /// A read that found nothing (404 / 410).
    NotFound,
    /// The server answered with an OperationOutcome (error).
    Outcome(OperationOutcome),
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answered a redirect, which is not followed")]
    Redirect,
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The detail names where and what kind of problem, never a value from the response: this
    /// text reaches cards and the audit trail (issue 13).
    #[error("response is not valid FHIR JSON: {0}")]
    Invalid(String),
}

/// A resource of a FHIR response that does not parse. The parser's message can quote the
/// offending value (a name, a date), so only the element's JSON path is kept.
fn invalid_resource(e: vcf_engine::fhir::InputError) -> FetchError {
    if e.path.is_empty() {
        FetchError::Invalid("not a FHIR resource".into())
    } else {
        FetchError::Invalid(format!("invalid value at {}", e.path))
    }
}

impl FetchError {
    /// The error without any detail taken from the response (security, issue 5): parse errors
    /// can quote resource content (names, dates), so logs get only this.
    pub fn redacted(&self) -> String {
        match self {
            FetchError::Invalid(_) => "response is not valid FHIR JSON".into(),
            FetchError::Connect(_) => "could not connect".into(),
            other => other.to_string(),
        }
    }
}

impl FhirClient {
    pub fn new(settings: &Settings) -> anyhow::Result<FhirClient> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let timeout = Duration::from_millis(settings.fhir_timeout_ms);
        Ok(FhirClient {
            http: outbound::client(timeout)?,
            timeout,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            max_pages: settings.fhir_max_pages.max(1),
            max_bytes: settings.fhir_max_response_bytes,
        })
    }

    /// This thread's client (built on first use, same settings as `http`).
    fn thread_client(&self) -> reqwest::Client {
        THREAD_CLIENT.with(|cell| {
            let mut cell = cell.borrow_mut();
            match &*cell {
                Some((id, client)) if *id == self.id => client.clone(),
                _ => {
                    let client =
                        outbound::client(self.timeout).unwrap_or_else(|_| self.http.clone());
                    *cell = Some((self.id, client.clone()));
                    client
                }
            }
        })
    }

    /// Resolves `relative` (a prefetch template with its tokens replaced) against the base and
    /// fetches it, following `next` links up to the page bound, all before `deadline`.
    pub async fn fetch(
        &self,
        target: &FetchTarget,
        relative: &str,
        deadline: Instant,
    ) -> Result<Fetched, FetchError> {
        let url = target
            .base
            .join(relative)
            .map_err(|e| FetchError::Invalid(e.to_string()))?;
        self.fetch_url(target, url, deadline, self.max_pages).await
    }

    /// Fetches the remaining pages of a searchset whose `next` link the client passed on.
    pub async fn fetch_next_pages(
        &self,
        target: &FetchTarget,
        next: &str,
        deadline: Instant,
    ) -> Result<Fetched, FetchError> {
        let url = Url::parse(next).map_err(|e| FetchError::Invalid(e.to_string()))?;
        if !is_under(&target.base, &url) {
            return Ok(Fetched::Resources {
                resources: vec![],
                truncated: true,
            });
        }
        self.fetch_url(
            target,
            url,
            deadline,
            self.max_pages.saturating_sub(1).max(1),
        )
        .await
    }

    async fn fetch_url(
        &self,
        target: &FetchTarget,
        first: Url,
        deadline: Instant,
        max_pages: u32,
    ) -> Result<Fetched, FetchError> {
        let mut resources = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            if pages == max_pages {
                return Ok(Fetched::Resources {
                    resources,
                    truncated: true,
                });
            }
            pages += 1;
            let body = match tokio::time::timeout_at(deadline, self.get(target, url)).await {
                Err(_) => return Err(FetchError::Timeout),
                Ok(r) => r?,
            };
            let Some(body) = body else {
                return Ok(Fetched::NotFound);
            };
            let text =
                std::str::from_utf8(&body).map_err(|_| FetchError::Invalid("not UTF-8".into()))?;
            match AnyResource::parse(text, "").map_err(invalid_resource)? {
                AnyResource::OperationOutcome(oo) => return Ok(Fetched::Outcome(oo)),
                AnyResource::Bundle(bundle) => {
                    for entry in &bundle.entry {
                        let Some(raw) = &entry.resource else { continue };
                        match AnyResource::parse(raw.get(), "").map_err(invalid_resource)? {
                            AnyResource::OperationOutcome(_) | AnyResource::Bundle(_) => {}
                            r => resources.push(r),
                        }
                    }
                    next = bundle
                        .next_link()
                        .and_then(|n| Url::parse(n).ok())
                        .filter(|n| is_under(&target.base, n));
                    if bundle.next_link().is_some() && next.is_none() {
                        return Ok(Fetched::Resources {
                            resources,
                            truncated: true,
                        });
                    }
                }
                r => resources.push(r),
            }
        }
        Ok(Fetched::Resources {
            resources,
            truncated: false,
        })
    }

    /// One GET; `Ok(None)` for 404/410.
    async fn get(&self, target: &FetchTarget, url: Url) -> Result<Option<Vec<u8>>, FetchError> {
        let mut req = self.thread_client().get(url).header(
            ACCEPT,
            HeaderValue::from_static("application/fhir+json, application/json"),
        );
        if let Some(token) = &target.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| FetchError::Invalid("access token is not a valid header".into()))?;
            req = req.header(AUTHORIZATION, value);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                FetchError::Timeout
            } else {
                // reqwest errors carry the URL but never headers; the URL holds no token.
                FetchError::Connect(e.without_url().to_string())
            }
        })?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect);
        }
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Ok(None);
        }
        let is_error = !status.is_success();
        let body = outbound::read_limited(resp, self.max_bytes)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge(n) => FetchError::TooLarge(n),
                ReadError::Timeout => FetchError::Timeout,
                ReadError::Transport(e) => FetchError::Connect(e),
            })?;
        if is_error {
            // An error answer may still be an OperationOutcome worth reporting.
            if let Ok(text) = std::str::from_utf8(&body)
                && let Ok(AnyResource::OperationOutcome(_)) = AnyResource::parse(text, "")
            {
                return Ok(Some(body));
            }
            return Err(FetchError::Status(status.as_u16()));
        }
        Ok(Some(body))
    }
}

/// Normalizes a FHIR base URL so that relative templates resolve under it.
pub fn normalize_base(url: &Url) -> Url {
    let mut u = url.clone();
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// Replaces the prefetch tokens this service uses.
pub fn resolve_template(template: &str, patient_id: &str, encounter_id: Option<&str>) -> String {
    let mut s = template.replace("{{context.patientId}}", patient_id);
    if let Some(e) = encounter_id {
        s = s.replace("{{context.encounterId}}", e);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_containment() {
        let base = normalize_base(&Url::parse("https://fhir.example.org/r4").unwrap());
        assert_eq!(base.as_str(), "https://fhir.example.org/r4/");
        let ok = Url::parse("https://fhir.example.org/r4/Condition?page=2").unwrap();
        assert!(is_under(&base, &ok));
        for bad in [
            "https://fhir.example.org/r5/Condition",
            "https://evil.example.org/r4/Condition",
            "http://fhir.example.org/r4/Condition",
            "https://fhir.example.org:8443/r4/Condition",
            "https://user@fhir.example.org/r4/Condition",
        ] {
            assert!(!is_under(&base, &Url::parse(bad).unwrap()), "{bad}");
        }
        assert_eq!(
            base.join("Condition?patient=p1").unwrap().as_str(),
            "https://fhir.example.org/r4/Condition?patient=p1"
        );
    }

    #[test]
    fn tokens_are_replaced() {
        assert_eq!(
            resolve_template("Condition?patient={{context.patientId}}", "p-1", None),
            "Condition?patient=p-1"
        );
    }
}

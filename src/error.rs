//! Every error the HTTP layer returns is a FHIR OperationOutcome in JSON: never HTML, never an
//! empty body. Client mistakes are 4xx and name the offending JSON path in `expression`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use vcf_engine::fhir::InputError;

/// FHIR `issue-type` codes used by this service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    NotFound,
    NotSupported,
    TooLong,
    Processing,
    Security,
    Login,
    Exception,
    Transient,
    Timeout,
}

impl IssueType {
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::NotFound => "not-found",
            IssueType::NotSupported => "not-supported",
            IssueType::TooLong => "too-long",
            IssueType::Processing => "processing",
            IssueType::Security => "security",
            IssueType::Login => "login",
            IssueType::Exception => "exception",
            IssueType::Transient => "transient",
            IssueType::Timeout => "timeout",
        }
    }
}

/// One OperationOutcome issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub code: IssueType,
    pub diagnostics: String,
    /// JSON path of the element at fault (`context.selections[0]`).
    pub expression: Option<String>,
}

/// An error answer: HTTP status plus OperationOutcome issues.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub issues: Vec<Issue>,
    /// `WWW-Authenticate` value for 401 answers.
    pub www_authenticate: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: IssueType, diagnostics: impl Into<String>) -> Self {
        ApiError {
            status,
            issues: vec![Issue {
                code,
                diagnostics: diagnostics.into(),
                expression: None,
            }],
            www_authenticate: None,
        }
    }

    /// 400 naming the element at fault.
    pub fn bad_request(path: impl Into<String>, diagnostics: impl Into<String>) -> Self {
        let path = path.into();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            issues: vec![Issue {
                code: IssueType::Invalid,
                diagnostics: if path.is_empty() {
                    diagnostics.into()
                } else {
                    format!("{path}: {}", diagnostics.into())
                },
                expression: (!path.is_empty()).then_some(path),
            }],
            www_authenticate: None,
        }
    }

    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, IssueType::NotFound, diagnostics)
    }

    /// 412: data the engine needs could not be obtained (one issue per missing item).
    pub fn precondition_failed(missing: Vec<(String, String)>) -> Self {
        ApiError {
            status: StatusCode::PRECONDITION_FAILED,
            issues: missing
                .into_iter()
                .map(|(expression, diagnostics)| Issue {
                    code: IssueType::Processing,
                    diagnostics,
                    expression: Some(expression),
                })
                .collect(),
            www_authenticate: None,
        }
    }

    pub fn internal(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            diagnostics,
        )
    }

    /// The OperationOutcome body.
    pub fn outcome(&self) -> serde_json::Value {
        let issues: Vec<serde_json::Value> = self
            .issues
            .iter()
            .map(|i| {
                let mut v = json!({
                    "severity": if self.status.is_server_error() { "fatal" } else { "error" },
                    "code": i.code.code(),
                    "diagnostics": i.diagnostics,
                });
                if let Some(e) = &i.expression {
                    v["expression"] = json!([e]);
                }
                v
            })
            .collect();
        json!({ "resourceType": "OperationOutcome", "issue": issues })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text: Vec<&str> = self.issues.iter().map(|i| i.diagnostics.as_str()).collect();
        write!(f, "{} {}", self.status.as_u16(), text.join("; "))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        resp.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        ));
        if let Some(w) = &self.www_authenticate
            && let Ok(v) = HeaderValue::from_str(w)
        {
            resp.insert_header((header::WWW_AUTHENTICATE, v));
        }
        resp.body(self.outcome().to_string())
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::bad_request(e.path, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_the_path() {
        let e = ApiError::bad_request("context.patientId", "required");
        let o = e.outcome();
        assert_eq!(o["resourceType"], "OperationOutcome");
        assert_eq!(o["issue"][0]["code"], "invalid");
        assert_eq!(o["issue"][0]["expression"][0], "context.patientId");
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
    }
}

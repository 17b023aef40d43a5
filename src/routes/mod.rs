//! HTTP routes, one module per endpoint family.

pub mod audit_api;
pub mod body;
pub mod dashboard;
pub mod discovery;
pub mod feedback;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod service;

use crate::cds::discovery::ServiceDef;
use crate::error::ApiError;

/// The service named in the path, or a 404 OperationOutcome.
pub fn service_or_404(id: &str) -> Result<&'static ServiceDef, ApiError> {
    crate::cds::discovery::service(id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no CDS service {:?}; GET /cds-services lists the services",
            id.chars().take(100).collect::<String>()
        ))
    })
}

//! One hook call, end to end: request -> patient record -> evaluation -> response body.
//! Shared by `POST /cds-services/{id}` and `vcf-cds evaluate` so both give the same answer.

use crate::cds::discovery::ServiceDef;
use crate::cds::fetch::{normalize_base, under_base};
use crate::cds::prefetch;
use crate::cds::request::{self, HookRequest};
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::startup::AppState;
use std::time::Duration;
use tracing::Instrument;
use url::Url;
use vcf_engine::evaluate::{Evaluation, EvaluationRequest, PatientRecord};

/// The outcome of a successful call.
pub struct Processed {
    pub request: HookRequest,
    pub evaluation: Evaluation,
    /// The response body.
    pub body: serde_json::Value,
}

/// Whether the service may fetch from `fhir_server`: configured trusted servers, or, in the
/// open loopback mode (no trusted issuers), any loopback server.
pub fn default_trust(settings: &Settings, fhir_server: &str) -> Result<Url, String> {
    let url = Url::parse(fhir_server).map_err(|_| "fhirServer is not a URL".to_owned())?;
    let candidate = normalize_base(&url);
    for trusted in &settings.trusted_fhir_servers {
        if let Ok(t) = Url::parse(trusted)
            && under_base(&normalize_base(&t), &candidate)
        {
            return Ok(url);
        }
    }
    let loopback_host = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if settings.trusted_fhir_servers.is_empty()
        && settings.trusted_issuers.is_empty()
        && settings.listens_on_loopback()
        && loopback_host
    {
        return Ok(url);
    }
    Err(format!(
        "fhirServer {} is not a trusted FHIR server",
        url.origin().ascii_serialization()
    ))
}

/// Runs one hook call for `service`.
pub async fn process(
    state: &AppState,
    service: &ServiceDef,
    body: &[u8],
) -> Result<Processed, ApiError> {
    let request = request::parse(body, service.hook)?;
    let span = tracing::info_span!(
        "hook",
        service = service.id,
        hook_instance = %request.hook_instance,
        orders = request.draft_orders.len(),
    );
    evaluate(state, request).instrument(span).await
}

async fn evaluate(state: &AppState, request: HookRequest) -> Result<Processed, ApiError> {
    let needs_record = request
        .draft_orders
        .iter()
        .any(|o| o.selected && o.service_request.is_some());
    let record = if needs_record {
        let settings = &state.settings;
        let trust = |server: &str| default_trust(settings, server);
        prefetch::gather(
            &request,
            &state.prefetch_templates,
            &state.fhir,
            &trust,
            Duration::from_millis(settings.fhir_deadline_ms),
        )
        .await?
    } else {
        PatientRecord::default()
    };

    let now = time::OffsetDateTime::now_utc();
    let eval_request = EvaluationRequest {
        hook: request.hook,
        hook_instance: &request.hook_instance,
        user_id: &request.user_id,
        patient_id: &request.patient_id,
        encounter_id: request.encounter_id.as_deref(),
        orders: &request.draft_orders,
        record: &record,
        now,
    };
    let evaluation = state.evaluate(&eval_request);
    evaluation
        .response
        .check()
        .map_err(|e| ApiError::internal(format!("the service built an invalid response: {e}")))?;
    let body = serde_json::to_value(&evaluation.response)
        .map_err(|e| ApiError::internal(format!("could not serialize the response: {e}")))?;
    Ok(Processed {
        request,
        evaluation,
        body,
    })
}

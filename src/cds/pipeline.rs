//! One hook call, end to end: request -> patient record -> evaluation -> response body.
//! Shared by `POST /cds-services/{id}` and `vcf-cds evaluate` so both give the same answer.

use crate::audit::HookCallRecord;
use crate::auth::VerifiedClient;
use crate::cds::discovery::ServiceDef;
use crate::cds::prefetch;
use crate::cds::request::{self, HookRequest};
use crate::error::ApiError;
use crate::state::AppState;
use std::time::Duration;
use time::OffsetDateTime;
use tracing::Instrument;
use vcf_engine::evaluate::{Evaluation, EvaluationRequest, IdSource, PatientRecord, RandomIds};

/// The outcome of a successful call.
pub struct Processed {
    pub request: HookRequest,
    pub evaluation: Evaluation,
    /// The response body (`evaluation.response` serialized once, straight to text).
    pub body: String,
}

/// Runs one hook call for `service`.
pub async fn process(
    state: &AppState,
    service: &ServiceDef,
    body: &[u8],
) -> Result<Processed, ApiError> {
    process_for(state, service, body, &VerifiedClient::Anonymous, None, None).await
}

impl Processed {
    /// The audit record of this call, as `service` answered it: the live service and
    /// `vcf-cds audit seed` both record calls through this one function. It takes the request
    /// and evaluation by value (their strings and order records move into the record, no copy
    /// on the hot path) and hands back the response body.
    pub fn into_audit_record(
        self,
        service: &ServiceDef,
        received_at: OffsetDateTime,
        latency_ms: f64,
    ) -> (HookCallRecord, String) {
        let Processed {
            request,
            evaluation,
            body,
        } = self;
        let record = HookCallRecord {
            received_at,
            service_id: service.id.to_owned(),
            hook: request.hook.as_str().to_owned(),
            hook_instance: request.hook_instance,
            user_id: request.user_id,
            patient_id: request.patient_id,
            encounter_id: request.encounter_id,
            fhir_server: request.fhir_server,
            knowledge_version: evaluation.knowledge_version,
            guideline_id: evaluation.guideline_id,
            latency_ms,
            orders: evaluation.orders,
        };
        (record, body)
    }
}

/// The engine's clock and uuid source for one call: `at` is the evaluation time (`None`: the
/// wall clock once the patient record is complete) and `ids` draws card, suggestion and consult
/// uuids. The service uses [`EngineClock::live`]; `vcf-cds audit seed` replays synthetic calls
/// at past times with seeded uuids, so demo data is what the service would have answered.
pub struct EngineClock<'a> {
    pub at: Option<OffsetDateTime>,
    pub ids: &'a mut (dyn IdSource + Send),
}

/// Runs one hook call for `service` on behalf of `client` (whose issuer and tenant decide which
/// FHIR servers are trusted). `request_id` (the HTTP `X-Request-Id`) goes into the `hook` span;
/// FHIR fetches, cards and ratings are counted in `metrics` when given.
pub async fn process_for(
    state: &AppState,
    service: &ServiceDef,
    body: &[u8],
    client: &VerifiedClient,
    request_id: Option<&str>,
    metrics: Option<&crate::metrics::Metrics>,
) -> Result<Processed, ApiError> {
    let clock = EngineClock {
        at: None,
        ids: &mut RandomIds,
    };
    process_at(state, service, body, client, request_id, metrics, clock).await
}

/// [`process_for`] with the engine's clock and uuid source given.
pub async fn process_at(
    state: &AppState,
    service: &ServiceDef,
    body: &[u8],
    client: &VerifiedClient,
    request_id: Option<&str>,
    metrics: Option<&crate::metrics::Metrics>,
    clock: EngineClock<'_>,
) -> Result<Processed, ApiError> {
    let request = request::parse(body, service.hook, state.settings.max_draft_orders)?;
    let span = tracing::info_span!(
        "hook",
        request_id = request_id.unwrap_or("-"),
        service = service.id,
        hook_instance = %request.hook_instance,
        orders = request.draft_orders.len(),
    );
    async {
        let processed = evaluate(state, request, client, metrics, clock).await?;
        if let Some(m) = metrics {
            m.observe_evaluation(&processed.evaluation);
        }
        tracing::info!(
            cards = processed.evaluation.response.cards.len(),
            "hook evaluated"
        );
        Ok(processed)
    }
    .instrument(span)
    .await
}

async fn evaluate(
    state: &AppState,
    mut request: HookRequest,
    client: &VerifiedClient,
    metrics: Option<&crate::metrics::Metrics>,
    clock: EngineClock<'_>,
) -> Result<Processed, ApiError> {
    // The prefetched resources move into the patient record (not needed after it).
    let prefetched = std::mem::take(&mut request.prefetch);
    // No patient data is fetched unless an order of this guideline is to be rated.
    let needs_record = state
        .engine
        .any_recognized(request.hook, &request.draft_orders);
    let record = if needs_record {
        let settings = &state.settings;
        let trust = |server: &str| crate::trust::check_fhir_server(settings, client, server);
        prefetch::gather(
            &request,
            prefetched,
            &state.prefetch_templates,
            &state.fhir,
            &trust,
            Duration::from_millis(settings.fhir_deadline_ms),
            metrics,
        )
        .await?
    } else {
        PatientRecord::default()
    };

    let now = clock.at.unwrap_or_else(OffsetDateTime::now_utc);
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
    let evaluation = state.evaluate(&eval_request, clock.ids);
    evaluation
        .response
        .check()
        .map_err(|e| ApiError::internal(format!("the service built an invalid response: {e}")))?;
    let body = serde_json::to_string(&evaluation.response)
        .map_err(|e| ApiError::internal(format!("could not serialize the response: {e}")))?;
    Ok(Processed {
        request,
        evaluation,
        body,
    })
}

//! Turns the request's prefetch (and, where needed, FHIR server fetches) into the engine's
//! `PatientRecord`.
//!
//! Per prefetch key:
//! - present with data: used as sent; a paginated searchset's remaining pages are fetched;
//! - `null` (the client has no data): confirmed from the FHIR server when one is usable,
//!   otherwise taken as "no data";
//! - an OperationOutcome (the client could not get it): the kind is unavailable, with the
//!   client's diagnostics as the reason (no second fetch: that is what the outcome is for);
//! - absent (the client chose not to, or could not): fetched from the FHIR server.
//!
//! Conditions are required: when they cannot be obtained the answer is 412 naming why. Every
//! other kind is optional and becomes `Unavailable(reason)`, which the engine states as an
//! assumption.

use crate::cds::discovery::{
    ALLERGIES, CONDITIONS, DEVICES, OBSERVATIONS, PATIENT, PROCEDURES, REPORTS,
};
use crate::cds::fetch::{FetchTarget, Fetched, FhirClient, normalize_base, resolve_template};
use crate::cds::request::{HookRequest, PrefetchValue};
use crate::error::ApiError;
use futures_util::future::join_all;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;
use vcf_engine::evaluate::{Availability, PatientRecord};
use vcf_engine::fhir::{AnyResource, OperationOutcome};

/// The prefetch keys this service asks for.
pub const KEYS: [&str; 7] = [
    PATIENT,
    CONDITIONS,
    PROCEDURES,
    OBSERVATIONS,
    REPORTS,
    ALLERGIES,
    DEVICES,
];

/// Where the data of one key ended up.
#[derive(Debug)]
enum KeyData {
    Have(Vec<AnyResource>),
    NoData,
    Unavailable(String),
}

/// What a key still needs from the FHIR server.
enum Pending {
    Template(String),
    NextPage(String),
}

/// Decides whether and where the service may fetch: returns the base URL or why not.
pub type TrustCheck<'a> = &'a dyn Fn(&str) -> Result<Url, String>;

/// Why an OperationOutcome says data is missing: its issue codes (`not-found, forbidden`). Its free text
/// (`diagnostics`, `details.text`) is not quoted: a server's error text can carry patient data,
/// and this text reaches cards and the audit trail.
fn outcome_text(oo: &OperationOutcome) -> String {
    let mut codes: Vec<&str> = oo
        .issue
        .iter()
        .map(|i| i.code.as_deref().unwrap_or("error"))
        .filter(|c| c.len() <= 40 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .collect();
    codes.dedup();
    if codes.is_empty() {
        "an OperationOutcome without issue codes".into()
    } else {
        format!("issue code {}", codes.join(", "))
    }
}

/// Gathers the patient record for `req`; `prefetched` is its prefetch (taken out of it, so
/// that the parsed resources move into the record instead of being copied).
pub async fn gather(
    req: &HookRequest,
    mut prefetched: BTreeMap<String, PrefetchValue>,
    templates: &Map<String, Value>,
    client: &FhirClient,
    trust: TrustCheck<'_>,
    deadline: Duration,
    metrics: Option<&crate::metrics::Metrics>,
) -> Result<PatientRecord, ApiError> {
    let mut data: Vec<(&str, KeyData, Option<Pending>)> = Vec::with_capacity(KEYS.len());
    for key in KEYS {
        // Resolved only for keys that may still be fetched (issue 12: seven string replaces
        // per call for a full prefetch that never fetches).
        let template = || {
            templates
                .get(key)
                .and_then(Value::as_str)
                .map(|t| resolve_template(t, &req.patient_id, req.encounter_id.as_deref()))
        };
        let entry = match prefetched.remove(key) {
            Some(PrefetchValue::Resources { resources, next }) => {
                (key, KeyData::Have(resources), next.map(Pending::NextPage))
            }
            Some(PrefetchValue::Null) => (key, KeyData::NoData, template().map(Pending::Template)),
            Some(PrefetchValue::Outcome(oo)) => (
                key,
                KeyData::Unavailable(format!(
                    "the EHR reported an error retrieving {key}: {}",
                    outcome_text(&oo)
                )),
                None,
            ),
            None => (
                key,
                KeyData::Unavailable(format!("`{key}` was not prefetched")),
                template().map(Pending::Template),
            ),
        };
        data.push(entry);
    }

    let needs_fetch = data.iter().any(|d| d.2.is_some());
    if needs_fetch {
        let target = match &req.fhir_server {
            None => Err("the request has no fhirServer to fetch them from".to_owned()),
            Some(server) => trust(server).map(|base| FetchTarget {
                base: normalize_base(&base),
                token: req
                    .fhir_authorization
                    .as_ref()
                    .and_then(|a| a.access_token.clone()),
            }),
        };
        match target {
            Ok(target) => fetch_pending(&mut data, client, &target, deadline, metrics).await,
            Err(why) => {
                for (key, state, pending) in data.iter_mut() {
                    match pending.take() {
                        Some(Pending::Template(_)) => {
                            if let KeyData::Unavailable(reason) = state {
                                *reason = format!("`{key}` was not prefetched and {why}");
                            }
                        }
                        Some(Pending::NextPage(_)) => {
                            tracing::debug!(
                                key = *key,
                                "prefetch page limit: next page not fetched"
                            );
                        }
                        None => {}
                    }
                }
            }
        }
    }

    let mut missing = Vec::new();
    let mut record = PatientRecord::default();
    for (key, state, _) in data {
        match (key, state) {
            (CONDITIONS, KeyData::Unavailable(why)) => {
                missing.push((
                    format!("prefetch.{CONDITIONS}"),
                    format!(
                        "the patient's Conditions are required to classify the fracture, but {why}"
                    ),
                ));
            }
            (_, KeyData::Unavailable(why)) => match key {
                PATIENT => record.patient = Availability::Unavailable(why),
                PROCEDURES => record.procedures = Availability::Unavailable(why),
                OBSERVATIONS => record.observations = Availability::Unavailable(why),
                REPORTS => record.reports = Availability::Unavailable(why),
                ALLERGIES => record.allergies = Availability::Unavailable(why),
                DEVICES => record.devices = Availability::Unavailable(why),
                _ => {}
            },
            (_, KeyData::NoData) => {}
            (_, KeyData::Have(resources)) => add_resources(&mut record, resources),
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::precondition_failed(missing));
    }
    Ok(record)
}

/// Adds resources to the record by kind. Shared with `vcf-cds batch-audit`, so that an export
/// is read exactly as a prefetch is.
pub fn add_resources(record: &mut PatientRecord, resources: impl IntoIterator<Item = AnyResource>) {
    fn push<T>(slot: &mut Availability<Vec<T>>, item: T) {
        if let Availability::Available(v) = slot {
            v.push(item);
        }
    }
    for r in resources {
        match r {
            AnyResource::Patient(p) => {
                if let Availability::Available(slot @ None) = &mut record.patient {
                    *slot = Some(p);
                }
            }
            AnyResource::Condition(c) => push(&mut record.conditions, c),
            AnyResource::Procedure(p) => push(&mut record.procedures, p),
            AnyResource::Observation(o) => push(&mut record.observations, o),
            AnyResource::DiagnosticReport(d) => push(&mut record.reports, d),
            AnyResource::AllergyIntolerance(a) => push(&mut record.allergies, a),
            AnyResource::Device(d) => push(&mut record.devices, d),
            AnyResource::OperationOutcome(_)
            | AnyResource::Bundle(_)
            | AnyResource::Other { .. } => {}
        }
    }
}

async fn fetch_pending(
    data: &mut [(&str, KeyData, Option<Pending>)],
    client: &FhirClient,
    target: &FetchTarget,
    deadline: Duration,
    metrics: Option<&crate::metrics::Metrics>,
) {
    let deadline = Instant::now() + deadline;
    let jobs: Vec<_> = data
        .iter_mut()
        .filter_map(|(key, state, pending)| {
            let pending = pending.take()?;
            Some(async move {
                let started = std::time::Instant::now();
                let result = match &pending {
                    Pending::Template(t) => client.fetch(target, t, deadline).await,
                    Pending::NextPage(n) => client.fetch_next_pages(target, n, deadline).await,
                };
                if let Some(m) = metrics {
                    let failure = match &result {
                        Err(e) => Some(crate::metrics::fetch_reason(e)),
                        Ok(Fetched::Outcome(_)) => Some("outcome"),
                        Ok(_) => None,
                    };
                    m.observe_fetch(key, started.elapsed().as_secs_f64(), failure);
                }
                match (result, &pending) {
                    (
                        Ok(Fetched::Resources {
                            resources,
                            truncated,
                        }),
                        _,
                    ) => {
                        if truncated {
                            tracing::info!(key = *key, "FHIR search truncated at the page limit");
                        }
                        match state {
                            KeyData::Have(have) => have.extend(resources),
                            _ => *state = KeyData::Have(resources),
                        }
                    }
                    (Ok(Fetched::NotFound), _) => {
                        if !matches!(state, KeyData::Have(_)) {
                            *state = KeyData::NoData;
                        }
                    }
                    // A `null` prefetch already said "no data": a failed confirmation keeps that.
                    (Ok(Fetched::Outcome(oo)), Pending::Template(_))
                        if matches!(state, KeyData::Unavailable(_)) =>
                    {
                        *state = KeyData::Unavailable(format!(
                            "the FHIR server reported an error retrieving {key}: {}",
                            outcome_text(&oo)
                        ));
                    }
                    (Ok(Fetched::Outcome(_)), _) => {}
                    (Err(e), Pending::Template(_)) => {
                        tracing::warn!(key = *key, error = %e.redacted(), "FHIR fetch failed");
                        if matches!(state, KeyData::Unavailable(_)) {
                            *state = KeyData::Unavailable(format!(
                                "fetching {key} from the FHIR server failed ({e})"
                            ));
                        }
                    }
                    (Err(e), Pending::NextPage(_)) => {
                        tracing::warn!(key = *key, error = %e.redacted(), "FHIR next page fetch failed");
                    }
                }
            })
        })
        .collect();
    join_all(jobs).await;
}

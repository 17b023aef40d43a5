//! The only crate of the workspace that instantiates fhir-sdk's serde code.
//!
//! fhir-sdk's R4B models are generic over the serializer, so whichever crate calls
//! `serde_json::to_value::<ServiceRequest>` pays for their monomorphization (minutes per
//! release rebuild, measured on the project's 2-core machines). Keeping that in
//! this small crate behind non-generic functions lets the service and engine crates rebuild in
//! seconds. Input parsing does not go through fhir-sdk at all (it drops unknown fields and turns
//! invalid choice values into nothing); it is only used for resources the service *creates*.

use fhir_sdk::r4b::codes::{RequestIntent, RequestStatus};
use fhir_sdk::r4b::resources::ServiceRequest;
use fhir_sdk::r4b::types::{Annotation, CodeableConcept, Coding, Reference};

/// One coding of a concept to put into a created resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodingSpec {
    pub system: String,
    pub code: String,
    pub display: Option<String>,
}

/// A CodeableConcept to put into a created resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConceptSpec {
    pub codings: Vec<CodingSpec>,
    pub text: Option<String>,
}

/// Everything a suggested (replacement) ServiceRequest carries. The engine fills it from the
/// draft order it replaces (same patient, encounter, requester, reason, category) and from the
/// knowledge base (the alternative procedure's code for the same spine region).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewServiceRequest {
    /// Logical id; suggestions get a fresh one so that the EHR can tell them apart.
    pub id: Option<String>,
    /// R4 `request-intent` code; unknown values are rejected.
    pub intent: String,
    pub category: Vec<ConceptSpec>,
    pub code: ConceptSpec,
    /// Relative reference, e.g. `Patient/123`.
    pub subject: String,
    pub encounter: Option<String>,
    pub requester: Option<String>,
    pub reason_code: Vec<ConceptSpec>,
    pub reason_reference: Vec<String>,
    pub body_site: Vec<ConceptSpec>,
    /// Specialty the request is addressed to (referrals).
    pub performer_type: Option<ConceptSpec>,
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid request intent {0:?}")]
    Intent(String),
    #[error("could not build FHIR {what}: {message}")]
    Builder { what: &'static str, message: String },
    #[error("could not serialize FHIR resource: {0}")]
    Json(#[from] serde_json::Error),
}

fn builder_err(what: &'static str) -> impl Fn(fhir_sdk::BuilderError) -> BuildError {
    move |e| BuildError::Builder {
        what,
        message: e.to_string(),
    }
}

fn coding(spec: &CodingSpec) -> Result<Coding, BuildError> {
    let mut b = Coding::builder()
        .system(spec.system.clone())
        .code(spec.code.clone());
    if let Some(display) = &spec.display {
        b = b.display(display.clone());
    }
    b.build().map_err(builder_err("Coding"))
}

fn concept(spec: &ConceptSpec) -> Result<CodeableConcept, BuildError> {
    let codings = spec
        .codings
        .iter()
        .map(|c| coding(c).map(Some))
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = CodeableConcept::builder().coding(codings);
    if let Some(text) = &spec.text {
        b = b.text(text.clone());
    }
    b.build().map_err(builder_err("CodeableConcept"))
}

fn concepts(specs: &[ConceptSpec]) -> Result<Vec<Option<CodeableConcept>>, BuildError> {
    specs.iter().map(|c| concept(c).map(Some)).collect()
}

fn reference(target: &str) -> Result<Reference, BuildError> {
    Reference::builder()
        .reference(target.to_owned())
        .build()
        .map_err(builder_err("Reference"))
}

/// Builds a draft ServiceRequest and returns its R4 JSON (with `resourceType`, no nulls, no
/// empty arrays), ready to drop into a CDS Hooks `create` action.
pub fn service_request_json(spec: &NewServiceRequest) -> Result<serde_json::Value, BuildError> {
    let intent: RequestIntent = spec
        .intent
        .parse()
        .map_err(|_| BuildError::Intent(spec.intent.clone()))?;
    // Only the required elements go through the (owned, large) ServiceRequest builder: every
    // setter moves the whole builder, so the optional elements are assigned on the built
    // resource instead (its fields are public).
    let mut resource = ServiceRequest::builder()
        .status(RequestStatus::Draft)
        .intent(intent)
        .subject(reference(&spec.subject)?)
        .build()
        .map_err(builder_err("ServiceRequest"))?;
    resource.id = spec.id.clone();
    resource.code = Some(concept(&spec.code)?);
    resource.category = concepts(&spec.category)?;
    resource.reason_code = concepts(&spec.reason_code)?;
    resource.body_site = concepts(&spec.body_site)?;
    resource.reason_reference = spec
        .reason_reference
        .iter()
        .map(|r| reference(r).map(Some))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(encounter) = &spec.encounter {
        resource.encounter = Some(reference(encounter)?);
    }
    if let Some(requester) = &spec.requester {
        resource.requester = Some(reference(requester)?);
    }
    if let Some(performer_type) = &spec.performer_type {
        resource.performer_type = Some(concept(performer_type)?);
    }
    if let Some(note) = &spec.note {
        let annotation = Annotation::builder()
            .text(note.clone())
            .build()
            .map_err(builder_err("Annotation"))?;
        resource.note = vec![Some(annotation)];
    }
    Ok(serde_json::to_value(&resource)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NewServiceRequest {
        NewServiceRequest {
            id: Some("sugg-1".into()),
            intent: "order".into(),
            code: ConceptSpec {
                codings: vec![CodingSpec {
                    system: "http://www.ama-assn.org/go/cpt".into(),
                    code: "72148".into(),
                    display: Some("MRI lumbar spine without contrast".into()),
                }],
                text: None,
            },
            subject: "Patient/p1".into(),
            encounter: Some("Encounter/e1".into()),
            reason_reference: vec!["Condition/c1".into()],
            ..Default::default()
        }
    }

    #[test]
    fn builds_plain_r4_json() {
        let v = service_request_json(&spec()).unwrap();
        assert_eq!(v["resourceType"], "ServiceRequest");
        assert_eq!(v["id"], "sugg-1");
        assert_eq!(v["status"], "draft");
        assert_eq!(v["intent"], "order");
        assert_eq!(v["code"]["coding"][0]["code"], "72148");
        assert_eq!(v["subject"]["reference"], "Patient/p1");
        assert_eq!(v["encounter"]["reference"], "Encounter/e1");
        assert_eq!(v["reasonReference"][0]["reference"], "Condition/c1");
        // CDS Hooks forbids empty optionals: no empty arrays, no nulls.
        let text = v.to_string();
        assert!(!text.contains("[]"), "{text}");
        assert!(!text.contains("null"), "{text}");
        assert!(v.get("category").is_none());
    }

    #[test]
    fn rejects_unknown_intent() {
        let mut s = spec();
        s.intent = "whenever".into();
        assert!(matches!(
            service_request_json(&s),
            Err(BuildError::Intent(_))
        ));
    }
}

//! Small typed views of the FHIR R4 resources the engine reads.
//!
//! These are deliberately *not* fhir-sdk models (its R4B models drop unknown fields, turn invalid
//! choice values into nothing and cost minutes of build time; see `crates/fhir-build`): they read only the fields the rules use, ignore everything else (extensions,
//! narrative, unknown elements), check `resourceType`, validate the dates they read, and report
//! errors with the JSON path of the offending element. The original JSON of draft orders is kept
//! separately (as raw JSON) so that rating updates return the order exactly as received.

pub mod date;

pub use date::{DateError, FhirDateTime, age_in_years};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// A problem with client input, located by its JSON path (e.g.
/// `context.draftOrders.entry[1].resource.authoredOn`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InputError {
    pub path: String,
    pub message: String,
}

impl InputError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        InputError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Joins a JSON path prefix and a relative path (`entry[0].resource` + `status`).
pub fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty() || rest == ".") {
        (true, _) => rest.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if rest.starts_with('[') => format!("{prefix}{rest}"),
        (false, false) => format!("{prefix}.{rest}"),
    }
}

/// Deserializes `json` into `T`, naming the JSON path of the first error relative to `path`.
///
/// The fast path is plain serde_json; only when it fails is the input parsed a second time with
/// serde_path_to_error to find where.
pub fn parse_at<T: DeserializeOwned>(json: &str, path: &str) -> Result<T, InputError> {
    match serde_json::from_str::<T>(json) {
        Ok(v) => Ok(v),
        Err(first) => {
            let mut de = serde_json::Deserializer::from_str(json);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(e) => {
                    let inner = e.path().to_string();
                    Err(InputError::new(
                        join_path(path, &inner),
                        clean_serde_message(&e.into_inner().to_string()),
                    ))
                }
                Ok(_) => Err(InputError::new(
                    path,
                    clean_serde_message(&first.to_string()),
                )),
            }
        }
    }
}

/// Rejects JSON that is not an object. serde's derived structs also accept arrays (positional
/// fields), which FHIR and CDS Hooks JSON never use.
pub fn require_object(json: &str, path: &str) -> Result<(), InputError> {
    match json.trim_start().as_bytes().first() {
        Some(b'{') => Ok(()),
        _ => Err(InputError::new(
            if path.is_empty() { "." } else { path },
            "must be a JSON object",
        )),
    }
}

/// serde_json messages end in "at line 1 column 2383"; the JSON path is more useful, and the
/// position would only be noise in an OperationOutcome.
fn clean_serde_message(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// `resourceType` and `id` of any resource, read without parsing the rest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceHeader {
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Coding {
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeableConcept {
    #[serde(default)]
    pub coding: Vec<Coding>,
    #[serde(default)]
    pub text: Option<String>,
}

impl CodeableConcept {
    /// `(system, code)` pairs of codings that have both.
    pub fn codes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.coding
            .iter()
            .filter_map(|c| Some((c.system.as_deref()?, c.code.as_deref()?)))
    }

    /// The first coding whose code is `code` in any of `systems`.
    pub fn has_code(&self, systems: &[&str], code: &str) -> bool {
        self.codes().any(|(s, c)| c == code && systems.contains(&s))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quantity {
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

/// Checks a resource's `resourceType` and the dates the engine reads.
pub trait FhirResource: DeserializeOwned {
    const TYPE: &'static str;
    fn resource_type(&self) -> &str;
    /// Validates the fields the engine reads (dates); `path` is the resource's JSON path.
    fn validate_fields(&self, path: &str) -> Result<(), InputError>;

    /// Parses and validates one resource of this type.
    fn parse(json: &str, path: &str) -> Result<Self, InputError> {
        require_object(json, path)?;
        let r: Self = parse_at(json, path)?;
        if r.resource_type() != Self::TYPE {
            return Err(InputError::new(
                join_path(path, "resourceType"),
                format!("expected {:?}, found {:?}", Self::TYPE, r.resource_type()),
            ));
        }
        r.validate_fields(path)?;
        Ok(r)
    }
}

fn check_date_time(v: &Option<String>, path: &str, field: &str) -> Result<(), InputError> {
    if let Some(s) = v {
        FhirDateTime::parse_date_time(s)
            .map_err(|e| InputError::new(join_path(path, field), e.to_string()))?;
    }
    Ok(())
}

fn check_date(v: &Option<String>, path: &str, field: &str) -> Result<(), InputError> {
    if let Some(s) = v {
        FhirDateTime::parse_date(s)
            .map_err(|e| InputError::new(join_path(path, field), e.to_string()))?;
    }
    Ok(())
}

fn check_period(v: &Option<Period>, path: &str, field: &str) -> Result<(), InputError> {
    if let Some(p) = v {
        let base = join_path(path, field);
        check_date_time(&p.start, &base, "start")?;
        check_date_time(&p.end, &base, "end")?;
    }
    Ok(())
}

/// Rejects two alternatives of one choice element (`onsetDateTime` and `onsetPeriod`).
fn check_choice(present: &[(bool, &str)], path: &str) -> Result<(), InputError> {
    let given: Vec<&str> = present.iter().filter(|p| p.0).map(|p| p.1).collect();
    if given.len() > 1 {
        return Err(InputError::new(
            join_path(path, given[1]),
            format!("only one of {} may be present", given.join(", ")),
        ));
    }
    Ok(())
}

/// A draft order (only ServiceRequests are read; other request types are ignored by the engine).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    pub resource_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub intent: Option<String>,
    #[serde(default)]
    pub category: Vec<CodeableConcept>,
    #[serde(default)]
    pub code: Option<CodeableConcept>,
    #[serde(default)]
    pub subject: Option<Reference>,
    #[serde(default)]
    pub encounter: Option<Reference>,
    #[serde(default)]
    pub occurrence_date_time: Option<String>,
    #[serde(default)]
    pub authored_on: Option<String>,
    #[serde(default)]
    pub requester: Option<Reference>,
    #[serde(default)]
    pub performer_type: Option<CodeableConcept>,
    #[serde(default)]
    pub reason_code: Vec<CodeableConcept>,
    #[serde(default)]
    pub reason_reference: Vec<Reference>,
    /// Clinician-supplied evidence for the order (reports, observations of the record).
    #[serde(default)]
    pub supporting_info: Vec<Reference>,
    #[serde(default)]
    pub body_site: Vec<CodeableConcept>,
}

/// R4 `request-status` (required binding).
pub const REQUEST_STATUS: &[&str] = &[
    "draft",
    "active",
    "on-hold",
    "revoked",
    "completed",
    "entered-in-error",
    "unknown",
];
/// R4 `request-intent` (required binding).
pub const REQUEST_INTENT: &[&str] = &[
    "proposal",
    "plan",
    "directive",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
];

impl FhirResource for ServiceRequest {
    const TYPE: &'static str = "ServiceRequest";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, path: &str) -> Result<(), InputError> {
        if let Some(s) = &self.status
            && !REQUEST_STATUS.contains(&s.as_str())
        {
            return Err(InputError::new(
                join_path(path, "status"),
                format!("{s:?} is not an R4 request-status code"),
            ));
        }
        if let Some(s) = &self.intent
            && !REQUEST_INTENT.contains(&s.as_str())
        {
            return Err(InputError::new(
                join_path(path, "intent"),
                format!("{s:?} is not an R4 request-intent code"),
            ));
        }
        check_date_time(&self.occurrence_date_time, path, "occurrenceDateTime")?;
        check_date_time(&self.authored_on, path, "authoredOn")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub resource_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub clinical_status: Option<CodeableConcept>,
    #[serde(default)]
    pub verification_status: Option<CodeableConcept>,
    #[serde(default)]
    pub category: Vec<CodeableConcept>,
    #[serde(default)]
    pub code: Option<CodeableConcept>,
    #[serde(default)]
    pub body_site: Vec<CodeableConcept>,
    #[serde(default)]
    pub onset_date_time: Option<String>,
    #[serde(default)]
    pub onset_period: Option<Period>,
    #[serde(default)]
    pub onset_string: Option<String>,
    #[serde(default)]
    pub abatement_date_time: Option<String>,
    #[serde(default)]
    pub recorded_date: Option<String>,
}

impl FhirResource for Condition {
    const TYPE: &'static str = "Condition";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, path: &str) -> Result<(), InputError> {
        check_choice(
            &[
                (self.onset_date_time.is_some(), "onsetDateTime"),
                (self.onset_period.is_some(), "onsetPeriod"),
                (self.onset_string.is_some(), "onsetString"),
            ],
            path,
        )?;
        check_date_time(&self.onset_date_time, path, "onsetDateTime")?;
        check_period(&self.onset_period, path, "onsetPeriod")?;
        check_date_time(&self.abatement_date_time, path, "abatementDateTime")?;
        check_date_time(&self.recorded_date, path, "recordedDate")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Procedure {
    pub resource_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub code: Option<CodeableConcept>,
    #[serde(default)]
    pub performed_date_time: Option<String>,
    #[serde(default)]
    pub performed_period: Option<Period>,
    #[serde(default)]
    pub body_site: Vec<CodeableConcept>,
}

impl FhirResource for Procedure {
    const TYPE: &'static str = "Procedure";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, path: &str) -> Result<(), InputError> {
        check_choice(
            &[
                (self.performed_date_time.is_some(), "performedDateTime"),
                (self.performed_period.is_some(), "performedPeriod"),
            ],
            path,
        )?;
        check_date_time(&self.performed_date_time, path, "performedDateTime")?;
        check_period(&self.performed_period, path, "performedPeriod")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub resource_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub code: Option<CodeableConcept>,
    #[serde(default)]
    pub value_quantity: Option<Quantity>,
    #[serde(default)]
    pub value_codeable_concept: Option<CodeableConcept>,
    #[serde(default)]
    pub value_string: Option<String>,
    #[serde(default)]
    pub body_site: Option<CodeableConcept>,
    /// The report (or study) this observation was derived from.
    #[serde(default)]
    pub derived_from: Vec<Reference>,
    #[serde(default)]
    pub effective_date_time: Option<String>,
    #[serde(default)]
    pub issued: Option<String>,
}

impl FhirResource for Observation {
    const TYPE: &'static str = "Observation";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, path: &str) -> Result<(), InputError> {
        check_date_time(&self.effective_date_time, path, "effectiveDateTime")?;
        if let Some(s) = &self.issued {
            FhirDateTime::parse_instant(s)
                .map_err(|e| InputError::new(join_path(path, "issued"), e.to_string()))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticReport {
    pub resource_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub category: Vec<CodeableConcept>,
    #[serde(default)]
    pub code: Option<CodeableConcept>,
    #[serde(default)]
    pub effective_date_time: Option<String>,
    #[serde(default)]
    pub issued: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub conclusion_code: Vec<CodeableConcept>,
    /// Observations of the report.
    #[serde(default)]
    pub result: Vec<Reference>,
    /// The report itself (text/plain attachments are read).
    #[serde(default)]
    pub presented_form: Vec<Attachment>,
}

/// R4 Attachment (only what the engine reads).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(default)]
    pub content_type: Option<String>,
    /// base64Binary.
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

impl Attachment {
    /// Whether the attachment is plain text (`text/plain`, any parameters).
    pub fn is_plain_text(&self) -> bool {
        self.content_type.as_deref().is_some_and(|c| {
            c.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
        })
    }

    /// The decoded text of a text/plain attachment with inline data (invalid UTF-8 replaced).
    pub fn plain_text(&self) -> Option<Result<String, String>> {
        use base64::Engine as _;
        if !self.is_plain_text() {
            return None;
        }
        let data = self.data.as_deref()?;
        let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        Some(
            base64::engine::general_purpose::STANDARD
                .decode(cleaned.as_bytes())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| format!("not valid base64: {e}")),
        )
    }
}

impl FhirResource for DiagnosticReport {
    const TYPE: &'static str = "DiagnosticReport";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, path: &str) -> Result<(), InputError> {
        check_date_time(&self.effective_date_time, path, "effectiveDateTime")?;
        if let Some(s) = &self.issued {
            FhirDateTime::parse_instant(s)
                .map_err(|e| InputError::new(join_path(path, "issued"), e.to_string()))?;
        }
        for (i, a) in self.presented_form.iter().enumerate() {
            if let Some(Err(e)) = a.plain_text() {
                return Err(InputError::new(
                    join_path(path, &format!("presentedForm[{i}].data")),
                    e,
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub resource_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub birth_date: Option<String>,
}

impl FhirResource for Patient {
    const TYPE: &'static str = "Patient";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, path: &str) -> Result<(), InputError> {
        check_date(&self.birth_date, path, "birthDate")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllergyIntolerance {
    pub resource_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub clinical_status: Option<CodeableConcept>,
    #[serde(default)]
    pub verification_status: Option<CodeableConcept>,
    #[serde(default)]
    pub code: Option<CodeableConcept>,
}

impl FhirResource for AllergyIntolerance {
    const TYPE: &'static str = "AllergyIntolerance";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, _path: &str) -> Result<(), InputError> {
        Ok(())
    }
}

/// A device of the patient (R4 `Device`). The engine reads its MR-safety labelling
/// (`safety`, FHIR ValueSet device-safety) and its name for the card.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub resource_type: String,
    #[serde(default)]
    pub id: Option<String>,
    /// `active` | `inactive` | `entered-in-error` | `unknown`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub safety: Vec<CodeableConcept>,
    #[serde(default, rename = "type")]
    pub device_type: Option<CodeableConcept>,
    #[serde(default)]
    pub device_name: Vec<DeviceName>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DeviceName {
    #[serde(default)]
    pub name: Option<String>,
}

impl Device {
    /// A human name: the first `deviceName`, else `type.text` or a type coding's display.
    pub fn label(&self) -> Option<String> {
        self.device_name
            .iter()
            .find_map(|n| n.name.clone())
            .or_else(|| {
                self.device_type.as_ref().and_then(|t| {
                    t.text
                        .clone()
                        .or_else(|| t.coding.iter().find_map(|c| c.display.clone()))
                })
            })
            .filter(|s| !s.trim().is_empty())
    }
}

impl FhirResource for Device {
    const TYPE: &'static str = "Device";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, _path: &str) -> Result<(), InputError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcomeIssue {
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub diagnostics: Option<String>,
    #[serde(default)]
    pub details: Option<CodeableConcept>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcome {
    pub resource_type: String,
    #[serde(default)]
    pub issue: Vec<OperationOutcomeIssue>,
}

impl FhirResource for OperationOutcome {
    const TYPE: &'static str = "OperationOutcome";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, _path: &str) -> Result<(), InputError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleLink {
    pub relation: String,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    #[serde(default)]
    pub full_url: Option<String>,
    /// Kept raw: each entry is parsed by its own `resourceType`.
    #[serde(default)]
    pub resource: Option<Box<RawValue>>,
}

/// A Bundle whose entries are parsed one by one (so that one unexpected resource type does not
/// reject the whole Bundle).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub resource_type: String,
    #[serde(default)]
    pub id: Option<String>,
    /// Optional here: CDS Hooks 2.0-era `draftOrders` examples omit it.
    #[serde(default, rename = "type")]
    pub bundle_type: Option<String>,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub link: Vec<BundleLink>,
    #[serde(default)]
    pub entry: Vec<BundleEntry>,
}

/// R4 `bundle-type` (required binding).
pub const BUNDLE_TYPE: &[&str] = &[
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
];

impl FhirResource for Bundle {
    const TYPE: &'static str = "Bundle";
    fn resource_type(&self) -> &str {
        &self.resource_type
    }
    fn validate_fields(&self, path: &str) -> Result<(), InputError> {
        if let Some(t) = &self.bundle_type
            && !BUNDLE_TYPE.contains(&t.as_str())
        {
            return Err(InputError::new(
                join_path(path, "type"),
                format!("{t:?} is not an R4 bundle-type code"),
            ));
        }
        Ok(())
    }
}

impl Bundle {
    /// URL of the next page of a searchset, if any.
    pub fn next_link(&self) -> Option<&str> {
        self.link
            .iter()
            .find(|l| l.relation == "next")
            .map(|l| l.url.as_str())
    }
}

/// Any resource the engine may meet in prefetch or a FHIR search result.
#[derive(Debug, Clone)]
pub enum AnyResource {
    Patient(Patient),
    Condition(Condition),
    Procedure(Procedure),
    Observation(Observation),
    DiagnosticReport(DiagnosticReport),
    AllergyIntolerance(AllergyIntolerance),
    Device(Device),
    OperationOutcome(OperationOutcome),
    Bundle(Bundle),
    /// A resource type the engine does not read (kept by type and id only).
    Other {
        resource_type: String,
        id: Option<String>,
    },
}

impl AnyResource {
    /// Parses one resource by its `resourceType`; a missing or non-string `resourceType` is an
    /// error, an unknown one is accepted as [`AnyResource::Other`].
    pub fn parse(json: &str, path: &str) -> Result<AnyResource, InputError> {
        require_object(json, path)?;
        // The type decides which struct parses the resource; it is usually the first member,
        // so a scan finds it without a second full pass over the resource (issue 12). Anything
        // unusual (escapes, not a string, absent) goes through the serde header parse.
        let rt = match scan_resource_type(json) {
            Some(rt) if !rt.is_empty() => rt,
            _ => {
                let header: ResourceHeader = parse_at(json, path)?;
                let Some(rt) = header.resource_type else {
                    return Err(InputError::new(
                        join_path(path, "resourceType"),
                        "missing resourceType",
                    ));
                };
                return Self::parse_as(&rt, header.id, json, path);
            }
        };
        Self::parse_as(rt, None, json, path)
    }

    /// Parses `json` as the resource type `rt` (`id` is the header's, when it was parsed).
    fn parse_as(
        rt: &str,
        id: Option<String>,
        json: &str,
        path: &str,
    ) -> Result<AnyResource, InputError> {
        Ok(match rt {
            "Patient" => AnyResource::Patient(Patient::parse(json, path)?),
            "Condition" => AnyResource::Condition(Condition::parse(json, path)?),
            "Procedure" => AnyResource::Procedure(Procedure::parse(json, path)?),
            "Observation" => AnyResource::Observation(Observation::parse(json, path)?),
            "DiagnosticReport" => {
                AnyResource::DiagnosticReport(DiagnosticReport::parse(json, path)?)
            }
            "AllergyIntolerance" => {
                AnyResource::AllergyIntolerance(AllergyIntolerance::parse(json, path)?)
            }
            "Device" => AnyResource::Device(Device::parse(json, path)?),
            "OperationOutcome" => {
                AnyResource::OperationOutcome(OperationOutcome::parse(json, path)?)
            }
            "Bundle" => AnyResource::Bundle(Bundle::parse(json, path)?),
            _ => {
                if rt.is_empty() || !rt.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(InputError::new(
                        join_path(path, "resourceType"),
                        format!("{rt:?} is not a FHIR resource type name"),
                    ));
                }
                let id = match id {
                    Some(id) => Some(id),
                    None => parse_at::<ResourceHeader>(json, path)?.id,
                };
                AnyResource::Other {
                    resource_type: rt.to_owned(),
                    id,
                }
            }
        })
    }
}

/// The value of the top-level `resourceType` member of a JSON object, found by scanning
/// (strings skipped, nesting counted) up to that member only. `None` when it is not a plain
/// string without escapes, or not there: the caller then parses the header with serde, which
/// also reports malformed JSON.
pub fn scan_resource_type(json: &str) -> Option<&str> {
    let b = json.as_bytes();
    // Only `"` and `\` matter inside a string; `memchr2` skips the rest (a server that sorts
    // members puts `resourceType` after nearly all of a resource, so most of it is strings).
    let string_end = |start: usize| -> Option<(usize, bool)> {
        let mut j = start;
        let mut escaped = false;
        while j < b.len() {
            let k = j + memchr::memchr2(b'"', b'\\', &b[j..])?;
            if b[k] == b'"' {
                return Some((k, escaped));
            }
            escaped = true;
            j = k + 2;
        }
        None
    };
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let (end, escaped) = string_end(i + 1)?;
                let is_key_name = depth == 1 && !escaped && &json[i + 1..end] == "resourceType";
                i = skip_ws(end + 1);
                if is_key_name && b.get(i) == Some(&b':') {
                    let v = skip_ws(i + 1);
                    if b.get(v) != Some(&b'"') {
                        return None;
                    }
                    let (vend, escaped) = string_end(v + 1)?;
                    return if escaped {
                        None
                    } else {
                        Some(&json[v + 1..vend])
                    };
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_type_scan() {
        let cases = [
            (r#"{"resourceType":"Patient","id":"p"}"#, Some("Patient")),
            (
                r#"{ "id": "x", "meta": {"resourceType": "Nested"}, "resourceType" : "Condition"}"#,
                Some("Condition"),
            ),
            (
                r#"{"note": ["resourceType", {"a": "}"}], "resourceType": "Bundle"}"#,
                Some("Bundle"),
            ),
            (
                r#"{"id": "resourceType", "resourceType": "Procedure"}"#,
                Some("Procedure"),
            ),
            // Escaped quotes and backslashes inside earlier strings do not end them.
            (
                r#"{"a": "x\"}, \"resourceType\": \"No\"", "b": "y\\", "resourceType": "Patient"}"#,
                Some("Patient"),
            ),
            (r#"{"a": "unterminated \"#, None),
            (r#"{"resource\u0054ype": "Patient"}"#, None),
            (r#"{"resourceType": "Pat\u0069ent"}"#, None),
            (r#"{"resourceType": 5}"#, None),
            (r#"{"id": "a"}"#, None),
            (r#"{"resourceType": "Patient"#, None),
        ];
        for (json, want) in cases {
            assert_eq!(scan_resource_type(json), want, "{json}");
        }
        // Escaped type names still parse (through the header), as before.
        assert!(matches!(
            AnyResource::parse(r#"{"resourceType": "Pat\u0069ent"}"#, ""),
            Ok(AnyResource::Patient(_))
        ));
        assert!(AnyResource::parse(r#"{"resourceType": 5}"#, "").is_err());
        assert!(AnyResource::parse(r#"{"id": "a"}"#, "").is_err());
    }

    #[test]
    fn paths_are_named() {
        let json = r#"{"resourceType":"ServiceRequest","status":"draft","intent":"order","code":{"coding":{"code":"x"}}}"#;
        let err = ServiceRequest::parse(json, "context.draftOrders.entry[0].resource").unwrap_err();
        assert_eq!(
            err.path,
            "context.draftOrders.entry[0].resource.code.coding"
        );
        assert!(
            err.message.contains("expected a sequence"),
            "{}",
            err.message
        );
    }

    #[test]
    fn wrong_resource_type_is_rejected() {
        let json = r#"{"resourceType":"Condition","id":"c1"}"#;
        let err = Patient::parse(json, "prefetch.patient").unwrap_err();
        assert_eq!(err.path, "prefetch.patient.resourceType");
    }

    #[test]
    fn invalid_dates_and_codes_are_rejected() {
        let err = Condition::parse(
            r#"{"resourceType":"Condition","onsetDateTime":"not-a-date"}"#,
            "x",
        )
        .unwrap_err();
        assert_eq!(err.path, "x.onsetDateTime");
        let err = ServiceRequest::parse(
            r#"{"resourceType":"ServiceRequest","status":"pending"}"#,
            "y",
        )
        .unwrap_err();
        assert_eq!(err.path, "y.status");
        let err = Condition::parse(
            r#"{"resourceType":"Condition","onsetDateTime":"2020","onsetPeriod":{}}"#,
            "z",
        )
        .unwrap_err();
        assert_eq!(err.path, "z.onsetPeriod");
    }

    #[test]
    fn bundles_keep_entries_raw_and_accept_unknown_types() {
        let json = r#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"MedicinalProduct","id":"m"}},{"resource":{"resourceType":"Condition","id":"c","onsetDateTime":"2024-01-02"}}]}"#;
        let AnyResource::Bundle(b) = AnyResource::parse(json, "prefetch.conditions").unwrap()
        else {
            panic!("not a bundle")
        };
        assert!(b.bundle_type.is_none());
        let kinds: Vec<String> = b
            .entry
            .iter()
            .map(
                |e| match AnyResource::parse(e.resource.as_ref().unwrap().get(), "e").unwrap() {
                    AnyResource::Other { resource_type, .. } => resource_type,
                    AnyResource::Condition(_) => "Condition".into(),
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        assert_eq!(kinds, ["MedicinalProduct", "Condition"]);
    }
}

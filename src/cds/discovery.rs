//! The two CDS services and their prefetch templates.
//!
//! Each prefetch key asks for exactly what the engine reads (see `PREFETCH` for why each one is
//! needed). Where the engine only uses specific codes (prior vertebral augmentation procedures,
//! eGFR observations) the template filters by those codes, taken from the knowledge base so that
//! the templates follow the reviewed value sets.

use serde::Serialize;
use serde_json::{Map, Value, json};
use vcf_engine::evaluate::Hook;
use vcf_engine::knowledge::Knowledge;

/// Prefetch keys, in the order they appear in discovery.
pub const PATIENT: &str = "patient";
pub const CONDITIONS: &str = "conditions";
pub const PROCEDURES: &str = "procedures";
pub const OBSERVATIONS: &str = "observations";
pub const REPORTS: &str = "reports";
pub const ALLERGIES: &str = "allergies";
pub const DEVICES: &str = "devices";

/// Why each prefetch key is requested (also rendered in docs/integration.md).
pub const PREFETCH: &[(&str, &str)] = &[
    (
        PATIENT,
        "birth date: pediatric radiation levels and the ALARA preference under 18",
    ),
    (
        CONDITIONS,
        "all Conditions, any clinical status: the fracture itself (ICD-10-CM 7th character, onset), \
         back pain, osteoporosis, malignancy (resolved cancer still counts), prior spine surgery, \
         deformity, MRI-unsafe implants, renal failure, contrast allergy",
    ),
    (
        PROCEDURES,
        "prior vertebral augmentation (vertebroplasty / kyphoplasty): ACR variants 3 and 7",
    ),
    (
        OBSERVATIONS,
        "latest eGFR: below the threshold no iodinated contrast study is suggested (a safety card \
         when one is ordered); gadolinium is suggested with a group II agent",
    ),
    (
        REPORTS,
        "radiology reports: a spine radiograph showing the fracture (variants 1, 2 and 4)",
    ),
    (
        ALLERGIES,
        "contrast allergy: a safety card on contrast studies, no iodinated contrast suggested",
    ),
    (
        DEVICES,
        "devices labelled MR Unsafe or without MR-safety labelling: a safety card on MRI orders, no \
         MRI suggested",
    ),
];

/// A service of this CDS Service provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDef {
    pub id: &'static str,
    pub hook: Hook,
    pub title: &'static str,
}

pub const SERVICES: &[ServiceDef] = &[
    ServiceDef {
        id: "vcf-order-select",
        hook: Hook::OrderSelect,
        title: "ACR appropriateness for vertebral compression fracture orders (order-select)",
    },
    ServiceDef {
        id: "vcf-order-sign",
        hook: Hook::OrderSign,
        title: "ACR appropriateness for vertebral compression fracture orders (order-sign)",
    },
];

pub fn service(id: &str) -> Option<&'static ServiceDef> {
    SERVICES.iter().find(|s| s.id == id)
}

/// The default service for a hook name (used by `vcf-cds evaluate`).
pub fn service_for_hook(hook: &str) -> Option<&'static ServiceDef> {
    SERVICES.iter().find(|s| s.hook.as_str() == hook)
}

/// `system|code` tokens of a value set's exact codes, for a FHIR token search parameter.
fn code_tokens(kb: &Knowledge, value_set: &str) -> Vec<String> {
    let Some(vs) = kb.value_sets.iter().find(|v| v.id == value_set) else {
        return vec![];
    };
    vs.codes
        .iter()
        .filter_map(|m| {
            let code = m.code.as_ref()?;
            let system = kb.code_systems.get(&m.system)?;
            Some(format!("{}|{}", system.uri, code))
        })
        .collect()
}

/// Prefetch templates, derived from the knowledge base's value sets.
pub fn prefetch_templates(kb: &Knowledge) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert(PATIENT.into(), json!("Patient/{{context.patientId}}"));
    p.insert(
        CONDITIONS.into(),
        json!("Condition?patient={{context.patientId}}"),
    );
    let procedures = code_tokens(kb, "prior-vertebral-augmentation");
    p.insert(
        PROCEDURES.into(),
        json!(if procedures.is_empty() {
            "Procedure?patient={{context.patientId}}".to_owned()
        } else {
            format!(
                "Procedure?patient={{{{context.patientId}}}}&code={}",
                procedures.join(",")
            )
        }),
    );
    let egfr = code_tokens(kb, "egfr");
    p.insert(
        OBSERVATIONS.into(),
        json!(if egfr.is_empty() {
            "Observation?patient={{context.patientId}}&category=laboratory".to_owned()
        } else {
            format!(
                "Observation?patient={{{{context.patientId}}}}&code={}&_sort=-date&_count=10",
                egfr.join(",")
            )
        }),
    );
    // v2-0074 "RAD" is FHIR's diagnostic service section for radiology reports.
    p.insert(
        REPORTS.into(),
        json!(
            "DiagnosticReport?patient={{context.patientId}}&category=http://terminology.hl7.org/CodeSystem/v2-0074|RAD"
        ),
    );
    p.insert(
        ALLERGIES.into(),
        json!("AllergyIntolerance?patient={{context.patientId}}"),
    );
    p.insert(
        DEVICES.into(),
        json!("Device?patient={{context.patientId}}"),
    );
    p
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceEntry {
    hook: &'static str,
    id: &'static str,
    title: &'static str,
    description: String,
    prefetch: Map<String, Value>,
    usage_requirements: String,
}

/// The discovery document (`GET /cds-services`).
pub fn discovery(kb: &Knowledge) -> Value {
    let templates = prefetch_templates(kb);
    let services: Vec<ServiceEntry> = SERVICES
        .iter()
        .map(|s| ServiceEntry {
            hook: s.hook.as_str(),
            id: s.id,
            title: s.title,
            description: format!(
                "Rates draft ServiceRequests for imaging or treatment of a vertebral compression \
                 fracture against the {} ({}), returns a warning with one-click alternatives for \
                 orders rated usually not appropriate, and attaches the rating to the order as a \
                 system action (PAMA rating extensions). {}",
                kb.guideline.title,
                kb.guideline.revision,
                match s.hook {
                    Hook::OrderSelect => "Only the orders in context.selections are rated.",
                    Hook::OrderSign => "Every draft ServiceRequest is rated.",
                }
            ),
            prefetch: templates.clone(),
            usage_requirements: "Send draft orders as FHIR R4 ServiceRequests coded with CPT, \
                 LOINC (RSNA Playbook) or RadLex. Prefetch the Patient and the patient's \
                 Conditions (all statuses), or give fhirServer (and fhirAuthorization) so the \
                 service can fetch them; Procedures, eGFR Observations and radiology \
                 DiagnosticReports improve the classification."
                .into(),
        })
        .collect();
    json!({ "services": services })
}

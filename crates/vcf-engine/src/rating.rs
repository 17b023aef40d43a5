//! The rating as a system action: an `update` of the draft ServiceRequest exactly as the client
//! sent it, with the Argonaut PAMA rating extensions added and nothing else changed.

use crate::cds::{Action, ActionType, DraftMembers, EditedDraft, Resource};
use crate::knowledge::{Guideline, RatingRow};
use crate::types::{DraftOrder, Options, PamaRating};
use serde_json::Value;
use std::cell::OnceCell;
use std::sync::Arc;

pub const PAMA_RATING_URL: &str = "http://fhir.org/argonaut/Extension/pama-rating";
pub const PAMA_RATING_SYSTEM: &str = "http://fhir.org/argonaut/CodeSystem/pama-rating";
pub const PAMA_CONSULT_ID_URL: &str = "http://fhir.org/argonaut/Extension/pama-rating-consult-id";
pub const PAMA_AUC_APPLIED_URL: &str = "http://fhir.org/argonaut/Extension/pama-rating-auc-applied";
pub const PAMA_QCDSM_URL: &str = "http://fhir.org/argonaut/Extension/pama-rating-qcdsm-consulted";
/// Prefix shared by the four Argonaut PAMA extension URLs.
const PAMA_URL_PREFIX: &str = "http://fhir.org/argonaut/Extension/pama-rating";

/// Translation-coding system for the ACR category: `{auc_uri}#category` (codes
/// `usually-appropriate`, `may-be-appropriate`, `may-be-appropriate-disagreement`,
/// `usually-not-appropriate`).
pub fn category_system(g: &Guideline) -> String {
    format!("{}#category", g.auc_uri)
}

/// Translation-coding system for the numeric ACR rating: `{auc_uri}#rating` (codes `1`..`9`).
pub fn rating_system(g: &Guideline) -> String {
    format!("{}#rating", g.auc_uri)
}

fn pama_display(p: PamaRating) -> &'static str {
    match p {
        PamaRating::Appropriate => "Appropriate",
        PamaRating::NotAppropriate => "Not appropriate",
        PamaRating::NoCriteriaApply => "No criteria apply",
    }
}

/// A JSON object of `members`, built directly (`json!` serializes each value through
/// `to_value`; issue 12: the PAMA extensions are built three times per rated order).
pub(crate) fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    Value::Object(
        members
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// A JSON string.
pub(crate) fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

/// The PAMA extensions for one rating (`row` is the ACR row behind it, absent for
/// `no-criteria-apply`).
pub fn pama_extensions(
    guideline: &Guideline,
    pama: PamaRating,
    row: Option<(&RatingRow, &str)>,
    consult_id: &str,
    options: &Options,
) -> Vec<Value> {
    let mut coding = Vec::with_capacity(3);
    coding.push(object([
        ("system", string(PAMA_RATING_SYSTEM)),
        ("code", string(pama.code())),
        ("display", string(pama_display(pama))),
    ]));
    if let Some((row, variant)) = row {
        coding.push(object([
            ("system", string(category_system(guideline))),
            ("code", string(row.category.code())),
            ("display", string(row.category.label())),
        ]));
        coding.push(object([
            ("system", string(rating_system(guideline))),
            ("code", string(row.rating.to_string())),
            (
                "display",
                string(format!("ACR rating {}/9 ({variant})", row.rating)),
            ),
        ]));
    }
    let mut ext = Vec::with_capacity(4);
    ext.push(object([
        ("url", string(PAMA_RATING_URL)),
        (
            "valueCodeableConcept",
            object([("coding", Value::Array(coding))]),
        ),
    ]));
    ext.push(object([
        ("url", string(PAMA_CONSULT_ID_URL)),
        ("valueUri", string(consult_id)),
    ]));
    ext.push(object([
        ("url", string(PAMA_AUC_APPLIED_URL)),
        ("valueUri", string(guideline.auc_uri.as_str())),
    ]));
    if let Some(q) = &options.qcdsm_consulted {
        ext.push(object([
            ("url", string(PAMA_QCDSM_URL)),
            ("valueString", string(q.as_str())),
        ]));
    }
    ext
}

/// The `update` system action carrying the rating. Earlier PAMA rating extensions on the order
/// (from a previous call) are replaced; every other member is returned as received.
pub fn rating_action(draft: &DraftOrder, extensions: Vec<Value>) -> Option<Action> {
    rating_action_on(draft, &DraftJson::new(draft), extensions)
}

/// [`rating_action`] on the draft's already parsed JSON.
pub fn rating_action_on(
    draft: &DraftOrder,
    json: &DraftJson,
    extensions: Vec<Value>,
) -> Option<Action> {
    let members = json.members()?;
    let extension = pama_extension_list(&members, extensions)?;
    Some(Action {
        action_type: ActionType::Update,
        description: format!("Attach ACR appropriateness rating to {}", draft.reference()),
        resource: Some(Resource::Draft(EditedDraft::new(
            members,
            vec![("extension", extension)],
        ))),
        resource_id: None,
    })
}

/// A draft order's top-level members, read at most once per evaluation of the order: the rating
/// update and each `update` suggestion share them and replace only what they change (issue
/// 12: each parsed the raw JSON again, then each edited its own deep copy).
pub struct DraftJson<'a> {
    raw: &'a str,
    parsed: OnceCell<Option<Arc<DraftMembers>>>,
}

impl<'a> DraftJson<'a> {
    pub fn new(draft: &'a DraftOrder) -> DraftJson<'a> {
        DraftJson {
            raw: draft.raw.get(),
            parsed: OnceCell::new(),
        }
    }

    /// The order's members (`None` when its JSON is not an object).
    pub fn members(&self) -> Option<Arc<DraftMembers>> {
        self.parsed
            .get_or_init(|| DraftMembers::parse(self.raw).map(Arc::new))
            .clone()
    }
}

/// The draft's `extension` list with its PAMA rating extensions replaced by `extensions`, every
/// other extension in place. `None` when `extension` is present but not an array.
pub fn pama_extension_list(members: &DraftMembers, extensions: Vec<Value>) -> Option<Value> {
    let mut list: Vec<Value> = match members.get("extension") {
        Some(raw) => serde_json::from_str(raw).ok()?,
        None => Vec::new(),
    };
    list.retain(|e| {
        !e.get("url")
            .and_then(Value::as_str)
            .is_some_and(|u| u.starts_with(PAMA_URL_PREFIX))
    });
    list.extend(extensions);
    Some(Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::Category;
    use serde_json::value::RawValue;

    #[test]
    fn update_adds_only_extensions() {
        let raw = r#"{"resourceType":"ServiceRequest","id":"o1","status":"draft","intent":"plan","code":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"72133"}]},"subject":{"reference":"Patient/p"}}"#;
        let draft = DraftOrder {
            resource_type: "ServiceRequest".into(),
            id: Some("o1".into()),
            selected: true,
            raw: RawValue::from_string(raw.into()).unwrap(),
            service_request: None,
        };
        let kb = crate::index::test_kb::engine();
        let g = &kb.knowledge().guideline;
        let row = RatingRow {
            procedure: "CT_SPINE_WWO".into(),
            rating: 3,
            median: 3,
            category: Category::UsuallyNotAppropriate,
            evidence: "Strong".into(),
        };
        let ext = pama_extensions(
            g,
            PamaRating::NotAppropriate,
            Some((&row, "V1")),
            "urn:uuid:00000000-0000-0000-0000-000000000001",
            &Options::default(),
        );
        let a = rating_action(&draft, ext).unwrap();
        let mut res = a.resource.unwrap().as_value().clone();
        let ext = res.as_object_mut().unwrap().remove("extension").unwrap();
        assert_eq!(res, serde_json::from_str::<Value>(raw).unwrap());
        assert_eq!(
            ext[0]["valueCodeableConcept"]["coding"][0]["code"],
            "not-appropriate"
        );
        assert_eq!(ext[0]["valueCodeableConcept"]["coding"][2]["code"], "3");
        assert_eq!(ext.as_array().unwrap().len(), 3);
        assert_eq!(
            a.description,
            "Attach ACR appropriateness rating to ServiceRequest/o1"
        );
    }
}

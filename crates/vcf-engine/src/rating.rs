//! The rating as a system action: an `update` of the draft ServiceRequest exactly as the client
//! sent it, with the Argonaut PAMA rating extensions added and nothing else changed.

use crate::cds::{Action, ActionType, DraftMembers, EditedDraft, Resource};
use crate::knowledge::{Guideline, RatingRow};
use crate::types::{DraftOrder, Options, PamaRating};
use serde_json::value::RawValue;
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

/// One coding of a CodeableConcept the engine writes. Members in the order `serde_json` wrote
/// the `Value` objects these were built as before (sorted), so the answer's bytes did not
/// change.
#[derive(serde::Serialize)]
pub(crate) struct CodingOut<'a> {
    pub code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<&'a str>,
    pub system: &'a str,
}

#[derive(serde::Serialize)]
struct ConceptOut<'a> {
    coding: &'a [CodingOut<'a>],
}

/// A PAMA extension: `url` and one value.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtensionOut<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_codeable_concept: Option<ConceptOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_string: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_uri: Option<&'a str>,
}

/// JSON text of `value`. Serialized straight into the text that is kept (issue 12): these were
/// `serde_json::Value` trees, three per rated order, allocated, serialized member by member
/// and freed on every call; text built by hand would be parsed again to become a `RawValue`.
pub(crate) fn raw_json<T: serde::Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("plain structs and strings always serialize")
}

/// The PAMA extensions for one rating (`row` is the ACR row behind it, absent for
/// `no-criteria-apply`), each as JSON text.
pub fn pama_extensions(
    guideline: &Guideline,
    pama: PamaRating,
    row: Option<(&RatingRow, &str)>,
    consult_id: &str,
    options: &Options,
) -> Vec<Box<RawValue>> {
    let (category_system, rating_system, rating, display);
    let mut coding = Vec::with_capacity(3);
    coding.push(CodingOut {
        code: pama.code(),
        display: Some(pama_display(pama)),
        system: PAMA_RATING_SYSTEM,
    });
    if let Some((row, variant)) = row {
        category_system = self::category_system(guideline);
        rating_system = self::rating_system(guideline);
        rating = row.rating.to_string();
        display = format!("ACR rating {}/9 ({variant})", row.rating);
        coding.push(CodingOut {
            code: row.category.code(),
            display: Some(row.category.label()),
            system: &category_system,
        });
        coding.push(CodingOut {
            code: &rating,
            display: Some(&display),
            system: &rating_system,
        });
    }
    let ext = |url, value_uri, value_string| ExtensionOut {
        url,
        value_codeable_concept: None,
        value_string,
        value_uri,
    };
    let mut out = Vec::with_capacity(4);
    out.push(raw_json(&ExtensionOut {
        value_codeable_concept: Some(ConceptOut { coding: &coding }),
        ..ext(PAMA_RATING_URL, None, None)
    }));
    out.push(raw_json(&ext(PAMA_CONSULT_ID_URL, Some(consult_id), None)));
    out.push(raw_json(&ext(
        PAMA_AUC_APPLIED_URL,
        Some(guideline.auc_uri.as_str()),
        None,
    )));
    if let Some(q) = &options.qcdsm_consulted {
        out.push(raw_json(&ext(PAMA_QCDSM_URL, None, Some(q.as_str()))));
    }
    out
}

/// The `update` system action carrying the rating. Earlier PAMA rating extensions on the order
/// (from a previous call) are replaced; every other member is returned as received.
pub fn rating_action(draft: &DraftOrder, extensions: &[Box<RawValue>]) -> Option<Action> {
    rating_action_on(draft, &DraftJson::new(draft), extensions)
}

/// [`rating_action`] on the draft's already parsed JSON.
pub fn rating_action_on(
    draft: &DraftOrder,
    json: &DraftJson,
    extensions: &[Box<RawValue>],
) -> Option<Action> {
    let members = json.members()?;
    let extension = pama_extension_list(&members, extensions)?;
    Some(Action {
        action_type: ActionType::Update,
        description: format!("Attach ACR appropriateness rating to {}", draft.reference()),
        resource: Some(Resource::Draft(EditedDraft::with_json(
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
/// other extension in place exactly as sent. `None` when `extension` is present but not an
/// array.
pub fn pama_extension_list(
    members: &DraftMembers,
    extensions: &[Box<RawValue>],
) -> Option<Box<RawValue>> {
    /// An extension's `url`, the only member looked at.
    #[derive(serde::Deserialize)]
    struct Url<'a> {
        #[serde(borrow, default)]
        url: Option<std::borrow::Cow<'a, str>>,
    }
    let kept: Vec<&RawValue> = match members.get("extension") {
        Some(raw) => serde_json::from_str(raw).ok()?,
        None => Vec::new(),
    };
    let list: Vec<&RawValue> = kept
        .into_iter()
        .filter(|e| {
            !serde_json::from_str::<Url>(e.get())
                .ok()
                .and_then(|e| e.url)
                .is_some_and(|u| u.starts_with(PAMA_URL_PREFIX))
        })
        .chain(extensions.iter().map(AsRef::as_ref))
        .collect();
    Some(raw_json(&list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::Category;
    use serde_json::Value;

    /// A guideline row whose median equals its rating.
    fn rating_row(procedure: &str, rating: u8, category: Category, evidence: &str) -> RatingRow {
        RatingRow {
            procedure: procedure.into(),
            rating,
            median: rating,
            category,
            evidence: evidence.into(),
        }
    }

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
        let row = rating_row("CT_SPINE_WWO", 3, Category::UsuallyNotAppropriate, "Strong");
        let ext = pama_extensions(
            g,
            PamaRating::NotAppropriate,
            Some((&row, "V1")),
            "urn:uuid:00000000-0000-0000-0000-000000000001",
            &Options::default(),
        );
        let a = rating_action(&draft, &ext).unwrap();
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

    /// Earlier PAMA extensions go; every other extension stays exactly as sent (member order,
    /// escapes, items that are not objects); new ones follow; the text is JSON with the same
    /// extensions a `Value` would hold.
    #[test]
    fn extension_list_replaces_only_pama_extensions() {
        let draft = r#"{"extension":[{"valueString":"x \"y\"","url":"http://example.org/keep"},{"url":"http://fhir.org/argonaut/Extension/pama-rating-consult-id","valueUri":"urn:uuid:old"},7,{"url":3}]}"#;
        let members = DraftMembers::parse(draft).unwrap();
        let new = [RawValue::from_string(r#"{"url":"new"}"#.into()).unwrap()];
        let list = pama_extension_list(&members, &new).unwrap();
        assert_eq!(
            list.get(),
            r#"[{"valueString":"x \"y\"","url":"http://example.org/keep"},7,{"url":3},{"url":"new"}]"#
        );
        let none = DraftMembers::parse(r#"{"id":"a"}"#).unwrap();
        assert_eq!(pama_extension_list(&none, &[]).unwrap().get(), "[]");
        assert_eq!(
            pama_extension_list(&none, &new).unwrap().get(),
            r#"[{"url":"new"}]"#
        );
        let not_a_list = DraftMembers::parse(r#"{"extension":{"url":"u"}}"#).unwrap();
        assert!(pama_extension_list(&not_a_list, &[]).is_none());
    }

    /// Each extension is JSON text with its members, in the order `serde_json` writes a
    /// `Value` object (what they were built as before).
    #[test]
    fn extensions_text_is_valid_json_with_every_extension() {
        let kb = crate::index::test_kb::engine();
        let g = &kb.knowledge().guideline;
        let row = rating_row("MRI", 8, Category::UsuallyAppropriate, "Limited");
        let options = Options {
            qcdsm_consulted: Some("vcf-cds \"1\"".into()),
            ..Options::default()
        };
        let text = pama_extensions(
            g,
            PamaRating::Appropriate,
            Some((&row, "V2")),
            "c-1",
            &options,
        );
        let text = serde_json::to_string(&text).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let v = v.as_array().unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0]["url"], PAMA_RATING_URL);
        let coding = v[0]["valueCodeableConcept"]["coding"].as_array().unwrap();
        assert_eq!(coding[0]["system"], PAMA_RATING_SYSTEM);
        assert_eq!(coding[0]["code"], "appropriate");
        assert_eq!(coding[1]["system"], category_system(g));
        assert_eq!(coding[2]["display"], "ACR rating 8/9 (V2)");
        assert_eq!(v[1]["valueUri"], "c-1");
        assert_eq!(v[2]["valueUri"], g.auc_uri.as_str());
        assert_eq!(v[3]["valueString"], "vcf-cds \"1\"");
        // Members in the order serde_json writes a `Value` object (sorted).
        assert_eq!(serde_json::to_string(&v).unwrap(), text);
        let none = pama_extensions(
            g,
            PamaRating::NoCriteriaApply,
            None,
            "c",
            &Options::default(),
        );
        let v: Value = serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
        assert_eq!(
            v[0]["valueCodeableConcept"]["coding"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}

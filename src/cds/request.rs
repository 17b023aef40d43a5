//! Parsing and validation of a CDS Hooks 2.0 service request for `order-select` / `order-sign`.
//!
//! Small typed serde structs read only what the service uses; unknown members and `extension`s
//! are ignored. Every rejection names the JSON path of the element at fault. Draft orders keep
//! their raw JSON so that the rating `update` returns them exactly as received.

use crate::error::ApiError;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::fmt;
use vcf_engine::evaluate::{DraftOrder, Hook};
use vcf_engine::fhir::{
    AnyResource, Bundle, FhirResource, InputError, OperationOutcome, ServiceRequest, join_path,
    parse_at, require_object,
};

/// `fhirAuthorization` (the access token is never logged: `Debug` redacts it).
#[derive(Clone, Deserialize)]
pub struct FhirAuthorization {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<serde_json::Number>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub patient: Option<String>,
}

impl fmt::Debug for FhirAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirAuthorization")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    hook_instance: Option<String>,
    #[serde(default)]
    fhir_server: Option<String>,
    #[serde(default)]
    fhir_authorization: Option<Box<RawValue>>,
    #[serde(default)]
    context: Option<Box<RawValue>>,
    #[serde(default)]
    prefetch: Option<PrefetchMap>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Context {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    patient_id: Option<String>,
    #[serde(default)]
    encounter_id: Option<String>,
    #[serde(default)]
    selections: Option<Vec<String>>,
    #[serde(default)]
    draft_orders: Option<Box<RawValue>>,
}

/// Prefetch object: key -> raw value (`None` for JSON `null`). Rejects duplicate keys, which a
/// plain map would silently collapse.
struct PrefetchMap(BTreeMap<String, Option<Box<RawValue>>>);

impl<'de> Deserialize<'de> for PrefetchMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PrefetchMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of prefetch keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PrefetchMap, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value_seed(OptionalRaw)?;
                    if out.insert(key.clone(), value).is_some() {
                        return Err(de::Error::custom(format!("duplicate prefetch key {key:?}")));
                    }
                }
                Ok(PrefetchMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct OptionalRaw;

impl<'de> DeserializeSeed<'de> for OptionalRaw {
    type Value = Option<Box<RawValue>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Option::<Box<RawValue>>::deserialize(d)
    }
}

/// One prefetch value as sent by the client.
#[derive(Debug, Clone)]
pub enum PrefetchValue {
    /// JSON `null`: the client has no data for this template.
    Null,
    /// The client reported an error retrieving the data.
    Outcome(OperationOutcome),
    /// Data: the resources of a searchset (OperationOutcome entries left out), or one resource.
    Resources {
        resources: Vec<AnyResource>,
        /// `next` link of a paginated searchset.
        next: Option<String>,
    },
}

/// A validated service request.
#[derive(Debug)]
pub struct HookRequest {
    pub hook: Hook,
    pub hook_instance: String,
    pub fhir_server: Option<String>,
    pub fhir_authorization: Option<FhirAuthorization>,
    pub user_id: String,
    pub patient_id: String,
    pub encounter_id: Option<String>,
    pub draft_orders: Vec<DraftOrder>,
    /// Keys present in the request (absent keys are not in the map).
    pub prefetch: BTreeMap<String, PrefetchValue>,
}

/// Resource types whose references can be a user (`context.userId`).
const USER_TYPES: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "RelatedPerson",
];

/// FHIR `id`: 1-64 of `[A-Za-z0-9\-\.]`.
fn is_fhir_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `Type/id` with a FHIR resource type name and a FHIR id.
fn split_reference(s: &str) -> Option<(&str, &str)> {
    let (t, id) = s.split_once('/')?;
    let type_ok = t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphanumeric());
    (type_ok && is_fhir_id(id)).then_some((t, id))
}

fn required<T>(v: Option<T>, path: &str) -> Result<T, InputError> {
    v.ok_or_else(|| InputError::new(path, "required element is missing"))
}

fn non_empty(s: String, path: &str) -> Result<String, InputError> {
    if s.trim().is_empty() {
        Err(InputError::new(path, "must not be empty"))
    } else {
        Ok(s)
    }
}

/// Parses and validates a request for the service whose hook is `expected`.
pub fn parse(
    body: &[u8],
    expected: Hook,
    max_draft_orders: usize,
) -> Result<HookRequest, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("", "request body is not UTF-8 encoded JSON"))?;
    // security (issue 5): hostile nesting is refused before any deserialization.
    if crate::limits::json_too_deep(body, crate::limits::MAX_JSON_DEPTH) {
        return Err(ApiError::bad_request(
            "",
            format!(
                "request body nests JSON deeper than {} levels",
                crate::limits::MAX_JSON_DEPTH
            ),
        ));
    }
    require_object(text, "").map_err(|_| {
        ApiError::bad_request(
            "",
            "request body must be a JSON object (a CDS Hooks request)",
        )
    })?;
    let env: Envelope = parse_at(text, "").map_err(|e| {
        if e.path.is_empty() || e.path == "." {
            ApiError::bad_request(
                "",
                format!(
                    "request body is not a valid CDS Hooks request: {}",
                    e.message
                ),
            )
        } else {
            ApiError::from(e)
        }
    })?;
    Ok(validate(env, expected, max_draft_orders)?)
}

fn validate(
    env: Envelope,
    expected: Hook,
    max_draft_orders: usize,
) -> Result<HookRequest, InputError> {
    let hook = non_empty(required(env.hook, "hook")?, "hook")?;
    if hook != expected.as_str() {
        return Err(InputError::new(
            "hook",
            format!(
                "this service handles {:?}, the request is for {hook:?}",
                expected.as_str()
            ),
        ));
    }
    let hook_instance = non_empty(required(env.hook_instance, "hookInstance")?, "hookInstance")?;
    if hook_instance.len() > 256 || hook_instance.chars().any(char::is_control) {
        return Err(InputError::new(
            "hookInstance",
            "must be a UUID-like string of at most 256 printable characters",
        ));
    }

    if let Some(server) = &env.fhir_server {
        match url::Url::parse(server) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(InputError::new(
                    "fhirServer",
                    "must be an absolute http(s) URL",
                ));
            }
        }
    }
    let fhir_authorization = match env.fhir_authorization {
        None => None,
        Some(raw) => {
            require_object(raw.get(), "fhirAuthorization")?;
            let auth: FhirAuthorization = parse_at(raw.get(), "fhirAuthorization")?;
            if env.fhir_server.is_none() {
                return Err(InputError::new(
                    "fhirAuthorization",
                    "fhirAuthorization requires fhirServer",
                ));
            }
            validate_authorization(&auth)?;
            Some(auth)
        }
    };

    let ctx_raw = required(env.context, "context")?;
    require_object(ctx_raw.get(), "context")?;
    let ctx: Context = parse_at(ctx_raw.get(), "context")?;
    let user_id = non_empty(required(ctx.user_id, "context.userId")?, "context.userId")?;
    match split_reference(&user_id) {
        Some((t, _)) if USER_TYPES.contains(&t) => {}
        _ => {
            return Err(InputError::new(
                "context.userId",
                format!(
                    "{user_id:?} must be a reference like Practitioner/123 ({})",
                    USER_TYPES.join(", ")
                ),
            ));
        }
    }
    let patient_id = required(ctx.patient_id, "context.patientId")?;
    if !is_fhir_id(&patient_id) {
        return Err(InputError::new(
            "context.patientId",
            "must be a FHIR id (1-64 letters, digits, '-' or '.')",
        ));
    }
    if let Some(e) = &ctx.encounter_id
        && !is_fhir_id(e)
    {
        return Err(InputError::new(
            "context.encounterId",
            "must be a FHIR id (1-64 letters, digits, '-' or '.')",
        ));
    }
    let draft_raw = required(ctx.draft_orders, "context.draftOrders")?;
    let mut draft_orders = parse_draft_orders(&draft_raw, &patient_id, max_draft_orders)?;

    match expected {
        Hook::OrderSelect => {
            let selections = required(ctx.selections, "context.selections")?;
            if selections.is_empty() {
                return Err(InputError::new(
                    "context.selections",
                    "order-select needs at least one selected order",
                ));
            }
            for (i, sel) in selections.iter().enumerate() {
                let path = format!("context.selections[{i}]");
                let Some((t, id)) = split_reference(sel) else {
                    return Err(InputError::new(
                        path,
                        format!("{sel:?} must be a ResourceType/id reference"),
                    ));
                };
                let mut found = false;
                for o in draft_orders.iter_mut() {
                    if o.resource_type == t && o.id.as_deref() == Some(id) {
                        o.selected = true;
                        found = true;
                    }
                }
                if !found {
                    return Err(InputError::new(
                        path,
                        format!("{sel:?} is not an entry of context.draftOrders"),
                    ));
                }
            }
        }
        Hook::OrderSign => {
            // Clients such as the CDS Hooks sandbox send selections on order-sign too; they do
            // not restrict anything there: every draft order is signed.
            for o in draft_orders.iter_mut() {
                o.selected = true;
            }
        }
    }

    let mut prefetch = BTreeMap::new();
    if let Some(PrefetchMap(map)) = env.prefetch {
        for (key, raw) in map {
            // Keys this service did not ask for are not its business.
            let Some(expected) = expected_type(&key) else {
                continue;
            };
            let path = format!("prefetch.{key}");
            let value = match raw {
                None => PrefetchValue::Null,
                Some(raw) => parse_prefetch_value(raw.get(), &path, expected)?,
            };
            prefetch.insert(key, value);
        }
    }

    Ok(HookRequest {
        hook: expected,
        hook_instance,
        fhir_server: env.fhir_server,
        fhir_authorization,
        user_id,
        patient_id,
        encounter_id: ctx.encounter_id,
        draft_orders,
        prefetch,
    })
}

fn validate_authorization(auth: &FhirAuthorization) -> Result<(), InputError> {
    let p = "fhirAuthorization";
    match &auth.access_token {
        Some(t) if !t.is_empty() => {}
        _ => return Err(InputError::new(format!("{p}.access_token"), "required")),
    }
    match &auth.token_type {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        Some(_) => {
            return Err(InputError::new(
                format!("{p}.token_type"),
                "must be \"Bearer\"",
            ));
        }
        None => return Err(InputError::new(format!("{p}.token_type"), "required")),
    }
    match &auth.expires_in {
        Some(n) if n.as_u64().is_some() => {}
        Some(_) => {
            return Err(InputError::new(
                format!("{p}.expires_in"),
                "must be a non-negative integer",
            ));
        }
        None => return Err(InputError::new(format!("{p}.expires_in"), "required")),
    }
    if auth.scope.as_deref().is_none_or(str::is_empty) {
        return Err(InputError::new(format!("{p}.scope"), "required"));
    }
    if auth.subject.as_deref().is_none_or(str::is_empty) {
        return Err(InputError::new(format!("{p}.subject"), "required"));
    }
    Ok(())
}

fn parse_draft_orders(
    raw: &RawValue,
    patient_id: &str,
    max: usize,
) -> Result<Vec<DraftOrder>, InputError> {
    let path = "context.draftOrders";
    let bundle = Bundle::parse(raw.get(), path)?;
    // Bounded work per request (issue 13): refused before any entry is parsed or evaluated.
    if bundle.entry.len() > max {
        return Err(InputError::new(
            format!("{path}.entry"),
            format!(
                "{} draft orders; at most {max} are accepted per call (max_draft_orders)",
                bundle.entry.len()
            ),
        ));
    }
    let mut orders = Vec::with_capacity(bundle.entry.len());
    for (i, entry) in bundle.entry.into_iter().enumerate() {
        let epath = format!("{path}.entry[{i}].resource");
        let Some(res) = entry.resource else {
            return Err(InputError::new(epath, "required element is missing"));
        };
        let (resource_type, id, service_request) = match AnyResource::parse(res.get(), &epath)? {
            AnyResource::Other { resource_type, id } => (resource_type, id, None),
            AnyResource::Bundle(_) | AnyResource::OperationOutcome(_) => {
                return Err(InputError::new(
                    join_path(&epath, "resourceType"),
                    "draftOrders entries must be request resources",
                ));
            }
            _ => {
                let header: vcf_engine::fhir::ResourceHeader = parse_at(res.get(), &epath)?;
                (header.resource_type.unwrap_or_default(), header.id, None)
            }
        };
        // security (issue 5): resources of another FHIR version are refused, not ignored.
        if let Some(version) = crate::limits::pre_r4_resource_type(&resource_type) {
            return Err(InputError::new(
                join_path(&epath, "resourceType"),
                format!("{resource_type} is not a FHIR R4 resource ({version})"),
            ));
        }
        let service_request = if resource_type == "ServiceRequest" {
            let sr = ServiceRequest::parse(res.get(), &epath)?;
            check_subject(&sr, patient_id, &epath)?;
            Some(sr)
        } else {
            service_request
        };
        if let Some(id) = &id
            && !is_fhir_id(id)
        {
            return Err(InputError::new(
                join_path(&epath, "id"),
                "must be a FHIR id (1-64 letters, digits, '-' or '.')",
            ));
        }
        orders.push(DraftOrder {
            resource_type,
            id,
            selected: false,
            raw: res,
            service_request,
        });
    }
    Ok(orders)
}

/// A draft order for another patient than `context.patientId` is a client error, not something
/// to rate.
fn check_subject(sr: &ServiceRequest, patient_id: &str, path: &str) -> Result<(), InputError> {
    let Some(reference) = sr.subject.as_ref().and_then(|s| s.reference.as_deref()) else {
        return Ok(());
    };
    let tail = reference.rsplit_once("Patient/").map(|(_, id)| id);
    match tail {
        Some(id) if id == patient_id => Ok(()),
        Some(_) => Err(InputError::new(
            join_path(path, "subject.reference"),
            "the order's subject is not context.patientId",
        )),
        None if reference.starts_with('#') || reference.starts_with("urn:") => Ok(()),
        None => Err(InputError::new(
            join_path(path, "subject.reference"),
            "the order's subject must be a Patient reference",
        )),
    }
}

/// The resource type a prefetch key's template returns (`Bundle` for searches).
fn expected_type(key: &str) -> Option<&'static str> {
    use crate::cds::discovery::{
        ALLERGIES, CONDITIONS, DEVICES, OBSERVATIONS, PATIENT, PROCEDURES, REPORTS,
    };
    match key {
        PATIENT => Some("Patient"),
        CONDITIONS | PROCEDURES | OBSERVATIONS | REPORTS | ALLERGIES | DEVICES => Some("Bundle"),
        _ => None,
    }
}

fn parse_prefetch_value(
    raw: &str,
    path: &str,
    expected: &str,
) -> Result<PrefetchValue, InputError> {
    let resource = AnyResource::parse(raw, path)?;
    let found = match &resource {
        AnyResource::Patient(_) => "Patient",
        AnyResource::Bundle(_) | AnyResource::OperationOutcome(_) => expected,
        _ => "",
    };
    if found != expected {
        return Err(InputError::new(
            join_path(path, "resourceType"),
            if expected == "Bundle" {
                "the template is a search: expected a searchset Bundle, an OperationOutcome or null"
                    .to_owned()
            } else {
                format!(
                    "the template is a read: expected a {expected}, an OperationOutcome or null"
                )
            },
        ));
    }
    Ok(match resource {
        AnyResource::OperationOutcome(oo) => PrefetchValue::Outcome(oo),
        AnyResource::Bundle(bundle) => {
            let next = bundle.next_link().map(str::to_owned);
            let mut resources = Vec::with_capacity(bundle.entry.len());
            for (i, entry) in bundle.entry.iter().enumerate() {
                let Some(res) = &entry.resource else {
                    continue;
                };
                let epath = format!("{path}.entry[{i}].resource");
                match AnyResource::parse(res.get(), &epath)? {
                    // search.mode=outcome warnings inside a searchset do not make it an error.
                    AnyResource::OperationOutcome(_) => {}
                    AnyResource::Bundle(_) => {
                        return Err(InputError::new(
                            join_path(&epath, "resourceType"),
                            "nested Bundles are not supported in prefetch",
                        ));
                    }
                    r => resources.push(r),
                }
            }
            PrefetchValue::Resources { resources, next }
        }
        r => PrefetchValue::Resources {
            resources: vec![r],
            next: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn select(v: serde_json::Value) -> Result<HookRequest, ApiError> {
        parse(v.to_string().as_bytes(), Hook::OrderSelect, 100)
    }

    fn base() -> serde_json::Value {
        json!({
            "hook": "order-select",
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {
                "userId": "Practitioner/123",
                "patientId": "p1",
                "selections": ["ServiceRequest/sr1"],
                "draftOrders": {"resourceType": "Bundle", "entry": [
                    {"resource": {"resourceType": "ServiceRequest", "id": "sr1", "status": "draft",
                        "intent": "order", "subject": {"reference": "Patient/p1"},
                        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148"}]}}},
                    {"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "draft"}}
                ]}
            }
        })
    }

    fn path_of(e: ApiError) -> String {
        e.issues[0].expression.clone().unwrap_or_default()
    }

    #[test]
    fn accepts_a_valid_request() {
        let r = select(base()).unwrap();
        assert_eq!(r.draft_orders.len(), 2);
        assert!(r.draft_orders[0].selected);
        assert!(!r.draft_orders[1].selected);
        assert!(r.draft_orders[0].service_request.is_some());
        assert!(r.prefetch.is_empty());
    }

    #[test]
    fn names_the_wrong_element() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("hook", json!("order-sign")),
            ("hookInstance", json!("")),
            ("context", json!(null)),
        ];
        for (field, value) in cases {
            let mut v = base();
            v[field] = value;
            assert_eq!(path_of(select(v).unwrap_err()), field);
        }
        let mut v = base();
        v["context"]["selections"] = json!(["ServiceRequest/nope"]);
        assert_eq!(path_of(select(v).unwrap_err()), "context.selections[0]");
        let mut v = base();
        v["context"]["selections"] = json!(["not a reference"]);
        assert_eq!(path_of(select(v).unwrap_err()), "context.selections[0]");
        let mut v = base();
        v["context"]["userId"] = json!("123");
        assert_eq!(path_of(select(v).unwrap_err()), "context.userId");
        let mut v = base();
        v["fhirAuthorization"] = json!({"access_token": "t", "token_type": "Bearer", "expires_in": 300, "scope": "s", "subject": "c"});
        assert_eq!(path_of(select(v).unwrap_err()), "fhirAuthorization");
        let mut v = base();
        v["context"]["draftOrders"]["entry"][0]["resource"]["authoredOn"] = json!("2024-13-01");
        assert_eq!(
            path_of(select(v).unwrap_err()),
            "context.draftOrders.entry[0].resource.authoredOn"
        );
        let mut v = base();
        v["context"]["draftOrders"]["entry"][0]["resource"]["subject"]["reference"] =
            json!("Patient/other");
        assert_eq!(
            path_of(select(v).unwrap_err()),
            "context.draftOrders.entry[0].resource.subject.reference"
        );
    }

    #[test]
    fn prefetch_values_keep_their_meaning() {
        let mut v = base();
        v["prefetch"] = json!({
            "patient": null,
            "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": []},
            "procedures": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
        });
        let r = select(v).unwrap();
        assert!(matches!(r.prefetch["patient"], PrefetchValue::Null));
        assert!(
            matches!(&r.prefetch["conditions"], PrefetchValue::Resources { resources, .. } if resources.is_empty())
        );
        assert!(matches!(
            r.prefetch["procedures"],
            PrefetchValue::Outcome(_)
        ));
        assert!(!r.prefetch.contains_key("observations"));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let body = br#"{"hook":"order-select","hook":"order-sign"}"#;
        assert!(parse(body, Hook::OrderSelect, 100).is_err());
        let mut v = base().to_string();
        v.pop();
        v.push_str(r#","prefetch":{"patient":null,"patient":null}}"#);
        let e = parse(v.as_bytes(), Hook::OrderSelect, 100).unwrap_err();
        assert!(e.to_string().contains("duplicate prefetch key"), "{e}");
    }

    #[test]
    fn order_sign_needs_no_selections() {
        let mut v = base();
        v["hook"] = json!("order-sign");
        v["context"].as_object_mut().unwrap().remove("selections");
        let r = parse(v.to_string().as_bytes(), Hook::OrderSign, 100).unwrap();
        assert!(r.draft_orders.iter().all(|o| o.selected));
    }
}

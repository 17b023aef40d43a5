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
    AnyResource, Bundle, BundleLink, FhirResource, InputError, OperationOutcome,
    OperationOutcomeIssue, Patient, ServiceRequest, join_path, parse_at, require_object,
    scan_resource_type,
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

/// The request's top level. `C` and `P` are how `context` and `prefetch` are read: kept raw
/// and parsed one by one (`Box<RawValue>`, [`PrefetchMap`]: the reference path, which names
/// every error), or parsed in the same pass ([`ObjectOnly`]`<Context>`, [`FastPrefetch`]: the
/// fast path, which only ever succeeds where the reference path gives the same request).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<C, P> {
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    hook_instance: Option<String>,
    #[serde(default)]
    fhir_server: Option<String>,
    #[serde(default)]
    fhir_authorization: Option<Box<RawValue>>,
    #[serde(default = "none")]
    context: Option<C>,
    #[serde(default = "none")]
    prefetch: Option<P>,
}

fn none<T>() -> Option<T> {
    None
}

/// How `context` reaches validation.
trait ContextSource {
    type DraftOrders: DraftOrdersSource;
    fn into_context(self) -> Result<Context<Self::DraftOrders>, InputError>;
}

impl ContextSource for Box<RawValue> {
    type DraftOrders = Box<RawValue>;
    fn into_context(self) -> Result<Context<Box<RawValue>>, InputError> {
        require_object(self.get(), "context")?;
        parse_at(self.get(), "context")
    }
}

impl ContextSource for ObjectOnly<Context<ObjectOnly<Bundle>>> {
    type DraftOrders = ObjectOnly<Bundle>;
    fn into_context(self) -> Result<Context<ObjectOnly<Bundle>>, InputError> {
        Ok(self.0)
    }
}

/// How `prefetch` reaches validation: the values of the keys this service asked for.
trait PrefetchSource {
    fn into_values(self) -> Result<BTreeMap<String, PrefetchValue>, InputError>;
}

impl PrefetchSource for PrefetchMap {
    fn into_values(self) -> Result<BTreeMap<String, PrefetchValue>, InputError> {
        let mut prefetch = BTreeMap::new();
        for (key, raw) in self.0 {
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
        Ok(prefetch)
    }
}

/// A JSON object read as `T` (a derived struct alone also accepts an array, positionally).
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ObjectOnly<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ObjectOnly<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The prefetch object read in the envelope's own pass (issue 12: the reference path copies
/// each value out raw and parses it again). Values of the asked-for keys are read as
/// [`FastResource`]; anything the fast path does not handle fails it, and the request is then
/// parsed by the reference path, which gives the answer or the error.
struct FastPrefetch(BTreeMap<String, Option<ObjectOnly<FastResource>>>);

impl<'de> Deserialize<'de> for FastPrefetch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FastPrefetch;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of prefetch keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastPrefetch, A::Error> {
                let mut out = BTreeMap::new();
                let mut ignored = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if expected_type(&key).is_none() {
                        map.next_value::<de::IgnoredAny>()?;
                        if ignored.contains(&key) {
                            return Err(de::Error::custom("duplicate prefetch key"));
                        }
                        ignored.push(key);
                        continue;
                    }
                    let value = map.next_value::<Option<ObjectOnly<FastResource>>>()?;
                    if out.insert(key, value).is_some() {
                        return Err(de::Error::custom("duplicate prefetch key"));
                    }
                }
                Ok(FastPrefetch(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The members of the resources a prefetch value may be (Patient, Bundle, OperationOutcome),
/// each typed as in its own struct: whatever reads as this reads the same as its own type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastResource {
    resource_type: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    birth_date: Option<String>,
    #[serde(default, rename = "type")]
    bundle_type: Option<String>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    link: Vec<BundleLink>,
    #[serde(default)]
    entry: Vec<FastEntry>,
    #[serde(default)]
    issue: Vec<OperationOutcomeIssue>,
}

/// A prefetch Bundle entry read in the same pass (the reference path keeps `resource` raw and
/// parses it on its own: a second pass over most of the request).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FastEntry {
    // Read (and type-checked) as the reference path's `BundleEntry` reads it, then dropped.
    #[serde(default)]
    #[allow(dead_code)]
    full_url: Option<String>,
    #[serde(default)]
    resource: Option<FastAny>,
}

/// One resource, read as `AnyResource::parse` reads it, when `resourceType` is its first member
/// (as FHIR servers write it); otherwise the fast path fails and the reference path reads it.
struct FastAny(AnyResource);

/// Hands a typed resource's deserializer the `resourceType` member already read, then the rest
/// of the object.
struct Replay<A> {
    resource_type: Option<String>,
    key_given: bool,
    map: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Replay<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if !self.key_given {
            self.key_given = true;
            return seed
                .deserialize(de::value::StrDeserializer::<A::Error>::new("resourceType"))
                .map(Some);
        }
        self.map.next_key_seed(seed)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.resource_type.take() {
            Some(rt) => seed.deserialize(de::value::StringDeserializer::<A::Error>::new(rt)),
            None => self.map.next_value_seed(seed),
        }
    }
}

/// `id` (and any repeated `resourceType`, which the reference path's header parse refuses) of a
/// resource type the engine does not read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OtherRest {
    #[serde(default)]
    resource_type: Option<de::IgnoredAny>,
    #[serde(default)]
    id: Option<String>,
}

impl<'de> Deserialize<'de> for FastAny {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn typed<'de, T: FhirResource, A: MapAccess<'de>>(
            rt: String,
            map: A,
        ) -> Result<T, A::Error> {
            let replay = Replay {
                resource_type: Some(rt),
                key_given: false,
                map,
            };
            let r = T::deserialize(de::value::MapAccessDeserializer::new(replay))?;
            // As `FhirResource::parse`: the type, and the fields the engine reads.
            if r.resource_type() != T::TYPE {
                return Err(de::Error::custom("resourceType mismatch"));
            }
            r.validate_fields("").map_err(de::Error::custom)?;
            Ok(r)
        }
        impl<'de> Visitor<'de> for V {
            type Value = FastAny;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a FHIR resource")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FastAny, A::Error> {
                if map.next_key::<String>()?.as_deref() != Some("resourceType") {
                    return Err(de::Error::custom("resourceType is not the first member"));
                }
                let rt: String = map.next_value()?;
                Ok(FastAny(match rt.as_str() {
                    "Patient" => AnyResource::Patient(typed(rt, map)?),
                    "Condition" => AnyResource::Condition(typed(rt, map)?),
                    "Procedure" => AnyResource::Procedure(typed(rt, map)?),
                    "Observation" => AnyResource::Observation(typed(rt, map)?),
                    "DiagnosticReport" => AnyResource::DiagnosticReport(typed(rt, map)?),
                    "AllergyIntolerance" => AnyResource::AllergyIntolerance(typed(rt, map)?),
                    "Device" => AnyResource::Device(typed(rt, map)?),
                    "OperationOutcome" => AnyResource::OperationOutcome(typed(rt, map)?),
                    _ if rt.is_empty()
                        || rt == "Bundle"
                        || !rt.chars().all(|c| c.is_ascii_alphanumeric()) =>
                    {
                        return Err(de::Error::custom("not handled by the fast path"));
                    }
                    _ => {
                        let rest =
                            OtherRest::deserialize(de::value::MapAccessDeserializer::new(map))?;
                        if rest.resource_type.is_some() {
                            return Err(de::Error::custom("duplicate field `resourceType`"));
                        }
                        AnyResource::Other {
                            resource_type: rt,
                            id: rest.id,
                        }
                    }
                }))
            }
        }
        d.deserialize_map(V)
    }
}

/// A refusal of the fast path: the reference path takes over.
fn not_fast() -> InputError {
    InputError::new("", "not handled by the fast path")
}

impl PrefetchSource for FastPrefetch {
    fn into_values(self) -> Result<BTreeMap<String, PrefetchValue>, InputError> {
        let mut prefetch = BTreeMap::new();
        for (key, value) in self.0 {
            let expected = expected_type(&key).ok_or_else(not_fast)?;
            let path = format!("prefetch.{key}");
            let value = match value {
                None => PrefetchValue::Null,
                Some(ObjectOnly(r)) => match (r.resource_type.as_str(), expected) {
                    ("OperationOutcome", _) => PrefetchValue::Outcome(OperationOutcome {
                        resource_type: r.resource_type,
                        issue: r.issue,
                    }),
                    ("Bundle", "Bundle") => {
                        let bundle = Bundle {
                            resource_type: r.resource_type,
                            id: r.id,
                            bundle_type: r.bundle_type,
                            total: r.total,
                            link: r.link,
                            entry: Vec::new(),
                        };
                        bundle.validate_fields(&path)?;
                        let next = bundle.next_link().map(str::to_owned);
                        let resources = r
                            .entry
                            .into_iter()
                            .filter_map(|e| e.resource)
                            // search.mode=outcome warnings inside a searchset do not make it an
                            // error (as in `bundle_value`).
                            .filter(|r| !matches!(r.0, AnyResource::OperationOutcome(_)))
                            .map(|r| r.0)
                            .collect();
                        PrefetchValue::Resources { resources, next }
                    }
                    ("Patient", "Patient") => {
                        let patient = Patient {
                            resource_type: r.resource_type,
                            id: r.id,
                            birth_date: r.birth_date,
                        };
                        patient.validate_fields(&path)?;
                        PrefetchValue::Resources {
                            resources: vec![AnyResource::Patient(patient)],
                            next: None,
                        }
                    }
                    _ => return Err(not_fast()),
                },
            };
            prefetch.insert(key, value);
        }
        Ok(prefetch)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Context<D> {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    patient_id: Option<String>,
    #[serde(default)]
    encounter_id: Option<String>,
    #[serde(default)]
    selections: Option<Vec<String>>,
    /// Raw (`Box<RawValue>`, the reference path) or read in the same pass
    /// (`ObjectOnly<Bundle>`, the fast path; its entries stay raw either way).
    #[serde(default = "none")]
    draft_orders: Option<D>,
}

/// How `context.draftOrders` reaches validation: as the Bundle `Bundle::parse` would give.
trait DraftOrdersSource {
    fn into_bundle(self) -> Result<Bundle, InputError>;
}

impl DraftOrdersSource for Box<RawValue> {
    fn into_bundle(self) -> Result<Bundle, InputError> {
        Bundle::parse(self.get(), DRAFT_ORDERS)
    }
}

impl DraftOrdersSource for ObjectOnly<Bundle> {
    fn into_bundle(self) -> Result<Bundle, InputError> {
        // As `FhirResource::parse` after the object is read.
        let bundle = self.0;
        if bundle.resource_type != "Bundle" {
            return Err(not_fast());
        }
        bundle.validate_fields(DRAFT_ORDERS)?;
        Ok(bundle)
    }
}

const DRAFT_ORDERS: &str = "context.draftOrders";

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
    /// Keys present in the request (absent keys are not in the map). The pipeline moves the
    /// values into the patient record (`Processed::request` has this map empty).
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
    // security (issue 5): hostile nesting is refused before any deserialization. The same
    // pass removes the whitespace between tokens (issue 12: every later pass over a
    // pretty-printed request skipped it again, byte by byte).
    let Some(compact) = vcf_engine::json_text::minify(text, crate::limits::MAX_JSON_DEPTH) else {
        return Err(ApiError::bad_request(
            "",
            format!(
                "request body nests JSON deeper than {} levels",
                crate::limits::MAX_JSON_DEPTH
            ),
        ));
    };
    require_object(&compact, "").map_err(|_| {
        ApiError::bad_request(
            "",
            "request body must be a JSON object (a CDS Hooks request)",
        )
    })?;
    // The fast path reads context and prefetch in the envelope's pass; it is only taken when
    // it succeeds, and then gives what the reference path below would (any error, or anything
    // it does not handle, and the reference path parses the request again and says what).
    if let Some(request) = parse_fast(&compact, expected, max_draft_orders) {
        return Ok(request);
    }
    // The reference path reads the body as sent, so that its errors point at the client's
    // lines and columns.
    parse_reference(text, expected, max_draft_orders)
}

/// The request read in one pass over context and prefetch; `None` when that fails for any
/// reason (the reference path then names the error).
fn parse_fast(text: &str, expected: Hook, max_draft_orders: usize) -> Option<HookRequest> {
    let env: Envelope<ObjectOnly<Context<ObjectOnly<Bundle>>>, FastPrefetch> =
        serde_json::from_str(text).ok()?;
    validate(env, expected, max_draft_orders).ok()
}

/// The request read with context and each prefetch value kept raw and parsed on their own, so
/// that every error names its JSON path.
fn parse_reference(
    text: &str,
    expected: Hook,
    max_draft_orders: usize,
) -> Result<HookRequest, ApiError> {
    let env: Envelope<Box<RawValue>, PrefetchMap> = parse_at(text, "").map_err(|e| {
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

fn validate<C: ContextSource, P: PrefetchSource>(
    env: Envelope<C, P>,
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

    let ctx = required(env.context, "context")?.into_context()?;
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
    let draft_bundle = required(ctx.draft_orders, DRAFT_ORDERS)?.into_bundle()?;
    let mut draft_orders = parse_draft_orders(draft_bundle, &patient_id, max_draft_orders)?;

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

    let prefetch = match env.prefetch {
        Some(p) => p.into_values()?,
        None => BTreeMap::new(),
    };

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
    bundle: Bundle,
    patient_id: &str,
    max: usize,
) -> Result<Vec<DraftOrder>, InputError> {
    let path = DRAFT_ORDERS;
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
        // A ServiceRequest (the usual draft order) is parsed once: when that succeeds, the
        // generic header parse below would give the same type and id (issue 12).
        if scan_resource_type(res.get()) == Some("ServiceRequest")
            && let Ok(sr) = ServiceRequest::parse(res.get(), &epath)
        {
            check_subject(&sr, patient_id, &epath)?;
            if let Some(id) = &sr.id
                && !is_fhir_id(id)
            {
                return Err(InputError::new(
                    join_path(&epath, "id"),
                    "must be a FHIR id (1-64 letters, digits, '-' or '.')",
                ));
            }
            orders.push(DraftOrder {
                resource_type: sr.resource_type.clone(),
                id: sr.id.clone(),
                selected: false,
                raw: res,
                service_request: Some(sr),
            });
            continue;
        }
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
        AnyResource::Bundle(bundle) => bundle_value(&bundle, path)?,
        r => PrefetchValue::Resources {
            resources: vec![r],
            next: None,
        },
    })
}

/// The resources of a prefetch Bundle (OperationOutcome entries left out) and its next link.
fn bundle_value(bundle: &Bundle, path: &str) -> Result<PrefetchValue, InputError> {
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
    Ok(PrefetchValue::Resources { resources, next })
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

    /// The fast path either declines or gives exactly what the reference path gives. `parse`
    /// hands the fast path the body without the whitespace between tokens (the draft orders'
    /// raw JSON is then compact too), and the reference path the body as sent (for its errors).
    fn same_as_reference(body: &str, hook: Hook) {
        let compact = vcf_engine::json_text::minify(body, usize::MAX).unwrap();
        let reference = parse_reference(&compact, hook, 100);
        if let Some(fast) = parse_fast(&compact, hook, 100) {
            let Ok(reference) = &reference else {
                panic!("the fast path accepted what the reference path refuses: {body}");
            };
            assert_eq!(format!("{fast:?}"), format!("{reference:?}"), "{body}");
        }
        if require_object(body, "").is_err() {
            return; // refused by parse before either path
        }
        let whole = parse(body.as_bytes(), hook, 100);
        let as_sent = parse_reference(body, hook, 100);
        assert_eq!(as_sent.is_ok(), reference.is_ok(), "{body}");
        // What `parse` gives comes from the fast path (on the compact body) or else from the
        // reference path on the body as sent.
        let expected = if parse_fast(&compact, hook, 100).is_some() {
            &reference
        } else {
            &as_sent
        };
        match (&whole, expected) {
            (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
            (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
            _ => panic!("parse and the reference path disagree on {body}"),
        }
    }

    #[test]
    fn fast_path_matches_the_reference_path() {
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/hooks")).unwrap() {
            let body = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for hook in [Hook::OrderSelect, Hook::OrderSign] {
                same_as_reference(&body, hook);
            }
        }
        // Every example request its service accepts takes the fast path.
        let mut fast = 0;
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/hooks")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let body = std::fs::read_to_string(&path).unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let hook = match v["hook"].as_str() {
                Some("order-sign") => Hook::OrderSign,
                _ => Hook::OrderSelect,
            };
            if parse_reference(&body, hook, 100).is_ok() {
                assert!(parse_fast(&body, hook, 100).is_some(), "{}", path.display());
                fast += 1;
            }
        }
        assert!(fast >= 11, "{fast} example requests accepted");
        let bundle = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Condition", "id": "c1", "onsetDateTime": "2024-01-02"}},
            {"resource": {"resourceType": "OperationOutcome", "issue": []}}]});
        let values = [
            (
                "patient",
                json!({"resourceType": "Patient", "id": "p1", "birthDate": "1950-01-01"}),
            ),
            (
                "patient",
                json!({"resourceType": "Patient", "birthDate": "1950-13-01"}),
            ),
            ("patient", json!({"resourceType": "Patient", "entry": 5})),
            ("patient", json!(["Patient", "p1"])),
            ("patient", bundle.clone()),
            ("patient", json!({"resourceType": ""})),
            ("patient", json!({"resourceType": 5})),
            ("patient", json!({"id": "p1"})),
            ("conditions", bundle.clone()),
            (
                "conditions",
                json!({"resourceType": "Bundle", "type": "nonsense"}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": {"resource": {}}}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Bundle"}}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Condition", "id": "c1"}),
            ),
            (
                "conditions",
                json!({"resourceType": "OperationOutcome", "issue": [{"code": "timeout"}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [
                {"resource": {"id": "c1", "resourceType": "Condition"}}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [
                {"fullUrl": "urn:x", "resource": {"resourceType": "Encounter", "id": "e1"}},
                {"resource": null}, {"fullUrl": "urn:y"}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [{"fullUrl": 5}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [{"resource": 5}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [{"resource": []}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "Foo-Bar"}}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "Encounter", "id": 5}}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "Condition", "onsetDateTime": "2024-02-30"}}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "Condition", "code": {"coding": {}}}}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "OperationOutcome", "issue": 5}}]}),
            ),
            (
                "conditions",
                json!({"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "Observation", "valueString": "L1 fracture",
                    "derivedFrom": [{"reference": "DiagnosticReport/r"}]}},
                {"resource": {"resourceType": "DiagnosticReport", "presentedForm": [
                    {"contentType": "text/plain", "data": "bm90IGJhc2U2NA=="}]}},
                {"resource": {"resourceType": "DiagnosticReport", "presentedForm": [
                    {"contentType": "text/plain", "data": "%%%"}]}}]}),
            ),
            ("conditions", json!(null)),
            ("conditions", json!(7)),
            ("unasked", json!([1, 2])),
        ];
        for (key, value) in values {
            let mut v = base();
            v["prefetch"] = json!({ key: value });
            same_as_reference(&v.to_string(), Hook::OrderSelect);
        }
        let draft = |patch: serde_json::Value| {
            let mut v = base();
            let sr = &mut v["context"]["draftOrders"]["entry"][0]["resource"];
            for (k, x) in patch.as_object().unwrap() {
                sr[k] = x.clone();
            }
            v
        };
        for patch in [
            json!({"id": "s r"}),
            json!({"status": "pending"}),
            json!({"subject": {"reference": "Group/1"}}),
            json!({"subject": {"reference": "#p"}}),
            json!({"resourceType": "ProcedureRequest"}),
            json!({"resourceType": "Service-Request"}),
            json!({"code": 5}),
        ] {
            same_as_reference(&draft(patch).to_string(), Hook::OrderSelect);
        }
        let entry = base()["context"]["draftOrders"]["entry"][0].clone();
        for orders in [
            json!([entry.clone()]),
            json!({"resourceType": "List", "entry": [entry.clone()]}),
            json!({"resourceType": "Bundle", "type": "bogus", "entry": [entry.clone()]}),
            json!({"resourceType": "Bundle", "entry": entry.clone()}),
            json!({"resourceType": "Bundle", "entry": vec![entry.clone(); 101]}),
            json!({"resourceType": "Bundle", "entry": [entry.clone(), {"fullUrl": "urn:x"}]}),
            json!({"resourceType": "Bundle", "type": "collection", "id": 5, "entry": [entry]}),
        ] {
            let mut v = base();
            v["context"]["draftOrders"] = orders;
            same_as_reference(&v.to_string(), Hook::OrderSelect);
        }
        let mut v = base();
        v["context"] = json!(["Practitioner/123", "p1"]);
        same_as_reference(&v.to_string(), Hook::OrderSelect);
        let mut v = base();
        v["context"]["patientId"] = json!(5);
        same_as_reference(&v.to_string(), Hook::OrderSelect);
        let mut text = base().to_string();
        text.pop();
        for tail in [
            r#","prefetch":{"x":1,"x":2}}"#,
            r#","prefetch":{"patient":null,"patient":null}}"#,
            r#","prefetch":[]}"#,
            r#","prefetch":null}"#,
            r#","prefetch":{"patient":{"resourceType":"Pat\u0069ent","id":"p1"}}}"#,
            r#","prefetch":{"conditions":{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Condition","resourceType":"Condition"}}]}}}"#,
            r#","prefetch":{"conditions":{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Encounter","resourceType":"Encounter"}}]}}}"#,
            r#","prefetch":{"conditions":{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Cond\u0069tion","id":"c"}}]}}}"#,
            r#","prefetch":{"conditions":{"resourceType":"Bundle","entry":[{"resource":{"resource\u0054ype":"Condition","id":"c"}}]}}}"#,
        ] {
            same_as_reference(&format!("{text}{tail}"), Hook::OrderSelect);
        }
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

//! CDS Hooks 2.0 response types (cards, suggestions, actions, links, system actions).
//!
//! Serialization follows the 2.0 JSON rules: optional members without a value are omitted (never
//! `null`, `""`, `[]` or `{}`), action types are lowercase, and `selectionBehavior` is set
//! whenever suggestions are. [`Card::check`] enforces the rules that types alone cannot.

use serde::{Deserialize, Serialize};

/// Body of a successful service call.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CdsResponse {
    /// Always present; `[]` when there is no guidance.
    pub cards: Vec<Card>,
    #[serde(default)]
    pub system_actions: Vec<Action>,
    /// Response-level extensions (as read from a response; the engine sets none of its own).
    #[serde(default)]
    pub extension: Option<serde_json::Map<String, serde_json::Value>>,
    /// Also write `system_actions` as the legacy PAMA `extension.systemActions` (read there by
    /// the CDS Hooks sandbox's PAMA screen). Written from the same actions when the response is
    /// serialized, not kept as a second copy (issue 12: the copy was a deep clone of every
    /// rated draft order's JSON per call).
    #[serde(skip)]
    pub legacy_system_actions: bool,
}

impl Serialize for CdsResponse {
    /// `cards`, then `systemActions` and `extension` when they have content (never `[]` or
    /// `{}`); `extension` holds the legacy `systemActions` (see `legacy_system_actions`) after
    /// any other member.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let legacy = (self.legacy_system_actions && !self.system_actions.is_empty())
            .then_some(self.system_actions.as_slice());
        let other = self.extension.as_ref().filter(|m| !m.is_empty());
        let with_extension = legacy.is_some() || other.is_some();
        let fields = 1 + usize::from(!self.system_actions.is_empty()) + usize::from(with_extension);
        let mut st = s.serialize_struct("CdsResponse", fields)?;
        st.serialize_field("cards", &self.cards)?;
        if !self.system_actions.is_empty() {
            st.serialize_field("systemActions", &self.system_actions)?;
        }
        if with_extension {
            st.serialize_field(
                "extension",
                &Extension {
                    other,
                    system_actions: legacy,
                },
            )?;
        }
        st.end()
    }
}

/// The response's `extension` object as written.
struct Extension<'a> {
    other: Option<&'a serde_json::Map<String, serde_json::Value>>,
    system_actions: Option<&'a [Action]>,
}

impl Serialize for Extension<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.other.into_iter().flatten() {
            // One `systemActions` member: the engine's own when it writes the legacy copy.
            if !(self.system_actions.is_some() && k == "systemActions") {
                m.serialize_entry(k, v)?;
            }
        }
        if let Some(actions) = self.system_actions {
            m.serialize_entry("systemActions", actions)?;
        }
        m.end()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Indicator {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectionBehavior {
    AtMostOne,
    Any,
}

/// CDS Hooks' own Coding type (`system` and `code` required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coding {
    pub system: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<Coding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// One sentence, under 140 characters.
    pub summary: String,
    /// GitHub-flavoured markdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub indicator: Indicator,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Suggestion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_behavior: Option<SelectionBehavior>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub override_reasons: Vec<Coding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_recommended: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    #[serde(rename = "type")]
    pub action_type: ActionType,
    pub description: String,
    /// Whole resource for create / update; never for delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Relative reference (`ServiceRequest/abc`) for delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// The resource an action carries.
#[derive(Debug, Clone)]
pub enum Resource {
    /// Built by the engine (a new order), or read from a response.
    Json(serde_json::Value),
    /// The client's draft order with some top-level members replaced.
    Draft(EditedDraft),
}

impl Resource {
    /// The resource as a JSON value (for a [`Resource::Draft`], parsed on first use and kept).
    pub fn as_value(&self) -> &serde_json::Value {
        match self {
            Resource::Json(v) => v,
            Resource::Draft(d) => d.as_value(),
        }
    }
}

impl From<serde_json::Value> for Resource {
    fn from(v: serde_json::Value) -> Resource {
        Resource::Json(v)
    }
}

impl PartialEq for Resource {
    fn eq(&self, other: &Resource) -> bool {
        self.as_value() == other.as_value()
    }
}

impl Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Resource::Json(v) => v.serialize(s),
            Resource::Draft(d) => d.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Resource, D::Error> {
        serde_json::Value::deserialize(d).map(Resource::Json)
    }
}

/// A draft order's top-level members exactly as the client sent them, in its order: read once
/// per order and shared by every edit of it (the rating update, each `update` suggestion).
#[derive(Debug)]
pub struct DraftMembers(Vec<(String, Box<serde_json::value::RawValue>)>);

impl DraftMembers {
    /// The members of `raw`, a JSON object (`None` for anything else), without the whitespace
    /// between tokens: a pretty-printed draft is written back as compactly as the rest of the
    /// response.
    pub fn parse(raw: &str) -> Option<DraftMembers> {
        serde_json::from_str(&compact_json(raw)).ok()
    }

    /// The text of member `key` as sent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.get())
    }
}

impl<'de> Deserialize<'de> for DraftMembers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DraftMembers, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DraftMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<DraftMembers, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    members.push(entry);
                }
                Ok(DraftMembers(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// `json` without the whitespace between its tokens; string contents are kept as they are.
/// Not a validator: the text was parsed as JSON before, and is parsed again after. A compact
/// draft (what EHRs usually send, and every draft of a request the service minified on
/// arrival) is returned as it is, without a copy.
fn compact_json(json: &str) -> std::borrow::Cow<'_, str> {
    crate::json_text::minify(json, usize::MAX).unwrap_or(std::borrow::Cow::Borrowed(json))
}

/// A draft order with some top-level members replaced (a new `code`, the PAMA extensions);
/// every other member is written exactly as the client sent it. Issue 12: each edit was a
/// deep copy of the parsed draft (a `serde_json::Value` per member, three per rated order);
/// the replaced members are JSON text too, written as they are.
#[derive(Debug, Clone)]
pub struct EditedDraft {
    members: std::sync::Arc<DraftMembers>,
    /// Replaced members, and members the draft lacks (written after its own).
    replaced: Vec<(&'static str, Box<serde_json::value::RawValue>)>,
    value: std::sync::OnceLock<serde_json::Value>,
}

impl EditedDraft {
    /// The draft with `replaced` members given as JSON values.
    pub fn new(
        members: std::sync::Arc<DraftMembers>,
        replaced: Vec<(&'static str, serde_json::Value)>,
    ) -> EditedDraft {
        let replaced = replaced
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::value::to_raw_value(&v).ok()?)))
            .collect();
        EditedDraft::with_json(members, replaced)
    }

    /// The draft with `replaced` members given as JSON text.
    pub fn with_json(
        members: std::sync::Arc<DraftMembers>,
        replaced: Vec<(&'static str, Box<serde_json::value::RawValue>)>,
    ) -> EditedDraft {
        EditedDraft {
            members,
            replaced,
            value: std::sync::OnceLock::new(),
        }
    }

    fn replacement(&self, key: &str) -> Option<&serde_json::value::RawValue> {
        self.replaced
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The edited resource as a JSON value, parsed on first use.
    pub fn as_value(&self) -> &serde_json::Value {
        self.value
            .get_or_init(|| serde_json::to_value(self).unwrap_or(serde_json::Value::Null))
    }
}

impl Serialize for EditedDraft {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (k, raw) in &self.members.0 {
            match self.replacement(k) {
                Some(v) => m.serialize_entry(k, v)?,
                None => m.serialize_entry(k, raw)?,
            }
        }
        for (k, v) in &self.replaced {
            if self.members.get(k).is_none() {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkType {
    Absolute,
    Smart,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    pub label: String,
    pub url: String,
    #[serde(rename = "type")]
    pub link_type: LinkType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_context: Option<String>,
}

/// A violated CDS Hooks 2.0 response rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card rule violated: {0}")]
pub struct RuleViolation(pub String);

impl Card {
    /// Sets the card's suggestions; with any, the clinician picks at most one (CDS Hooks 2.0:
    /// suggestions need a `selectionBehavior`, see [`Card::check`]).
    pub fn set_suggestions(&mut self, suggestions: Vec<Suggestion>) {
        if !suggestions.is_empty() {
            self.selection_behavior = Some(SelectionBehavior::AtMostOne);
        }
        self.suggestions = suggestions;
    }

    /// Checks the 2.0 rules (and the `cds-resp-*` invariants of the logical model) that the
    /// types cannot express.
    pub fn check(&self) -> Result<(), RuleViolation> {
        let v = |m: String| Err(RuleViolation(m));
        if self.summary.is_empty() || self.summary.chars().count() >= 140 {
            return v(format!(
                "summary must be 1-139 characters, has {}",
                self.summary.chars().count()
            ));
        }
        if self.source.label.is_empty() {
            return v("source.label is empty".into());
        }
        if !self.suggestions.is_empty() && self.selection_behavior.is_none() {
            return v("suggestions without selectionBehavior".into());
        }
        if self.selection_behavior == Some(SelectionBehavior::AtMostOne)
            && self
                .suggestions
                .iter()
                .filter(|s| s.is_recommended == Some(true))
                .count()
                > 1
        {
            return v("at-most-one with more than one recommended suggestion".into());
        }
        for r in &self.override_reasons {
            if r.display.as_deref().unwrap_or("").is_empty() {
                return v(format!("overrideReason {} has no display", r.code));
            }
        }
        for l in &self.links {
            if l.link_type != LinkType::Smart && l.app_context.is_some() {
                return v("appContext on a non-smart link".into());
            }
        }
        for s in &self.suggestions {
            if s.label.is_empty() {
                return v("suggestion without label".into());
            }
            for a in &s.actions {
                a.check()?;
            }
        }
        Ok(())
    }
}

impl Action {
    /// `delete` carries `resourceId` and no resource; `create` / `update` carry a resource.
    pub fn check(&self) -> Result<(), RuleViolation> {
        match self.action_type {
            ActionType::Delete if self.resource_id.is_none() || self.resource.is_some() => Err(
                RuleViolation("delete must have resourceId and no resource".into()),
            ),
            ActionType::Create | ActionType::Update if self.resource.is_none() => Err(
                RuleViolation("create/update must carry the whole resource".into()),
            ),
            _ if self.description.is_empty() => {
                Err(RuleViolation("action without description".into()))
            }
            _ => Ok(()),
        }
    }
}

impl CdsResponse {
    /// Checks every card and system action.
    pub fn check(&self) -> Result<(), RuleViolation> {
        for c in &self.cards {
            c.check()?;
        }
        for a in &self.system_actions {
            a.check()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_optionals_are_omitted() {
        let r = CdsResponse::default();
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"cards":[]}"#);
        let card = Card {
            uuid: None,
            summary: "s".into(),
            detail: None,
            indicator: Indicator::Info,
            source: Source {
                label: "l".into(),
                url: None,
                icon: None,
                topic: None,
            },
            suggestions: vec![],
            selection_behavior: None,
            override_reasons: vec![],
            links: vec![],
        };
        assert_eq!(
            serde_json::to_string(&card).unwrap(),
            r#"{"summary":"s","indicator":"info","source":{"label":"l"}}"#
        );
        card.check().unwrap();
    }

    /// The legacy `extension.systemActions` is the same JSON as `systemActions`, written only
    /// when asked for and when there are actions; other extension members are kept, and
    /// nothing empty is written.
    #[test]
    fn legacy_system_actions_are_written_from_the_actions() {
        let a = Action {
            action_type: ActionType::Update,
            description: "d".into(),
            resource: Some(serde_json::json!({"resourceType": "ServiceRequest"}).into()),
            resource_id: None,
        };
        let mut r = CdsResponse {
            system_actions: vec![a],
            legacy_system_actions: true,
            ..CdsResponse::default()
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["extension"]["systemActions"], v["systemActions"]);
        assert_eq!(v["systemActions"][0]["type"], "update");
        assert_eq!(v.as_object().unwrap().len(), 3);
        // Another member is kept, a stale `systemActions` member is not doubled.
        r.extension = serde_json::from_str(r#"{"x": 1, "systemActions": []}"#).unwrap();
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text.matches("systemActions").count(), 2, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["extension"]["x"], 1);
        assert_eq!(v["extension"]["systemActions"], v["systemActions"]);
        // Off, or no actions: no extension; no actions: no systemActions either.
        r.extension = None;
        r.legacy_system_actions = false;
        assert!(serde_json::to_value(&r).unwrap().get("extension").is_none());
        let empty = CdsResponse {
            legacy_system_actions: true,
            ..CdsResponse::default()
        };
        assert_eq!(serde_json::to_string(&empty).unwrap(), r#"{"cards":[]}"#);
    }

    /// Whitespace between tokens goes, whitespace and escapes inside strings stay; an edited
    /// draft is written compactly, in the client's member order, with the replaced members.
    #[test]
    fn drafts_are_written_back_compactly() {
        assert_eq!(
            compact_json("{\n  \"a\" : [ 1, 2 ],\t\"b c\": \"x \\\" y\\\\\" }"),
            r#"{"a":[1,2],"b c":"x \" y\\"}"#
        );
        assert!(matches!(
            compact_json(r#"{"a":"b c"}"#),
            std::borrow::Cow::Borrowed(_)
        ));
        let members = DraftMembers::parse(
            "{ \"resourceType\": \"ServiceRequest\",\n \"extension\": [ {\"url\": \"u\"} ],\n \"id\": \"o 1\" }",
        )
        .unwrap();
        let edited = EditedDraft::new(
            std::sync::Arc::new(members),
            vec![
                ("extension", serde_json::json!([])),
                ("code", serde_json::json!({"text": "t"})),
            ],
        );
        assert_eq!(
            serde_json::to_string(&edited).unwrap(),
            r#"{"resourceType":"ServiceRequest","extension":[],"id":"o 1","code":{"text":"t"}}"#
        );
        assert_eq!(edited.as_value()["code"]["text"], "t");
        assert!(DraftMembers::parse("[1]").is_none());
    }

    #[test]
    fn rules_are_enforced() {
        let delete = Action {
            action_type: ActionType::Delete,
            description: "d".into(),
            resource: Some(serde_json::json!({}).into()),
            resource_id: Some("ServiceRequest/1".into()),
        };
        assert!(delete.check().is_err());
        assert_eq!(
            serde_json::to_value(ActionType::Update).unwrap(),
            serde_json::json!("update")
        );
    }
}

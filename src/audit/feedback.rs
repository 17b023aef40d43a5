//! Validation of CDS Hooks 2.0 feedback (`POST /cds-services/{id}/feedback`) into
//! [`StoredFeedback`] records.
//!
//! Rules (spec § Feedback and invariants cds-fb-1..3): `card` a non-empty string; `outcome`
//! `accepted` or `overridden`; `accepted` needs a non-empty `acceptedSuggestions` array of
//! `{ "id": string }`; `overridden` carries no `acceptedSuggestions`; `overrideReason` (only with
//! `overridden`) is an object with a `reason` Coding (`system` and `code` strings, optional
//! `display`) and/or a `userComment` string; `outcomeTimestamp` an RFC 3339 date-time (stored in
//! UTC). Unknown members are ignored; a member given twice is refused. One invalid entry rejects
//! the whole request, and every problem is reported with its JSON path (`feedback[1].outcome`).
//!
//! Parsing is typed serde with `serde_path_to_error`, as for hook calls: each entry is parsed on
//! its own (so the problems of every entry are reported), then the rules between members
//! (`outcome` against `acceptedSuggestions` / `overrideReason`) are checked.
//!
//! Identity: an entry's id is the SHA-256 of its canonical content (service, card, outcome, time,
//! accepted suggestion ids, reason system and code, comment), so a repeated entry is stored once
//! while a later interaction with the same card (another time stamp) is a new entry.

use super::pseudonym::hex;
use super::records::{StoredFeedback, epoch_ms};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const MAX_ID_LEN: usize = 256;
const MAX_TEXT_LEN: usize = 10_000;

/// A problem with one element of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackProblem {
    pub path: String,
    pub message: String,
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> FeedbackProblem {
    FeedbackProblem {
        path: path.into(),
        message: message.into(),
    }
}

/// The request body as sent: the entries are kept raw so that each is parsed on its own and
/// a problem in one does not hide the problems of the others.
#[derive(Deserialize)]
struct RawRequest {
    feedback: Option<Vec<Box<RawValue>>>,
}

/// One feedback entry (CDS Hooks 2.0 § Feedback). Every member is optional here so that a
/// missing one is reported as "is required" with its path; unknown members are ignored. A
/// member given twice is refused (serde's duplicate-field check), as for hook calls.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    card: Option<String>,
    outcome: Option<String>,
    accepted_suggestions: Option<Vec<RawSuggestion>>,
    override_reason: Option<RawOverrideReason>,
    outcome_timestamp: Option<String>,
}

#[derive(Deserialize)]
struct RawSuggestion {
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOverrideReason {
    reason: Option<RawCoding>,
    user_comment: Option<String>,
}

#[derive(Deserialize)]
struct RawCoding {
    system: Option<String>,
    code: Option<String>,
    display: Option<String>,
}

/// Deserializes `text` as `T`, naming the JSON path of the first problem under `base`.
fn parse_at<T: DeserializeOwned>(text: &str, base: &str) -> Result<T, FeedbackProblem> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (base, inner.as_str()) {
            (b, "" | ".") => b.to_owned(),
            ("", i) => i.to_owned(),
            (b, i) if i.starts_with('[') => format!("{b}{i}"),
            (b, i) => format!("{b}.{i}"),
        };
        let err = e.into_inner();
        let message = if err.is_syntax() || err.is_eof() {
            format!("request body is not valid JSON: {err}")
        } else {
            err.to_string()
        };
        problem(path, message)
    })
}

/// A required identifier: present, non-empty, at most [`MAX_ID_LEN`] long.
fn id_string(v: Option<String>, path: &str, errs: &mut Vec<FeedbackProblem>) -> Option<String> {
    match v {
        None => {
            errs.push(problem(path, "is required"));
            None
        }
        Some(s) if s.trim().is_empty() => {
            errs.push(problem(path, "must not be empty"));
            None
        }
        Some(s) if s.len() > MAX_ID_LEN => {
            errs.push(problem(
                path,
                format!("longer than {MAX_ID_LEN} characters"),
            ));
            None
        }
        Some(s) => Some(s),
    }
}

/// Validates a feedback request body given as JSON text (the HTTP route). Duplicate members
/// are refused; every problem is reported with its JSON path (`feedback[1].outcome`).
pub fn parse_feedback_json(
    body: &[u8],
    service_id: &str,
    received_at: OffsetDateTime,
) -> Result<Vec<StoredFeedback>, Vec<FeedbackProblem>> {
    let text = std::str::from_utf8(body)
        .map_err(|_| vec![problem("", "request body is not UTF-8 encoded JSON")])?;
    if vcf_engine::json_text::minify(text, crate::limits::MAX_JSON_DEPTH).is_none() {
        return Err(vec![problem(
            "",
            format!(
                "request body nests JSON deeper than {} levels",
                crate::limits::MAX_JSON_DEPTH
            ),
        )]);
    }
    if !text.trim_start().starts_with('{') {
        return Err(vec![problem("", "the request must be a JSON object")]);
    }
    let raw: RawRequest = parse_at(text, "").map_err(|e| vec![e])?;
    let Some(entries) = raw.feedback else {
        return Err(vec![problem("feedback", "is required")]);
    };
    let mut errs = vec![];
    let mut out = vec![];
    for (i, e) in entries.iter().enumerate() {
        let path = format!("feedback[{i}]");
        if e.get().trim_start().starts_with('{') {
            match parse_at::<RawEntry>(e.get(), &path) {
                Ok(entry) => {
                    if let Some(f) =
                        validate_entry(entry, &path, service_id, received_at, &mut errs)
                    {
                        out.push(f);
                    }
                }
                Err(p) => errs.push(p),
            }
        } else {
            errs.push(problem(path, "must be an object"));
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// Validates a feedback request body already parsed (seeding, tests): the same rules as
/// [`parse_feedback_json`].
pub fn parse_feedback(
    body: &Value,
    service_id: &str,
    received_at: OffsetDateTime,
) -> Result<Vec<StoredFeedback>, Vec<FeedbackProblem>> {
    parse_feedback_json(body.to_string().as_bytes(), service_id, received_at)
}

fn validate_entry(
    e: RawEntry,
    path: &str,
    service_id: &str,
    received_at: OffsetDateTime,
    errs: &mut Vec<FeedbackProblem>,
) -> Option<StoredFeedback> {
    let before = errs.len();
    let card = id_string(e.card, &format!("{path}.card"), errs);
    let outcome = match e.outcome {
        Some(s) if s == "accepted" || s == "overridden" => Some(s),
        Some(s) => {
            errs.push(problem(
                format!("{path}.outcome"),
                format!("must be \"accepted\" or \"overridden\", not {s:?}"),
            ));
            None
        }
        None => {
            errs.push(problem(format!("{path}.outcome"), "is required"));
            None
        }
    };
    let mut accepted = vec![];
    match e.accepted_suggestions {
        None => {
            if outcome.as_deref() == Some("accepted") {
                errs.push(problem(
                    format!("{path}.acceptedSuggestions"),
                    "is required when outcome is \"accepted\"",
                ));
            }
        }
        Some(a) => {
            if outcome.as_deref() == Some("overridden") {
                errs.push(problem(
                    format!("{path}.acceptedSuggestions"),
                    "is only allowed when outcome is \"accepted\"",
                ));
            } else if a.is_empty() {
                errs.push(problem(
                    format!("{path}.acceptedSuggestions"),
                    "must name at least one accepted suggestion",
                ));
            }
            for (j, s) in a.into_iter().enumerate() {
                let sp = format!("{path}.acceptedSuggestions[{j}].id");
                if let Some(id) = id_string(s.id, &sp, errs) {
                    accepted.push(id);
                }
            }
        }
    }
    let (mut system, mut code, mut display, mut comment) = (None, None, None, None);
    if let Some(r) = e.override_reason {
        let rp = format!("{path}.overrideReason");
        if outcome.as_deref() == Some("accepted") {
            errs.push(problem(
                &rp,
                "is only allowed when outcome is \"overridden\"",
            ));
        }
        if r.reason.is_none() && r.user_comment.is_none() {
            errs.push(problem(&rp, "needs a reason or a userComment"));
        }
        if let Some(c) = r.reason {
            system = id_string(c.system, &format!("{rp}.reason.system"), errs);
            code = id_string(c.code, &format!("{rp}.reason.code"), errs);
            match c.display {
                Some(d) if d.len() > MAX_TEXT_LEN => errs.push(problem(
                    format!("{rp}.reason.display"),
                    format!("longer than {MAX_TEXT_LEN} characters"),
                )),
                d => display = d,
            }
        }
        match r.user_comment {
            Some(c) if c.len() > MAX_TEXT_LEN => errs.push(problem(
                format!("{rp}.userComment"),
                format!("longer than {MAX_TEXT_LEN} characters"),
            )),
            c => comment = c,
        }
    }
    let outcome_at = match e.outcome_timestamp {
        Some(s) => match OffsetDateTime::parse(&s, &Rfc3339) {
            Ok(t) => Some(t),
            Err(_) => {
                errs.push(problem(
                    format!("{path}.outcomeTimestamp"),
                    format!("{s:?} is not an RFC 3339 date-time (e.g. 2021-12-11T10:05:31Z)"),
                ));
                None
            }
        },
        None => {
            errs.push(problem(format!("{path}.outcomeTimestamp"), "is required"));
            None
        }
    };
    if errs.len() > before {
        return None;
    }
    let (card, outcome, outcome_at) = (card?, outcome?, outcome_at?);
    let outcome_at_ms = epoch_ms(outcome_at);
    let mut sorted = accepted.clone();
    sorted.sort();
    sorted.dedup();
    let canonical = serde_json::json!([
        service_id,
        card,
        outcome,
        outcome_at_ms,
        sorted,
        system,
        code,
        comment
    ]);
    let feedback_id = hex(&Sha256::digest(canonical.to_string().as_bytes()));
    Some(StoredFeedback {
        feedback_id,
        received_at_ms: epoch_ms(received_at),
        service_id: service_id.to_owned(),
        card_uuid: card,
        outcome,
        outcome_at_ms,
        accepted_suggestions: sorted,
        override_system: system,
        override_code: code,
        override_display: display,
        user_comment: comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-01-02 03:04:05 UTC)
    }

    #[test]
    fn spec_examples_are_valid() {
        for f in [
            "spec-L0862-example-suggestion-accepted.json",
            "spec-L0894-example-overridden-guidance-without-overridereason.json",
            "spec-L0926-example-overridden-guidance-with-overridereason.json",
        ] {
            let text = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/feedback")
                    .join(f),
            )
            .unwrap();
            let v: Value = serde_json::from_str(&text).unwrap();
            let out = parse_feedback(&v, "svc", now()).unwrap();
            assert_eq!(out.len(), 1, "{f}");
        }
    }

    #[test]
    fn identity_is_canonical() {
        let a = json!({"feedback": [{"card": "c1", "outcome": "accepted",
            "acceptedSuggestions": [{"id": "s2"}, {"id": "s1"}],
            "outcomeTimestamp": "2021-12-11T10:05:31Z"}]});
        let b = json!({"feedback": [{"card": "c1", "outcome": "accepted",
            "acceptedSuggestions": [{"id": "s1"}, {"id": "s2"}],
            "outcomeTimestamp": "2021-12-11T10:05:31+00:00", "extension": {"x": 1}}]});
        let c = json!({"feedback": [{"card": "c1", "outcome": "accepted",
            "acceptedSuggestions": [{"id": "s1"}, {"id": "s2"}],
            "outcomeTimestamp": "2021-12-11T10:05:32Z"}]});
        let id = |v: &Value| {
            parse_feedback(v, "svc", now()).unwrap()[0]
                .feedback_id
                .clone()
        };
        assert_eq!(id(&a), id(&b));
        assert_ne!(id(&a), id(&c));
        assert_ne!(
            parse_feedback(&a, "svc", now()).unwrap()[0].feedback_id,
            parse_feedback(&a, "other", now()).unwrap()[0].feedback_id
        );
    }

    #[test]
    fn problems_name_the_entry() {
        let body = json!({"feedback": [
            {"card": "ok", "outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z"},
            {"card": "c", "outcome": "rejected", "outcomeTimestamp": "2020-12-11T00:00:00Z"},
            {"card": "", "outcome": "accepted", "outcomeTimestamp": "yesterday"},
            {"card": "c", "outcome": "overridden", "overrideReason": {},
             "outcomeTimestamp": "2020-12-11T00:00:00Z"},
            {"card": "c", "outcome": "overridden", "overrideReason": {"reason": {"code": "x"}},
             "acceptedSuggestions": [{"id": "s"}], "outcomeTimestamp": "2020-12-11T00:00:00Z"},
            "nope"
        ]});
        let errs = parse_feedback(&body, "svc", now()).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "feedback[1].outcome",
                "feedback[2].card",
                "feedback[2].acceptedSuggestions",
                "feedback[2].outcomeTimestamp",
                "feedback[3].overrideReason",
                "feedback[4].acceptedSuggestions",
                "feedback[4].overrideReason.reason.system",
                "feedback[5]",
            ]
        );
        assert!(parse_feedback(&json!({"feedback": {}}), "s", now()).is_err());
        assert!(parse_feedback(&json!([]), "s", now()).is_err());
        assert_eq!(
            parse_feedback(&json!({"feedback": []}), "s", now()).unwrap(),
            vec![]
        );
    }

    #[test]
    fn type_errors_name_the_json_path() {
        let body = br#"{"feedback": [
            {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z"},
            {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z",
             "overrideReason": {"reason": {"system": "s", "code": 7}}},
            {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2020-12-11T00:00:00Z",
             "acceptedSuggestions": [{"id": "s1"}, "s2"]}
        ]}"#;
        let errs = parse_feedback_json(body, "svc", now()).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "feedback[1].overrideReason.reason.code",
                "feedback[2].acceptedSuggestions[1]",
            ]
        );
        assert!(errs[0].message.contains("invalid type"), "{:?}", errs[0]);
    }

    /// Nesting deeper than `MAX_JSON_DEPTH` is refused before parsing, also in a member the
    /// parse would skip; nesting up to it is read (brackets inside strings do not count).
    #[test]
    fn deep_nesting_is_refused() {
        let entry = r#"{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z", "x": "[[[[[[[["}"#;
        let nested = |n: usize| {
            format!(
                r#"{{"feedback": [{entry}], "extra": {}{}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        // The object and `extra` add one level to the arrays'.
        let max = crate::limits::MAX_JSON_DEPTH;
        assert!(parse_feedback_json(nested(max - 1).as_bytes(), "svc", now()).is_ok());
        let errs = parse_feedback_json(nested(max).as_bytes(), "svc", now()).unwrap_err();
        assert!(
            errs[0].message.contains("deeper than 100 levels"),
            "{errs:?}"
        );
    }

    #[test]
    fn duplicate_members_are_refused() {
        let dup_card = br#"{"feedback": [{"card": "c1", "card": "c2", "outcome": "overridden",
            "outcomeTimestamp": "2020-12-11T00:00:00Z"}]}"#;
        let errs = parse_feedback_json(dup_card, "svc", now()).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].path.starts_with("feedback[0]"), "{errs:?}");
        assert!(
            errs[0].message.contains("duplicate field `card`"),
            "{errs:?}"
        );

        let dup_list = br#"{"feedback": [], "feedback": [{"card": "c1", "outcome": "overridden",
            "outcomeTimestamp": "2020-12-11T00:00:00Z"}]}"#;
        let errs = parse_feedback_json(dup_list, "svc", now()).unwrap_err();
        assert!(
            errs[0].message.contains("duplicate field `feedback`"),
            "{errs:?}"
        );

        // The same entry without the repetition is valid.
        let ok = br#"{"feedback": [{"card": "c1", "outcome": "overridden",
            "outcomeTimestamp": "2020-12-11T00:00:00Z"}]}"#;
        assert_eq!(parse_feedback_json(ok, "svc", now()).unwrap().len(), 1);
    }

    #[test]
    fn syntax_errors_and_non_objects_are_problems() {
        let errs = parse_feedback_json(b"{\"feedback\": [", "svc", now()).unwrap_err();
        assert!(errs[0].message.contains("not valid JSON"), "{errs:?}");
        let errs = parse_feedback_json(b"[]", "svc", now()).unwrap_err();
        assert_eq!(errs[0].path, "");
    }
}

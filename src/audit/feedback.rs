//! Validation of CDS Hooks 2.0 feedback (`POST /cds-services/{id}/feedback`) into
//! [`StoredFeedback`] records.
//!
//! Rules (spec § Feedback and invariants cds-fb-1..3): `card` a non-empty string; `outcome`
//! `accepted` or `overridden`; `accepted` needs a non-empty `acceptedSuggestions` array of
//! `{ "id": string }`; `overridden` carries no `acceptedSuggestions`; `overrideReason` (only with
//! `overridden`) is an object with a `reason` Coding (`system` and `code` strings, optional
//! `display`) and/or a `userComment` string; `outcomeTimestamp` an RFC 3339 date-time (stored in
//! UTC). Unknown members are ignored. One invalid entry rejects the whole request, and every
//! problem is reported with its JSON path (`feedback[1].outcome`).
//!
//! Identity: an entry's id is the SHA-256 of its canonical content (service, card, outcome, time,
//! accepted suggestion ids, reason system and code, comment), so a repeated entry is stored once
//! while a later interaction with the same card (another time stamp) is a new entry.

use super::pseudonym::hex;
use super::records::{StoredFeedback, epoch_ms};
use serde_json::Value;
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

fn id_string(v: Option<&Value>, path: &str, errs: &mut Vec<FeedbackProblem>) -> Option<String> {
    match v {
        None | Some(Value::Null) => {
            errs.push(problem(path, "is required"));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errs.push(problem(path, "must not be empty"));
            None
        }
        Some(Value::String(s)) if s.len() > MAX_ID_LEN => {
            errs.push(problem(
                path,
                format!("longer than {MAX_ID_LEN} characters"),
            ));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.push(problem(path, "must be a string"));
            None
        }
    }
}

/// Validates a feedback request body.
pub fn parse_feedback(
    body: &Value,
    service_id: &str,
    received_at: OffsetDateTime,
) -> Result<Vec<StoredFeedback>, Vec<FeedbackProblem>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![problem("", "the request must be a JSON object")]);
    };
    let entries = match obj.get("feedback") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(vec![problem("feedback", "must be an array")]),
        None => return Err(vec![problem("feedback", "is required")]),
    };
    let mut errs = vec![];
    let mut out = vec![];
    for (i, e) in entries.iter().enumerate() {
        if let Some(f) = parse_entry(
            e,
            &format!("feedback[{i}]"),
            service_id,
            received_at,
            &mut errs,
        ) {
            out.push(f);
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

fn parse_entry(
    e: &Value,
    path: &str,
    service_id: &str,
    received_at: OffsetDateTime,
    errs: &mut Vec<FeedbackProblem>,
) -> Option<StoredFeedback> {
    let Some(e) = e.as_object() else {
        errs.push(problem(path, "must be an object"));
        return None;
    };
    let before = errs.len();
    let card = id_string(e.get("card"), &format!("{path}.card"), errs);
    let outcome = match e.get("outcome") {
        Some(Value::String(s)) if s == "accepted" || s == "overridden" => Some(s.clone()),
        Some(Value::String(s)) => {
            errs.push(problem(
                format!("{path}.outcome"),
                format!("must be \"accepted\" or \"overridden\", not {s:?}"),
            ));
            None
        }
        None | Some(Value::Null) => {
            errs.push(problem(format!("{path}.outcome"), "is required"));
            None
        }
        Some(_) => {
            errs.push(problem(format!("{path}.outcome"), "must be a string"));
            None
        }
    };
    let mut accepted = vec![];
    match e.get("acceptedSuggestions") {
        None | Some(Value::Null) => {
            if outcome.as_deref() == Some("accepted") {
                errs.push(problem(
                    format!("{path}.acceptedSuggestions"),
                    "is required when outcome is \"accepted\"",
                ));
            }
        }
        Some(Value::Array(a)) => {
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
            for (j, s) in a.iter().enumerate() {
                let sp = format!("{path}.acceptedSuggestions[{j}]");
                match s.as_object() {
                    Some(o) => {
                        if let Some(id) = id_string(o.get("id"), &format!("{sp}.id"), errs) {
                            accepted.push(id);
                        }
                    }
                    None => errs.push(problem(sp, "must be an object with an id")),
                }
            }
        }
        Some(_) => errs.push(problem(
            format!("{path}.acceptedSuggestions"),
            "must be an array",
        )),
    }
    let (mut system, mut code, mut display, mut comment) = (None, None, None, None);
    match e.get("overrideReason") {
        None | Some(Value::Null) => {}
        Some(Value::Object(r)) => {
            let rp = format!("{path}.overrideReason");
            if outcome.as_deref() == Some("accepted") {
                errs.push(problem(
                    &rp,
                    "is only allowed when outcome is \"overridden\"",
                ));
            }
            match r.get("reason") {
                None | Some(Value::Null) => {}
                Some(Value::Object(c)) => {
                    system = id_string(c.get("system"), &format!("{rp}.reason.system"), errs);
                    code = id_string(c.get("code"), &format!("{rp}.reason.code"), errs);
                    match c.get("display") {
                        None | Some(Value::Null) => {}
                        Some(Value::String(d)) if d.len() <= MAX_TEXT_LEN => {
                            display = Some(d.clone())
                        }
                        Some(_) => {
                            errs.push(problem(format!("{rp}.reason.display"), "must be a string"))
                        }
                    }
                }
                Some(_) => errs.push(problem(
                    format!("{rp}.reason"),
                    "must be a Coding object with system and code",
                )),
            }
            match r.get("userComment") {
                None | Some(Value::Null) => {}
                Some(Value::String(c)) if c.len() > MAX_TEXT_LEN => errs.push(problem(
                    format!("{rp}.userComment"),
                    format!("longer than {MAX_TEXT_LEN} characters"),
                )),
                Some(Value::String(c)) => comment = Some(c.clone()),
                Some(_) => errs.push(problem(format!("{rp}.userComment"), "must be a string")),
            }
            let has_reason = !matches!(r.get("reason"), None | Some(Value::Null));
            let has_comment = !matches!(r.get("userComment"), None | Some(Value::Null));
            if !has_reason && !has_comment {
                errs.push(problem(&rp, "needs a reason or a userComment"));
            }
        }
        Some(_) => errs.push(problem(
            format!("{path}.overrideReason"),
            "must be an object",
        )),
    }
    let outcome_at = match e.get("outcomeTimestamp") {
        Some(Value::String(s)) => match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) => Some(t),
            Err(_) => {
                errs.push(problem(
                    format!("{path}.outcomeTimestamp"),
                    format!("{s:?} is not an RFC 3339 date-time (e.g. 2021-12-11T10:05:31Z)"),
                ));
                None
            }
        },
        None | Some(Value::Null) => {
            errs.push(problem(format!("{path}.outcomeTimestamp"), "is required"));
            None
        }
        Some(_) => {
            errs.push(problem(
                format!("{path}.outcomeTimestamp"),
                "must be a string",
            ));
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
}

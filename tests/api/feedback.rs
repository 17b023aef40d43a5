//! `POST /cds-services/{id}/feedback`.

use crate::audit_helpers::*;
use crate::helpers::*;
use serde_json::{Value, json};

fn card_with_suggestions(data: &vcf_cds::audit::seed::Generated) -> (String, String) {
    data.calls
        .iter()
        .flat_map(|c| &c.orders)
        .find_map(|o| Some((o.card_uuid.clone()?, o.suggestion_uuids.first()?.clone())))
        .expect("a card with suggestions")
}

fn feedback_path() -> String {
    format!("/cds-services/{SERVICE}/feedback")
}

#[tokio::test]
async fn valid_batch_is_stored_linked_and_idempotent() {
    let mut data = generated(60).await;
    data.feedback.clear();
    let (card, suggestion) = card_with_suggestions(&data);
    let app = spawn_seeded(Some(data), |_| {}).await;
    let body = json!({"feedback": [
        {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}],
         "outcomeTimestamp": "2026-11-27T10:05:31Z"},
        {"card": card, "outcome": "overridden",
         "overrideReason": {"reason": {"system": "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
            "code": "recipient-disagrees-evidence", "display": "Disagrees"}, "userComment": "Discussed with radiology."},
         "outcomeTimestamp": "2026-11-27T10:06:00Z"}
    ]});
    let r = app.post_json(&feedback_path(), &body).await;
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["received"], 2);
    // The same entries again (clients may repeat): stored once.
    assert_eq!(
        app.post_json(&feedback_path(), &body)
            .await
            .status()
            .as_u16(),
        200
    );

    let list = app.admin_json("/audit/api/feedback").await;
    assert_eq!(list["total"], 2);
    for item in list["items"].as_array().unwrap() {
        assert_eq!(item["card_uuid"], card.as_str());
        assert!(item["evaluation"]["call_id"].is_string(), "linked: {item}");
    }
    let overridden = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["outcome"] == "overridden")
        .unwrap();
    assert_eq!(
        overridden["override_reason"]["code"],
        "recipient-disagrees-evidence"
    );
    assert_eq!(overridden["user_comment"], "Discussed with radiology.");
    // The evaluation shows its feedback.
    let evals = app
        .admin_json(&format!("/audit/api/evaluations?card={card}"))
        .await;
    assert_eq!(evals["total"], 1);
    assert_eq!(evals["items"][0]["feedback"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn spec_examples_are_accepted_and_unknown_cards_stored_unlinked() {
    let app = spawn_seeded(None, |_| {}).await;
    for f in [
        "spec-L0862-example-suggestion-accepted.json",
        "spec-L0894-example-overridden-guidance-without-overridereason.json",
        "spec-L0926-example-overridden-guidance-with-overridereason.json",
    ] {
        let body = read_json(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/feedback")
                .join(f),
        );
        let r = app.post_json(&feedback_path(), &body).await;
        assert_eq!(r.status().as_u16(), 200, "{f}");
    }
    let unlinked = app.admin_json("/audit/api/feedback?linked=false").await;
    assert_eq!(unlinked["total"], 3);
    assert!(unlinked["items"][0]["evaluation"].is_null());
    let linked = app.admin_json("/audit/api/feedback?linked=true").await;
    assert_eq!(linked["total"], 0);
}

#[tokio::test]
async fn invalid_entries_get_400_naming_the_entry() {
    let app = spawn_seeded(None, |_| {}).await;
    let ok =
        json!({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z"});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].card",
        ),
        (
            json!({"card": 7, "outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].card",
        ),
        (
            json!({"card": "c", "outcome": "ignored", "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].outcome",
        ),
        (
            json!({"card": "c", "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].outcome",
        ),
        (
            json!({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].acceptedSuggestions",
        ),
        (
            json!({"card": "c", "outcome": "accepted", "acceptedSuggestions": [], "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].acceptedSuggestions",
        ),
        (
            json!({"card": "c", "outcome": "accepted", "acceptedSuggestions": [{"uuid": "x"}], "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].acceptedSuggestions[0].id",
        ),
        (
            json!({"card": "c", "outcome": "overridden", "overrideReason": {}, "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].overrideReason",
        ),
        (
            json!({"card": "c", "outcome": "overridden", "overrideReason": {"reason": {"system": "s"}}, "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].overrideReason.reason.code",
        ),
        (
            json!({"card": "c", "outcome": "overridden", "overrideReason": {"userComment": 5}, "outcomeTimestamp": "2020-12-11T00:00:00Z"}),
            "feedback[1].overrideReason.userComment",
        ),
        (
            json!({"card": "c", "outcome": "overridden"}),
            "feedback[1].outcomeTimestamp",
        ),
        (
            json!({"card": "c", "outcome": "overridden", "outcomeTimestamp": "11/12/2020"}),
            "feedback[1].outcomeTimestamp",
        ),
        (json!("not an object"), "feedback[1]"),
    ];
    for (bad, path) in cases {
        let r = app
            .post_json(&feedback_path(), &json!({"feedback": [ok, bad]}))
            .await;
        let outcome = assert_outcome(r, 400).await;
        assert_eq!(expressions(&outcome), vec![path.to_owned()], "{outcome}");
    }
    for (body, path) in [
        (json!({}), "feedback"),
        (json!({"feedback": {"card": "c"}}), "feedback"),
    ] {
        let outcome = assert_outcome(app.post_json(&feedback_path(), &body).await, 400).await;
        assert_eq!(expressions(&outcome), vec![path.to_owned()]);
    }
    // Nothing of a rejected request was stored.
    let list = app.admin_json("/audit/api/feedback").await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn body_rules_match_the_service_endpoint() {
    let app = spawn_seeded(None, |s| s.max_body_bytes = 2048).await;
    assert_outcome(
        app.post_raw(&feedback_path(), "text/plain", b"{}".to_vec())
            .await,
        415,
    )
    .await;
    assert_outcome(
        app.post_raw(&feedback_path(), "application/json", vec![b' '; 4096])
            .await,
        413,
    )
    .await;
    assert_outcome(
        app.post_raw(
            &feedback_path(),
            "application/json",
            b"{\"feedback\": [".to_vec(),
        )
        .await,
        400,
    )
    .await;
    assert_outcome(
        app.post_json(
            "/cds-services/no-such-service/feedback",
            &json!({"feedback": []}),
        )
        .await,
        404,
    )
    .await;
}

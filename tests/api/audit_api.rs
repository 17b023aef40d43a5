//! `/audit/api/*`: access control, filters, pagination, CSV, summary.

use crate::audit_helpers::*;
use crate::helpers::*;
use serde_json::Value;
use vcf_engine::knowledge::Category;

#[tokio::test]
async fn api_is_off_without_admin_token() {
    let app = spawn_seeded(None, |s| s.admin_token = None).await;
    for path in [
        "/audit/api/evaluations",
        "/audit/api/evaluations.csv",
        "/audit/api/summary",
        "/audit/api/feedback",
        "/audit/",
    ] {
        assert_outcome(app.admin_get(path).await, 404).await;
    }
}

#[tokio::test]
async fn api_needs_the_admin_token() {
    let app = spawn_seeded(None, |_| {}).await;
    for path in [
        "/audit/api/evaluations",
        "/audit/api/summary",
        "/audit/api/evaluations.csv",
    ] {
        let r = app.get(path).await;
        assert!(
            r.headers()
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
        );
        assert_outcome(r, 401).await;
        let r = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth("wrong-token-wrong-token")
            .send()
            .await
            .unwrap();
        assert_outcome(r, 401).await;
        let r = app
            .client
            .get(format!("{}{path}", app.address))
            .header("Authorization", format!("Basic {ADMIN_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_outcome(r, 401).await;
    }
    assert_eq!(app.admin_get("/audit/api/evaluations").await.status(), 200);
}

#[tokio::test]
async fn filters_pagination_csv_and_summary() {
    let data = generated(250).await;
    let orders: Vec<_> = data
        .calls
        .iter()
        .flat_map(|c| c.orders.iter().map(move |o| (c, o)))
        .collect();
    let feedback = data.feedback.clone();
    let app = spawn_seeded(Some(generated(250).await), |_| {}).await;

    // Everything, paginated.
    let all = app.admin_json("/audit/api/evaluations?limit=1000").await;
    assert_eq!(all["total"], orders.len() as i64);
    let p1 = app.admin_json("/audit/api/evaluations?limit=10").await;
    let p2 = app
        .admin_json("/audit/api/evaluations?limit=10&offset=10")
        .await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 10);
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| format!("{}#{}", i["call_id"], i["order_index"]))
            .collect()
    };
    assert!(ids(&p1).iter().all(|i| !ids(&p2).contains(i)));
    assert_eq!(
        ids(&p2),
        ids(&all)[10..20].to_vec(),
        "pages are slices of one order"
    );
    assert_eq!(
        p1["next"], "/audit/api/evaluations?limit=10&offset=10",
        "{}",
        p1["next"]
    );

    // Filters.
    let v1 = orders
        .iter()
        .filter(|(_, o)| o.chosen_variant.as_deref() == Some("V1"))
        .count();
    let r = app
        .admin_json("/audit/api/evaluations?variant=V1&limit=1000")
        .await;
    assert_eq!(r["total"], v1 as i64);
    assert!(
        r["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["chosen_variant"] == "V1")
    );
    let user = &data.calls[0].user_id;
    let by_user = orders.iter().filter(|(c, _)| &c.user_id == user).count();
    let r = app
        .admin_json(&format!("/audit/api/evaluations?user={user}&limit=1000"))
        .await;
    assert_eq!(r["total"], by_user as i64);
    let r3 = orders.iter().filter(|(_, o)| o.rating == Some(3)).count();
    let r = app.admin_json("/audit/api/evaluations?rating=3").await;
    assert_eq!(r["total"], r3 as i64);
    let amb = orders
        .iter()
        .filter(|(_, o)| o.outcome == vcf_engine::evaluate::Outcome::Ambiguous)
        .count();
    let r = app
        .admin_json("/audit/api/evaluations?outcome=ambiguous")
        .await;
    assert_eq!(r["total"], amb as i64);
    let overridden_cards: std::collections::BTreeSet<String> = feedback
        .iter()
        .flat_map(|(_, b)| b["feedback"].as_array().unwrap().clone())
        .filter(|e| e["outcome"] == "overridden")
        .map(|e| e["card"].as_str().unwrap().to_owned())
        .collect();
    let r = app
        .admin_json("/audit/api/evaluations?feedback=overridden")
        .await;
    assert_eq!(r["total"], overridden_cards.len() as i64);
    // Time range: the last 5 days only.
    let from = (time::OffsetDateTime::now_utc() - time::Duration::days(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(5);
    let recent = orders
        .iter()
        .filter(|(c, _)| c.received_at >= cutoff)
        .count() as i64;
    let r = app
        .admin_get(&format!("/audit/api/evaluations?from={}", urlencode(&from)))
        .await;
    let r: Value = r.json().await.unwrap();
    assert!(
        (r["total"].as_i64().unwrap() - recent).abs() <= 1,
        "{} vs {recent}",
        r["total"]
    );
    // Bad parameters name the parameter.
    for (q, param) in [
        ("rating=12", "rating"),
        ("bogus=1", "bogus"),
        ("limit=0", "limit"),
        ("from=soon", "from"),
    ] {
        let outcome = assert_outcome(
            app.admin_get(&format!("/audit/api/evaluations?{q}")).await,
            400,
        )
        .await;
        assert_eq!(expressions(&outcome), vec![param.to_owned()]);
    }

    // CSV export: header plus one row per evaluation.
    let r = app.admin_get("/audit/api/evaluations.csv?variant=V1").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, vcf_cds::audit::query::CSV_HEADER);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), v1);
    let variant_col = header.iter().position(|h| h == "chosen_variant").unwrap();
    assert!(rows.iter().all(|r| &r[variant_col] == "V1"));
    let r = app.admin_get("/audit/api/evaluations.json").await;
    let exported: Value = r.json().await.unwrap();
    assert_eq!(exported.as_array().unwrap().len(), orders.len());

    // Summary.
    let s = app.admin_json("/audit/api/summary").await;
    let rated = orders.iter().filter(|(_, o)| o.rating.is_some()).count() as i64;
    let not_app = orders
        .iter()
        .filter(|(_, o)| o.category == Some(Category::UsuallyNotAppropriate))
        .count() as i64;
    assert_eq!(s["calls"], 250);
    assert_eq!(s["orders"], orders.len() as i64);
    assert_eq!(s["orders_rated"], rated);
    assert_eq!(s["not_appropriate"], not_app);
    let share = s["not_appropriate_share"].as_f64().unwrap();
    assert!((share - not_app as f64 / rated as f64).abs() < 0.0001);
    assert_eq!(
        s["feedback"]["cards_overridden"],
        overridden_cards.len() as i64
    );
    let accepted: i64 = feedback
        .iter()
        .flat_map(|(_, b)| b["feedback"].as_array().unwrap().clone())
        .filter(|e| e["outcome"] == "accepted")
        .map(|e| e["acceptedSuggestions"].as_array().unwrap().len() as i64)
        .sum();
    assert_eq!(s["feedback"]["suggestions_accepted"], accepted);
    assert!(!s["override_reasons"].as_array().unwrap().is_empty());
    assert!(!s["by_user"].as_array().unwrap().is_empty());
    assert!(!s["by_procedure"].as_array().unwrap().is_empty());
    let sv = app
        .admin_json("/audit/api/summary?variant=V1&bucket=week")
        .await;
    assert_eq!(sv["orders"], v1 as i64);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn hook_calls_are_audited_before_the_answer() {
    let app = spawn_seeded(None, |_| {}).await;
    let mut req = order_select();
    req["prefetch"] = full_prefetch();
    let r = app.call("vcf-order-select", &req).await;
    assert_eq!(r.status(), 200);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["audit"]["records_committed"], 1, "{ready}");
    assert_eq!(ready["audit"]["undelivered"], 0);
    let s = app.admin_json("/audit/api/summary").await;
    assert_eq!(s["calls"], 1);
    let m = app
        .admin_get("/audit/api/metrics")
        .await
        .text()
        .await
        .unwrap();
    assert!(m.contains("vcf_cds_audit_records_committed_total 1"), "{m}");
    assert!(m.contains("vcf_cds_audit_store_up 1"));
}

/// The whole loop with the real engine: every hooks/ example is answered, its cards get
/// feedback, and the trail shows the evaluations with their feedback (API, summary, CSV).
#[tokio::test]
async fn hook_calls_and_feedback_end_to_end() {
    let app = spawn_seeded(None, |_| {}).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut cards = vec![];
    let mut unrated = 0;
    for f in &files {
        let mut req = read_json(f);
        req["hookInstance"] = Value::String(uuid::Uuid::new_v4().to_string());
        let r = app.call("vcf-order-select", &req).await;
        assert_eq!(r.status(), 200, "{}", f.display());
        let body: Value = r.json().await.unwrap();
        // Issue 8: an example without a rating (its card suggests the MRI that would decide).
        if body["systemActions"]
            .as_array()
            .is_none_or(|a| a.is_empty())
        {
            unrated += 1;
            continue;
        }
        for c in body["cards"].as_array().unwrap() {
            let suggestion = c["suggestions"][0]["uuid"].as_str().map(str::to_owned);
            cards.push((c["uuid"].as_str().unwrap().to_owned(), suggestion));
        }
    }
    assert!(cards.len() >= 2, "the examples produce cards");
    let (accepted_card, suggestion) = cards.iter().find(|(_, s)| s.is_some()).cloned().unwrap();
    let overridden_card = cards
        .iter()
        .find(|(c, _)| *c != accepted_card)
        .unwrap()
        .0
        .clone();
    let fb = serde_json::json!({"feedback": [
        {"card": accepted_card, "outcome": "accepted",
         "acceptedSuggestions": [{"id": suggestion.unwrap()}],
         "outcomeTimestamp": "2026-11-27T10:00:00Z"},
        {"card": overridden_card, "outcome": "overridden",
         "overrideReason": {"reason": {"system": "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes",
            "code": "recipient-disagrees-evidence", "display": "Clinician disagrees"}},
         "outcomeTimestamp": "2026-11-27T10:01:00Z"}
    ]});
    let r = app
        .post_json("/cds-services/vcf-order-select/feedback", &fb)
        .await;
    assert_eq!(r.status(), 200);

    let all = app.admin_json("/audit/api/evaluations?limit=100").await;
    assert_eq!(all["total"], files.len() as i64, "one order per example");
    let variants: std::collections::BTreeSet<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["chosen_variant"].as_str().map(str::to_owned))
        .collect();
    // hooks/ has one example per ACR variant plus the issue-8 evidence cases (one more V6, one
    // without a rating): every variant is chosen.
    let expected: std::collections::BTreeSet<String> = (1..=9).map(|i| format!("V{i}")).collect();
    assert_eq!(variants, expected, "every variant: {variants:?}");
    let acc = app
        .admin_json(&format!("/audit/api/evaluations?card={accepted_card}"))
        .await;
    assert_eq!(acc["items"][0]["feedback"][0]["outcome"], "accepted");
    assert!(
        !acc["items"][0]["suggestions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        acc["items"][0]["consult_id"]
            .as_str()
            .unwrap()
            .starts_with("urn:uuid:")
    );
    assert_eq!(acc["items"][0]["feedback"][0]["suggestion_known"], true);
    // Feedback truth (issue 9): an accept naming a suggestion id never issued on that card is
    // stored, flagged, and not counted as accepted advice.
    let bogus = serde_json::json!({"feedback": [
        {"card": overridden_card, "outcome": "accepted",
         "acceptedSuggestions": [{"id": "not-a-suggestion-of-this-card"}],
         "outcomeTimestamp": "2026-11-27T10:02:00Z"}
    ]});
    let r = app
        .post_json("/cds-services/vcf-order-select/feedback", &bogus)
        .await;
    assert_eq!(r.status(), 200);
    let ovr = app
        .admin_json(&format!("/audit/api/evaluations?card={overridden_card}"))
        .await;
    let entries = ovr["items"][0]["feedback"].as_array().unwrap().clone();
    let bogus_entry = entries
        .iter()
        .find(|f| f["outcome"] == "accepted")
        .expect("the unknown accept is stored");
    assert_eq!(bogus_entry["suggestion_known"], false);
    assert!(
        entries
            .iter()
            .any(|f| f["outcome"] == "overridden" && f["suggestion_known"].is_null())
    );
    let s = app.admin_json("/audit/api/summary").await;
    assert_eq!(s["calls"], files.len() as i64);
    assert_eq!(unrated, 1, "kyphoplasty-without-mri.json");
    assert_eq!(s["orders_rated"], (files.len() - unrated) as i64);
    assert_eq!(
        s["feedback"]["cards_accepted"], 2,
        "every accept entry's card"
    );
    assert_eq!(s["feedback"]["cards_accepted_known"], 1);
    assert_eq!(s["feedback"]["suggestions_accepted_known"], 1);
    assert_eq!(s["feedback"]["accepted_entries_unknown_suggestion"], 1);
    assert_eq!(s["feedback"]["cards_overridden"], 1);
    assert_eq!(s["feedback"]["unlinked_entries"], 0);
    assert_eq!(
        s["override_reasons"][0]["code"],
        "recipient-disagrees-evidence"
    );
    let csv = app
        .admin_get("/audit/api/evaluations.csv")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), files.len() + 1);
}

/// A store that fails a query answers 500 with an OperationOutcome: never a summary of zeros,
/// never an empty list (issue 13: errors stay errors).
#[tokio::test]
async fn a_failing_store_answers_500_not_zeros() {
    let app = spawn_seeded(Some(generated(20).await), |_| {}).await;
    assert_eq!(app.admin_get("/audit/api/summary").await.status(), 200);
    // Break the store under the running server: the feedback table disappears.
    let db = app._dir.path().join("audit.sqlite");
    sqlx::any::install_default_drivers();
    let mut conn =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open the test store");
    sqlx::Executor::execute(&mut conn, "DROP TABLE audit_feedback")
        .await
        .expect("drop a table");
    let _ = sqlx::Connection::close(conn).await;
    for path in [
        "/audit/api/summary",
        "/audit/api/feedback",
        "/audit/api/evaluations",
    ] {
        let r = app.admin_get(path).await;
        let body = assert_outcome(r, 500).await;
        let text = body.to_string();
        assert!(!text.contains("\"orders\""), "{path}: {text}");
        assert!(text.contains("audit store"), "{path}: {text}");
    }
}

/// A grouped card (issue 13: more than `group_cards_over` orders with the same warning) is one
/// card shown for several orders: every order's audit record links to it, feedback on it joins
/// all of them, and an accepted suggestion is known because it was issued for one of them.
#[tokio::test]
async fn feedback_on_a_grouped_card_is_stored_against_its_orders() {
    let app = spawn_seeded(None, |_| {}).await;
    let mut req = order_select();
    req["prefetch"] = full_prefetch();
    let req = crate::bounded_work::with_orders(req, 5);
    let r = app.call("vcf-order-select", &req).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let cards = body["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "five identical warnings, one card: {body}");
    let card = cards[0]["uuid"].as_str().unwrap().to_owned();
    assert!(
        cards[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("5 orders: ")
    );
    // The recommended alternative for the third order.
    let chosen = cards[0]["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"].as_str().unwrap().starts_with("Order 3: "))
        .expect("the third order's suggestions are on the card");
    let chosen = chosen["uuid"].as_str().unwrap().to_owned();
    let fb = serde_json::json!({"feedback": [
        {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": chosen}],
         "outcomeTimestamp": "2026-11-27T10:00:00Z"}
    ]});
    let r = app
        .post_json("/cds-services/vcf-order-select/feedback", &fb)
        .await;
    assert_eq!(r.status(), 200);

    let linked = app
        .admin_json(&format!("/audit/api/evaluations?card={card}"))
        .await;
    assert_eq!(linked["total"], 5, "{linked}");
    let items = linked["items"].as_array().unwrap();
    let mut refs: Vec<&str> = items
        .iter()
        .map(|i| i["order_ref"].as_str().unwrap())
        .collect();
    refs.sort_unstable();
    assert_eq!(
        refs,
        (0..5)
            .map(|i| format!("ServiceRequest/sr-{i}"))
            .collect::<Vec<_>>()
    );
    for i in items {
        let fb = i["feedback"].as_array().unwrap();
        assert_eq!(fb.len(), 1, "{i}");
        assert_eq!(fb[0]["outcome"], "accepted");
        assert_eq!(fb[0]["suggestion_known"], true, "{i}");
        // The accepted suggestion was issued for exactly one order: the third.
        let issued = i["suggestion_uuids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == chosen.as_str());
        assert_eq!(issued, i["order_ref"] == "ServiceRequest/sr-2", "{i}");
    }
    let accepted = app
        .admin_json("/audit/api/evaluations?feedback=accepted")
        .await;
    assert_eq!(accepted["total"], 5);
    let s = app.admin_json("/audit/api/summary").await;
    assert_eq!(s["feedback"]["cards_accepted"], 1);
    assert_eq!(s["feedback"]["cards_accepted_known"], 1);
    assert_eq!(s["feedback"]["unlinked_entries"], 0);
    let listed = app.admin_json("/audit/api/feedback").await;
    assert_eq!(listed["items"][0]["card_uuid"], card.as_str());
    assert!(
        listed["items"][0]["evaluation"]["order_ref"].is_string(),
        "{listed}"
    );
}

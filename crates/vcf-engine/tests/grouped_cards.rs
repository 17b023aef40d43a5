//! Grouped cards (issue 13, bounded work): more than `Options::group_cards_over` orders of one
//! call with the same card get one card naming them, as the CDS Hooks guidance on card overload
//! advises; rating system actions, suggestions and audit links stay per order.

mod common;

use common::*;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use vcf_engine::cds::{ActionType, Indicator, SelectionBehavior};
use vcf_engine::evaluate::{Evaluation, Hook, Options, PatientRecord};

fn order(id: &str, cpt: &str) -> Box<RawValue> {
    let v: Value = json!({"resourceType": "ServiceRequest", "id": id, "status": "draft",
        "intent": "order", "authoredOn": "2026-11-25",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": cpt}]},
        "subject": {"reference": "Patient/pat"}});
    RawValue::from_string(v.to_string()).unwrap()
}

/// `(id, cpt)` orders, all selected, on order-select.
fn run(record: &PatientRecord, orders: &[(String, &str)], opts: &Options) -> Evaluation {
    let drafts = drafts_from(orders.iter().map(|(id, c)| order(id, c)).collect(), None);
    evaluate_with(Hook::OrderSelect, record, &drafts, opts)
}

fn many(prefix: &str, cpt: &'static str, n: usize) -> Vec<(String, &'static str)> {
    (0..n).map(|i| (format!("{prefix}-{i}"), cpt)).collect()
}

// MRI lumbar spine with contrast (72149) for a recent osteoporotic L1 fracture: usually not
// appropriate (ACR VCF variant 1), a warning card with alternatives.
const MRI_W: &str = "72149";

#[test]
fn many_orders_with_the_same_warning_get_one_card_naming_them() {
    let rec = record("v1-osteoporotic-l1");
    let single = run(&rec, &many("sr", MRI_W, 1), &Options::default());
    assert_eq!(single.response.cards.len(), 1);
    let one = &single.response.cards[0];
    assert_eq!(one.indicator, Indicator::Warning, "{one:?}");
    let per_order = one.suggestions.len();
    assert!(per_order > 0);

    let ev = run(&rec, &many("sr", MRI_W, 12), &Options::default());
    assert_eq!(ev.response.cards.len(), 1, "{:?}", ev.response.cards);
    let card = &ev.response.cards[0];
    assert_eq!(card.indicator, Indicator::Warning);
    assert!(card.summary.starts_with("12 orders: "), "{}", card.summary);
    let detail = card.detail.as_deref().unwrap();
    assert!(
        detail.contains(
            "12 selected orders** (draft orders 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more)"
        ),
        "{detail}"
    );
    // Every order's suggestions, labelled with its order and acting on that order only.
    assert_eq!(card.suggestions.len(), 12 * per_order);
    assert_eq!(card.selection_behavior, Some(SelectionBehavior::Any));
    for (i, o) in ev.orders.iter().enumerate() {
        assert_eq!(
            o.card_uuid, card.uuid,
            "order {i} links to the grouped card"
        );
        assert_eq!(o.suggestion_uuids.len(), per_order);
        for u in &o.suggestion_uuids {
            let s = card
                .suggestions
                .iter()
                .find(|s| s.uuid.as_ref() == Some(u))
                .unwrap();
            assert!(
                s.label.starts_with(&format!("Order {}: ", i + 1)),
                "{}",
                s.label
            );
            for a in &s.actions {
                let target = match a.action_type {
                    ActionType::Update => a.resource.as_ref().unwrap().as_value()["id"]
                        .as_str()
                        .map(str::to_owned),
                    ActionType::Delete => a.resource_id.clone(),
                    ActionType::Create => continue,
                };
                assert_eq!(
                    target
                        .as_deref()
                        .map(|t| t.trim_start_matches("ServiceRequest/")),
                    Some(format!("sr-{i}").as_str())
                );
            }
        }
    }
    // The PAMA rating stays one system action per order.
    assert_eq!(ev.response.system_actions.len(), 12);
    for i in 0..12 {
        assert_eq!(
            pama_code(&ev, &format!("sr-{i}")).as_deref(),
            Some("not-appropriate")
        );
    }
}

#[test]
fn up_to_the_threshold_each_order_keeps_its_own_card() {
    let rec = record("v1-osteoporotic-l1");
    let ev = run(&rec, &many("sr", MRI_W, 3), &Options::default());
    assert_eq!(ev.response.cards.len(), 3);
    for (c, o) in ev.response.cards.iter().zip(&ev.orders) {
        assert_eq!(c.uuid, o.card_uuid);
        assert!(!c.summary.contains("orders:"), "{}", c.summary);
        assert_eq!(c.selection_behavior, Some(SelectionBehavior::AtMostOne));
    }
    let off = Options {
        group_cards_over: 0,
        ..Options::default()
    };
    assert_eq!(
        run(&rec, &many("sr", MRI_W, 12), &off).response.cards.len(),
        12
    );
    let two = Options {
        group_cards_over: 1,
        ..Options::default()
    };
    assert_eq!(
        run(&rec, &many("sr", MRI_W, 2), &two).response.cards.len(),
        1
    );
}

#[test]
fn orders_with_different_verdicts_are_not_grouped_together() {
    let rec = record("v1-osteoporotic-l1");
    let mut orders = many("mri", MRI_W, 5);
    // Bone scan (78306) for the same patient: another procedure, another card.
    orders.extend(many("scan", "78306", 5));
    // A third kind under the threshold: its own cards.
    orders.extend(many("ct", "72132", 2));
    let ev = run(&rec, &orders, &Options::default());
    let owners = |c: &vcf_engine::cds::Card| -> Vec<String> {
        ev.orders
            .iter()
            .filter(|o| o.card_uuid == c.uuid)
            .map(|o| o.order_ref.clone())
            .collect()
    };
    for c in &ev.response.cards {
        let refs = owners(c);
        let kinds: std::collections::BTreeSet<&str> = refs
            .iter()
            .map(|r| {
                r.trim_start_matches("ServiceRequest/")
                    .split('-')
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(kinds.len(), 1, "one card mixes orders {refs:?}");
        if refs.len() > 1 {
            assert!(c.summary.starts_with(&format!("{} orders: ", refs.len())));
        }
    }
    let mri = common::order(&ev, "mri-0");
    assert_eq!(owners(common::card(&ev, mri)).len(), 5);
}

#[test]
fn cards_with_a_safety_note_are_never_grouped() {
    // A pacemaker on record: MRI orders get a card naming the device hazard, one per order.
    let rec = record("v4-lung-history-pacemaker");
    let ev = run(&rec, &many("sr", "72157", 6), &Options::default());
    assert!(
        ev.orders.iter().all(|o| !o.safety_notes.is_empty()),
        "{:?}",
        ev.orders
    );
    assert_eq!(ev.response.cards.len(), 6);
}

//! Grouped cards (issue 13, bounded work): when more than `Options::group_cards_over` orders of
//! one call would get the same card, they get one card that names them instead, as the CDS
//! Hooks guidance on card overload advises (a clinician reads one warning, not a hundred).
//!
//! "The same card" is strict: same indicator, summary, detail, suggestion labels and override
//! reasons. The cards then say the same thing (same procedure, same verdict, same assumptions),
//! so the grouped card loses nothing but the repetition. What stays per order:
//! - the PAMA rating system actions (one `update` per order, built before grouping);
//! - the suggestions: the grouped card carries every order's suggestions, each labelled with its
//!   order's position in `draftOrders` and acting on that order only (`selectionBehavior: any`,
//!   so each order can be fixed from the one card);
//! - the audit: every member order's `card_uuid` is the grouped card's uuid (feedback on the card
//!   joins all of them) and its `suggestion_uuids` are its own suggestions only (an accepted
//!   suggestion names exactly one order).
//!
//! Never grouped: cards of orders with safety notes (`OrderEvaluation::safety_notes`: a hazard on
//! the ordered study such as an MR-unsafe device or a contrast risk, or an alternative withheld):
//! a hazard is about one order and is shown on that order's own card.

use crate::cds::{Card, SelectionBehavior};
use crate::types::OrderEvaluation;
use std::collections::HashMap;

/// Orders named by position in the detail line; the rest are counted.
const LISTED: usize = 10;

/// Replaces each set of more than `over` identical cards with one grouped card (at the first
/// one's place, with its uuid) and re-links the member orders. `over == 0` disables grouping.
pub fn group_cards(cards: Vec<Card>, orders: &mut [OrderEvaluation], over: usize) -> Vec<Card> {
    if over == 0 || cards.len() <= over {
        return cards;
    }
    // The order each card was shown for (its position in draftOrders, from 0).
    let owner: HashMap<&str, usize> = orders
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.card_uuid.as_deref().map(|u| (u, i)))
        .collect();
    let members: Vec<Option<usize>> = cards
        .iter()
        .map(|c| c.uuid.as_deref().and_then(|u| owner.get(u).copied()))
        .collect();
    drop(owner);
    let keys: Vec<Option<String>> = cards
        .iter()
        .zip(&members)
        .map(|(c, m)| match m {
            Some(i) if orders[*i].safety_notes.is_empty() => Some(key(c)),
            _ => None,
        })
        .collect();
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (ci, k) in keys.iter().enumerate() {
        if let Some(k) = k {
            groups.entry(k.as_str()).or_default().push(ci);
        }
    }
    if groups.values().all(|g| g.len() <= over) {
        return cards;
    }
    let mut slots: Vec<Option<Card>> = cards.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    for ci in 0..slots.len() {
        let group = keys[ci]
            .as_deref()
            .and_then(|k| groups.get(k))
            .filter(|g| g.len() > over);
        match group {
            None => out.extend(slots[ci].take()),
            Some(g) if g[0] == ci => {
                let parts: Vec<(usize, Card)> = g
                    .iter()
                    .map(|&m| {
                        let card = slots[m].take().expect("each card is in one group");
                        (members[m].expect("grouped cards have an order"), card)
                    })
                    .collect();
                let card = merge(parts, orders);
                out.push(card);
            }
            Some(_) => {} // merged into the group's first card
        }
    }
    out
}

/// What must be equal for two cards to be shown as one.
fn key(c: &Card) -> String {
    let mut k = format!(
        "{:?}\u{1f}{}\u{1f}{}",
        c.indicator,
        c.summary,
        c.detail.as_deref().unwrap_or("")
    );
    for s in &c.suggestions {
        k.push('\u{1f}');
        k.push_str(&s.label);
    }
    for r in &c.override_reasons {
        k.push('\u{1f}');
        k.push_str(&r.code);
    }
    k
}

/// One card for `parts` (order position, its card), all with the same text.
fn merge(parts: Vec<(usize, Card)>, orders: &mut [OrderEvaluation]) -> Card {
    let n = parts.len();
    let positions: Vec<usize> = parts.iter().map(|(i, _)| i + 1).collect();
    let mut it = parts.into_iter();
    let (_, mut card) = it.next().expect("a group has members");
    let first_order = positions[0] - 1;
    let uuid = card.uuid.clone();
    card.summary = summary(n, &card.summary);
    card.detail = card.detail.as_deref().map(|d| detail(d, &positions));
    for s in &mut card.suggestions {
        s.label = format!("Order {}: {}", positions[0], s.label);
    }
    orders[first_order].card_uuid = uuid.clone();
    for ((_, other), pos) in it.zip(&positions[1..]) {
        for mut s in other.suggestions {
            s.label = format!("Order {pos}: {}", s.label);
            card.suggestions.push(s);
        }
        orders[pos - 1].card_uuid = uuid.clone();
    }
    if !card.suggestions.is_empty() {
        // Each order's suggestions act on that order only: the clinician may accept one per
        // order from the same card.
        card.selection_behavior = Some(SelectionBehavior::Any);
    }
    card
}

/// "100 orders: <summary>", cut to the 139 characters CDS Hooks allows.
fn summary(n: usize, one: &str) -> String {
    let s = format!("{n} orders: {one}");
    if s.chars().count() < 140 {
        return s;
    }
    let mut cut: String = s.chars().take(138).collect();
    cut.push('…');
    cut
}

/// The shared detail with a line naming the orders, put before the source line (which stays
/// last).
fn detail(one: &str, positions: &[usize]) -> String {
    let mut named: Vec<String> = positions
        .iter()
        .take(LISTED)
        .map(usize::to_string)
        .collect();
    let more = positions.len().saturating_sub(LISTED);
    let list = if more > 0 {
        format!("{} and {more} more", named.join(", "))
    } else {
        let last = named.pop().expect("a group has members");
        format!("{} and {last}", named.join(", "))
    };
    let line = format!(
        "**Same advice for {} selected orders** (draft orders {list}); each order keeps its own \
         rating and suggestions.",
        positions.len()
    );
    let trimmed = one.trim_end();
    match trimmed.rfind('\n') {
        Some(i) => format!("{}\n\n{line}\n{}", trimmed[..i].trim_end(), &trimmed[i..]),
        None => format!("{line}\n\n{trimmed}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_line_names_ten_orders_and_counts_the_rest() {
        let d = detail("Body.\n\nSource line", &(1..=12).collect::<Vec<_>>());
        assert!(
            d.contains(
                "12 selected orders** (draft orders 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more)"
            ),
            "{d}"
        );
        assert!(d.ends_with("\nSource line"), "{d}");
        let d = detail("Body.\n\nSource line", &[2, 5, 9, 11]);
        assert!(d.contains("(draft orders 2, 5, 9 and 11)"), "{d}");
    }

    #[test]
    fn a_long_summary_is_cut_under_140_characters() {
        let s = summary(100, &"x".repeat(135));
        assert_eq!(s.chars().count(), 139);
        assert!(s.starts_with("100 orders: ") && s.ends_with('…'));
    }
}

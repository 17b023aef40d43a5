//! Wording shared by every card: the summary line, bullet lists, the provenance footer, how
//! orders and procedures are named, the radiation line and the facts a rating relied on.

use crate::classify::{Classification, reliance_text};
use crate::facts::cut_words;
use crate::facts::{FactValue, PatientFacts};
use crate::fhir::ServiceRequest;
use crate::index::Engine;
use crate::knowledge::Region;
use crate::orders::Recognition;
use std::fmt::Write;

/// How the order is called on the card: its `code.text`, else a coding display, else the ACR
/// procedure name.
pub fn order_display(engine: &Engine, sr: &ServiceRequest, rec: Option<&Recognition>) -> String {
    sr.code
        .as_ref()
        .and_then(|c| {
            c.text
                .clone()
                .or_else(|| c.coding.iter().find_map(|c| c.display.clone()))
        })
        .filter(|s| !s.trim().is_empty())
        .or_else(|| rec.map(|r| procedure_label(engine, r.procedure, r.region)))
        .unwrap_or_else(|| "Order".into())
}

/// Card summary `{order}{rest}` under 140 characters: the order display is shortened at a
/// word boundary (with an ellipsis) when needed.
pub fn summary(order: &str, rest: &str) -> String {
    const MAX: usize = 139;
    let rest_len = rest.chars().count();
    let order = order.trim();
    let room = MAX.saturating_sub(rest_len);
    let text = if order.chars().count() <= room {
        format!("{order}{rest}")
    } else if room > 1 {
        format!("{}{rest}", cut_words(order, room))
    } else {
        cut_words(rest, MAX)
    };
    if text.chars().count() <= MAX {
        text
    } else {
        cut_words(&text, MAX)
    }
}

/// The ACR procedure name with "spine area of interest" replaced by the region when the region
/// is a spine segment ("MRI lumbar spine without IV contrast").
pub fn procedure_label(engine: &Engine, procedure: usize, region: Region) -> String {
    let name = &engine.knowledge().procedures[procedure].name;
    if region.is_spine_segment() {
        // ASCII case-insensitive, without a lowercase copy and a substring searcher per call
        // (issue 12: five labels per rated order).
        const PHRASE: &[u8] = b"spine area of interest";
        if let Some(i) = name
            .as_bytes()
            .windows(PHRASE.len())
            .position(|w| w.eq_ignore_ascii_case(PHRASE))
        {
            let end = i + PHRASE.len();
            return format!("{}{}{}", &name[..i], region.label(), &name[end..]);
        }
    }
    name.clone()
}

/// Radiation line for the card (pediatric levels and the ALARA note for children).
pub fn radiation_line(
    engine: &Engine,
    procedure: usize,
    region: Region,
    facts: &PatientFacts,
) -> Option<String> {
    let text = engine.radiation_text(procedure, region, facts.pediatric)?;
    let text = if text.trim() == "Varies" {
        "Varies (depends on the region scanned)".to_owned()
    } else {
        text.to_owned()
    };
    Some(if facts.pediatric {
        format!(
            "**Relative radiation level (pediatric, age {}):** {text}. Children are more \
             sensitive to ionizing radiation: keep exposure as low as reasonably achievable \
             (ALARA) and prefer the lower-radiation study when ratings are equal.",
            facts.age.unwrap_or_default()
        )
    } else {
        format!("**Relative radiation level:** {text}")
    })
}

/// The one source line a card ends with: "ACR Appropriateness Criteria, Management of VCF
/// (2022), variant 1". Full provenance (knowledge version, rating row, source confidence) is in
/// the audit record and the card's `source`, not in the text.
pub fn source_line(engine: &Engine, variant: Option<usize>) -> String {
    let kb = engine.knowledge();
    let g = &kb.guideline;
    let mut s = String::from("\n\n");
    match &g.short_citation {
        Some(c) => s.push_str(c),
        None => {
            let _ = write!(s, "{} ({})", g.title, g.revision);
        }
    }
    if let Some(v) = variant {
        let id = &kb.variants[v].id;
        let _ = write!(s, ", variant {}", id.trim_start_matches(['V', 'v']));
    }
    s
}

/// A study's radiation for a card line: "no radiation" or the ACR level text (pediatric levels
/// for children).
pub fn radiation_short(
    engine: &Engine,
    procedure: usize,
    region: Region,
    pediatric: bool,
) -> Option<String> {
    if engine.radiation_level(procedure, region, pediatric) == Some(0) {
        return Some("no radiation".into());
    }
    let t = engine.radiation_text(procedure, region, pediatric)?.trim();
    Some(if t == "Varies" {
        "radiation varies by region".into()
    } else {
        format!("radiation {t}")
    })
}

/// The assumptions as one line, cut at a word boundary ("" when there are none).
pub fn assumed_line(assumptions: &[String], max: usize) -> String {
    if assumptions.is_empty() {
        return String::new();
    }
    let joined: Vec<&str> = assumptions
        .iter()
        .map(|a| a.trim_start_matches("assumes "))
        .collect();
    format!("\n\n**Assumed:** {}", cut_words(&joined.join("; "), max))
}

/// Longest card detail, in characters: short enough to read at the point of order (issue 9;
/// the property tests check every card against it).
pub const DETAIL_MAX_CHARS: usize = 1500;

/// Bulleted list (empty string for no items).
pub fn bullets(title: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut s = format!("\n\n**{title}**\n");
    for i in items {
        let _ = write!(s, "\n- {i}");
    }
    s
}

/// Facts of the chosen variant that are present, each record once ("a new fracture; osteoporosis:
/// M80.08XA Age-related osteoporosis… (Condition/c1)"), at most `max` lines.
pub fn facts_used(
    engine: &Engine,
    facts: &PatientFacts,
    variant: usize,
    max: usize,
) -> Vec<String> {
    let mut seen = Vec::new();
    // (evidence key, phrases, short evidence)
    let mut groups: Vec<(String, Vec<&str>, String)> = Vec::new();
    for f in engine.variant_facts(variant) {
        if seen.contains(&f) {
            continue;
        }
        seen.push(f);
        if let FactValue::Present(e) = facts.get(f) {
            let key = format!("{}|{}", e.source, e.code);
            match groups.iter_mut().find(|g| g.0 == key) {
                Some(g) => g.1.push(f.phrase(true)),
                None => groups.push((key, vec![f.phrase(true)], e.short())),
            }
        }
    }
    groups
        .into_iter()
        .take(max)
        .map(|(_, phrases, ev)| format!("{}: {ev}", phrases.join("; ")))
        .collect()
}

/// Relative text for a candidate's reliance list ("if …").
pub fn candidate_conditions(facts: &PatientFacts, class: &Classification, i: usize) -> String {
    let c = &class.candidates[i];
    if c.relied.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = c
        .relied
        .iter()
        .map(|r| {
            reliance_text(facts, r)
                .trim_start_matches("assumes ")
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    format!(" if {}", parts.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_cut_at_word_boundaries() {
        let long = "é".repeat(200);
        let s = summary(&long, ": Usually not appropriate (ACR 3/9)");
        assert!(s.chars().count() < 140);
        assert!(s.ends_with("(ACR 3/9)"));
        assert!(s.contains('…'));
        assert_eq!(summary("CT", ": x"), "CT: x");
        let words = "MRI lumbar spine without and with intravenous contrast material ".repeat(4);
        let s = summary(&words, ": Usually appropriate (ACR 9/9)");
        assert!(s.chars().count() < 140, "{s}");
        let head = s.split('…').next().unwrap();
        assert!(
            words.starts_with(head) && words[head.len()..].starts_with(' '),
            "{s}"
        );
    }
}

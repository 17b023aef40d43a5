//! Wording shared by every card: the summary line, bullet lists, the provenance footer, how
//! orders and procedures are named, the radiation line and the facts a rating relied on.

use crate::classify::{Classification, reliance_text};
use crate::facts::{FactValue, PatientFacts};
use crate::fhir::ServiceRequest;
use crate::index::Engine;
use crate::knowledge::{RatingRow, Region};
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

/// Card summary `{order}{rest}` under 140 characters: the order display is shortened (by
/// characters, with an ellipsis) when needed.
pub fn summary(order: &str, rest: &str) -> String {
    const MAX: usize = 139;
    let rest_len = rest.chars().count();
    let order = order.trim();
    let room = MAX.saturating_sub(rest_len);
    let text = if order.chars().count() <= room {
        format!("{order}{rest}")
    } else if room > 1 {
        let cut: String = order.chars().take(room - 1).collect();
        format!("{}…{rest}", cut.trim_end())
    } else {
        rest.chars().take(MAX).collect()
    };
    text.chars().take(MAX).collect()
}

/// The ACR procedure name with "spine area of interest" replaced by the region when the region
/// is a spine segment ("MRI lumbar spine without IV contrast").
pub fn procedure_label(engine: &Engine, procedure: usize, region: Region) -> String {
    let name = &engine.knowledge().procedures[procedure].name;
    if region.is_spine_segment() {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = lower.find("spine area of interest") {
            let end = i + "spine area of interest".len();
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

/// The provenance footer: knowledge version, variant, rating, SOE, source confidence.
pub fn provenance(engine: &Engine, variant: Option<usize>, row: Option<&RatingRow>) -> String {
    let kb = engine.knowledge();
    let g = &kb.guideline;
    let mut s = String::from("\n\n---\n_Provenance: ");
    let _ = write!(s, "{} ({}); ", g.title, g.revision);
    if let Some(v) = variant {
        let v = &kb.variants[v];
        let _ = write!(s, "variant {} \"{}\"; ", v.id, v.title);
    }
    if let Some(r) = row {
        let _ = write!(
            s,
            "rating {}/9 (median {}), {}, strength of evidence {}; ",
            r.rating,
            r.median,
            r.category.label(),
            r.evidence
        );
    }
    let _ = write!(
        s,
        "source confidence {:?}: {}. Knowledge base {} ({})._",
        g.confidence, g.ratings_source, kb.version, kb.status
    );
    s
}

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

/// Facts of the chosen variant that are present, with their evidence.
pub fn facts_used(engine: &Engine, facts: &PatientFacts, variant: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for f in engine.variant_facts(variant) {
        if seen.contains(&f) {
            continue;
        }
        seen.push(f);
        if let FactValue::Present(e) = facts.get(f) {
            out.push(format!("{}: {}", f.phrase(true), e.describe()));
        }
    }
    out
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
    fn summaries_are_cut_by_characters() {
        let long = "é".repeat(200);
        let s = summary(&long, ": Usually not appropriate (ACR 3/9)");
        assert!(s.chars().count() < 140);
        assert!(s.ends_with("(ACR 3/9)"));
        assert!(s.contains('…'));
        assert_eq!(summary("CT", ": x"), "CT: x");
    }
}

//! Cards: one per draft order that needs one, with alternatives as suggestions.
//!
//! - Usually not appropriate: `warning`; one suggestion per Usually appropriate alternative, best
//!   first, the top one recommended; each deletes the draft and creates the alternative (same
//!   patient, region, reason); override reasons; a link to the guideline.
//! - May be appropriate: `info`, with the Usually appropriate alternatives.
//! - Usually appropriate: no card unless `Options::cards_for_appropriate`.
//! - Ambiguous, no variant, out of scope: `info`.
//!
//! Alternatives are never rated lower than the order (they must be Usually appropriate and rated
//! strictly higher in every candidate variant). For children, equally rated alternatives are
//! ordered by lower radiation. MRI is withheld when an MR-unsafe device is on record, contrast
//! studies when eGFR is below the policy threshold, kidney disease/dialysis is coded, or (for
//! iodinated contrast) a contrast allergy is on record; the card says which and why.

use crate::cds::{Action, ActionType, Card, Coding, Indicator, Link, LinkType, Source, Suggestion};
use crate::classify::{Classification, reliance_text};
use crate::evaluate::{DraftOrder, EvaluationRequest, IdSource, SuggestionRecord};
use crate::facts::{FactValue, PatientFacts};
use crate::fhir::{CodeableConcept, ServiceRequest};
use crate::index::Engine;
use crate::knowledge::{Category, Procedure, ProcedureKind, RatingRow, Region, Safety};
use crate::orders::{Recognition, region_from_body_site};
use fhir_build::{CodingSpec, ConceptSpec, NewServiceRequest};
use std::fmt::Write;

/// Everything a card for one order is built from.
pub struct CardInput<'a> {
    pub engine: &'a Engine,
    pub req: &'a EvaluationRequest<'a>,
    pub draft: &'a DraftOrder,
    pub sr: &'a ServiceRequest,
    pub rec: &'a Recognition,
    pub facts: &'a PatientFacts,
    pub class: &'a Classification,
}

/// An alternative procedure worth suggesting.
#[derive(Debug, Clone)]
pub struct Alternative {
    pub procedure: usize,
    /// Lowest rating over the candidate variants.
    pub rating: u8,
    pub category: Category,
    pub evidence: String,
}

/// Suggestions built for a card.
#[derive(Debug, Default)]
pub struct Built {
    pub suggestions: Vec<Suggestion>,
    pub records: Vec<SuggestionRecord>,
    /// Alternatives not suggested, with why (safety, no code for the region).
    pub withheld: Vec<String>,
}

/// Label of the card source, e.g. "ACR Appropriateness Criteria® Management of Vertebral
/// Compression Fractures (2022 update)".
pub fn source(engine: &Engine) -> Source {
    let g = &engine.knowledge().guideline;
    Source {
        label: format!("{} ({})", g.title, g.revision),
        url: Some(g.url.clone()),
        icon: None,
        topic: None,
    }
}

pub fn guideline_link(engine: &Engine) -> Link {
    let g = &engine.knowledge().guideline;
    Link {
        label: format!("{} ({})", g.title, g.revision),
        url: g.url.clone(),
        link_type: LinkType::Absolute,
        app_context: None,
    }
}

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

fn to_concept(cc: &CodeableConcept) -> Option<ConceptSpec> {
    let codings: Vec<CodingSpec> = cc
        .coding
        .iter()
        .filter_map(|c| {
            Some(CodingSpec {
                system: c.system.clone()?,
                code: c.code.clone()?,
                display: c.display.clone(),
            })
        })
        .collect();
    (!codings.is_empty() || cc.text.is_some()).then(|| ConceptSpec {
        codings,
        text: cc.text.clone(),
    })
}

/// Which variants an alternative must be rated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AltScope {
    /// A rated order: Usually appropriate and rated strictly higher than the order in the chosen
    /// candidate (index into `Classification::candidates`), and never rated lower than the
    /// order in another candidate.
    Chosen(usize),
    /// An ambiguous order: Usually appropriate and strictly higher than the order in every
    /// candidate.
    All,
}

/// Alternatives worth suggesting, best first (ties: lower radiation first for children, ACR
/// table order otherwise).
pub fn alternatives(
    engine: &Engine,
    class: &Classification,
    ordered: usize,
    scope: AltScope,
    facts: &PatientFacts,
    region: Region,
) -> Vec<Alternative> {
    let kb = engine.knowledge();
    let table_variant = match scope {
        AltScope::Chosen(i) => class.candidates[i].variant,
        AltScope::All => class.candidates[0].variant,
    };
    let mut out: Vec<(Alternative, usize)> = Vec::new();
    for (pos, row) in kb.variants[table_variant].ratings.iter().enumerate() {
        let Some(q) = engine.procedure_index(&row.procedure) else {
            continue;
        };
        if q == ordered {
            continue;
        }
        let mut shown: Option<&RatingRow> = None;
        let ok = class.candidates.iter().enumerate().all(|(i, c)| {
            let strict = match scope {
                AltScope::Chosen(k) => k == i,
                AltScope::All => true,
            };
            let alt = engine.rating(c.variant, q);
            let ord = engine.rating(c.variant, ordered);
            if !strict {
                // Other candidates: never lower than the order where both are rated.
                return match (alt, ord) {
                    (Some(a), Some(o)) => a.rating >= o.rating,
                    _ => true,
                };
            }
            let Some(alt) = alt else {
                return false;
            };
            if alt.category.normalized() != Category::UsuallyAppropriate {
                return false;
            }
            if let Some(o) = ord
                && alt.rating <= o.rating
            {
                return false;
            }
            if shown.is_none_or(|m| alt.rating < m.rating) {
                shown = Some(alt);
            }
            true
        });
        if let (true, Some(m)) = (ok, shown) {
            out.push((
                Alternative {
                    procedure: q,
                    rating: m.rating,
                    category: m.category,
                    evidence: m.evidence.clone(),
                },
                pos,
            ));
        }
    }
    let rrl = |q: usize| {
        engine
            .radiation_level(q, region, true)
            .map_or(u16::MAX, u16::from)
    };
    out.sort_by(|(a, pa), (b, pb)| {
        b.rating
            .cmp(&a.rating)
            .then_with(|| {
                if facts.pediatric {
                    rrl(a.procedure).cmp(&rrl(b.procedure))
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then(pa.cmp(pb))
    });
    out.into_iter().map(|(a, _)| a).collect()
}

/// Why an alternative must not be suggested to this patient, if it must not.
pub fn safety_block(engine: &Engine, p: &Procedure, facts: &PatientFacts) -> Option<String> {
    let policy = &engine.knowledge().policy;
    for s in &p.safety {
        match s {
            Safety::MriSafe => {
                if let Some(e) = &facts.mri_unsafe_device {
                    return Some(format!(
                        "implanted device on record that may make MRI unsafe ({}); confirm its MR status",
                        e.describe()
                    ));
                }
            }
            Safety::Gadolinium | Safety::IodinatedContrast => {
                if let Some((v, e)) = &facts.egfr
                    && *v < policy.egfr_contrast_threshold
                {
                    return Some(format!(
                        "latest eGFR {v} is below {} mL/min/1.73m2 ({})",
                        policy.egfr_contrast_threshold,
                        e.describe()
                    ));
                }
                if let Some(e) = &facts.renal_contrast_risk {
                    return Some(format!(
                        "severe kidney disease or dialysis on record ({})",
                        e.describe()
                    ));
                }
                if *s == Safety::IodinatedContrast
                    && let Some(e) = &facts.contrast_allergy
                {
                    return Some(format!("contrast allergy on record ({})", e.describe()));
                }
            }
        }
    }
    None
}

/// Codes for an order of `procedure` matching the draft's region: one entry per created order.
fn codes_for<'e>(
    engine: &'e Engine,
    procedure: usize,
    draft_region: Region,
    sr: &ServiceRequest,
) -> Result<Vec<(Region, &'e [CodingSpec])>, String> {
    let p = &engine.knowledge().procedures[procedure];
    let spine = p.codes.iter().any(|c| {
        !c.match_only && (c.region.is_spine_segment() || c.region == Region::SpineUnspecified)
    });
    if !spine {
        for r in [
            Region::Body,
            Region::NotApplicable,
            Region::SpineUnspecified,
        ] {
            if let Some(c) = engine.create_codes(procedure, r) {
                return Ok(vec![(r, c)]);
            }
        }
        return Err("no orderable code in the knowledge base".into());
    }
    let mut region = draft_region;
    if !region.is_spine_segment()
        && let Some(r) = region_from_body_site(sr)
    {
        region = r;
    }
    if region.is_spine_segment() {
        if let Some(c) = engine.create_codes(procedure, region) {
            return Ok(vec![(region, c)]);
        }
        let segs = region.segments();
        if segs.len() > 1 {
            let per: Vec<_> = segs
                .iter()
                .filter_map(|s| engine.create_codes(procedure, *s).map(|c| (*s, c)))
                .collect();
            if per.len() == segs.len() {
                return Ok(per);
            }
        }
    }
    if let Some(c) = engine.create_codes(procedure, Region::SpineUnspecified) {
        return Ok(vec![(Region::SpineUnspecified, c)]);
    }
    Err(format!(
        "no order code for the {} in the knowledge base (specify the spine region)",
        region.label()
    ))
}

fn code_keys(codes: &[CodingSpec]) -> Vec<String> {
    codes
        .iter()
        .map(|c| format!("{}|{}", c.system, c.code))
        .collect()
}

/// Builds the suggestions for `alts` (safety-screened), the top one recommended.
pub fn build_suggestions(input: &CardInput, alts: &[Alternative], ids: &mut dyn IdSource) -> Built {
    let engine = input.engine;
    let kb = engine.knowledge();
    let mut built = Built::default();
    let delete = input.draft.id.as_ref().map(|_| Action {
        action_type: ActionType::Delete,
        description: format!("Remove the draft order {}", input.draft.reference()),
        resource: None,
        resource_id: Some(input.draft.reference()),
    });
    for alt in alts {
        let p = &kb.procedures[alt.procedure];
        if let Some(why) = safety_block(engine, p, input.facts) {
            built.withheld.push(format!(
                "{} ({}/9) not suggested: {why}.",
                p.name, alt.rating
            ));
            continue;
        }
        let rating_text = format!("{}, {}/9", alt.category.label(), alt.rating);
        let (label, actions, codes) = if p.no_order {
            let Some(d) = &delete else {
                built.withheld.push(format!(
                    "{} ({}/9): the draft order has no id, so it cannot be cancelled from the card.",
                    p.name, alt.rating
                ));
                continue;
            };
            (
                format!("Cancel order: {} ({rating_text})", p.name.to_lowercase()),
                vec![d.clone()],
                Vec::new(),
            )
        } else {
            let mut actions: Vec<Action> = delete.iter().cloned().collect();
            let mut codes = Vec::new();
            // Referrals carry no procedure code (category + performerType instead).
            let referral = p.referral.is_some();
            let targets: Vec<(Region, Vec<CodingSpec>)> = if referral {
                vec![(Region::NotApplicable, Vec::new())]
            } else {
                match codes_for(engine, alt.procedure, input.rec.region, input.sr) {
                    Ok(v) => v.into_iter().map(|(r, c)| (r, c.to_vec())).collect(),
                    Err(why) => {
                        built.withheld.push(format!(
                            "{} ({}/9) not suggested as an order: {why}.",
                            p.name, alt.rating
                        ));
                        continue;
                    }
                }
            };
            let mut labels = Vec::new();
            let mut failed = None;
            for (region, codings) in targets {
                let name = procedure_label(engine, alt.procedure, region);
                codes.extend(code_keys(&codings));
                match new_order(input, p, &name, codings, referral, ids) {
                    Ok(resource) => {
                        actions.push(Action {
                            action_type: ActionType::Create,
                            description: format!("Add a draft order: {name}"),
                            resource: Some(resource),
                            resource_id: None,
                        });
                        labels.push(name);
                    }
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                built.withheld.push(format!(
                    "{} not suggested: could not build the order ({e}).",
                    p.name
                ));
                continue;
            }
            let verb = if delete.is_some() {
                "Replace with"
            } else {
                "Add"
            };
            (
                format!("{verb} {} ({rating_text})", labels.join(" + ")),
                actions,
                codes,
            )
        };
        let uuid = ids.next_uuid().to_string();
        let recommended = built.suggestions.is_empty();
        built.records.push(SuggestionRecord {
            procedure_id: p.id.clone(),
            rating: alt.rating,
            category: alt.category,
            label: label.clone(),
            codes,
            uuid: uuid.clone(),
            recommended,
        });
        built.suggestions.push(Suggestion {
            label,
            uuid: Some(uuid),
            is_recommended: recommended.then_some(true),
            actions,
        });
    }
    built
}

fn new_order(
    input: &CardInput,
    p: &Procedure,
    name: &str,
    codings: Vec<CodingSpec>,
    referral: bool,
    ids: &mut dyn IdSource,
) -> Result<serde_json::Value, fhir_build::BuildError> {
    let kb = input.engine.knowledge();
    let sr = input.sr;
    let uri = |key: &str| {
        kb.code_systems
            .get(key)
            .map(|c| c.uri.clone())
            .unwrap_or_else(|| key.to_owned())
    };
    let (category, performer_type) = match (&p.referral, referral) {
        (Some(r), true) => (
            vec![ConceptSpec {
                codings: r
                    .category
                    .iter()
                    .map(|c| CodingSpec {
                        system: uri(&c.system),
                        code: c.code.clone(),
                        display: Some(c.display.clone()),
                    })
                    .collect(),
                text: None,
            }],
            r.specialty.first().map(|c| ConceptSpec {
                codings: vec![CodingSpec {
                    system: uri(&c.system),
                    code: c.code.clone(),
                    display: Some(c.display.clone()),
                }],
                text: None,
            }),
        ),
        _ => (sr.category.iter().filter_map(to_concept).collect(), None),
    };
    // The draft's bodySite is kept for spine studies and treatments (same level), not for body
    // studies (bone scan, PET) or referrals.
    let keep_body_site = !referral
        && (p.kind == ProcedureKind::Treatment
            || p.codes.iter().any(|c| c.region.is_spine_segment()));
    let spec = NewServiceRequest {
        id: Some(ids.next_uuid().to_string()),
        intent: sr.intent.clone().unwrap_or_else(|| "order".into()),
        category,
        code: ConceptSpec {
            codings,
            text: Some(name.to_owned()),
        },
        subject: sr
            .subject
            .as_ref()
            .and_then(|s| s.reference.clone())
            .unwrap_or_else(|| format!("Patient/{}", input.req.patient_id)),
        encounter: sr
            .encounter
            .as_ref()
            .and_then(|e| e.reference.clone())
            .or_else(|| input.req.encounter_id.map(|e| format!("Encounter/{e}"))),
        requester: sr.requester.as_ref().and_then(|r| r.reference.clone()),
        reason_code: sr.reason_code.iter().filter_map(to_concept).collect(),
        reason_reference: sr
            .reason_reference
            .iter()
            .filter_map(|r| r.reference.clone())
            .collect(),
        body_site: if keep_body_site {
            sr.body_site.iter().filter_map(to_concept).collect()
        } else {
            Vec::new()
        },
        performer_type,
        note: None,
    };
    fhir_build::service_request_json(&spec)
}

/// Override reasons offered on warning cards (system keys resolved to URIs).
pub fn override_reasons(engine: &Engine) -> Vec<Coding> {
    let kb = engine.knowledge();
    kb.override_reasons
        .iter()
        .map(|o| Coding {
            system: kb
                .code_systems
                .get(&o.system)
                .map(|c| c.uri.clone())
                .unwrap_or_else(|| o.system.clone()),
            code: o.code.clone(),
            display: Some(o.display.clone()),
        })
        .collect()
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

/// A new card with the common parts filled in.
pub fn card(
    engine: &Engine,
    uuid: String,
    summary: String,
    detail: String,
    indicator: Indicator,
) -> Card {
    Card {
        uuid: Some(uuid),
        summary,
        detail: Some(detail),
        indicator,
        source: source(engine),
        suggestions: Vec::new(),
        selection_behavior: None,
        override_reasons: Vec::new(),
        links: vec![guideline_link(engine)],
    }
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
    fn safety_blocks_by_contrast_kind() {
        let e = crate::index::test_kb::engine();
        let ev = |code: &str| crate::facts::Evidence {
            source: "Condition/x".into(),
            code: code.into(),
            display: None,
            detail: None,
            assumption: None,
        };
        let proc_ = |id: &str| &e.knowledge().procedures[e.procedure_index(id).unwrap()];
        let mut f = PatientFacts::unknown();
        f.contrast_allergy = Some(ev("Z91.041"));
        // Iodinated contrast is withheld for the (iodinated) contrast allergy, gadolinium is not.
        assert!(
            safety_block(&e, proc_("CT_SPINE_W"), &f)
                .unwrap()
                .contains("Z91.041")
        );
        assert!(safety_block(&e, proc_("MRI_SPINE_W"), &f).is_none());
        assert!(safety_block(&e, proc_("CT_SPINE_WO"), &f).is_none());
        // Kidney disease withholds both contrast kinds; a device withholds MRI only.
        let mut f = PatientFacts::unknown();
        f.renal_contrast_risk = Some(ev("N18.5"));
        assert!(
            safety_block(&e, proc_("MRI_SPINE_W"), &f)
                .unwrap()
                .contains("N18.5")
        );
        assert!(safety_block(&e, proc_("CT_SPINE_W"), &f).is_some());
        let mut f = PatientFacts::unknown();
        f.mri_unsafe_device = Some(ev("Z95.0"));
        assert!(safety_block(&e, proc_("MRI_SPINE_WO"), &f).is_some());
        assert!(safety_block(&e, proc_("CT_SPINE_W"), &f).is_none());
        f.egfr = Some((29.0, ev("98979-8")));
        assert!(
            safety_block(&e, proc_("CT_SPINE_W"), &f)
                .unwrap()
                .contains("eGFR 29")
        );
        f.egfr = Some((30.0, ev("98979-8")));
        assert!(safety_block(&e, proc_("CT_SPINE_W"), &f).is_none());
    }

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

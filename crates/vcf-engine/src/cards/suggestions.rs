//! The suggestions of a card: for each safe alternative, the actions that cancel the draft and
//! create the alternative order (same patient, encounter, reason; codes for the draft's region).

use super::CardInput;
use super::alternatives::{Alternative, safety_block};
use super::text::procedure_label;
use crate::cds::{Action, ActionType, Suggestion};
use crate::fhir::{CodeableConcept, ServiceRequest};
use crate::index::Engine;
use crate::knowledge::{Procedure, ProcedureKind, Region};
use crate::orders::region_from_body_site;
use crate::types::{IdSource, SuggestionRecord};
use fhir_build::{CodingSpec, ConceptSpec, NewServiceRequest};

/// Suggestions built for a card.
#[derive(Debug, Default)]
pub struct Built {
    pub suggestions: Vec<Suggestion>,
    pub records: Vec<SuggestionRecord>,
    /// Alternatives not suggested, with why (safety, no code for the region).
    pub withheld: Vec<String>,
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

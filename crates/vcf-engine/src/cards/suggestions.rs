//! The suggestions of a card: for each safe alternative, the actions that cancel the draft and
//! create the alternative order (same patient, encounter, reason; codes for the draft's region).

use super::CardInput;
use super::alternatives::{Alternative, gadolinium_note, safety_block};
use super::text::procedure_label;
use crate::cds::{Action, ActionType, EditedDraft, Resource, Suggestion};
use crate::fhir::{CodeableConcept, ServiceRequest};
use crate::index::Engine;
use crate::knowledge::{Category, Procedure, ProcedureKind, Region};
use crate::orders::region_from_body_site;
use crate::rating::{CodingOut, pama_extension_list, pama_extensions, raw_json};
use crate::types::{IdSource, PamaRating, SuggestionRecord, SuggestionStyle};
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
///
/// How an alternative is offered (issue 9):
/// - for a whole-body or staging order (bone scan, PET), the alternative is an additional order
///   (`create`), unless the ordered study is usually not appropriate (`ordered_not_appropriate`);
/// - otherwise, with `SuggestionStyle::Update` and a draft with an id, one `update` of the draft:
///   the alternative's code and PAMA rating, everything else as the client sent it (Argonaut
///   PAMA; what the CDS Hooks sandbox applies);
/// - otherwise (`Replace`, a referral, an order split over several spine segments) `delete` of
///   the draft + `create` of the alternative;
/// - "no order" alternatives (medical management instead of a procedure) cancel the draft.
///
/// A gadolinium study for a patient with low eGFR is suggested with the group II note in its
/// label; anything else unsafe for the patient is withheld with the reason.
pub fn build_suggestions(
    input: &CardInput,
    alts: &[Alternative],
    ordered_not_appropriate: bool,
    ids: &mut dyn IdSource,
) -> Built {
    let engine = input.engine;
    let kb = engine.knowledge();
    let mut built = Built::default();
    let delete = input.draft.id.as_ref().map(|_| Action {
        action_type: ActionType::Delete,
        description: format!("Remove the draft order {}", input.draft.reference()),
        resource: None,
        resource_id: Some(input.draft.reference()),
    });
    let mut blocked: Vec<(String, Vec<String>)> = Vec::new();
    for alt in alts {
        let p = &kb.procedures[alt.procedure];
        if let Some(why) = safety_block(engine, p, input.facts) {
            // Alternatives blocked for the same reason share one line: the reason (device,
            // eGFR, allergy) is what the clinician acts on, and repeating it per study would
            // push the card past what can be read at the point of order.
            let study = format!("{} ({}/9)", p.name, alt.rating);
            match blocked.iter_mut().find(|(w, _)| *w == why) {
                Some((_, studies)) => studies.push(study),
                None => blocked.push((why, vec![study])),
            }
            continue;
        }
        let gad = gadolinium_note(engine, p, input.facts);
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
            // A whole-body / staging order (bone scan, PET) keeps its purpose: the alternative
            // is ordered in addition, unless the order itself is usually not appropriate.
            let additional = input.rec.region == Region::Body && !ordered_not_appropriate;
            let mut codes = Vec::new();
            let mut actions: Vec<Action> = Vec::new();
            let mut labels = Vec::new();
            // An update changes only the code: the draft must be coded and of the same kind (a
            // referral or a differently built order is replaced instead).
            let same_kind = kb.procedures[input.rec.procedure].kind == p.kind
                && kb.procedures[input.rec.procedure].referral.is_none()
                && input.sr.code.as_ref().is_some_and(|c| !c.coding.is_empty());
            if !additional
                && !referral
                && same_kind
                && targets.len() == 1
                && input.options.suggestion_style == SuggestionStyle::Update
                && input.draft.id.is_some()
            {
                let (region, codings) = &targets[0];
                let name = procedure_label(engine, alt.procedure, *region);
                match update_order(input, alt, &name, codings, ids) {
                    Some(a) => actions.push(a),
                    None => {
                        built.withheld.push(format!(
                            "{} not suggested: the draft order cannot be updated.",
                            p.name
                        ));
                        continue;
                    }
                }
                codes.extend(code_keys(codings));
                labels.push(name);
            } else {
                if !additional {
                    actions.extend(delete.iter().cloned());
                }
                let mut failed = None;
                for (region, codings) in targets {
                    let name = procedure_label(engine, alt.procedure, region);
                    codes.extend(code_keys(&codings));
                    match new_order(input, p, &name, codings, referral, ids) {
                        Ok(resource) => {
                            actions.push(Action {
                                action_type: ActionType::Create,
                                description: format!("Add a draft order: {name}"),
                                resource: Some(resource.into()),
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
            }
            let verb = match actions.first().map(|a| a.action_type) {
                Some(ActionType::Update) => "Change to",
                Some(ActionType::Delete) => "Replace with",
                _ if additional => "Also order",
                _ => "Add",
            };
            (
                format!("{verb} {} ({rating_text})", labels.join(" + ")),
                actions,
                codes,
            )
        };
        let label = match &gad {
            Some(_) => format!("{label}, group II gadolinium agent"),
            None => label,
        };
        if let Some((why, _)) = gad {
            built.withheld.push(format!(
                "{} suggested with a group II gadolinium agent: {why}.",
                p.name
            ));
        }
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
    let safety_lines = blocked
        .into_iter()
        .map(|(why, studies)| format!("{} not suggested: {why}.", studies.join(" and ")));
    built.withheld.splice(0..0, safety_lines);
    built
}

/// One `update` of the draft order to `name` (`codings`): the new code and the alternative's
/// PAMA rating; every other element exactly as the client sent it.
fn update_order(
    input: &CardInput,
    alt: &Alternative,
    name: &str,
    codings: &[CodingSpec],
    ids: &mut dyn IdSource,
) -> Option<Action> {
    let engine = input.engine;
    let kb = engine.knowledge();
    let members = input.draft_json.members()?;
    /// The new `code`; members in the order `serde_json` wrote the `Value` this was built as
    /// before (sorted), so the answer's bytes did not change.
    #[derive(serde::Serialize)]
    struct Code<'a> {
        coding: Vec<CodingOut<'a>>,
        text: &'a str,
    }
    let code = raw_json(&Code {
        coding: codings
            .iter()
            .map(|c| CodingOut {
                code: &c.code,
                display: c.display.as_deref(),
                system: &c.system,
            })
            .collect(),
        text: name,
    });
    let row = engine.rating(alt.variant, alt.procedure)?;
    let pama = match row.category.normalized() {
        Category::UsuallyNotAppropriate => PamaRating::NotAppropriate,
        _ => PamaRating::Appropriate,
    };
    let consult = format!("urn:uuid:{}", ids.next_uuid());
    let ext = pama_extensions(
        &kb.guideline,
        pama,
        Some((row, &kb.variants[alt.variant].id)),
        &consult,
        input.options,
    );
    let extension = pama_extension_list(&members, &ext)?;
    Some(Action {
        action_type: ActionType::Update,
        description: format!("Change {} to {name}", input.draft.reference()),
        resource: Some(Resource::Draft(EditedDraft::with_json(
            members,
            vec![("code", code), ("extension", extension)],
        ))),
        resource_id: None,
    })
}

/// Codes for an order of `procedure` matching the draft's region: one entry per created order.
pub(super) fn codes_for<'e>(
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

pub(super) fn code_keys(codes: &[CodingSpec]) -> Vec<String> {
    codes
        .iter()
        .map(|c| format!("{}|{}", c.system, c.code))
        .collect()
}

pub(super) fn new_order(
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

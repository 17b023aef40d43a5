//! Which procedures a card may suggest instead of the order, best first, and which of them must
//! be withheld for this patient's safety.

use crate::classify::Classification;
use crate::facts::PatientFacts;
use crate::index::Engine;
use crate::knowledge::{Category, Procedure, RatingRow, Region, Safety};

/// An alternative procedure worth suggesting.
#[derive(Debug, Clone)]
pub struct Alternative {
    pub procedure: usize,
    /// The variant whose rating row is shown (and carried in the suggestion's PAMA rating).
    pub variant: usize,
    /// Lowest rating over the candidate variants.
    pub rating: u8,
    pub category: Category,
    pub evidence: String,
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
                    variant: table_variant,
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

/// Why a study must not be done (or suggested) for this patient as it stands, if so: an
/// MR-unsafe device for MRI; for iodinated contrast, eGFR below the threshold, severe kidney
/// disease or dialysis, or a contrast allergy. Gadolinium with low eGFR is not a block (ACR-NKF
/// 2021, see [`gadolinium_note`]).
pub fn safety_block(engine: &Engine, p: &Procedure, facts: &PatientFacts) -> Option<String> {
    let policy = &engine.knowledge().policy;
    for s in &p.safety {
        match s {
            Safety::MriSafe => {
                if let Some(e) = &facts.mri_unsafe_device {
                    return Some(format!(
                        "device on record that may make MRI unsafe: {}; confirm its MR status \
                         (an implant of unknown status counts as MR Unsafe)",
                        e.short()
                    ));
                }
            }
            Safety::IodinatedContrast => {
                if let Some((v, e)) = &facts.egfr
                    && *v < policy.egfr_contrast_threshold
                {
                    return Some(format!(
                        "iodinated contrast with eGFR {v}, below {} ({}): consider the study \
                         without contrast",
                        policy.egfr_contrast_threshold, e.source
                    ));
                }
                if let Some(e) = &facts.renal_contrast_risk {
                    return Some(format!(
                        "iodinated contrast with severe kidney disease or dialysis: {}; consider \
                         the study without contrast",
                        e.short()
                    ));
                }
                if let Some(e) = &facts.contrast_allergy {
                    return Some(format!(
                        "contrast allergy on record: {}; avoid iodinated contrast or premedicate",
                        e.short()
                    ));
                }
            }
            Safety::Gadolinium => {}
        }
    }
    None
}

/// For a gadolinium study with eGFR below the threshold or severe kidney disease / dialysis:
/// the study is not withheld; returns (the evidence, the group II advice from the knowledge
/// file).
pub fn gadolinium_note(
    engine: &Engine,
    p: &Procedure,
    facts: &PatientFacts,
) -> Option<(String, String)> {
    if !p.safety.contains(&Safety::Gadolinium) {
        return None;
    }
    let policy = &engine.knowledge().policy;
    let why = match (&facts.egfr, &facts.renal_contrast_risk) {
        (Some((v, e)), _) if *v < policy.egfr_contrast_threshold => {
            format!("eGFR {v} ({})", e.source)
        }
        (_, Some(e)) => format!("kidney disease or dialysis: {}", e.short()),
        _ => return None,
    };
    let note = policy
        .gadolinium_low_egfr_note
        .clone()
        .unwrap_or_else(|| "Use a group II gadolinium agent.".into());
    Some((why, note))
}

/// Studies of the chosen variant rated at least as well as the order whose pediatric radiation
/// level is lower (none first), for a child with an ionizing order; best first. Empty when the
/// patient is not a child or the order uses no ionizing radiation.
pub fn pediatric_alternatives(
    engine: &Engine,
    variant: usize,
    ordered: usize,
    ordered_rating: u8,
    facts: &PatientFacts,
    region: Region,
) -> Vec<Alternative> {
    if !facts.pediatric {
        return Vec::new();
    }
    let level = |q: usize| engine.radiation_level(q, region, true);
    let Some(ordered_level) = level(ordered).filter(|l| *l > 0) else {
        return Vec::new();
    };
    let kb = engine.knowledge();
    let mut out: Vec<(Alternative, u8, usize)> = Vec::new();
    for (pos, row) in kb.variants[variant].ratings.iter().enumerate() {
        let Some(q) = engine.procedure_index(&row.procedure) else {
            continue;
        };
        if q == ordered
            || row.rating < ordered_rating
            || kb.procedures[q].kind != crate::knowledge::ProcedureKind::Imaging
        {
            continue;
        }
        let Some(l) = level(q).filter(|l| *l < ordered_level) else {
            continue;
        };
        out.push((
            Alternative {
                procedure: q,
                variant,
                rating: row.rating,
                category: row.category,
                evidence: row.evidence.clone(),
            },
            l,
            pos,
        ));
    }
    out.sort_by(|a, b| {
        b.0.rating
            .cmp(&a.0.rating)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
    });
    out.into_iter().map(|(a, _, _)| a).collect()
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
        // Kidney disease withholds iodinated contrast; gadolinium is not withheld but gets the
        // group II note (ACR-NKF 2021, research pack §6.1); a device withholds MRI only.
        let mut f = PatientFacts::unknown();
        f.renal_contrast_risk = Some(ev("N18.5"));
        assert!(safety_block(&e, proc_("MRI_SPINE_W"), &f).is_none());
        assert!(
            gadolinium_note(&e, proc_("MRI_SPINE_W"), &f)
                .unwrap()
                .0
                .contains("N18.5")
        );
        assert!(gadolinium_note(&e, proc_("CT_SPINE_W"), &f).is_none());
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
        assert!(gadolinium_note(&e, proc_("MRI_SPINE_W"), &f).is_some());
        f.egfr = Some((30.0, ev("98979-8")));
        assert!(safety_block(&e, proc_("CT_SPINE_W"), &f).is_none());
        assert!(gadolinium_note(&e, proc_("MRI_SPINE_W"), &f).is_none());
    }
}

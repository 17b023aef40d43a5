//! Variant classification under uncertainty.
//!
//! A variant is a candidate when none of its `requires` facts is known to contradict (present
//! where it must be false, absent where it must be true) and each `requires_any` group has at
//! least one fact that is not absent. Unknown facts a candidate relies on become assumptions.
//! The ordered procedure is rated when it has the same category (disagreement folded in) in
//! every candidate that rates it (a candidate without a row for the procedure does not block the
//! rating; the card says so); otherwise the case is ambiguous and the deciding facts are named.
//!
//! Evidence policy (`[[evidence_policy]]` in the knowledge file): a reliance on an unknown fact
//! that must be evidenced is recorded per candidate. When every candidate has one, "no variant
//! fits" is a candidate too: an agreed Usually-not-appropriate rating still stands (it does not
//! rest on the finding), but an appropriate one is withheld ([`Verdict::Unevidenced`]).

use crate::facts::{FactValue, PatientFacts};
use crate::index::Engine;
use crate::knowledge::{Category, EvidenceRule, Fact, Knowledge, ProcedureKind, RatingRow};

/// An unknown fact (or group) a candidate variant relies on.
#[derive(Debug, Clone, PartialEq)]
pub enum Reliance {
    /// The fact must have this value.
    Fact(Fact, bool),
    /// At least one of these (all unknown) must hold.
    Any(Vec<Fact>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Index into `Knowledge::variants`.
    pub variant: usize,
    pub relied: Vec<Reliance>,
    /// The reliances on facts the evidence policy says must be evidenced (a subset of
    /// `relied`).
    pub unevidenced: Vec<Reliance>,
}

/// Whether the evidence policy forbids resting a candidate on `fact` having `value` unshown.
/// A fact without a policy entry may be assumed.
pub fn must_evidence(kb: &Knowledge, fact: Fact, value: bool) -> bool {
    kb.evidence_policy.iter().any(|e| {
        e.fact == fact && (if value { e.present } else { e.absent }) == EvidenceRule::MustEvidence
    })
}

fn is_unevidenced(kb: &Knowledge, r: &Reliance) -> bool {
    match r {
        Reliance::Fact(f, b) => must_evidence(kb, *f, *b),
        // A group rests on a must-evidence finding when every unknown member needs evidence.
        Reliance::Any(fs) => !fs.is_empty() && fs.iter().all(|f| must_evidence(kb, *f, true)),
    }
}

/// Why a variant of the right kind was not a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    pub variant: usize,
    /// The contradicting fact and the value the variant requires (for a group: its first
    /// member and `true`).
    pub fact: Fact,
    pub required: bool,
    pub group: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classification {
    pub candidates: Vec<Candidate>,
    pub excluded: Vec<Exclusion>,
}

impl Classification {
    /// Every candidate rests on a must-evidence finding the record does not show, so "no
    /// variant fits" is a candidate too.
    pub fn no_variant_possible(&self) -> bool {
        !self.candidates.is_empty() && self.candidates.iter().all(|c| !c.unevidenced.is_empty())
    }
}

/// Finds every variant of `kind` consistent with the facts.
pub fn classify(engine: &Engine, facts: &PatientFacts, kind: ProcedureKind) -> Classification {
    let mut out = Classification::default();
    'variants: for &vi in engine.variants_of_kind(kind) {
        let vi = vi as usize;
        let v = &engine.knowledge().variants[vi];
        let mut relied = Vec::new();
        for (&fact, &required) in &v.requires {
            match (facts.get(fact).known(), required) {
                (Some(known), _) if known != required => {
                    out.excluded.push(Exclusion {
                        variant: vi,
                        fact,
                        required,
                        group: false,
                    });
                    continue 'variants;
                }
                (None, _) => relied.push(Reliance::Fact(fact, required)),
                _ => {}
            }
        }
        for group in &v.requires_any {
            if group.iter().all(|f| facts.get(*f).is_absent()) {
                out.excluded.push(Exclusion {
                    variant: vi,
                    fact: group.first().copied().unwrap_or(Fact::Vcf),
                    required: true,
                    group: true,
                });
                continue 'variants;
            }
            if !group.iter().any(|f| facts.get(*f).is_present()) {
                relied.push(Reliance::Any(
                    group
                        .iter()
                        .copied()
                        .filter(|f| facts.get(*f).is_unknown())
                        .collect(),
                ));
            }
        }
        let unevidenced = relied
            .iter()
            .filter(|r| is_unevidenced(engine.knowledge(), r))
            .cloned()
            .collect();
        out.candidates.push(Candidate {
            variant: vi,
            relied,
            unevidenced,
        });
    }
    out
}

/// What the candidates say about one ordered procedure.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No candidate variant.
    NoCandidate,
    /// Candidates exist but none rates the procedure.
    NotRated,
    /// Same category in every candidate; `chosen` indexes `Classification::candidates` (the
    /// lowest rating; on equal ratings the candidate relying on the fewest unknown facts);
    /// `ratings_differ` when the numbers differ between candidates.
    Rated { chosen: usize, ratings_differ: bool },
    /// Categories differ between the candidates that rate the procedure.
    Ambiguous { deciding: Vec<Fact> },
    /// The candidates that rate the procedure agree on an appropriate category, but each
    /// candidate rests on a finding that must be evidenced and the record does not show, so
    /// "no variant fits" is possible: not rated. `category` is what the candidates agree on.
    Unevidenced { category: Category },
}

/// Rates `procedure` against the candidates.
pub fn verdict(engine: &Engine, c: &Classification, procedure: usize) -> Verdict {
    if c.candidates.is_empty() {
        return Verdict::NoCandidate;
    }
    let rows: Vec<Option<&RatingRow>> = c
        .candidates
        .iter()
        .map(|cand| engine.rating(cand.variant, procedure))
        .collect();
    let Some(first) = rows.iter().flatten().next().copied() else {
        return Verdict::NotRated;
    };
    // Candidates without a row do not block the rating (the card says it is not rated there).
    let same = rows
        .iter()
        .flatten()
        .all(|r| r.category.normalized() == first.category.normalized());
    if same {
        let agreed = first.category.normalized();
        if c.no_variant_possible() && agreed != Category::UsuallyNotAppropriate {
            return Verdict::Unevidenced { category: agreed };
        }
        let mut chosen = rows.iter().position(Option::is_some).unwrap_or(0);
        let mut differ = false;
        for (i, r) in rows.iter().enumerate() {
            let (Some(r), Some(best)) = (r, rows[chosen]) else {
                continue;
            };
            if r.rating != best.rating {
                differ = true;
            }
            // Lowest rating; among equal ratings the candidate resting on the fewest unshown
            // must-evidence findings, then on the fewest unknown facts (the most specific fit),
            // then knowledge-file order.
            let key = |k: usize| {
                (
                    c.candidates[k].unevidenced.len(),
                    c.candidates[k].relied.len(),
                )
            };
            let fewer = key(i) < key(chosen);
            if r.rating < best.rating || (r.rating == best.rating && fewer) {
                chosen = i;
            }
        }
        return Verdict::Rated {
            chosen,
            ratings_differ: differ,
        };
    }
    Verdict::Ambiguous {
        deciding: deciding_facts(engine, c, facts_unknown_filter(c)),
    }
}

/// Candidates (indexes into `Classification::candidates`) that have no row for the procedure.
pub fn not_rated_in(engine: &Engine, c: &Classification, procedure: usize) -> Vec<usize> {
    c.candidates
        .iter()
        .enumerate()
        .filter(|(_, cand)| engine.rating(cand.variant, procedure).is_none())
        .map(|(i, _)| i)
        .collect()
}

fn facts_unknown_filter(c: &Classification) -> Vec<Fact> {
    // Facts relied upon by at least one candidate are exactly the unknown ones that matter.
    let mut v = Vec::new();
    for cand in &c.candidates {
        for r in &cand.relied {
            match r {
                Reliance::Fact(f, _) => v.push(*f),
                Reliance::Any(fs) => v.extend(fs.iter().copied()),
            }
        }
    }
    v.sort();
    v.dedup();
    v
}

/// Requirement of a variant on a fact: `Some(Some(b))` requires b, `Some(None)` is a member of
/// a requires_any group, `None` does not mention it.
fn requirement(engine: &Engine, variant: usize, fact: Fact) -> Option<Option<bool>> {
    let v = &engine.knowledge().variants[variant];
    if let Some(b) = v.requires.get(&fact) {
        return Some(Some(*b));
    }
    if v.requires_any.iter().any(|g| g.contains(&fact)) {
        return Some(None);
    }
    None
}

/// Unknown facts whose requirement differs between the candidates.
fn deciding_facts(engine: &Engine, c: &Classification, unknown: Vec<Fact>) -> Vec<Fact> {
    unknown
        .into_iter()
        .filter(|f| {
            let first = requirement(engine, c.candidates[0].variant, *f);
            c.candidates
                .iter()
                .any(|cand| requirement(engine, cand.variant, *f) != first)
        })
        .collect()
}

/// Assumption sentence for a reliance, e.g. "assumes bone marrow edema or intravertebral cleft
/// on MRI: not coded in the record".
pub fn reliance_text(facts: &PatientFacts, r: &Reliance) -> String {
    let why = |f: Fact| match facts.get(f) {
        FactValue::Unknown(w) => w.to_string(),
        _ => String::new(),
    };
    match r {
        Reliance::Fact(f, b) => format!("assumes {}: {}", f.phrase(*b), why(*f)),
        Reliance::Any(fs) => {
            let phrases: Vec<&str> = fs.iter().map(|f| f.phrase(true)).collect();
            let whys: Vec<String> = fs.iter().map(|f| why(*f)).collect();
            let mut uniq = whys.clone();
            uniq.dedup();
            format!("assumes {}: {}", phrases.join(" or "), uniq.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Evidence;
    use crate::index::test_kb;

    fn present() -> FactValue {
        crate::facts::present(Evidence {
            source: "Condition/x".into(),
            code: "X".into(),
            display: None,
            detail: None,
            assumption: None,
        })
    }

    fn base() -> PatientFacts {
        let mut f = PatientFacts::unknown();
        f.set(Fact::Vcf, present());
        f.set(Fact::NewFracture, present());
        f.set(Fact::Symptomatic, present());
        f.set(
            Fact::PriorVertebralAugmentation,
            FactValue::Absent("none".into()),
        );
        f.set(Fact::MultipleVcf, FactValue::Absent("one".into()));
        f
    }

    #[test]
    fn unknown_malignancy_makes_contrast_mri_ambiguous() {
        let e = test_kb::engine();
        let f = base();
        let c = classify(&e, &f, ProcedureKind::Imaging);
        let ids: Vec<&str> = c
            .candidates
            .iter()
            .map(|c| e.knowledge().variants[c.variant].id.as_str())
            .collect();
        assert_eq!(ids, ["V1", "V2"]);
        let mri_w = e.procedure_index("MRI_SPINE_W").unwrap();
        assert_eq!(
            verdict(&e, &c, mri_w),
            Verdict::Ambiguous {
                deciding: vec![Fact::MalignancyHistory]
            }
        );
        let ct_w = e.procedure_index("CT_SPINE_W").unwrap();
        assert_eq!(
            verdict(&e, &c, ct_w),
            Verdict::Rated {
                chosen: 0,
                ratings_differ: false
            }
        );
        let mri_wo = e.procedure_index("MRI_SPINE_WO").unwrap();
        assert_eq!(
            verdict(&e, &c, mri_wo),
            Verdict::Rated {
                chosen: 1,
                ratings_differ: true
            }
        );
        assert_eq!(
            reliance_text(&f, &c.candidates[0].relied[0]),
            "assumes no history of malignancy: "
        );
    }

    #[test]
    fn groups_and_exclusions() {
        let e = test_kb::engine();
        let mut f = base();
        f.set(Fact::MalignancyHistory, FactValue::Absent("none".into()));
        f.set(
            Fact::PriorVertebralAugmentation,
            FactValue::Unknown("procedures unavailable".into()),
        );
        let c = classify(&e, &f, ProcedureKind::Imaging);
        assert_eq!(c.candidates.len(), 2); // V1 and V3
        assert_eq!(
            c.candidates[1].relied,
            vec![Reliance::Any(vec![Fact::PriorVertebralAugmentation])]
        );
        assert_eq!(c.excluded.len(), 1); // V2
        let ct_wo = e.procedure_index("CT_SPINE_WO").unwrap();
        assert!(matches!(verdict(&e, &c, ct_wo), Verdict::Rated { .. }));
        f.set(
            Fact::PriorVertebralAugmentation,
            FactValue::Absent("none".into()),
        );
        let c = classify(&e, &f, ProcedureKind::Imaging);
        assert_eq!(c.candidates.len(), 1);
        assert!(c.excluded.iter().any(|x| x.group));
    }
}

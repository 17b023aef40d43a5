//! Findings read from the radiology reports of the record (`crate::reports` does the reading):
//! which reports are spine imaging, their modality and date, and the findings each one states.
//!
//! A finding counts when the report is dated within `policy.old_fracture_window_days` of the
//! order (undated reports count); marrow edema counts only from MRI (knowledge
//! `report_findings.modalities`). Evidence names the report and the knowledge file's matched
//! phrase, never the report's own words.

use super::derive::Derivation;
use super::{Evidence, FactValue, Text, present};
use crate::fhir::{CodeableConcept, FhirDateTime};
use crate::index::{Engine, Vs};
use crate::reports::{Mention, Status};
use crate::types::{Availability, PatientRecord};

/// One report (or report observation) read for findings.
#[derive(Debug, Clone)]
pub(super) struct ReportRead<'a> {
    /// `DiagnosticReport/r1`, `Observation/o1`.
    pub(super) reference: String,
    pub(super) id: Option<&'a str>,
    pub(super) date: Option<FhirDateTime>,
    /// `MR`, `CT`, `XR`, ... when known.
    pub(super) modality: Option<String>,
    /// A spine imaging report (its code, title or text names the spine or a vertebral level).
    pub(super) spine: bool,
    pub(super) mentions: Vec<Mention>,
}

fn modality_of(engine: &Engine, code: Option<&CodeableConcept>) -> Option<String> {
    let kb = engine.knowledge();
    let cc = code?;
    for c in &cc.coding {
        let (Some(s), Some(k)) = (c.system.as_deref(), c.code.as_deref()) else {
            continue;
        };
        if let Some(r) = engine.order_codes_of(s, k).first()
            && let Some(m) = &kb.procedures[r.procedure as usize].modality
        {
            return Some(m.clone());
        }
        if engine.value_sets_of(s, k) & Vs::SpineRadiograph.bit() != 0 {
            return Some("XR".into());
        }
    }
    let lex = engine.lexicon();
    cc.text
        .iter()
        .chain(cc.coding.iter().filter_map(|c| c.display.as_ref()))
        .find_map(|t| lex.modality_of_text(t).map(str::to_owned))
}

fn spine_code(engine: &Engine, code: Option<&CodeableConcept>) -> bool {
    let Some(cc) = code else { return false };
    let lex = engine.lexicon();
    cc.coding.iter().any(|c| {
        matches!((c.system.as_deref(), c.code.as_deref()), (Some(s), Some(k))
            if !engine.order_codes_of(s, k).is_empty()
                || engine.value_sets_of(s, k) & Vs::SpineRadiograph.bit() != 0)
    }) || cc
        .text
        .iter()
        .chain(cc.coding.iter().filter_map(|c| c.display.as_ref()))
        .any(|t| lex.is_spine_text(t))
}

fn parse_dt(s: &Option<String>) -> Option<FhirDateTime> {
    s.as_deref()
        .and_then(|v| FhirDateTime::parse_date_time(v).ok())
}

/// Reads every report and report observation of the record (statuses entered-in-error and
/// cancelled are skipped).
pub(super) fn read_reports<'a>(engine: &Engine, record: &'a PatientRecord) -> Vec<ReportRead<'a>> {
    let lex = engine.lexicon();
    let mut out = Vec::new();
    if let Availability::Available(reports) = &record.reports {
        for r in reports {
            if matches!(r.status.as_deref(), Some("entered-in-error" | "cancelled")) {
                continue;
            }
            let mut mentions = Vec::new();
            if let Some(c) = &r.conclusion {
                mentions.extend(lex.extract(c));
            }
            for a in &r.presented_form {
                if let Some(Ok(text)) = a.plain_text() {
                    mentions.extend(lex.extract(&text));
                }
            }
            let spine = spine_code(engine, r.code.as_ref())
                || mentions.iter().any(|m| !m.levels.is_empty());
            out.push(ReportRead {
                reference: match &r.id {
                    Some(id) => format!("DiagnosticReport/{id}"),
                    None => "DiagnosticReport".into(),
                },
                id: r.id.as_deref(),
                date: parse_dt(&r.effective_date_time).or_else(|| parse_dt(&r.issued)),
                modality: modality_of(engine, r.code.as_ref()),
                spine,
                mentions,
            });
        }
    }
    if let Availability::Available(observations) = &record.observations {
        for o in observations {
            if matches!(o.status.as_deref(), Some("entered-in-error" | "cancelled")) {
                continue;
            }
            let Some(text) = &o.value_string else {
                continue;
            };
            let mentions = lex.extract(text);
            if mentions.is_empty() {
                continue;
            }
            // An observation of a report takes the report's modality and spine flag.
            let parent = o.derived_from.iter().find_map(|d| {
                let id = d.reference.as_deref()?.strip_prefix("DiagnosticReport/")?;
                out.iter()
                    .find(|r: &&ReportRead| r.id == Some(id))
                    .map(|r| (r.modality.clone(), r.spine))
            });
            let (modality, spine) = parent.unwrap_or_else(|| {
                (
                    modality_of(engine, o.code.as_ref()),
                    spine_code(engine, o.code.as_ref())
                        || o.body_site
                            .as_ref()
                            .is_some_and(|b| spine_code(engine, Some(b))),
                )
            });
            out.push(ReportRead {
                reference: match &o.id {
                    Some(id) => format!("Observation/{id}"),
                    None => "Observation".into(),
                },
                id: o.id.as_deref(),
                date: parse_dt(&o.effective_date_time).or_else(|| parse_dt(&o.issued)),
                modality,
                spine: spine || mentions.iter().any(|m| !m.levels.is_empty()),
                mentions,
            });
        }
    }
    out
}

/// What the reports say about a finding.
#[derive(Debug, Default)]
pub(super) struct ReportFinding<'d> {
    /// Shown (affirmed; historical where history counts), in a report of an allowed modality.
    pub(super) shown: Option<(&'d ReportRead<'d>, &'d Mention)>,
    /// Stated as uncertain.
    pub(super) uncertain: Option<(&'d ReportRead<'d>, &'d Mention)>,
    /// Negated in a report of an allowed modality.
    pub(super) negated: Option<(&'d ReportRead<'d>, &'d Mention)>,
    /// Shown, but in a report of a modality it does not count from.
    pub(super) wrong_modality: Option<(&'d ReportRead<'d>, &'d Mention)>,
}

impl<'d, 'a: 'd> Derivation<'d, 'a> {
    /// Spine reports (and report observations) dated within the old-fracture window, or undated,
    /// plus any report or observation the order's supportingInfo names (clinician-stated
    /// evidence, read whatever its date or title).
    pub(super) fn recent_reports(&self) -> impl Iterator<Item = &'d ReportRead<'a>> + 'd {
        let days = i64::from(self.engine.knowledge().policy.old_fracture_window_days);
        let order_date = self.order_date;
        let supporting = self.supporting;
        self.idx.reports.iter().filter(move |r| {
            supporting.contains(&r.reference)
                || (r.spine
                    && r.date
                        .is_none_or(|d| (order_date - d.latest_date()).whole_days() <= days))
        })
    }

    /// The latest spine MRI report dated within `days` of the order.
    pub(super) fn spine_mri_within(&self, days: i64) -> Option<&'d ReportRead<'a>> {
        let order_date = self.order_date;
        self.idx
            .reports
            .iter()
            .filter(|r| r.spine && r.modality.as_deref() == Some("MR"))
            .filter(|r| {
                r.date
                    .is_some_and(|d| (order_date - d.latest_date()).whole_days() <= days)
            })
            .max_by_key(|r| r.date.map(|d| d.latest_date()))
    }

    /// What the recent spine reports say about the findings `ids`.
    pub(super) fn report_finding(&self, ids: &[&str]) -> ReportFinding<'d> {
        let kb = self.engine.knowledge();
        let mut out = ReportFinding::default();
        for r in self.recent_reports() {
            for m in r.mentions.iter().filter(|m| ids.contains(&m.id.as_str())) {
                let def = &kb.report_findings[m.finding];
                let modality_ok = def.modalities.is_empty()
                    || r.modality
                        .as_deref()
                        .is_some_and(|x| def.modalities.iter().any(|d| d == x));
                let slot = if m.status == Status::Uncertain {
                    &mut out.uncertain
                } else if !modality_ok {
                    if m.shows(kb) {
                        &mut out.wrong_modality
                    } else {
                        continue;
                    }
                } else if m.shows(kb) {
                    &mut out.shown
                } else if m.status == Status::Negated {
                    &mut out.negated
                } else {
                    continue;
                };
                if slot.is_none() {
                    *slot = Some((r, m));
                }
            }
        }
        out
    }

    /// Evidence for a report finding: the report and the knowledge file's matched phrase.
    pub(super) fn report_evidence(&self, r: &ReportRead, m: &Mention) -> Evidence {
        let at = if m.levels.is_empty() {
            String::new()
        } else {
            let l: Vec<String> = m.levels.iter().map(|l| l.to_string()).collect();
            format!(" at {}", l.join(", "))
        };
        let what = match (&r.modality, r.date) {
            (Some(m), Some(d)) => format!("{m} report of {}", d.latest_date()),
            (Some(m), None) => format!("{m} report, undated"),
            (None, Some(d)) => format!("report of {}", d.latest_date()),
            (None, None) => "report, undated".into(),
        };
        Evidence {
            source: r.reference.clone(),
            code: format!("report phrase \"{}\"{at}", m.phrase),
            display: None,
            detail: Some(match m.status {
                Status::Historical => format!("{what}, stated as history"),
                _ => what,
            }),
            assumption: None,
        }
    }

    /// A finding without a code: present when a recent spine report shows it, unknown when a
    /// report states it as uncertain, absent when a report of the right modality negates it,
    /// otherwise `fallback`.
    pub(super) fn finding_from_reports(&self, ids: &[&str], fallback: FactValue) -> FactValue {
        let f = self.report_finding(ids);
        if let Some((r, m)) = f.shown {
            return present(self.report_evidence(r, m));
        }
        if let Some((r, m)) = f.uncertain {
            return FactValue::Unknown(Text::Owned(format!(
                "{} states \"{}\" as uncertain (possible, not confirmed)",
                r.reference, m.phrase
            )));
        }
        if let Some((r, m)) = f.wrong_modality {
            let modality = r.modality.as_deref().unwrap_or("non-MRI");
            return FactValue::Unknown(Text::Owned(format!(
                "{} ({modality}) mentions \"{}\", which counts only from MRI",
                r.reference, m.phrase
            )));
        }
        if let Some((r, m)) = f.negated {
            return FactValue::Absent(Text::Owned(format!(
                "{} states no \"{}\"",
                r.reference, m.phrase
            )));
        }
        fallback
    }
}

impl<'d, 'a: 'd> Derivation<'d, 'a> {
    /// A coded fact, else what the recent spine reports say, else the coded answer. A report
    /// negating the finding makes the fact absent only for findings a report assesses as a
    /// whole (marrow edema / cleft, tumour); "no retropulsion" says nothing about kyphosis.
    pub(super) fn or_reports(&self, ids: &[&str], coded: FactValue) -> FactValue {
        if coded.is_present() {
            return coded;
        }
        let value = self.finding_from_reports(ids, coded.clone());
        let negation_counts = ids
            .iter()
            .any(|i| matches!(*i, "marrow-edema" | "intravertebral-cleft" | "tumour"));
        match value {
            FactValue::Absent(_) if !negation_counts => coded,
            v => v,
        }
    }

    /// VCF: coded; else a completed vertebral augmentation (a previously treated fracture,
    /// issue 8) or a spine report stating a fracture.
    pub(super) fn vcf_with_reports(&self, vcf_items: &[&super::record::Item<'a>]) -> FactValue {
        let coded = self.vcf(vcf_items);
        if coded.is_present() {
            return coded;
        }
        let order_date = self.order_date;
        if let Some(i) = self.find(Vs::PriorVertebralAugmentation.bit(), |i| {
            i.src == super::record::Src::Procedure
                && i.date.is_none_or(|d| d.earliest_date() <= order_date)
        }) {
            let mut e = self.evidence(i, Vs::PriorVertebralAugmentation.bit());
            e.assumption = Some(format!(
                "a completed vertebral augmentation ({}) shows a previously treated vertebral \
                 fracture, although no fracture is coded",
                e.source
            ));
            return present(e);
        }
        let f = self.report_finding(&["fracture"]);
        if let Some((r, m)) = f.shown {
            return present(self.report_evidence(r, m));
        }
        coded
    }

    /// New fracture: an MRI (within the old-fracture window) showing marrow edema or an acute
    /// appearance makes it new whatever the dates; otherwise the dated / 7th-character rules.
    pub(super) fn new_fracture_with_mri(
        &self,
        vcf_items: &[&super::record::Item<'a>],
    ) -> FactValue {
        let mri = self.recent_reports().find_map(|r| {
            if r.modality.as_deref() != Some("MR") {
                return None;
            }
            let kb = self.engine.knowledge();
            r.mentions
                .iter()
                .find(|m| {
                    (m.id == "marrow-edema" || m.id == "acute")
                        && m.status == Status::Affirmed
                        && m.shows(kb)
                })
                .map(|m| (r, m))
        });
        if let Some((r, m)) = mri {
            let mut e = self.report_evidence(r, m);
            e.assumption = Some(format!(
                "the fracture is new (acute or subacute): {} shows \"{}\" on MRI",
                r.reference, m.phrase
            ));
            return present(e);
        }
        self.new_fracture(vcf_items)
    }

    /// Suspected (unconfirmed / provisional / differential) conditions make their facts unknown;
    /// contradictory records (a refuted and a confirmed fracture; an osteoporotic fracture code
    /// and a neoplastic cause) make the facts unknown and are named.
    pub(super) fn resolve_conflicts(&self, f: &mut super::PatientFacts) {
        use super::derive::VCF_ANY;
        use super::record::Src;
        use crate::knowledge::Fact;
        for (fact, mask) in [
            (Fact::Vcf, VCF_ANY),
            (Fact::MalignancyHistory, Vs::Malignancy.bit()),
            (Fact::Osteoporotic, Vs::Osteoporosis.bit()),
            (
                Fact::NeoplasticCause,
                Vs::NeoplasticFracture.bit() | Vs::BoneMalignancy.bit(),
            ),
            (Fact::Pathological, Vs::PathologicalFracture.bit()),
            (Fact::Symptomatic, Vs::BackPain.bit()),
            (Fact::Deformity, Vs::Deformity.bit()),
            (Fact::PriorSpineSurgery, Vs::PriorSpineSurgery.bit()),
        ] {
            if f.get(fact).is_present() {
                continue;
            }
            if let Some(i) = self.find(mask, |i| i.src == Src::SuspectedCondition) {
                // verificationStatus unconfirmed / provisional / differential.
                let e = self.evidence(i, mask);
                f.set(
                    fact,
                    FactValue::Unknown(Text::Owned(format!(
                        "suspected, not confirmed ({} {})",
                        e.source, e.code
                    ))),
                );
            }
        }
        // A fracture both confirmed and refuted (same code, same site).
        let vcf_conds: Vec<_> = self
            .all()
            .filter(|i| i.src == Src::Condition && i.mask & VCF_ANY != 0)
            .collect();
        let refuted: Vec<_> = self
            .all()
            .filter(|i| i.src == Src::RefutedCondition && i.mask & VCF_ANY != 0)
            .collect();
        if !refuted.is_empty()
            && !vcf_conds.is_empty()
            && let FactValue::Present(e) = f.get(Fact::Vcf)
            && e.source.starts_with("Condition/")
            && vcf_conds.iter().all(|c| {
                refuted
                    .iter()
                    .any(|r| self.fracture_key(r) == self.fracture_key(c))
            })
        {
            let a = self.evidence(vcf_conds[0], VCF_ANY);
            let b = self.evidence(refuted[0], VCF_ANY);
            let text = format!(
                "conflicting records: {} is confirmed but {} (same fracture) is refuted",
                a.describe(),
                b.describe()
            );
            f.notes.push(text.clone());
            f.set(Fact::Vcf, FactValue::Unknown(Text::Owned(text)));
        }
        // An osteoporotic fracture code and a neoplastic cause.
        let osteo_fracture = self.find(Vs::Osteoporosis.bit(), |i| {
            i.mask & VCF_ANY != 0 && super::derive::cond_or_reason_or_report(i)
        });
        if let (Some(o), FactValue::Present(n)) = (osteo_fracture, f.get(Fact::NeoplasticCause)) {
            let text = format!(
                "conflicting records: the fracture is coded as osteoporotic ({}) and has a \
                 neoplastic cause ({})",
                self.evidence(o, Vs::Osteoporosis.bit()).describe(),
                n.describe()
            );
            f.notes.push(text.clone());
            f.set(
                Fact::Osteoporotic,
                FactValue::Unknown(Text::Owned(text.clone())),
            );
            f.set(Fact::NeoplasticCause, FactValue::Unknown(Text::Owned(text)));
        }
    }
}

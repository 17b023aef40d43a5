//! The record index: the part of the facts that does not depend on the order. Every resource of
//! the record is matched against the knowledge value sets once per request; the per-order
//! derivation (`derive`) then only looks items up.

use super::PatientFacts;
use super::derive::Derivation;
use crate::fhir::{CodeableConcept, Coding, FhirDateTime, ServiceRequest};
use crate::index::{Engine, Mask, Vs};
use crate::types::{Availability, PatientRecord};
use time::Date;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Src {
    Condition,
    OrderReason,
    /// A Condition of the record named by the order's reasonReference.
    ReasonReference,
    /// DiagnosticReport.conclusionCode.
    ReportConclusion,
    /// DiagnosticReport.code.
    ReportCode,
    Observation,
    Procedure,
    Allergy,
    /// A Condition with verificationStatus `refuted` (kept only to detect contradictions).
    RefutedCondition,
    /// A Condition with verificationStatus `unconfirmed`, `provisional` or `differential`:
    /// suspected, not confirmed (makes its facts unknown, never present).
    SuspectedCondition,
    /// A Device's MR-safety labelling.
    Device,
}

/// One resource (or order reason) with the codings that matched a value set.
#[derive(Debug, Clone)]
pub(super) struct Item<'a> {
    pub(super) src: Src,
    pub(super) id: Option<&'a str>,
    /// clinicalStatus active / recurrence / relapse, or none given.
    pub(super) active: bool,
    /// clinicalStatus inactive / remission / resolved.
    pub(super) resolved: bool,
    pub(super) date: Option<FhirDateTime>,
    /// Key that tells fractures apart besides the code (first bodySite coding or text).
    pub(super) site: Option<&'a str>,
    pub(super) mask: Mask,
    pub(super) hits: Vec<(Mask, &'a Coding)>,
}

impl Item<'_> {
    pub(super) fn coding(&self, vs: Mask) -> Option<&Coding> {
        self.hits.iter().find(|(m, _)| m & vs != 0).map(|(_, c)| *c)
    }
}

fn availability_note<T>(a: &Availability<T>, what: &str) -> Option<String> {
    match a {
        Availability::Available(_) => None,
        Availability::Unavailable(reason) => {
            Some(format!("{what} could not be retrieved ({reason})"))
        }
    }
}

fn code_of(cc: &Option<CodeableConcept>) -> Option<&str> {
    cc.as_ref()
        .and_then(|c| c.coding.iter().find_map(|c| c.code.as_deref()))
}

fn status_code(cc: &Option<CodeableConcept>) -> Option<&str> {
    code_of(cc)
}

fn parse_dt(s: &Option<String>) -> Option<FhirDateTime> {
    s.as_deref()
        .and_then(|v| FhirDateTime::parse_date_time(v).ok())
}

/// The part of the facts that does not depend on the order: value-set matches of every
/// resource in the record, computed once per request.
#[derive(Debug)]
pub struct RecordIndex<'a> {
    pub(super) items: Vec<Item<'a>>,
    pub(super) conditions_missing: Option<String>,
    pub(super) procedures_missing: Option<String>,
    pub(super) patient_missing: Option<String>,
    /// Every data kind that could not be retrieved.
    pub(super) unavailable: Vec<String>,
    pub(super) birth_date: Option<FhirDateTime>,
    pub(super) egfr: Option<(f64, Option<FhirDateTime>, Option<&'a str>, &'a Coding)>,
    /// Spine reports and report observations read for findings.
    pub(super) reports: Vec<super::reports::ReportRead<'a>>,
}

fn push_codings<'a>(
    engine: &Engine,
    hits: &mut Vec<(Mask, &'a Coding)>,
    mask: &mut Mask,
    cc: &'a CodeableConcept,
) {
    for c in &cc.coding {
        if let (Some(s), Some(code)) = (c.system.as_deref(), c.code.as_deref()) {
            let m = engine.value_sets_of(s, code);
            if m != 0 {
                *mask |= m;
                hits.push((m, c));
            }
        }
    }
}

impl<'a> RecordIndex<'a> {
    pub fn new(engine: &Engine, record: &'a PatientRecord) -> RecordIndex<'a> {
        let mut items = Vec::new();
        let mut add = |src, id, active, resolved, date, site, concepts: &[&'a CodeableConcept]| {
            let mut hits = Vec::new();
            let mut mask = 0;
            for cc in concepts {
                push_codings(engine, &mut hits, &mut mask, cc);
            }
            if mask != 0 {
                items.push(Item {
                    src,
                    id,
                    active,
                    resolved,
                    date,
                    site,
                    mask,
                    hits,
                });
            }
        };
        if let Availability::Available(conditions) = &record.conditions {
            for c in conditions {
                let src = match status_code(&c.verification_status) {
                    Some("entered-in-error") => continue,
                    Some("refuted") => Src::RefutedCondition,
                    Some("unconfirmed" | "provisional" | "differential") => Src::SuspectedCondition,
                    _ => Src::Condition,
                };
                let clinical = status_code(&c.clinical_status);
                let active = matches!(clinical, None | Some("active" | "recurrence" | "relapse"));
                let resolved = matches!(clinical, Some("inactive" | "remission" | "resolved"));
                let date = parse_dt(&c.onset_date_time)
                    .or_else(|| c.onset_period.as_ref().and_then(|p| parse_dt(&p.start)))
                    .or_else(|| parse_dt(&c.recorded_date));
                let site = c.body_site.first().and_then(|b| {
                    b.coding
                        .iter()
                        .find_map(|c| c.code.as_deref())
                        .or(b.text.as_deref())
                });
                if let Some(code) = &c.code {
                    add(src, c.id.as_deref(), active, resolved, date, site, &[code]);
                }
            }
        }
        if let Availability::Available(procedures) = &record.procedures {
            for p in procedures {
                if !matches!(p.status.as_deref(), None | Some("completed" | "unknown")) {
                    continue;
                }
                let date = parse_dt(&p.performed_date_time)
                    .or_else(|| p.performed_period.as_ref().and_then(|x| parse_dt(&x.start)));
                if let Some(code) = &p.code {
                    add(
                        Src::Procedure,
                        p.id.as_deref(),
                        true,
                        false,
                        date,
                        None,
                        &[code],
                    );
                }
            }
        }
        if let Availability::Available(reports) = &record.reports {
            for r in reports {
                if matches!(r.status.as_deref(), Some("entered-in-error" | "cancelled")) {
                    continue;
                }
                let date = parse_dt(&r.effective_date_time).or_else(|| parse_dt(&r.issued));
                let concl: Vec<&CodeableConcept> = r.conclusion_code.iter().collect();
                add(
                    Src::ReportConclusion,
                    r.id.as_deref(),
                    true,
                    false,
                    date,
                    None,
                    &concl,
                );
                if let Some(code) = &r.code {
                    add(
                        Src::ReportCode,
                        r.id.as_deref(),
                        true,
                        false,
                        date,
                        None,
                        &[code],
                    );
                }
            }
        }
        let mut egfr = None;
        if let Availability::Available(observations) = &record.observations {
            for o in observations {
                if matches!(o.status.as_deref(), Some("entered-in-error" | "cancelled")) {
                    continue;
                }
                let date = parse_dt(&o.effective_date_time).or_else(|| parse_dt(&o.issued));
                let mut concepts: Vec<&CodeableConcept> = Vec::new();
                if let Some(code) = &o.code {
                    if let Some(v) = o.value_quantity.as_ref().and_then(|q| q.value) {
                        let egfr_coding = code.coding.iter().find(|c| {
                            matches!((c.system.as_deref(), c.code.as_deref()),
                                (Some(s), Some(k)) if engine.value_sets_of(s, k) & Vs::Egfr.bit() != 0)
                        });
                        if let Some(coding) = egfr_coding {
                            let newer = match &egfr {
                                None => true,
                                Some((_, d, _, _)) => later(date, *d),
                            };
                            if newer {
                                egfr = Some((v, date, o.id.as_deref(), coding));
                            }
                        }
                    }
                    concepts.push(code);
                }
                if let Some(v) = &o.value_codeable_concept {
                    concepts.push(v);
                }
                add(
                    Src::Observation,
                    o.id.as_deref(),
                    true,
                    false,
                    date,
                    None,
                    &concepts,
                );
            }
        }
        if let Availability::Available(allergies) = &record.allergies {
            for a in allergies {
                if matches!(
                    status_code(&a.verification_status),
                    Some("entered-in-error" | "refuted")
                ) || matches!(
                    status_code(&a.clinical_status),
                    Some("inactive" | "resolved")
                ) {
                    continue;
                }
                if let Some(code) = &a.code {
                    add(
                        Src::Allergy,
                        a.id.as_deref(),
                        true,
                        false,
                        None,
                        None,
                        &[code],
                    );
                }
            }
        }
        if let Availability::Available(devices) = &record.devices {
            for d in devices {
                if matches!(d.status.as_deref(), Some("inactive" | "entered-in-error")) {
                    continue;
                }
                let safety: Vec<&CodeableConcept> = d.safety.iter().collect();
                add(
                    Src::Device,
                    d.id.as_deref(),
                    true,
                    false,
                    None,
                    None,
                    &safety,
                );
            }
        }
        let (birth_date, patient_missing) = match &record.patient {
            Availability::Available(Some(p)) => (
                p.birth_date
                    .as_deref()
                    .and_then(|b| FhirDateTime::parse_date(b).ok()),
                None,
            ),
            Availability::Available(None) => (None, None),
            Availability::Unavailable(r) => (None, Some(r.clone())),
        };
        let unavailable = [
            availability_note(&record.conditions, "conditions"),
            availability_note(&record.procedures, "procedure history"),
            availability_note(&record.observations, "observations (eGFR)"),
            availability_note(&record.reports, "diagnostic reports"),
            availability_note(&record.allergies, "allergies"),
            availability_note(&record.devices, "devices"),
        ]
        .into_iter()
        .flatten()
        .collect();
        RecordIndex {
            items,
            unavailable,
            conditions_missing: availability_note(&record.conditions, "conditions"),
            procedures_missing: availability_note(&record.procedures, "procedure history"),
            patient_missing,
            birth_date,
            egfr,
            reports: super::reports::read_reports(engine, record),
        }
    }

    /// Facts for one order (its reasonCode counts as condition evidence) on `order_date`.
    pub fn facts(
        &self,
        engine: &Engine,
        order: Option<&'a ServiceRequest>,
        order_ref: &str,
        order_date: Date,
    ) -> PatientFacts {
        let mut reasons = Vec::new();
        if let Some(sr) = order {
            for rc in &sr.reason_code {
                let mut hits = Vec::new();
                let mut mask = 0;
                push_codings(engine, &mut hits, &mut mask, rc);
                if mask != 0 {
                    reasons.push(Item {
                        src: Src::OrderReason,
                        id: None,
                        active: true,
                        resolved: false,
                        date: None,
                        site: None,
                        mask,
                        hits,
                    });
                }
            }
        }
        // reasonReference to a Condition of the record: that condition is the order's reason
        // (counts even when its clinicalStatus is not active).
        for r in order.iter().flat_map(|sr| sr.reason_reference.iter()) {
            let Some(id) = r
                .reference
                .as_deref()
                .and_then(|x| x.strip_prefix("Condition/"))
            else {
                continue;
            };
            for it in self
                .items
                .iter()
                .filter(|i| i.src == Src::Condition && i.id == Some(id))
            {
                let mut c = it.clone();
                c.src = Src::ReasonReference;
                c.active = true;
                reasons.push(c);
            }
        }
        // supportingInfo naming a report or observation of the record: the clinician offers it
        // as evidence for the order, so it is read whatever its date or title.
        let supporting: Vec<String> = order
            .iter()
            .flat_map(|sr| sr.supporting_info.iter())
            .filter_map(|r| r.reference.clone())
            .filter(|r| r.starts_with("DiagnosticReport/") || r.starts_with("Observation/"))
            .collect();
        Derivation {
            engine,
            idx: self,
            reasons: &reasons,
            order_ref,
            order_date,
            supporting: &supporting,
        }
        .run()
    }
}

/// Whether `a` is later than `b` (undated values are the oldest).
pub(super) fn later(a: Option<FhirDateTime>, b: Option<FhirDateTime>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.latest_date() > b.latest_date(),
        (Some(_), None) => true,
        _ => false,
    }
}

//! Patient facts: what the record (and the order's own reason) says about the fracture, each
//! fact tri-state with its evidence or the assumption made.
//!
//! Derivation rules (engine code; the codes themselves come from the knowledge value sets):
//! - Conditions with verificationStatus `entered-in-error` or `refuted` are ignored.
//! - Malignancy history counts any clinicalStatus (resolved cancer still counts); back pain,
//!   findings and safety conditions count only when active/recurrence/relapse (or no status).
//! - Absence of a coded fact when its data kind was available is `Absent` with the assumption
//!   spelled out; findings that have no code are `Unknown` unless coded evidence exists; a data
//!   kind that could not be retrieved makes the facts depending on it `Unknown`.
//! - A VCF is new when dated within `policy.new_fracture_window_days` of the order date; undated
//!   ICD-10-CM codes with 7th character A/B (initial encounter) are assumed new, D/G/K/P/S not.

use crate::evaluate::{Availability, PatientRecord};
use crate::fhir::{CodeableConcept, Coding, FhirDateTime, ServiceRequest, age_in_years};
use crate::index::{Engine, Mask, Vs, normalize_code};
use crate::knowledge::Fact;
use serde::Serialize;
use time::Date;

/// A recorded piece of evidence for a fact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Where it was found: `Condition/c1`, `ServiceRequest/o1 reasonCode`, ...
    pub source: String,
    /// The matching code (`M80.08XA`).
    pub code: String,
    pub display: Option<String>,
    /// Extra detail ("onset 2026-10-01, 20 days before the order").
    pub detail: Option<String>,
    /// Set when the fact is inferred rather than recorded (stated to the clinician).
    pub assumption: Option<String>,
}

impl Evidence {
    /// One line for a card: `Condition/c1: M80.08XA Age-related osteoporosis ... (detail)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}: {}", self.source, self.code);
        if let Some(d) = &self.display {
            s.push(' ');
            s.push_str(d);
        }
        if let Some(d) = &self.detail {
            s.push_str(" (");
            s.push_str(d);
            s.push(')');
        }
        s
    }
}

/// A fact's value: known present (with evidence), known absent (with the assumption made), or
/// unknown (with why).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "text", rename_all = "kebab-case")]
pub enum FactValue {
    Present(Box<Evidence>),
    Absent(Text),
    Unknown(Text),
}

/// Fact texts: mostly fixed sentences, sometimes formatted.
pub type Text = std::borrow::Cow<'static, str>;

/// `Present` with boxed evidence (keeps [`FactValue`] small).
pub fn present(e: Evidence) -> FactValue {
    FactValue::Present(Box::new(e))
}

impl FactValue {
    pub fn is_present(&self) -> bool {
        matches!(self, FactValue::Present(_))
    }
    pub fn is_absent(&self) -> bool {
        matches!(self, FactValue::Absent(_))
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, FactValue::Unknown(_))
    }
    /// `Some(true)` present, `Some(false)` absent, `None` unknown.
    pub fn known(&self) -> Option<bool> {
        match self {
            FactValue::Present(_) => Some(true),
            FactValue::Absent(_) => Some(false),
            FactValue::Unknown(_) => None,
        }
    }
}

/// Everything the engine concluded about the patient for one order.
#[derive(Debug, Clone, Serialize)]
pub struct PatientFacts {
    values: [FactValue; Fact::COUNT],
    /// Age in whole years at the order date, when the birth date is known.
    pub age: Option<i32>,
    /// Under `policy.pediatric_age_below` at the order date.
    pub pediatric: bool,
    /// Set when the age could not be determined (adult assumed).
    pub age_assumption: Option<String>,
    /// Latest eGFR (mL/min/1.73m2) with its evidence.
    pub egfr: Option<(f64, Evidence)>,
    pub mri_unsafe_device: Option<Evidence>,
    pub renal_contrast_risk: Option<Evidence>,
    /// Iodinated contrast allergy (the only contrast allergy with a code).
    pub contrast_allergy: Option<Evidence>,
    /// Latest spine radiograph report, if any.
    pub spine_radiograph: Option<Evidence>,
    /// Data kinds that could not be retrieved ("procedure history could not be retrieved
    /// (timeout)"), stated as assumptions.
    pub unavailable: Vec<String>,
    /// The order date used for ages and fracture recency.
    #[serde(skip)]
    pub order_date: Option<Date>,
}

impl PatientFacts {
    pub fn get(&self, fact: Fact) -> &FactValue {
        &self.values[fact.index()]
    }

    /// Overrides one fact (tests and what-if exploration).
    pub fn set(&mut self, fact: Fact, value: FactValue) {
        self.values[fact.index()] = value;
    }

    /// All facts with their values, in [`Fact::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Fact, &FactValue)> {
        Fact::ALL.iter().copied().zip(self.values.iter())
    }

    /// Facts with every value unknown and no reason given (a starting point for derivation and
    /// tests; allocation-free apart from the vector).
    pub fn unknown() -> PatientFacts {
        PatientFacts {
            values: std::array::from_fn(|_| FactValue::Unknown(Text::Borrowed(""))),
            age: None,
            pediatric: false,
            age_assumption: None,
            egfr: None,
            mri_unsafe_device: None,
            renal_contrast_risk: None,
            contrast_allergy: None,
            spine_radiograph: None,
            unavailable: Vec::new(),
            order_date: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
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
}

/// One resource (or order reason) with the codings that matched a value set.
#[derive(Debug, Clone)]
struct Item<'a> {
    src: Src,
    id: Option<&'a str>,
    /// clinicalStatus active / recurrence / relapse, or none given.
    active: bool,
    /// clinicalStatus inactive / remission / resolved.
    resolved: bool,
    date: Option<FhirDateTime>,
    /// Key that tells fractures apart besides the code (first bodySite coding or text).
    site: Option<&'a str>,
    mask: Mask,
    hits: Vec<(Mask, &'a Coding)>,
}

impl Item<'_> {
    fn coding(&self, vs: Mask) -> Option<&Coding> {
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
    items: Vec<Item<'a>>,
    conditions_missing: Option<String>,
    procedures_missing: Option<String>,
    patient_missing: Option<String>,
    /// Every data kind that could not be retrieved.
    unavailable: Vec<String>,
    birth_date: Option<FhirDateTime>,
    egfr: Option<(f64, Option<FhirDateTime>, Option<&'a str>, &'a Coding)>,
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
                if matches!(
                    status_code(&c.verification_status),
                    Some("entered-in-error" | "refuted")
                ) {
                    continue;
                }
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
                    add(
                        Src::Condition,
                        c.id.as_deref(),
                        active,
                        resolved,
                        date,
                        site,
                        &[code],
                    );
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
        Derivation {
            engine,
            idx: self,
            reasons: &reasons,
            order_ref,
            order_date,
        }
        .run()
    }
}

/// Whether `a` is later than `b` (undated values are the oldest).
fn later(a: Option<FhirDateTime>, b: Option<FhirDateTime>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.latest_date() > b.latest_date(),
        (Some(_), None) => true,
        _ => false,
    }
}

struct Derivation<'d, 'a> {
    engine: &'d Engine,
    idx: &'d RecordIndex<'a>,
    reasons: &'d [Item<'a>],
    order_ref: &'d str,
    order_date: Date,
}

const VCF_ANY: Mask = Vs::Vcf.bit() | Vs::VcfTraumatic.bit();

impl<'d, 'a> Derivation<'d, 'a> {
    fn all(&self) -> impl Iterator<Item = &'d Item<'a>> + 'd {
        self.idx.items.iter().chain(self.reasons.iter())
    }

    fn find(&self, vs: Mask, ok: impl Fn(&Item) -> bool) -> Option<&'d Item<'a>> {
        self.all().find(|i| i.mask & vs != 0 && ok(i))
    }

    fn evidence(&self, item: &Item, vs: Mask) -> Evidence {
        let source = match (item.src, item.id) {
            (Src::OrderReason, _) => format!("{} reasonCode", self.order_ref),
            (Src::ReasonReference, id) => format!(
                "Condition/{} (reason of {})",
                id.unwrap_or_default(),
                self.order_ref
            ),
            (src, id) => {
                let ty = match src {
                    Src::Condition => "Condition",
                    Src::ReportConclusion | Src::ReportCode => "DiagnosticReport",
                    Src::Observation => "Observation",
                    Src::Procedure => "Procedure",
                    Src::Allergy => "AllergyIntolerance",
                    Src::OrderReason | Src::ReasonReference => unreachable!(),
                };
                match id {
                    Some(id) => format!("{ty}/{id}"),
                    None => ty.to_owned(),
                }
            }
        };
        let coding = item.coding(vs);
        Evidence {
            source,
            code: coding.and_then(|c| c.code.clone()).unwrap_or_default(),
            display: coding.and_then(|c| c.display.clone()),
            detail: item.date.map(|d| format!("dated {}", d.latest_date())),
            assumption: None,
        }
    }

    fn conditions_unknown(&self) -> Option<Text> {
        self.idx.conditions_missing.clone().map(Text::Owned)
    }

    fn run(&self) -> PatientFacts {
        let mut f = PatientFacts::unknown();
        f.order_date = Some(self.order_date);
        f.unavailable = self.idx.unavailable.clone();
        let cond_or_reason_or_report = |i: &Item| {
            matches!(
                i.src,
                Src::Condition | Src::OrderReason | Src::ReasonReference | Src::ReportConclusion
            )
        };
        let active_cond = |i: &Item| {
            matches!(
                i.src,
                Src::OrderReason | Src::ReasonReference | Src::ReportConclusion | Src::Observation
            ) || (i.src == Src::Condition && i.active)
        };

        // VCF.
        let vcf_items: Vec<&Item> = self
            .all()
            .filter(|i| i.mask & VCF_ANY != 0 && cond_or_reason_or_report(i))
            .collect();
        let vcf = match vcf_items.first() {
            Some(i) => present(self.evidence(i, VCF_ANY)),
            None => match self.conditions_unknown() {
                Some(why) => FactValue::Unknown(why),
                None => FactValue::Absent(
                    "no vertebral compression fracture on the problem list or as the order reason"
                        .into(),
                ),
            },
        };
        let has_vcf = vcf.is_present();
        f.set(Fact::Vcf, vcf);

        // New fracture.
        f.set(Fact::NewFracture, self.new_fracture(&vcf_items));

        // Multiple fractures: distinct (code without 7th character, body site) among conditions.
        let mut keys: Vec<(String, Option<&str>)> = Vec::new();
        let mut second = None;
        for i in vcf_items.iter().filter(|i| i.src == Src::Condition) {
            let key = self.fracture_key(i);
            if !keys.contains(&key) {
                keys.push(key);
                if keys.len() == 2 {
                    second = Some(*i);
                }
            }
        }
        f.set(
            Fact::MultipleVcf,
            match (second, has_vcf, self.conditions_unknown()) {
                (Some(i), _, _) => {
                    let mut e = self.evidence(i, VCF_ANY);
                    e.detail = Some(format!(
                        "{} distinct fractures coded: {}",
                        keys.len(),
                        keys.iter()
                            .map(|(k, s)| match s {
                                Some(s) => format!("{k} ({s})"),
                                None => k.clone(),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    present(e)
                }
                (None, _, Some(why)) => FactValue::Unknown(why),
                (None, true, None) => {
                    FactValue::Absent("only one fractured vertebra on the problem list".into())
                }
                (None, false, None) => FactValue::Absent("no fracture on record".into()),
            },
        );

        // Symptomatic: coded back pain (active condition or the order's reason); pain is often
        // uncoded, so no code means unknown, never absent.
        let pain = self.find(Vs::BackPain.bit(), |i| {
            (i.src == Src::Condition && i.active)
                || matches!(i.src, Src::OrderReason | Src::ReasonReference)
        });
        f.set(
            Fact::Symptomatic,
            match pain {
                Some(i) => present(self.evidence(i, Vs::BackPain.bit())),
                None => FactValue::Unknown(match self.conditions_unknown() {
                    Some(why) => why,
                    None => {
                        "back pain is not coded on the problem list or as the order reason".into()
                    }
                }),
            },
        );

        // Malignancy history: any clinical status counts.
        let malignancy = self.find(Vs::Malignancy.bit(), cond_or_reason_or_report);
        let malignancy_value = match malignancy {
            Some(i) => present(self.evidence(i, Vs::Malignancy.bit())),
            None => match self.conditions_unknown() {
                Some(why) => FactValue::Unknown(why),
                None => {
                    FactValue::Absent("no history of malignancy found in the problem list".into())
                }
            },
        };
        let malignancy_known = malignancy_value.known();
        f.set(Fact::MalignancyHistory, malignancy_value);

        // Osteoporotic / pathological.
        let osteo = self.find(Vs::Osteoporosis.bit(), cond_or_reason_or_report);
        let patho = self.find(Vs::PathologicalFracture.bit(), cond_or_reason_or_report);
        f.set(
            Fact::Osteoporotic,
            match (osteo, patho) {
                (Some(i), _) => present(self.evidence(i, Vs::Osteoporosis.bit())),
                (None, Some(p)) => FactValue::Absent(
                    format!(
                        "the fracture is coded as pathological ({})",
                        self.evidence(p, Vs::PathologicalFracture.bit()).describe()
                    )
                    .into(),
                ),
                (None, None) => FactValue::Unknown(match self.conditions_unknown() {
                    Some(why) => why,
                    None => "the fracture's cause is not coded (no osteoporosis or pathological fracture code)".into(),
                }),
            },
        );
        f.set(
            Fact::Pathological,
            match (patho, malignancy_known) {
                (Some(p), _) => present(self.evidence(p, Vs::PathologicalFracture.bit())),
                (None, Some(false)) => {
                    FactValue::Absent("no pathological fracture or malignancy on record".into())
                }
                (None, Some(true)) => FactValue::Unknown(
                    "history of malignancy, but the fracture is not coded as pathological".into(),
                ),
                (None, None) => FactValue::Unknown(
                    self.conditions_unknown()
                        .unwrap_or_else(|| "conditions not available".into()),
                ),
            },
        );

        // Neoplastic cause (V9 "pathological", V8 "benign" = not neoplastic): M84.5- or a
        // malignancy known to involve bone; another malignancy alone leaves it unknown.
        let neo_mask = Vs::NeoplasticFracture.bit() | Vs::BoneMalignancy.bit();
        let neo = self.find(neo_mask, cond_or_reason_or_report);
        f.set(
            Fact::NeoplasticCause,
            match (neo, malignancy_known) {
                (Some(i), _) => present(self.evidence(i, neo_mask)),
                (None, Some(true)) => FactValue::Unknown(
                    "history of malignancy, but no neoplastic fracture code, bone-involving \
                     malignancy or report finding of tumour"
                        .into(),
                ),
                (None, Some(false)) => FactValue::Absent(
                    "no neoplastic fracture code, bone-involving malignancy or malignancy on record"
                        .into(),
                ),
                (None, None) => FactValue::Unknown(
                    self.conditions_unknown()
                        .unwrap_or_else(|| "conditions not available".into()),
                ),
            },
        );

        // Prior vertebral augmentation / spine surgery.
        let order_date = self.order_date;
        let prior = |i: &Item| match i.src {
            Src::Procedure => i.date.is_none_or(|d| d.earliest_date() <= order_date),
            Src::Condition => true,
            _ => false,
        };
        for (fact, vs, absent) in [
            (
                Fact::PriorVertebralAugmentation,
                Vs::PriorVertebralAugmentation,
                "no prior vertebral augmentation in the procedure history or problem list",
            ),
            (
                Fact::PriorSpineSurgery,
                Vs::PriorSpineSurgery,
                "no prior spine surgery in the procedure history or problem list",
            ),
        ] {
            let value = match self.find(vs.bit(), prior) {
                Some(i) => present(self.evidence(i, vs.bit())),
                None => match (&self.idx.procedures_missing, self.conditions_unknown()) {
                    (Some(why), _) => FactValue::Unknown(why.clone().into()),
                    (None, Some(why)) => FactValue::Unknown(why),
                    (None, None) if !self.engine.is_coded(vs) => {
                        FactValue::Unknown("no code exists for it in the knowledge base".into())
                    }
                    (None, None) => FactValue::Absent(absent.into()),
                },
            };
            f.set(fact, value);
        }

        // Findings: coded evidence or unknown (deformity has codes, so it can be absent).
        for (fact, vs) in [
            (Fact::MarrowEdemaOrCleft, Vs::MarrowEdemaOrCleft),
            (Fact::WorseningPain, Vs::WorseningPain),
            (Fact::PulmonaryDysfunction, Vs::PulmonaryDysfunction),
            (Fact::MechanicalPain, Vs::MechanicalPain),
            (Fact::Deformity, Vs::Deformity),
        ] {
            let value = match self.find(vs.bit(), active_cond) {
                Some(i) => present(self.evidence(i, vs.bit())),
                None => {
                    if fact == Fact::Deformity
                        && self.engine.is_coded(vs)
                        && self.conditions_unknown().is_none()
                    {
                        FactValue::Absent("no spinal deformity coded on the problem list".into())
                    } else {
                        FactValue::Unknown("not coded in the record".into())
                    }
                }
            };
            f.set(fact, value);
        }

        // High-energy trauma: the fracture is only coded as traumatic and there is no bone
        // pathology (osteoporosis, malignancy, pathological fracture).
        let traumatic_only = !vcf_items.is_empty()
            && vcf_items
                .iter()
                .all(|i| i.mask & Vs::VcfTraumatic.bit() != 0);
        let pathology = osteo.is_some() || patho.is_some() || malignancy.is_some();
        f.set(
            Fact::HighEnergyTrauma,
            if traumatic_only && !pathology {
                let mut e = self.evidence(vcf_items[0], Vs::VcfTraumatic.bit());
                e.assumption = Some(
                    "the fracture is coded only as a traumatic fracture, with no osteoporosis, \
                     malignancy or pathological fracture on record: treated as high-energy trauma"
                        .into(),
                );
                present(e)
            } else {
                FactValue::Absent("no traumatic fracture without bone pathology".into())
            },
        );

        // Safety facts.
        f.mri_unsafe_device = self
            .find(Vs::MriUnsafeDevice.bit(), |i| {
                (i.src == Src::Condition && i.active) || i.src == Src::Procedure
            })
            .map(|i| self.evidence(i, Vs::MriUnsafeDevice.bit()));
        f.renal_contrast_risk = self
            .find(Vs::RenalContrastRisk.bit(), |i| {
                i.src == Src::Condition && i.active
            })
            .map(|i| self.evidence(i, Vs::RenalContrastRisk.bit()));
        f.contrast_allergy = self
            .find(Vs::ContrastAllergy.bit(), |i| {
                (i.src == Src::Condition && !i.resolved) || i.src == Src::Allergy
            })
            .map(|i| self.evidence(i, Vs::ContrastAllergy.bit()));
        f.egfr = self.idx.egfr.map(|(v, date, id, coding)| {
            (
                v,
                Evidence {
                    source: match id {
                        Some(id) => format!("Observation/{id}"),
                        None => "Observation".into(),
                    },
                    code: coding.code.clone().unwrap_or_default(),
                    display: coding.display.clone(),
                    detail: Some(match date {
                        Some(d) => format!("{v} mL/min/1.73m2 on {}", d.latest_date()),
                        None => format!("{v} mL/min/1.73m2"),
                    }),
                    assumption: None,
                },
            )
        });
        f.spine_radiograph = self
            .idx
            .items
            .iter()
            .filter(|i| i.src == Src::ReportCode && i.mask & Vs::SpineRadiograph.bit() != 0)
            .max_by(|a, b| {
                if later(a.date, b.date) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                }
            })
            .map(|i| self.evidence(i, Vs::SpineRadiograph.bit()));

        // Age.
        let below = self.engine.knowledge().policy.pediatric_age_below as i32;
        match (&self.idx.birth_date, &self.idx.patient_missing) {
            (Some(b), _) => {
                let age = age_in_years(b.earliest_date(), self.order_date);
                f.age = Some(age);
                f.pediatric = age < below;
            }
            (None, Some(why)) => {
                f.age_assumption = Some(format!(
                    "adult patient assumed: patient record could not be retrieved ({why})"
                ));
            }
            (None, None) => {
                f.age_assumption = Some("adult patient assumed: birth date not recorded".into());
            }
        }
        f
    }

    fn fracture_key(&self, i: &Item<'a>) -> (String, Option<&'a str>) {
        let coding = i.coding(VCF_ANY);
        let code = coding
            .and_then(|c| c.code.as_deref())
            .map(normalize_code)
            .map(|c| c.into_owned())
            .unwrap_or_default();
        let icd = coding
            .and_then(|c| c.system.as_deref())
            .and_then(|s| self.engine.system_id(s))
            .is_some_and(|s| self.engine.is_icd10cm(s));
        let base = if icd && code.len() == 7 {
            code[..6].trim_end_matches('X').to_owned()
        } else {
            code
        };
        (base, i.site)
    }

    fn new_fracture(&self, vcf_items: &[&Item<'a>]) -> FactValue {
        if vcf_items.is_empty() {
            return FactValue::Unknown(
                self.conditions_unknown()
                    .unwrap_or_else(|| "no fracture on record".into()),
            );
        }
        let window = self.engine.knowledge().policy.new_fracture_window_days as i64;
        let mut old: Option<String> = None;
        let mut undetermined = false;
        for i in vcf_items {
            let mut e = self.evidence(i, VCF_ANY);
            if let Some(d) = i.date {
                let days = (self.order_date - d.latest_date()).whole_days();
                if days <= window {
                    e.detail = Some(format!(
                        "dated {}, {} days before the order (new: within {window} days)",
                        d.latest_date(),
                        days.max(0)
                    ));
                    return present(e);
                }
                old.get_or_insert_with(|| {
                    format!(
                        "the fracture is older than {window} days: {} dated {}, {days} days before the order",
                        e.source,
                        d.latest_date()
                    )
                });
                continue;
            }
            if i.resolved {
                old.get_or_insert_with(|| {
                    format!("the fracture is recorded as resolved ({})", e.source)
                });
                continue;
            }
            let seventh = i.hits.iter().find_map(|(m, c)| {
                if m & VCF_ANY == 0 {
                    return None;
                }
                let sys = self.engine.system_id(c.system.as_deref()?)?;
                if !self.engine.is_icd10cm(sys) {
                    return None;
                }
                let code = normalize_code(c.code.as_deref()?);
                (code.len() == 7).then(|| (code.as_bytes()[6] as char, c))
            });
            match seventh {
                Some((ch @ ('A' | 'B'), c)) => {
                    e.assumption = Some(format!(
                        "the fracture is assumed new from the ICD-10-CM 7th character '{ch}' \
                         (initial encounter) of {}: no onset date recorded",
                        c.code.as_deref().unwrap_or_default()
                    ));
                    return present(e);
                }
                Some((ch @ ('D' | 'G' | 'K' | 'P' | 'S'), c)) => {
                    old.get_or_insert_with(|| {
                        format!(
                            "the fracture is not new: ICD-10-CM 7th character '{ch}' \
                             (subsequent encounter or sequela) of {} ({})",
                            c.code.as_deref().unwrap_or_default(),
                            e.source
                        )
                    });
                }
                _ => undetermined = true,
            }
        }
        match (undetermined, old) {
            (false, Some(text)) => FactValue::Absent(text.into()),
            _ => FactValue::Unknown(
                "no fracture date recorded and no ICD-10-CM 7th character to tell".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::{Condition, FhirResource, Observation, Patient, Procedure};
    use crate::index::test_kb;
    use time::macros::date;

    fn cond(json: &str) -> Condition {
        Condition::parse(json, "c").unwrap()
    }

    fn icd(id: &str, code: &str, extra: &str) -> Condition {
        cond(&format!(
            r#"{{"resourceType":"Condition","id":"{id}","code":{{"coding":[{{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"{code}"}}]}}{extra}}}"#
        ))
    }

    fn facts(record: &PatientRecord, order_date: Date) -> PatientFacts {
        let e = test_kb::engine();
        let idx = RecordIndex::new(&e, record);
        idx.facts(&e, None, "ServiceRequest/o1", order_date)
    }

    #[test]
    fn osteoporotic_new_fracture_without_malignancy() {
        let record = PatientRecord {
            conditions: Availability::Available(vec![
                icd("c1", "M80.08XA", ""),
                icd(
                    "c2",
                    "M54.50",
                    r#","clinicalStatus":{"coding":[{"code":"active"}]}"#,
                ),
            ]),
            ..Default::default()
        };
        let f = facts(&record, date!(2026 - 11 - 01));
        assert!(f.get(Fact::Vcf).is_present());
        match f.get(Fact::NewFracture) {
            FactValue::Present(e) => assert!(e.assumption.as_ref().unwrap().contains("7th")),
            other => panic!("{other:?}"),
        }
        assert!(f.get(Fact::Symptomatic).is_present());
        assert_eq!(
            f.get(Fact::MalignancyHistory),
            &FactValue::Absent("no history of malignancy found in the problem list".into())
        );
        assert!(f.get(Fact::Osteoporotic).is_present());
        assert!(f.get(Fact::Pathological).is_absent());
        assert!(f.get(Fact::MultipleVcf).is_absent());
        assert!(f.get(Fact::MarrowEdemaOrCleft).is_unknown());
        assert!(f.get(Fact::PriorVertebralAugmentation).is_absent());
        assert!(f.get(Fact::HighEnergyTrauma).is_absent());
        assert!(f.age_assumption.is_some());
    }

    #[test]
    fn statuses_dates_and_multiple_levels() {
        let record = PatientRecord {
            conditions: Availability::Available(vec![
                icd("c1", "M48.54XA", r#","onsetDateTime":"2025-01-10""#),
                icd("c2", "M48.56XD", ""),
                icd(
                    "c3",
                    "C50.911",
                    r#","clinicalStatus":{"coding":[{"code":"resolved"}]}"#,
                ),
                icd(
                    "c4",
                    "M54.50",
                    r#","clinicalStatus":{"coding":[{"code":"resolved"}]}"#,
                ),
                icd(
                    "c5",
                    "Z95.0",
                    r#","verificationStatus":{"coding":[{"code":"entered-in-error"}]}"#,
                ),
            ]),
            ..Default::default()
        };
        let f = facts(&record, date!(2026 - 11 - 01));
        assert!(
            f.get(Fact::NewFracture).is_absent(),
            "{:?}",
            f.get(Fact::NewFracture)
        );
        assert!(f.get(Fact::MultipleVcf).is_present());
        assert!(f.get(Fact::MalignancyHistory).is_present());
        assert!(f.get(Fact::Pathological).is_unknown());
        assert!(f.get(Fact::Symptomatic).is_unknown());
        assert!(f.mri_unsafe_device.is_none());
    }

    #[test]
    fn reason_reference_resolves_against_the_conditions() {
        let e = test_kb::engine();
        let record = PatientRecord {
            conditions: Availability::Available(vec![
                icd("c1", "M80.08XA", ""),
                icd(
                    "c2",
                    "M54.50",
                    r#","clinicalStatus":{"coding":[{"code":"inactive"}]}"#,
                ),
            ]),
            ..Default::default()
        };
        let idx = RecordIndex::new(&e, &record);
        let plain = idx.facts(&e, None, "ServiceRequest/o1", date!(2026 - 11 - 01));
        assert!(plain.get(Fact::Symptomatic).is_unknown());
        let sr = ServiceRequest::parse(
            r#"{"resourceType":"ServiceRequest","reasonReference":[{"reference":"Condition/c2"},{"reference":"Condition/missing"}]}"#,
            "o",
        )
        .unwrap();
        let f = idx.facts(&e, Some(&sr), "ServiceRequest/o1", date!(2026 - 11 - 01));
        match f.get(Fact::Symptomatic) {
            FactValue::Present(ev) => {
                assert_eq!(ev.source, "Condition/c2 (reason of ServiceRequest/o1)")
            }
            other => panic!("{other:?}"),
        }
        assert!(f.get(Fact::MultipleVcf).is_absent());
    }

    #[test]
    fn order_reason_and_unavailable_kinds() {
        let e = test_kb::engine();
        let record = PatientRecord {
            conditions: Availability::Available(vec![]),
            procedures: Availability::Unavailable("timeout".into()),
            patient: Availability::Available(Some(
                Patient::parse(r#"{"resourceType":"Patient","birthDate":"2012-05-01"}"#, "p")
                    .unwrap(),
            )),
            observations: Availability::Available(vec![
                Observation::parse(
                    r#"{"resourceType":"Observation","id":"g1","code":{"coding":[{"system":"http://loinc.org","code":"98979-8"}]},"valueQuantity":{"value":55},"effectiveDateTime":"2026-01-01"}"#,
                    "o",
                )
                .unwrap(),
                Observation::parse(
                    r#"{"resourceType":"Observation","id":"g2","code":{"coding":[{"system":"http://loinc.org","code":"98979-8"}]},"valueQuantity":{"value":25},"effectiveDateTime":"2026-10-01"}"#,
                    "o",
                )
                .unwrap(),
            ]),
            ..Default::default()
        };
        let sr = ServiceRequest::parse(
            r#"{"resourceType":"ServiceRequest","reasonCode":[{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"S32.010A"}]},{"coding":[{"system":"http://snomed.info/sct","code":"279039007"}]}]}"#,
            "o",
        )
        .unwrap();
        let idx = RecordIndex::new(&e, &record);
        let f = idx.facts(&e, Some(&sr), "ServiceRequest/o1", date!(2026 - 11 - 01));
        assert!(f.get(Fact::Vcf).is_present());
        assert!(f.get(Fact::Symptomatic).is_present());
        assert!(f.get(Fact::HighEnergyTrauma).is_present());
        match f.get(Fact::PriorVertebralAugmentation) {
            FactValue::Unknown(why) => assert!(why.contains("timeout")),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.age, Some(14));
        assert!(f.pediatric);
        assert_eq!(f.egfr.as_ref().unwrap().0, 25.0);
        let _ = Procedure::default();
    }
}

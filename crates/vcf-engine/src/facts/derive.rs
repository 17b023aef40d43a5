//! The per-order derivation: the record index plus the order's reasons, turned into
//! [`PatientFacts`]. `run` calls one function per fact (in `fracture`, `history`, `safety`); the
//! helpers here find matching items and describe them as evidence.

use super::record::{Item, RecordIndex, Src};
use super::{Evidence, PatientFacts, Text};
use crate::index::{Engine, Mask, Vs};
use crate::knowledge::Fact;
use time::Date;

pub(super) struct Derivation<'d, 'a> {
    pub(super) engine: &'d Engine,
    pub(super) idx: &'d RecordIndex<'a>,
    pub(super) reasons: &'d [Item<'a>],
    pub(super) order_ref: &'d str,
    pub(super) order_date: Date,
    /// `DiagnosticReport/x` / `Observation/y` named by the order's supportingInfo.
    pub(super) supporting: &'d [String],
}

pub(super) const VCF_ANY: Mask = Vs::Vcf.bit() | Vs::VcfTraumatic.bit();

impl<'d, 'a> Derivation<'d, 'a> {
    pub(super) fn all(&self) -> impl Iterator<Item = &'d Item<'a>> + 'd {
        self.idx.items.iter().chain(self.reasons.iter())
    }

    pub(super) fn find(&self, vs: Mask, ok: impl Fn(&Item) -> bool) -> Option<&'d Item<'a>> {
        self.all().find(|i| i.mask & vs != 0 && ok(i))
    }

    pub(super) fn evidence(&self, item: &Item, vs: Mask) -> Evidence {
        let source = match (item.src, item.id) {
            (Src::OrderReason, _) => format!("{} reasonCode", self.order_ref),
            (Src::ReasonReference, id) => format!(
                "Condition/{} (reason of {})",
                id.unwrap_or_default(),
                self.order_ref
            ),
            (src, id) => {
                let ty = match src {
                    Src::Condition | Src::RefutedCondition | Src::SuspectedCondition => "Condition",
                    Src::ReportConclusion | Src::ReportCode => "DiagnosticReport",
                    Src::Observation => "Observation",
                    Src::Procedure => "Procedure",
                    Src::Allergy => "AllergyIntolerance",
                    Src::Device => "Device",
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
            code: coding
                .map(|c| super::printed_code(self.engine, c))
                .unwrap_or_default(),
            display: coding.and_then(|c| c.display.clone()),
            detail: item.date.map(|d| format!("dated {}", d.latest_date())),
            assumption: None,
        }
    }

    pub(super) fn conditions_unknown(&self) -> Option<Text> {
        self.idx.conditions_missing.clone().map(Text::Owned)
    }

    pub(super) fn run(&self) -> PatientFacts {
        let mut f = PatientFacts::unknown();
        f.order_date = Some(self.order_date);
        f.unavailable = self.idx.unavailable.clone();

        let vcf_items = self.vcf_items();
        let vcf = self.vcf_with_reports(&vcf_items);
        let has_vcf = vcf.is_present();
        f.set(Fact::Vcf, vcf);
        f.set(Fact::NewFracture, self.new_fracture_with_mri(&vcf_items));
        f.set(Fact::MultipleVcf, self.multiple_vcf(&vcf_items, has_vcf));
        let (trauma, trauma_note) = self.high_energy_trauma(&vcf_items);
        f.set(Fact::HighEnergyTrauma, trauma);
        f.notes.extend(trauma_note);

        f.set(Fact::Symptomatic, self.symptomatic());
        let malignancy = self.malignancy_history();
        let malignancy_known = malignancy.known();
        f.set(Fact::MalignancyHistory, malignancy);
        f.set(Fact::Osteoporotic, self.osteoporotic());
        f.set(Fact::Pathological, self.pathological(malignancy_known));
        f.set(
            Fact::NeoplasticCause,
            self.or_reports(&["tumour"], self.neoplastic_cause(malignancy_known)),
        );
        f.set(
            Fact::PriorVertebralAugmentation,
            self.or_reports(&["prior-augmentation"], self.prior_vertebral_augmentation()),
        );
        f.set(
            Fact::PriorSpineSurgery,
            self.or_reports(&["spine-surgery"], self.prior_spine_surgery()),
        );
        // Findings without a code: read from the recent spine reports (edema only from MRI).
        for (fact, vs, ids) in [
            (
                Fact::MarrowEdemaOrCleft,
                Vs::MarrowEdemaOrCleft,
                &["marrow-edema", "intravertebral-cleft"][..],
            ),
            (
                Fact::WorseningPain,
                Vs::WorseningPain,
                &["worsening-pain"][..],
            ),
            (
                Fact::PulmonaryDysfunction,
                Vs::PulmonaryDysfunction,
                &["pulmonary-dysfunction"][..],
            ),
            (
                Fact::MechanicalPain,
                Vs::MechanicalPain,
                &["mechanical-pain"][..],
            ),
        ] {
            f.set(fact, self.or_reports(ids, self.uncoded_finding(vs)));
        }
        f.set(
            Fact::Deformity,
            self.or_reports(&["deformity", "retropulsion"], self.deformity()),
        );
        self.resolve_conflicts(&mut f);
        let window = i64::from(self.engine.knowledge().policy.new_fracture_window_days);
        f.spine_mri = self.spine_mri_within(window).map(|r| Evidence {
            source: r.reference.clone(),
            code: "spine MRI report".into(),
            display: None,
            detail: r.date.map(|d| format!("dated {}", d.latest_date())),
            assumption: None,
        });

        f.mri_unsafe_device = self.mri_unsafe_device();
        f.renal_contrast_risk = self.renal_contrast_risk();
        f.contrast_allergy = self.contrast_allergy();
        f.egfr = self.egfr();
        f.spine_radiograph = self.spine_radiograph();
        let age = self.age();
        f.age = age.years;
        f.pediatric = age.pediatric;
        f.age_assumption = age.assumption;
        f
    }
}

/// Conditions, the order's reasons and report conclusions: where a diagnosis may be recorded.
pub(super) fn cond_or_reason_or_report(i: &Item) -> bool {
    matches!(
        i.src,
        Src::Condition | Src::OrderReason | Src::ReasonReference | Src::ReportConclusion
    )
}

/// Active conditions plus the order's reasons, report conclusions and observations: where a
/// current finding may be recorded.
pub(super) fn active_cond(i: &Item) -> bool {
    matches!(
        i.src,
        Src::OrderReason | Src::ReasonReference | Src::ReportConclusion | Src::Observation
    ) || (i.src == Src::Condition && i.active)
}

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
                    Src::Condition => "Condition",
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
        let vcf = self.vcf(&vcf_items);
        let has_vcf = vcf.is_present();
        f.set(Fact::Vcf, vcf);
        f.set(Fact::NewFracture, self.new_fracture(&vcf_items));
        f.set(Fact::MultipleVcf, self.multiple_vcf(&vcf_items, has_vcf));
        f.set(Fact::HighEnergyTrauma, self.high_energy_trauma(&vcf_items));

        f.set(Fact::Symptomatic, self.symptomatic());
        let malignancy = self.malignancy_history();
        let malignancy_known = malignancy.known();
        f.set(Fact::MalignancyHistory, malignancy);
        f.set(Fact::Osteoporotic, self.osteoporotic());
        f.set(Fact::Pathological, self.pathological(malignancy_known));
        f.set(
            Fact::PriorVertebralAugmentation,
            self.prior_vertebral_augmentation(),
        );
        f.set(Fact::PriorSpineSurgery, self.prior_spine_surgery());
        for (fact, vs) in [
            (Fact::MarrowEdemaOrCleft, Vs::MarrowEdemaOrCleft),
            (Fact::WorseningPain, Vs::WorseningPain),
            (Fact::PulmonaryDysfunction, Vs::PulmonaryDysfunction),
            (Fact::MechanicalPain, Vs::MechanicalPain),
        ] {
            f.set(fact, self.uncoded_finding(vs));
        }
        f.set(Fact::Deformity, self.deformity());

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

//! Facts about the fracture's cause, the patient's history and findings: symptomatic,
//! malignancy history, osteoporotic, pathological, prior augmentation/surgery, the findings.

use super::derive::{Derivation, active_cond, cond_or_reason_or_report};
use super::record::{Item, Src};
use super::{FactValue, present};
use crate::index::Vs;

impl Derivation<'_, '_> {
    /// Symptomatic: coded back pain (active condition or the order's reason); pain is often
    /// uncoded, so no code means unknown, never absent.
    pub(super) fn symptomatic(&self) -> FactValue {
        let pain = self.find(Vs::BackPain.bit(), |i| {
            (i.src == Src::Condition && i.active)
                || matches!(i.src, Src::OrderReason | Src::ReasonReference)
        });
        match pain {
            Some(i) => present(self.evidence(i, Vs::BackPain.bit())),
            None => FactValue::Unknown(match self.conditions_unknown() {
                Some(why) => why,
                None => "back pain is not coded on the problem list or as the order reason".into(),
            }),
        }
    }

    /// Malignancy history: any clinical status counts.
    pub(super) fn malignancy_history(&self) -> FactValue {
        match self.find(Vs::Malignancy.bit(), cond_or_reason_or_report) {
            Some(i) => present(self.evidence(i, Vs::Malignancy.bit())),
            None => match self.conditions_unknown() {
                Some(why) => FactValue::Unknown(why),
                None => {
                    FactValue::Absent("no history of malignancy found in the problem list".into())
                }
            },
        }
    }

    /// Osteoporotic: coded osteoporosis; absent when the fracture is coded as pathological.
    pub(super) fn osteoporotic(&self) -> FactValue {
        let osteo = self.find(Vs::Osteoporosis.bit(), cond_or_reason_or_report);
        let patho = self.find(Vs::PathologicalFracture.bit(), cond_or_reason_or_report);
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
        }
    }

    /// Pathological: a coded pathological fracture; absent only when malignancy is known absent
    /// (`malignancy_known` is [`FactValue::known`] of the malignancy history).
    pub(super) fn pathological(&self, malignancy_known: Option<bool>) -> FactValue {
        let patho = self.find(Vs::PathologicalFracture.bit(), cond_or_reason_or_report);
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
        }
    }

    /// Neoplastic cause (V9 "pathological", V8 "benign" = not neoplastic): M84.5- or a
    /// malignancy known to involve bone; another malignancy alone leaves it unknown.
    pub(super) fn neoplastic_cause(&self, malignancy_known: Option<bool>) -> FactValue {
        let neo_mask = Vs::NeoplasticFracture.bit() | Vs::BoneMalignancy.bit();
        match (
            self.find(neo_mask, cond_or_reason_or_report),
            malignancy_known,
        ) {
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
        }
    }

    /// Prior vertebral augmentation (procedure history or problem list).
    pub(super) fn prior_vertebral_augmentation(&self) -> FactValue {
        self.prior_procedure(
            Vs::PriorVertebralAugmentation,
            "no prior vertebral augmentation in the procedure history or problem list",
        )
    }

    /// Prior spine surgery (procedure history or problem list).
    pub(super) fn prior_spine_surgery(&self) -> FactValue {
        self.prior_procedure(
            Vs::PriorSpineSurgery,
            "no prior spine surgery in the procedure history or problem list",
        )
    }

    /// A procedure done before the order date (or a condition recording it); unknown when the
    /// procedure history or conditions are missing or the knowledge has no code for it.
    fn prior_procedure(&self, vs: Vs, absent: &'static str) -> FactValue {
        let order_date = self.order_date;
        let prior = |i: &Item| match i.src {
            Src::Procedure => i.date.is_none_or(|d| d.earliest_date() <= order_date),
            Src::Condition => true,
            _ => false,
        };
        match self.find(vs.bit(), prior) {
            Some(i) => present(self.evidence(i, vs.bit())),
            None => match (&self.idx.procedures_missing, self.conditions_unknown()) {
                (Some(why), _) => FactValue::Unknown(why.clone().into()),
                (None, Some(why)) => FactValue::Unknown(why),
                (None, None) if !self.engine.is_coded(vs) => {
                    FactValue::Unknown("no code exists for it in the knowledge base".into())
                }
                (None, None) => FactValue::Absent(absent.into()),
            },
        }
    }

    /// A finding that is often not coded (marrow edema/cleft, worsening pain, pulmonary
    /// dysfunction, mechanical pain): coded evidence, else unknown (never absent).
    pub(super) fn uncoded_finding(&self, vs: Vs) -> FactValue {
        match self.find(vs.bit(), active_cond) {
            Some(i) => present(self.evidence(i, vs.bit())),
            None => FactValue::Unknown("not coded in the record".into()),
        }
    }

    /// Spinal deformity: it has codes, so with the conditions available it can be absent.
    pub(super) fn deformity(&self) -> FactValue {
        let vs = Vs::Deformity;
        match self.find(vs.bit(), active_cond) {
            Some(i) => present(self.evidence(i, vs.bit())),
            // Deformity seen on imaging is often not coded (value set note): no code is
            // unknown, not absent (issue 8; it is a must-evidence finding of V8).
            None => FactValue::Unknown("not coded in the record".into()),
        }
    }
}

//! Safety facts (MR-unsafe device, renal contrast risk, contrast allergy, eGFR, the latest spine
//! radiograph) and the patient's age.

use super::Evidence;
use super::derive::Derivation;
use super::record::{Src, later};
use crate::fhir::age_in_years;
use crate::index::Vs;

/// The patient's age at the order date, or the adult assumption made without it.
pub(super) struct Age {
    pub years: Option<i32>,
    pub pediatric: bool,
    pub assumption: Option<String>,
}

impl Derivation<'_, '_> {
    /// An implanted device that may make MRI unsafe (active condition or procedure, or a Device
    /// labelled MR Unsafe / without MR-safety information).
    pub(super) fn mri_unsafe_device(&self) -> Option<Evidence> {
        self.find(Vs::MriUnsafeDevice.bit(), |i| {
            (i.src == Src::Condition && i.active) || i.src == Src::Procedure || i.src == Src::Device
        })
        .map(|i| self.evidence(i, Vs::MriUnsafeDevice.bit()))
    }

    /// Severe kidney disease or dialysis (active condition).
    pub(super) fn renal_contrast_risk(&self) -> Option<Evidence> {
        self.find(Vs::RenalContrastRisk.bit(), |i| {
            i.src == Src::Condition && i.active
        })
        .map(|i| self.evidence(i, Vs::RenalContrastRisk.bit()))
    }

    /// Iodinated contrast allergy (unresolved condition or allergy record).
    pub(super) fn contrast_allergy(&self) -> Option<Evidence> {
        self.find(Vs::ContrastAllergy.bit(), |i| {
            (i.src == Src::Condition && !i.resolved) || i.src == Src::Allergy
        })
        .map(|i| self.evidence(i, Vs::ContrastAllergy.bit()))
    }

    /// The latest eGFR (found while indexing the record) with its evidence.
    pub(super) fn egfr(&self) -> Option<(f64, Evidence)> {
        self.idx.egfr.map(|(v, date, id, coding)| {
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
        })
    }

    /// The latest spine radiograph report.
    pub(super) fn spine_radiograph(&self) -> Option<Evidence> {
        self.idx
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
            .map(|i| self.evidence(i, Vs::SpineRadiograph.bit()))
    }

    /// Age in whole years at the order date and whether the patient is a child; an adult is
    /// assumed (and the assumption stated) when the birth date is unknown.
    pub(super) fn age(&self) -> Age {
        let below = self.engine.knowledge().policy.pediatric_age_below as i32;
        match (&self.idx.birth_date, &self.idx.patient_missing) {
            (Some(b), _) => {
                let age = age_in_years(b.earliest_date(), self.order_date);
                Age {
                    years: Some(age),
                    pediatric: age < below,
                    assumption: None,
                }
            }
            (None, Some(why)) => Age {
                years: None,
                pediatric: false,
                assumption: Some(format!(
                    "adult patient assumed: patient record could not be retrieved ({why})"
                )),
            },
            (None, None) => Age {
                years: None,
                pediatric: false,
                assumption: Some("adult patient assumed: birth date not recorded".into()),
            },
        }
    }
}

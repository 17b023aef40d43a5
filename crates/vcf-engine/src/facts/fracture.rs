//! Facts about the fracture itself: VCF, new fracture, multiple fractures, high-energy trauma.

use super::derive::{Derivation, VCF_ANY, cond_or_reason_or_report};
use super::record::{Item, Src};
use super::{FactValue, present};
use crate::index::{Vs, normalize_code};

impl<'d, 'a> Derivation<'d, 'a> {
    /// The items that record a VCF (conditions, order reasons, report conclusions).
    pub(super) fn vcf_items(&self) -> Vec<&'d Item<'a>> {
        self.all()
            .filter(|i| i.mask & VCF_ANY != 0 && cond_or_reason_or_report(i))
            .collect()
    }

    /// VCF: coded on the problem list, as the order's reason or in a report conclusion.
    pub(super) fn vcf(&self, vcf_items: &[&Item<'a>]) -> FactValue {
        match vcf_items.first() {
            Some(i) => present(self.evidence(i, VCF_ANY)),
            None => match self.conditions_unknown() {
                Some(why) => FactValue::Unknown(why),
                None => FactValue::Absent(
                    "no vertebral compression fracture on the problem list or as the order reason"
                        .into(),
                ),
            },
        }
    }

    /// Multiple fractures: distinct (code without 7th character, body site) among conditions.
    pub(super) fn multiple_vcf(&self, vcf_items: &[&Item<'a>], has_vcf: bool) -> FactValue {
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
        }
    }

    /// High-energy trauma: the fracture is only coded as traumatic and there is no bone
    /// pathology (osteoporosis, malignancy, pathological fracture).
    pub(super) fn high_energy_trauma(&self, vcf_items: &[&Item<'a>]) -> FactValue {
        let traumatic_only = !vcf_items.is_empty()
            && vcf_items
                .iter()
                .all(|i| i.mask & Vs::VcfTraumatic.bit() != 0);
        let pathology = self
            .find(Vs::Osteoporosis.bit(), cond_or_reason_or_report)
            .is_some()
            || self
                .find(Vs::PathologicalFracture.bit(), cond_or_reason_or_report)
                .is_some()
            || self
                .find(Vs::Malignancy.bit(), cond_or_reason_or_report)
                .is_some();
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
        }
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

    /// New fracture: dated within the policy window, or an undated ICD-10-CM initial-encounter
    /// code.
    pub(super) fn new_fracture(&self, vcf_items: &[&Item<'a>]) -> FactValue {
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
                        super::printed_code(self.engine, c)
                    ));
                    return present(e);
                }
                Some((ch @ ('D' | 'G' | 'K' | 'P' | 'S'), c)) => {
                    old.get_or_insert_with(|| {
                        format!(
                            "the fracture is not new: ICD-10-CM 7th character '{ch}' \
                                 (subsequent encounter or sequela) of {} ({})",
                            super::printed_code(self.engine, c),
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

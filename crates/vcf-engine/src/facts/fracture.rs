//! Facts about the fracture itself: VCF, new fracture, multiple fractures, high-energy trauma.

use super::derive::{Derivation, VCF_ANY, cond_or_reason_or_report};
use super::record::{Item, Src};
use super::{FactValue, present};
use crate::index::{Vs, normalize_code};
use crate::reports::Level;

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

    /// Multiple fractures (V3), counted as distinct vertebral levels (issue 8): levels from the
    /// condition's bodySite and code text, the ICD-10-CM level of S12/S22.0/S32.0 codes, and the
    /// fractures stated by recent spine reports. Two codes for one level are one fracture.
    /// Fracture codes without a level that may be the same fracture leave it unknown, never
    /// true; codes of different spine regions are different fractures.
    pub(super) fn multiple_vcf(&self, vcf_items: &[&Item<'a>], has_vcf: bool) -> FactValue {
        let conds: Vec<&Item> = vcf_items
            .iter()
            .copied()
            .filter(|i| i.src == Src::Condition)
            .collect();
        let mut levels: Vec<Level> = Vec::new();
        let mut sources: Vec<String> = Vec::new();
        let mut unlevelled: Vec<(&Item, Option<char>)> = Vec::new();
        let mut levelled_keys = Vec::new();
        for i in &conds {
            let ls = self.item_levels(i);
            if ls.is_empty() {
                unlevelled.push((i, self.item_region(i)));
            } else {
                levelled_keys.push(self.fracture_key(i).0);
                for l in ls {
                    if !levels.contains(&l) {
                        levels.push(l);
                        sources.push(self.evidence(i, VCF_ANY).source);
                    }
                }
            }
        }
        let kb = self.engine.knowledge();
        for r in self.recent_reports() {
            for m in r
                .mentions
                .iter()
                .filter(|m| m.id == "fracture" && m.shows(kb))
            {
                for l in &m.levels {
                    if !levels.contains(l) {
                        levels.push(*l);
                        sources.push(r.reference.clone());
                    }
                }
            }
        }
        levels.sort();
        // Unlevelled codes that repeat a levelled code are the same fracture.
        unlevelled.retain(|(i, _)| !levelled_keys.contains(&self.fracture_key(i).0));
        let mut keys: Vec<String> = Vec::new();
        for (i, _) in &unlevelled {
            let k = self.fracture_key(i).0;
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let level_regions: Vec<char> = levels.iter().map(|l| l.region()).collect();
        let other_region = unlevelled.iter().any(|(_, r)| {
            r.is_some_and(|r| !level_regions.is_empty() && !level_regions.contains(&r))
        }) || {
            let rs: Vec<char> = unlevelled.iter().filter_map(|(_, r)| *r).collect();
            rs.windows(2).any(|w| w[0] != w[1]) && level_regions.is_empty()
        };
        let names = || {
            levels
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if levels.len() >= 2 || other_region {
            let first = conds.first().copied();
            let mut e = match first {
                Some(i) => self.evidence(i, VCF_ANY),
                None => super::Evidence {
                    source: sources.first().cloned().unwrap_or_default(),
                    code: String::new(),
                    display: None,
                    detail: None,
                    assumption: None,
                },
            };
            e.detail = Some(if levels.len() >= 2 {
                format!(
                    "{} distinct fractured levels: {} ({})",
                    levels.len(),
                    names(),
                    sources.join(", ")
                )
            } else {
                "fracture codes of different spine regions".into()
            });
            return present(e);
        }
        if let Some(why) = self.conditions_unknown() {
            return FactValue::Unknown(why);
        }
        let fractures = levels.len() + keys.len();
        if fractures >= 2 {
            return FactValue::Unknown(
                format!(
                    "{} fracture records without a vertebral level (bodySite or report) may be the same fracture{}",
                    conds.len(),
                    if levels.is_empty() {
                        String::new()
                    } else {
                        format!(" as the one at {}", names())
                    }
                )
                .into(),
            );
        }
        match (has_vcf, levels.first()) {
            (true, Some(l)) => {
                FactValue::Absent(format!("one fractured level on record ({l})").into())
            }
            (true, None) => {
                FactValue::Absent("only one fractured vertebra on the problem list".into())
            }
            (false, _) => FactValue::Absent("no fracture on record".into()),
        }
    }

    /// Vertebral levels a fracture condition names: its bodySite (coding display or text), its
    /// code text / display, or the ICD-10-CM level of S12 / S22.0 / S32.0 codes.
    fn item_levels(&self, i: &Item<'a>) -> Vec<Level> {
        let mut out = Vec::new();
        let mut scan = |t: &str| {
            for w in t.split(|c: char| !c.is_alphanumeric()) {
                if let Some(l) = Level::parse(w)
                    && !out.contains(&l)
                {
                    out.push(l);
                }
            }
        };
        if let Some(s) = i.site {
            scan(s);
        }
        for (_, c) in &i.hits {
            if let Some(d) = &c.display {
                scan(d);
            }
        }
        if out.is_empty()
            && let Some(c) = i.coding(VCF_ANY)
        {
            let code = normalize_code(c.code.as_deref().unwrap_or_default()).into_owned();
            let b = code.as_bytes();
            let digit = |k: usize| b.get(k).filter(|x| x.is_ascii_digit()).map(|x| x - b'0');
            let level = if code.starts_with("S320") {
                digit(4).and_then(|n| Level::new('L', n))
            } else if code.starts_with("S220") {
                // S22.01-S22.04 = T1-T4; S22.05-S22.08 name a pair of levels (not one).
                digit(4)
                    .filter(|n| (1..=4).contains(n))
                    .and_then(|n| Level::new('T', n))
            } else if code.starts_with("S12") {
                digit(3)
                    .filter(|n| *n <= 6)
                    .and_then(|n| Level::new('C', n + 1))
            } else {
                None
            };
            out.extend(level);
        }
        out
    }

    /// Spine region ('C', 'T', 'L', 'S') a fracture code names, when it names one.
    fn item_region(&self, i: &Item<'a>) -> Option<char> {
        let c = i.coding(VCF_ANY)?;
        let code = normalize_code(c.code.as_deref()?).into_owned();
        if code.starts_with("M485") {
            return match code.as_bytes().get(4) {
                Some(b'2') => Some('C'),
                Some(b'4') => Some('T'),
                Some(b'6') => Some('L'),
                Some(b'8') => Some('S'),
                _ => None,
            };
        }
        if code.starts_with("S22") {
            return Some('T');
        }
        if code.starts_with("S32") {
            return Some('L');
        }
        if code.starts_with("S12") {
            return Some('C');
        }
        None
    }

    /// High-energy trauma: the fracture is only coded as traumatic and there is no bone
    /// pathology (osteoporosis, malignancy, pathological fracture). Exception (issue 8): when
    /// every traumatic code is a WEDGE compression fracture (S22.0-/S32.0- 6th character 0), the
    /// patient is at least `policy.older_adult_age_years` old and no high-energy external-cause
    /// code is on record, it is a presumed fragility fracture in scope; the returned note states
    /// the presumption.
    pub(super) fn high_energy_trauma(
        &self,
        vcf_items: &[&Item<'a>],
    ) -> (FactValue, Option<String>) {
        let value = self.high_energy_trauma_coded(vcf_items);
        let FactValue::Present(_) = &value else {
            return (value, None);
        };
        let wedge: Vec<String> = vcf_items
            .iter()
            .filter_map(|i| {
                let c = i.coding(Vs::VcfTraumatic.bit())?;
                let code = normalize_code(c.code.as_deref()?).into_owned();
                // S22.0x0 / S32.0x0 (dots removed: S220x0..., S320x0...): 6th character '0'.
                let wedge = (code.starts_with("S220") || code.starts_with("S320"))
                    && code.as_bytes().get(5) == Some(&b'0');
                wedge.then_some(c.code.clone().unwrap_or_default())
            })
            .collect();
        if wedge.len() != vcf_items.len() {
            return (value, None);
        }
        let threshold = self.engine.knowledge().policy.older_adult_age_years as i32;
        let Some(age) = self.age().years.filter(|a| *a >= threshold) else {
            return (value, None);
        };
        if let Some(m) = self.find(Vs::HighEnergyMechanism.bit(), |_| true) {
            let _ = m;
            return (value, None);
        }
        let note = format!(
            "presumed fragility fracture: wedge compression fracture ({}) in a patient aged {age} \
             (at least {threshold}, local policy) with no coded high-energy mechanism; treated as \
             a vertebral compression fracture of this guideline, not as high-energy trauma",
            wedge.join(", ")
        );
        (FactValue::Absent(note.clone().into()), Some(note))
    }

    fn high_energy_trauma_coded(&self, vcf_items: &[&Item<'a>]) -> FactValue {
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

    pub(super) fn fracture_key(&self, i: &Item<'a>) -> (String, Option<&'a str>) {
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
        let old_window = self.engine.knowledge().policy.old_fracture_window_days as i64;
        let mut old: Option<String> = None;
        let mut undetermined = false;
        let mut between: Option<String> = None;
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
                if days <= old_window {
                    // Neither new nor old (local policy windows): unknown, never thrown out.
                    between.get_or_insert_with(|| {
                        format!(
                            "{} dated {}, {days} days ago: between the new ({window} d) and old ({old_window} d) windows",
                            e.source,
                            d.latest_date()
                        )
                    });
                    continue;
                }
                old.get_or_insert_with(|| {
                        format!(
                            "the fracture is older than {old_window} days: {} dated {}, {days} days before the order",
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
        if let Some(text) = between {
            return FactValue::Unknown(text.into());
        }
        match (undetermined, old) {
            (false, Some(text)) => FactValue::Absent(text.into()),
            _ => FactValue::Unknown(
                "no fracture date recorded and no ICD-10-CM 7th character to tell".into(),
            ),
        }
    }
}

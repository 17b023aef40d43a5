//! The knowledge base compiled into look-up tables, once at start-up.
//!
//! [`Engine`] owns the [`Knowledge`] and indexes it so that evaluating a request does hash
//! look-ups only: code system URIs (and aliases) to a small id, order codes to procedures,
//! value-set codes / prefixes / ICD-10-CM ranges to a bit mask of value sets, ratings as a dense
//! variant x procedure table, and the codes to put into a suggested order per procedure and
//! region.

use crate::knowledge::{
    Fact, Knowledge, KnowledgeError, ProcedureKind, REQUIRED_VALUE_SETS, RatingRow, Region,
};
use fhir_build::CodingSpec;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// FHIR's URI for ICD-10-CM (7th-character rules apply only to this system).
pub const ICD10CM_URI: &str = "http://hl7.org/fhir/sid/icd-10-cm";

/// The value sets the engine reads, in the order of [`REQUIRED_VALUE_SETS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Vs {
    Vcf,
    VcfTraumatic,
    Osteoporosis,
    PathologicalFracture,
    Malignancy,
    BackPain,
    PriorVertebralAugmentation,
    PriorSpineSurgery,
    MarrowEdemaOrCleft,
    Deformity,
    WorseningPain,
    PulmonaryDysfunction,
    MechanicalPain,
    MriUnsafeDevice,
    RenalContrastRisk,
    ContrastAllergy,
    Egfr,
    SpineRadiograph,
    NeoplasticFracture,
    BoneMalignancy,
    HighEnergyMechanism,
}

impl Vs {
    pub const ALL: [Vs; 21] = [
        Vs::Vcf,
        Vs::VcfTraumatic,
        Vs::Osteoporosis,
        Vs::PathologicalFracture,
        Vs::Malignancy,
        Vs::BackPain,
        Vs::PriorVertebralAugmentation,
        Vs::PriorSpineSurgery,
        Vs::MarrowEdemaOrCleft,
        Vs::Deformity,
        Vs::WorseningPain,
        Vs::PulmonaryDysfunction,
        Vs::MechanicalPain,
        Vs::MriUnsafeDevice,
        Vs::RenalContrastRisk,
        Vs::ContrastAllergy,
        Vs::Egfr,
        Vs::SpineRadiograph,
        Vs::NeoplasticFracture,
        Vs::BoneMalignancy,
        Vs::HighEnergyMechanism,
    ];

    /// Bit of this value set in a [`Mask`].
    pub const fn bit(self) -> Mask {
        1 << (self as u8)
    }

    /// The value-set id in the knowledge file.
    pub fn id(self) -> &'static str {
        REQUIRED_VALUE_SETS[self as usize]
    }
}

/// A set of [`Vs`] as bits.
pub type Mask = u32;

/// Index of a code system (position in `Knowledge::code_systems`).
pub type SysId = u16;

/// Normalizes a code for look-up: trimmed, dots removed, upper case (ICD-10-CM matching ignores
/// dots and case; no other order or fact code system uses dots or relies on case).
pub fn normalize_code(code: &str) -> Cow<'_, str> {
    let t = code.trim();
    if t.bytes().any(|b| b == b'.' || b.is_ascii_lowercase()) {
        Cow::Owned(
            t.chars()
                .filter(|c| *c != '.')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        )
    } else {
        Cow::Borrowed(t)
    }
}

/// Calls `f` with the normalized code, without allocating for ordinary codes.
fn with_normalized<R>(code: &str, f: impl FnOnce(&str) -> R) -> R {
    let t = code.trim();
    if !t.bytes().any(|b| b == b'.' || b.is_ascii_lowercase()) {
        return f(t);
    }
    let mut buf = [0u8; 64];
    if t.len() > buf.len() {
        return f(&normalize_code(t));
    }
    let mut n = 0;
    for b in t.bytes().filter(|b| *b != b'.') {
        buf[n] = b.to_ascii_uppercase();
        n += 1;
    }
    // Removing ASCII dots and upper-casing ASCII letters keeps UTF-8 valid.
    f(std::str::from_utf8(&buf[..n]).unwrap_or_default())
}

/// FNV-1a (the `fnv` crate, already in the dependency graph): the code tables are hashed on
/// every coding of the record, and their keys are short codes from our own knowledge file (no
/// untrusted keys), so a fast non-keyed hash is fine.
type FastMap<K, V> = fnv::FnvHashMap<K, V>;

/// One order code of a procedure, by index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeRefIdx {
    pub procedure: u16,
    pub code: u16,
}

#[derive(Debug, Default)]
struct Matchers {
    /// Exact value-set codes.
    exact: FastMap<Box<str>, Mask>,
    /// Value-set code prefixes.
    prefix: FastMap<Box<str>, Mask>,
    /// Longest prefix length (bounds the prefix probing).
    max_prefix: usize,
    /// Inclusive 3-character category ranges.
    ranges: Vec<(Box<str>, Box<str>, Mask)>,
}

impl Matchers {
    fn add(&mut self, m: &crate::knowledge::CodeMatcher, bit: Mask) {
        if let Some(code) = &m.code {
            *self
                .exact
                .entry(normalize_code(code).into_owned().into())
                .or_default() |= bit;
        }
        if let Some(prefix) = &m.prefix {
            let p = normalize_code(prefix).into_owned();
            self.max_prefix = self.max_prefix.max(p.len());
            *self.prefix.entry(p.into()).or_default() |= bit;
        }
        if let Some([lo, hi]) = &m.range {
            self.ranges.push((
                normalize_code(lo).into_owned().into(),
                normalize_code(hi).into_owned().into(),
                bit,
            ));
        }
    }

    /// Value sets whose matchers match the (normalized) code.
    fn mask(&self, code: &str) -> Mask {
        let mut mask = self.exact.get(code).copied().unwrap_or(0);
        if !self.prefix.is_empty() {
            let max = self.max_prefix.min(code.len());
            for i in 1..=max {
                if code.is_char_boundary(i)
                    && let Some(m) = self.prefix.get(&code[..i])
                {
                    mask |= m;
                }
            }
        }
        if !self.ranges.is_empty() && code.len() >= 3 && code.is_char_boundary(3) {
            let cat = &code[..3];
            for (lo, hi, m) in &self.ranges {
                if cat >= lo.as_ref() && cat <= hi.as_ref() {
                    mask |= m;
                }
            }
        }
        mask
    }
}

#[derive(Debug, Default)]
struct SystemCodes {
    /// Value-set codes.
    include: Matchers,
    /// Value-set exclusions (`excludes`): removed from the include mask.
    exclude: Matchers,
    /// Order codes.
    orders: FastMap<Box<str>, Vec<CodeRefIdx>>,
}

/// Referral-style procedure matcher (consultations).
#[derive(Debug)]
pub(crate) struct ReferralIdx {
    pub procedure: u16,
    pub category: Vec<(SysId, Box<str>)>,
    pub specialty: Vec<(SysId, Box<str>)>,
}

/// The knowledge base with its look-up tables. Build once ([`Engine::new`]) and share
/// (`Engine` is `Send + Sync`).
#[derive(Debug)]
pub struct Engine {
    kb: Arc<Knowledge>,
    /// Report-reading rules (phrases and cue words of the knowledge file), compiled once.
    lexicon: crate::reports::Lexicon,
    system_by_uri: FastMap<Box<str>, SysId>,
    systems: Vec<SystemCodes>,
    /// Canonical URI per system id.
    system_uris: Vec<String>,
    icd10cm: Option<SysId>,
    pub(crate) referrals: Vec<ReferralIdx>,
    /// `ratings[variant][procedure]` = index into `variants[variant].ratings`.
    ratings: Vec<Vec<Option<u16>>>,
    /// Value sets that have at least one code.
    coded: Mask,
    /// Per value set, its index in `kb.value_sets` (when present).
    value_set_pos: [Option<u16>; Vs::ALL.len()],
    /// Codes to put into a created order, per procedure and region (the first non-match-only
    /// code of each system).
    create_codes: HashMap<(u16, Region), Vec<CodingSpec>>,
    /// Pediatric / adult radiation level per procedure (`None`: varies or not applicable).
    rrl: Vec<(Option<u8>, Option<u8>)>,
    /// Region-specific radiation levels (adult, pediatric) and texts.
    rrl_region: HashMap<(u16, Region), RegionRrl>,
    procedure_by_id: HashMap<Box<str>, u16>,
    variants_by_kind: [Vec<u16>; 2],
}

/// Region-specific radiation (adult level, pediatric level, index into `rrl_by_region`).
type RegionRrl = (Option<u8>, Option<u8>, u16);

/// Number of ☢ symbols in an ACR RRL text; `O` is 0; anything else (`Varies`) is unknown.
pub fn rrl_level(text: &str) -> Option<u8> {
    let t = text.trim();
    let n = t.chars().filter(|c| *c == '☢').count();
    if n > 0 {
        Some(n as u8)
    } else if t.starts_with('O') {
        Some(0)
    } else {
        None
    }
}

fn kind_slot(kind: ProcedureKind) -> usize {
    match kind {
        ProcedureKind::Imaging => 0,
        ProcedureKind::Treatment => 1,
    }
}

impl Engine {
    /// Indexes `kb`. Fails when the file refers to things it does not define (a rating row
    /// naming an unknown procedure, a code naming an unknown code system), which validation
    /// of the knowledge file should already have caught.
    pub fn new(kb: Knowledge) -> Result<Engine, KnowledgeError> {
        Engine::from_arc(Arc::new(kb))
    }

    /// As [`Engine::new`], sharing an already loaded knowledge base.
    pub fn from_arc(kb: Arc<Knowledge>) -> Result<Engine, KnowledgeError> {
        let mut problems = Vec::new();
        let mut system_by_uri = FastMap::default();
        let mut system_uris = Vec::new();
        let mut key_to_sys: HashMap<&str, SysId> = HashMap::new();
        let mut icd10cm = None;
        for (i, (key, cs)) in kb.code_systems.iter().enumerate() {
            let id = i as SysId;
            key_to_sys.insert(key.as_str(), id);
            system_uris.push(cs.uri.clone());
            system_by_uri.insert(cs.uri.trim().into(), id);
            for a in &cs.aliases {
                system_by_uri.insert(a.trim().into(), id);
            }
            if cs.uri == ICD10CM_URI || cs.aliases.iter().any(|a| a == ICD10CM_URI) {
                icd10cm = Some(id);
            }
        }
        let mut systems: Vec<SystemCodes> = (0..system_uris.len())
            .map(|_| SystemCodes::default())
            .collect();
        let sys = |key: &str, what: &str, problems: &mut Vec<String>| -> Option<SysId> {
            let s = key_to_sys.get(key).copied();
            if s.is_none() {
                problems.push(format!("{what}: unknown code system key {key:?}"));
            }
            s
        };

        // Value sets.
        let mut value_set_pos = [None; Vs::ALL.len()];
        let mut coded: Mask = 0;
        for vs in Vs::ALL {
            let Some(pos) = kb.value_sets.iter().position(|v| v.id == vs.id()) else {
                continue;
            };
            value_set_pos[vs as usize] = Some(pos as u16);
            for m in &kb.value_sets[pos].codes {
                let what = format!("value set {}", vs.id());
                let Some(s) = sys(&m.system, &what, &mut problems) else {
                    continue;
                };
                systems[s as usize].include.add(m, vs.bit());
                coded |= vs.bit();
            }
            for m in &kb.value_sets[pos].excludes {
                let what = format!("value set {} excludes", vs.id());
                let Some(s) = sys(&m.system, &what, &mut problems) else {
                    continue;
                };
                systems[s as usize].exclude.add(m, vs.bit());
            }
        }

        // Procedures and order codes.
        let mut procedure_by_id = HashMap::new();
        let mut create_codes: HashMap<(u16, Region), Vec<CodingSpec>> = HashMap::new();
        let mut referrals = Vec::new();
        let mut rrl = Vec::new();
        let mut rrl_region = HashMap::new();
        for (pi, p) in kb.procedures.iter().enumerate() {
            let pi16 = pi as u16;
            if procedure_by_id.insert(p.id.as_str().into(), pi16).is_some() {
                problems.push(format!("procedure {} defined twice", p.id));
            }
            rrl.push((
                p.rrl_adult.as_deref().and_then(rrl_level),
                p.rrl_pediatric.as_deref().and_then(rrl_level),
            ));
            for (ri, r) in p.rrl_by_region.iter().enumerate() {
                rrl_region.insert(
                    (pi16, r.region),
                    (rrl_level(&r.adult), rrl_level(&r.pediatric), ri as u16),
                );
            }
            for (ci, c) in p.codes.iter().enumerate() {
                let Some(s) = sys(&c.system, &format!("procedure {}", p.id), &mut problems) else {
                    continue;
                };
                systems[s as usize]
                    .orders
                    .entry(normalize_code(&c.code).into_owned().into())
                    .or_default()
                    .push(CodeRefIdx {
                        procedure: pi16,
                        code: ci as u16,
                    });
                if !c.match_only {
                    // One coding per system: several codes of one system for the same region
                    // are alternatives (e.g. radiofrequency vs cryoablation), not translations.
                    let list = create_codes.entry((pi16, c.region)).or_default();
                    let uri = &kb.code_systems[&c.system].uri;
                    if !list.iter().any(|x| &x.system == uri) {
                        list.push(CodingSpec {
                            system: uri.clone(),
                            code: c.code.clone(),
                            display: Some(c.display.clone()),
                        });
                    }
                }
            }
            if let Some(r) = &p.referral {
                let mut conv = |list: &[crate::knowledge::CodeRef]| {
                    list.iter()
                        .filter_map(|c| {
                            sys(&c.system, &format!("referral {}", p.id), &mut problems)
                                .map(|s| (s, normalize_code(&c.code).into_owned().into()))
                        })
                        .collect::<Vec<_>>()
                };
                let category = conv(&r.category);
                let specialty = conv(&r.specialty);
                referrals.push(ReferralIdx {
                    procedure: pi16,
                    category,
                    specialty,
                });
            }
        }

        // Ratings.
        let mut ratings = Vec::new();
        let mut variants_by_kind: [Vec<u16>; 2] = [Vec::new(), Vec::new()];
        for (vi, v) in kb.variants.iter().enumerate() {
            variants_by_kind[kind_slot(v.applies_to)].push(vi as u16);
            let mut row_of = vec![None; kb.procedures.len()];
            for (ri, r) in v.ratings.iter().enumerate() {
                match procedure_by_id.get(r.procedure.as_str()) {
                    Some(&pi) => {
                        if kb.procedures[pi as usize].kind != v.applies_to {
                            problems.push(format!(
                                "variant {} rates {} of another kind",
                                v.id, r.procedure
                            ));
                        }
                        row_of[pi as usize] = Some(ri as u16);
                    }
                    None => problems.push(format!(
                        "variant {} rates unknown procedure {}",
                        v.id, r.procedure
                    )),
                }
                if !r.category.admits(r.rating) {
                    problems.push(format!(
                        "variant {} procedure {}: rating {} is not {}",
                        v.id,
                        r.procedure,
                        r.rating,
                        r.category.label()
                    ));
                }
            }
            ratings.push(row_of);
        }

        let lexicon = match crate::reports::Lexicon::new(&kb) {
            Ok(l) => Some(l),
            Err(e) => {
                problems.push(format!("report phrases cannot be compiled: {e}"));
                None
            }
        };
        let Some(lexicon) = lexicon.filter(|_| problems.is_empty()) else {
            return Err(KnowledgeError::Invalid(problems));
        };
        Ok(Engine {
            lexicon,
            kb,
            system_by_uri,
            systems,
            system_uris,
            icd10cm,
            referrals,
            ratings,
            coded,
            value_set_pos,
            create_codes,
            rrl,
            rrl_region,
            procedure_by_id,
            variants_by_kind,
        })
    }

    /// The report-reading rules.
    pub fn lexicon(&self) -> &crate::reports::Lexicon {
        &self.lexicon
    }

    pub fn knowledge(&self) -> &Knowledge {
        &self.kb
    }

    /// The shared knowledge base.
    pub fn knowledge_arc(&self) -> &Arc<Knowledge> {
        &self.kb
    }

    /// Id of a coding's system URI (canonical or alias).
    pub fn system_id(&self, uri: &str) -> Option<SysId> {
        self.system_by_uri.get(uri.trim()).copied()
    }

    pub fn system_uri(&self, id: SysId) -> &str {
        &self.system_uris[id as usize]
    }

    pub fn is_icd10cm(&self, id: SysId) -> bool {
        self.icd10cm == Some(id)
    }

    /// Value sets a coding belongs to.
    pub fn value_sets_of(&self, system: &str, code: &str) -> Mask {
        let Some(s) = self.system_id(system) else {
            return 0;
        };
        let t = &self.systems[s as usize];
        with_normalized(code, |code| {
            let mask = t.include.mask(code);
            if mask == 0 {
                0
            } else {
                mask & !t.exclude.mask(code)
            }
        })
    }

    /// Order codes matching a coding.
    pub(crate) fn order_codes_of(&self, system: &str, code: &str) -> &[CodeRefIdx] {
        let Some(s) = self.system_id(system) else {
            return &[];
        };
        let orders = &self.systems[s as usize].orders;
        with_normalized(code, |code| {
            orders.get(code).map(Vec::as_slice).unwrap_or(&[])
        })
    }

    /// Whether a (system, code) pair is in a referral list.
    pub(crate) fn in_refs(&self, refs: &[(SysId, Box<str>)], system: &str, code: &str) -> bool {
        let Some(s) = self.system_id(system) else {
            return false;
        };
        let code = normalize_code(code);
        refs.iter()
            .any(|(rs, rc)| *rs == s && rc.as_ref() == code.as_ref())
    }

    /// Whether the value set has any code at all (an empty one cannot prove absence).
    pub fn is_coded(&self, vs: Vs) -> bool {
        self.coded & vs.bit() != 0
    }

    /// The knowledge entry of a value set, when present.
    pub fn value_set(&self, vs: Vs) -> Option<&crate::knowledge::ValueSet> {
        self.value_set_pos[vs as usize].map(|i| &self.kb.value_sets[i as usize])
    }

    /// Whether a ServiceRequest's code lies in one of the knowledge file's advanced imaging
    /// ranges (CT, MR, NM, PET), whatever this guideline says about it.
    pub fn is_advanced_imaging(&self, sr: &crate::fhir::ServiceRequest) -> bool {
        let kb = &self.kb;
        let Some(code) = &sr.code else {
            return false;
        };
        code.coding.iter().any(|c| {
            let (Some(system), Some(value)) = (c.system.as_deref(), c.code.as_deref()) else {
                return false;
            };
            kb.advanced_imaging.iter().any(|r| {
                kb.code_systems.get(&r.system).is_some_and(|cs| {
                    cs.uri == system.trim() || cs.aliases.iter().any(|a| a == system.trim())
                }) && r.contains(value)
            })
        })
    }

    pub fn procedure_index(&self, id: &str) -> Option<usize> {
        self.procedure_by_id.get(id).map(|&i| i as usize)
    }

    /// The rating row of a procedure in a variant.
    pub fn rating(&self, variant: usize, procedure: usize) -> Option<&RatingRow> {
        self.ratings[variant][procedure].map(|r| &self.kb.variants[variant].ratings[r as usize])
    }

    /// Indices of the variants rating procedures of `kind`.
    pub fn variants_of_kind(&self, kind: ProcedureKind) -> &[u16] {
        &self.variants_by_kind[kind_slot(kind)]
    }

    /// Codes for a created order of `procedure` covering `region`.
    pub fn create_codes(&self, procedure: usize, region: Region) -> Option<&[CodingSpec]> {
        self.create_codes
            .get(&(procedure as u16, region))
            .map(Vec::as_slice)
            .filter(|c| !c.is_empty())
    }

    /// Relative radiation level of a procedure (region-specific where ACR gives one).
    pub fn radiation_level(&self, procedure: usize, region: Region, pediatric: bool) -> Option<u8> {
        if let Some((a, p, _)) = self.rrl_region.get(&(procedure as u16, region)) {
            return if pediatric { *p } else { *a };
        }
        let (a, p) = self.rrl[procedure];
        if pediatric { p } else { a }
    }

    /// ACR radiation level text for a procedure ("☢☢☢ 1-10 mSv"), region-specific where ACR
    /// gives one.
    pub fn radiation_text(
        &self,
        procedure: usize,
        region: Region,
        pediatric: bool,
    ) -> Option<&str> {
        let p = &self.kb.procedures[procedure];
        if let Some((_, _, ri)) = self.rrl_region.get(&(procedure as u16, region)) {
            let r = &p.rrl_by_region[*ri as usize];
            return Some(if pediatric { &r.pediatric } else { &r.adult });
        }
        if pediatric {
            p.rrl_pediatric.as_deref()
        } else {
            p.rrl_adult.as_deref()
        }
    }

    /// Facts named by a variant (its `requires` keys and `requires_any` members).
    pub fn variant_facts(&self, variant: usize) -> impl Iterator<Item = Fact> + '_ {
        let v = &self.kb.variants[variant];
        v.requires
            .keys()
            .copied()
            .chain(v.requires_any.iter().flatten().copied())
    }
}

#[cfg(test)]
pub(crate) mod test_kb {
    //! A small hand-made knowledge base for unit tests (codes from the research pack, only a
    //! few rows per variant).

    use super::*;

    pub const TOML: &str = r#"
schema_version = 1
version = "test"
status = "test"
radiation_levels = []
override_reasons = [
  { system = "http://example.org/override", code = "mri-contraindicated", display = "MRI contraindicated", source = "test" },
]
related_topics = [
  { id = "acute-spinal-trauma", title = "ACR Appropriateness Criteria Acute Spinal Trauma", when = "high-energy trauma", url = "https://acsearch.acr.org/list" },
]

[guideline]
id = "acr-ac-management-of-vcf"
title = "ACR Appropriateness Criteria Management of Vertebral Compression Fractures"
revision = "2022 update"
citation = "test"
url = "https://doi.org/10.1016/j.jacr.2023.02.015"
auc_uri = "https://doi.org/10.1016/j.jacr.2023.02.015"
panels = []
ratings_source = "test"
confidence = "B"
scope_note = "test"

[code_systems]
cpt = { uri = "http://www.ama-assn.org/go/cpt", aliases = ["urn:oid:2.16.840.1.113883.6.12"], name = "CPT" }
loinc = { uri = "http://loinc.org", name = "LOINC" }
icd10cm = { uri = "http://hl7.org/fhir/sid/icd-10-cm", name = "ICD-10-CM" }
sct = { uri = "http://snomed.info/sct", name = "SNOMED CT" }

[policy]
new_fracture_window_days = 42
new_fracture_window_rationale = "test"
pediatric_age_below = 18
egfr_contrast_threshold = 30.0
egfr_rationale = "test"
old_fracture_window_days = 365
old_fracture_window_rationale = "test"
older_adult_age_years = 65
older_adult_age_rationale = "test"

[[procedures]]
id = "MRI_SPINE_WO"
name = "MRI spine area of interest without IV contrast"
kind = "imaging"
modality = "MR"
contrast = "without"
rrl_adult = "O 0 mSv"
rrl_pediatric = "O 0 mSv [ped]"
safety = ["mri-safe"]
codes = [
  { system = "cpt", code = "72148", display = "MRI lumbar spine wo", region = "lumbar", source = "t", confidence = "B" },
  { system = "cpt", code = "72146", display = "MRI thoracic spine wo", region = "thoracic", source = "t", confidence = "B" },
  { system = "loinc", code = "30679-5", display = "MR Lumbar spine WO contrast", region = "lumbar", source = "t", confidence = "B" },
  { system = "loinc", code = "36531-2", display = "MR Spine WO contrast", region = "spine-unspecified", source = "t", confidence = "B" },
]

[[procedures]]
id = "MRI_SPINE_W"
name = "MRI spine area of interest with IV contrast"
kind = "imaging"
modality = "MR"
contrast = "with"
rrl_adult = "O 0 mSv"
rrl_pediatric = "O 0 mSv [ped]"
safety = ["mri-safe", "gadolinium"]
codes = [
  { system = "cpt", code = "72149", display = "MRI lumbar spine w", region = "lumbar", source = "t", confidence = "B" },
]

[[procedures]]
id = "CT_SPINE_WO"
name = "CT spine area of interest without IV contrast"
kind = "imaging"
modality = "CT"
contrast = "without"
rrl_adult = "Varies"
rrl_pediatric = "Varies"
rrl_by_region = [
  { region = "lumbar", adult = "☢☢☢ 1-10 mSv", pediatric = "☢☢☢☢ 3-10 mSv [ped]", source = "t" },
]
codes = [
  { system = "cpt", code = "72131", display = "CT lumbar spine wo", region = "lumbar", source = "t", confidence = "B" },
]

[[procedures]]
id = "CT_SPINE_W"
name = "CT spine area of interest with IV contrast"
kind = "imaging"
modality = "CT"
contrast = "with"
rrl_adult = "Varies"
rrl_pediatric = "Varies"
safety = ["iodinated-contrast"]
codes = [
  { system = "cpt", code = "72132", display = "CT lumbar spine w", region = "lumbar", source = "t", confidence = "B" },
]

[[procedures]]
id = "MEDICAL_MGMT"
name = "Medical Management Only"
kind = "treatment"
contrast = "not-applicable"
no_order = true

[[procedures]]
id = "PVA"
name = "Percutaneous Vertebral Augmentation"
kind = "treatment"
contrast = "not-applicable"
codes = [
  { system = "cpt", code = "22514", display = "Kyphoplasty lumbar", region = "not-applicable", source = "t", confidence = "B" },
]

[[procedures]]
id = "SURGICAL_CONSULT"
name = "Surgical Consultation"
kind = "treatment"
contrast = "not-applicable"
referral = { category = [{ system = "sct", code = "3457005", display = "Patient referral" }], specialty = [{ system = "sct", code = "394609007", display = "General surgery" }], source = "t", confidence = "C" }

[[variants]]
id = "V1"
number = 1
title = "New symptomatic VCF identified on radiographs. No known malignancy. Next imaging study."
applies_to = "imaging"
requires = { vcf = true, new_fracture = true, symptomatic = true, malignancy_history = false }
ratings = [
  { procedure = "MRI_SPINE_WO", rating = 9, median = 9, category = "usually-appropriate", evidence = "Strong" },
  { procedure = "CT_SPINE_WO", rating = 8, median = 8, category = "usually-appropriate", evidence = "Strong" },
  { procedure = "CT_SPINE_W", rating = 3, median = 3, category = "usually-not-appropriate", evidence = "Strong" },
  { procedure = "MRI_SPINE_W", rating = 3, median = 3, category = "usually-not-appropriate", evidence = "Strong" },
]

[[variants]]
id = "V2"
number = 2
title = "New symptomatic VCF identified on radiographs. History of malignancy. Next imaging study."
applies_to = "imaging"
requires = { vcf = true, new_fracture = true, symptomatic = true, malignancy_history = true }
ratings = [
  { procedure = "CT_SPINE_WO", rating = 7, median = 7, category = "usually-appropriate", evidence = "Strong" },
  { procedure = "MRI_SPINE_WO", rating = 7, median = 7, category = "usually-appropriate", evidence = "Strong" },
  { procedure = "MRI_SPINE_W", rating = 5, median = 5, category = "may-be-appropriate-disagreement", evidence = "Expert Opinion" },
  { procedure = "CT_SPINE_W", rating = 3, median = 3, category = "usually-not-appropriate", evidence = "Strong" },
]

[[variants]]
id = "V3"
number = 3
title = "New back pain. Previously treated VCF or multiple VCFs. Initial Imaging."
applies_to = "imaging"
requires = { vcf = true, symptomatic = true }
requires_any = [["prior_vertebral_augmentation", "multiple_vcf"]]
ratings = [
  { procedure = "CT_SPINE_WO", rating = 8, median = 8, category = "usually-appropriate", evidence = "Strong" },
  { procedure = "MRI_SPINE_WO", rating = 8, median = 8, category = "usually-appropriate", evidence = "Limited" },
  { procedure = "CT_SPINE_W", rating = 3, median = 3, category = "usually-not-appropriate", evidence = "Strong" },
  { procedure = "MRI_SPINE_W", rating = 3, median = 3, category = "usually-not-appropriate", evidence = "Limited" },
]

[[variants]]
id = "V6"
number = 6
title = "Symptomatic osteoporotic VCF with bone marrow edema or intravertebral cleft. Initial treatment."
applies_to = "treatment"
requires = { vcf = true, osteoporotic = true, symptomatic = true, marrow_edema_or_cleft = true }
ratings = [
  { procedure = "MEDICAL_MGMT", rating = 8, median = 8, category = "usually-appropriate", evidence = "Strong" },
  { procedure = "PVA", rating = 8, median = 8, category = "usually-appropriate", evidence = "Strong" },
  { procedure = "SURGICAL_CONSULT", rating = 5, median = 5, category = "may-be-appropriate", evidence = "Limited" },
]

[[value_sets]]
id = "vcf"
description = "VCF"
codes = [{ system = "icd10cm", prefix = "M48.5" }, { system = "icd10cm", prefix = "M80.08" }, { system = "icd10cm", prefix = "M84.58" }, { system = "sct", code = "42942008" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "vcf-traumatic"
description = "traumatic"
codes = [{ system = "icd10cm", prefix = "S22.0" }, { system = "icd10cm", prefix = "S32.0" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "osteoporosis"
description = "osteoporosis"
codes = [{ system = "icd10cm", prefix = "M80.0" }, { system = "icd10cm", prefix = "M81.0" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "pathological-fracture"
description = "pathological"
codes = [{ system = "icd10cm", prefix = "M84.58" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "malignancy"
description = "malignancy"
codes = [{ system = "icd10cm", range = ["C00", "C96"] }, { system = "icd10cm", prefix = "Z85" }]
excludes = [{ system = "icd10cm", prefix = "C44", source = "t" }, { system = "icd10cm", code = "Z85.828", source = "t" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "back-pain"
description = "back pain"
codes = [{ system = "icd10cm", prefix = "M54.5" }, { system = "icd10cm", code = "M54.6" }, { system = "sct", code = "279039007" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "prior-vertebral-augmentation"
description = "PVA"
codes = [{ system = "cpt", code = "22514" }]
source = "t"
confidence = "B"

[[value_sets]]
id = "prior-spine-surgery"
description = "fusion"
codes = [{ system = "icd10cm", code = "Z98.1" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "marrow-edema-or-cleft"
description = "none"
codes = []
source = "t"
confidence = "C"
note = "no code"

[[value_sets]]
id = "deformity"
description = "kyphosis"
codes = [{ system = "icd10cm", prefix = "M40.2" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "worsening-pain"
description = "none"
codes = []
source = "t"
confidence = "C"
note = "no code"

[[value_sets]]
id = "pulmonary-dysfunction"
description = "none"
codes = []
source = "t"
confidence = "C"
note = "no code"

[[value_sets]]
id = "mechanical-pain"
description = "none"
codes = []
source = "t"
confidence = "C"
note = "no code"

[[value_sets]]
id = "mri-unsafe-device"
description = "pacemaker"
codes = [{ system = "icd10cm", code = "Z95.0" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "renal-contrast-risk"
description = "CKD"
codes = [{ system = "icd10cm", code = "N18.5" }, { system = "icd10cm", code = "Z99.2" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "contrast-allergy"
description = "dye allergy"
codes = [{ system = "icd10cm", code = "Z91.041" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "egfr"
description = "eGFR"
codes = [{ system = "loinc", code = "98979-8" }]
source = "t"
confidence = "C"

[[value_sets]]
id = "spine-radiograph"
description = "XR spine"
codes = [{ system = "loinc", code = "24970-6" }]
source = "t"
confidence = "B"

[[value_sets]]
id = "neoplastic-fracture"
description = "t"
codes = [{ system = "icd10cm", prefix = "M84.5" }]
source = "t"
confidence = "A"

[[value_sets]]
id = "bone-malignancy"
description = "t"
codes = [{ system = "icd10cm", prefix = "C79.5" }, { system = "icd10cm", prefix = "C90.0" }]
source = "t"
confidence = "B"

[[value_sets]]
id = "high-energy-mechanism"
description = "t"
codes = [{ system = "icd10cm", range = ["V00", "V89"] }]
source = "t"
confidence = "C"
"#;

    pub fn engine() -> Engine {
        let kb = crate::knowledge::parse_str(TOML).expect("test knowledge parses");
        Engine::new(kb).expect("test knowledge indexes")
    }

    #[test]
    fn value_set_order_matches_required_list() {
        assert_eq!(Vs::ALL.len(), REQUIRED_VALUE_SETS.len());
        for (i, vs) in Vs::ALL.iter().enumerate() {
            assert_eq!(*vs as usize, i);
        }
    }

    #[test]
    fn codes_match_by_exact_prefix_and_range() {
        let e = engine();
        let icd = "http://hl7.org/fhir/sid/icd-10-cm";
        assert_eq!(
            e.value_sets_of(icd, "m80.08xa"),
            Vs::Vcf.bit() | Vs::Osteoporosis.bit()
        );
        assert_eq!(
            e.value_sets_of(icd, "C79.51"),
            Vs::Malignancy.bit() | Vs::BoneMalignancy.bit()
        );
        assert_eq!(e.value_sets_of(icd, "C97"), 0);
        // Exclusions remove a code from its value set only.
        assert_eq!(e.value_sets_of(icd, "C44.91"), 0);
        assert_eq!(e.value_sets_of(icd, "Z85.828"), 0);
        assert_eq!(e.value_sets_of(icd, "Z85.820"), Vs::Malignancy.bit());
        assert_eq!(e.value_sets_of(icd, "Z85.3"), Vs::Malignancy.bit());
        assert_eq!(e.value_sets_of(icd, "Z91.041"), Vs::ContrastAllergy.bit());
        assert_eq!(e.value_sets_of("http://unknown", "Z91.041"), 0);
        assert!(!e.is_coded(Vs::MarrowEdemaOrCleft));
        assert!(e.is_coded(Vs::Vcf));
        let oid = "urn:oid:2.16.840.1.113883.6.12";
        assert_eq!(e.order_codes_of(oid, "72148").len(), 1);
        assert_eq!(rrl_level("☢☢☢ 1-10 mSv"), Some(3));
        assert_eq!(rrl_level("O 0 mSv"), Some(0));
        assert_eq!(rrl_level("Varies"), None);
        let ct = e.procedure_index("CT_SPINE_WO").unwrap();
        assert_eq!(e.radiation_level(ct, Region::Lumbar, true), Some(4));
        assert_eq!(e.radiation_level(ct, Region::Thoracic, true), None);
    }

    #[test]
    fn dangling_references_are_rejected() {
        let text = TOML.replace(
            "procedure = \"PVA\", rating = 8",
            "procedure = \"NOPE\", rating = 8",
        );
        let kb = crate::knowledge::parse_str(&text).unwrap();
        assert!(Engine::new(kb).is_err());
    }
}

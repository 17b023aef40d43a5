//! Validation of a parsed knowledge file: every problem is reported, not just the first.
//!
//! Code formats are checked by code *system* (recognised from the canonical URI or an alias of
//! the `code_systems` entry, so a replacement file may name its keys differently), including the
//! LOINC mod-10 check digit and the SNOMED CT Verhoeff check digit.

use super::model::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The schema version this loader understands.
pub const SCHEMA_VERSION: u32 = 1;

/// Strength-of-evidence labels ACR uses.
pub const EVIDENCE_LABELS: &[&str] = &[
    "Strong",
    "Moderate",
    "Limited",
    "Expert Opinion",
    "Expert Consensus",
];

/// Text ACR uses instead of a radiation level for "area of interest" procedures.
pub const RRL_VARIES: &str = "Varies";

/// Code systems whose code format the validator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownSystem {
    Cpt,
    Hcpcs,
    Loinc,
    Snomed,
    Icd10Cm,
    RadLex,
    Nucc,
}

impl KnownSystem {
    /// Recognises a system from one of its URIs (canonical or alias).
    pub fn from_uri(uri: &str) -> Option<KnownSystem> {
        Some(match uri.trim_end_matches('/') {
            "http://www.ama-assn.org/go/cpt" | "urn:oid:2.16.840.1.113883.6.12" => Self::Cpt,
            "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
            | "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
            | "urn:oid:2.16.840.1.113883.6.285" => Self::Hcpcs,
            "http://loinc.org" | "urn:oid:2.16.840.1.113883.6.1" => Self::Loinc,
            "http://snomed.info/sct" | "urn:oid:2.16.840.1.113883.6.96" => Self::Snomed,
            "http://hl7.org/fhir/sid/icd-10-cm" | "urn:oid:2.16.840.1.113883.6.90" => Self::Icd10Cm,
            "http://radlex.org" | "http://www.radlex.org" | "urn:oid:2.16.840.1.113883.6.256" => {
                Self::RadLex
            }
            "http://nucc.org/provider-taxonomy" => Self::Nucc,
            _ => return None,
        })
    }

    /// Recognises the system of a `code_systems` entry (canonical URI first, then aliases).
    pub fn of(cs: &CodeSystem) -> Option<KnownSystem> {
        std::iter::once(&cs.uri)
            .chain(cs.aliases.iter())
            .find_map(|u| KnownSystem::from_uri(u))
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cpt => "CPT",
            Self::Hcpcs => "HCPCS",
            Self::Loinc => "LOINC",
            Self::Snomed => "SNOMED CT",
            Self::Icd10Cm => "ICD-10-CM",
            Self::RadLex => "RadLex",
            Self::Nucc => "NUCC",
        }
    }

    /// Why `code` is not a well-formed exact code of this system (None when it is).
    pub fn code_problem(self, code: &str) -> Option<String> {
        let ok = match self {
            Self::Cpt => is_cpt(code),
            Self::Hcpcs => is_hcpcs(code),
            Self::Loinc => {
                if !is_loinc_shape(code) {
                    false
                } else if !loinc_check_digit_ok(code) {
                    return Some(format!("LOINC code {code:?} fails the mod-10 check digit"));
                } else {
                    true
                }
            }
            Self::Snomed => {
                if !is_sctid_shape(code) {
                    false
                } else if !verhoeff_ok(code) {
                    return Some(format!(
                        "SNOMED CT code {code:?} fails the Verhoeff check digit"
                    ));
                } else if !sctid_is_concept(code) {
                    return Some(format!(
                        "SNOMED CT code {code:?} is not a concept id (partition must be 00 or 10)"
                    ));
                } else {
                    true
                }
            }
            Self::Icd10Cm => is_icd10cm(code),
            Self::RadLex => is_rpid(code),
            Self::Nucc => is_nucc(code),
        };
        if ok {
            None
        } else {
            Some(format!(
                "{code:?} is not a well-formed {} code",
                self.name()
            ))
        }
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_upper_alnum(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_uppercase()
}

/// CPT: four digits and a digit or upper-case letter (`72148`, `0001U`, `1234F`).
pub fn is_cpt(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5 && b[..4].iter().all(u8::is_ascii_digit) && is_upper_alnum(b[4])
}

/// HCPCS Level II: a letter and four digits (`A9552`).
pub fn is_hcpcs(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_digit)
}

/// LOINC shape: 1-7 digits, a hyphen, one check digit.
pub fn is_loinc_shape(code: &str) -> bool {
    match code.split_once('-') {
        Some((num, chk)) => {
            (1..=7).contains(&num.len()) && all_digits(num) && chk.len() == 1 && all_digits(chk)
        }
        None => false,
    }
}

/// LOINC mod-10 check digit (LOINC Users' Guide): double the digits in odd positions counted
/// from the right, add all resulting digits, the check digit brings the sum to a multiple of 10.
pub fn loinc_check_digit_ok(code: &str) -> bool {
    let Some((num, chk)) = code.split_once('-') else {
        return false;
    };
    if !all_digits(num) || chk.len() != 1 || !all_digits(chk) {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in num.bytes().rev().enumerate() {
        let d = u32::from(b - b'0');
        if i % 2 == 0 {
            let dd = d * 2;
            sum += dd / 10 + dd % 10;
        } else {
            sum += d;
        }
    }
    (10 - sum % 10) % 10 == u32::from(chk.as_bytes()[0] - b'0')
}

/// SCTID shape: 6-18 digits, no leading zero.
pub fn is_sctid_shape(code: &str) -> bool {
    (6..=18).contains(&code.len()) && all_digits(code) && !code.starts_with('0')
}

/// Partition identifier (2nd and 3rd digit from the right) of a concept id: 00 (core) or 10
/// (extension).
pub fn sctid_is_concept(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() >= 3 && matches!(&b[b.len() - 3..b.len() - 1], b"00" | b"10")
}

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Verhoeff check over a whole SCTID (including its check digit).
pub fn verhoeff_ok(code: &str) -> bool {
    if !all_digits(code) {
        return false;
    }
    let mut c = 0u8;
    for (i, b) in code.bytes().rev().enumerate() {
        let d = usize::from(b - b'0');
        c = VERHOEFF_D[usize::from(c)][usize::from(VERHOEFF_P[i % 8][d])];
    }
    c == 0
}

/// ICD-10-CM code with the dot: `A00`, `M48.56`, `M48.56XA`, `Z91.041`.
pub fn is_icd10cm(code: &str) -> bool {
    let b = code.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_digit() || !is_upper_alnum(b[2])
    {
        return false;
    }
    match &b[3..] {
        [] => true,
        [b'.', rest @ ..] => {
            (1..=4).contains(&rest.len()) && rest.iter().all(|&c| is_upper_alnum(c))
        }
        _ => false,
    }
}

/// ICD-10-CM prefix: a chapter letter (`C`), a partial category (`Z8`), a category (`Z85`) or a
/// longer code stem (`M48.5`).
pub fn is_icd10cm_prefix(prefix: &str) -> bool {
    let b = prefix.as_bytes();
    match b.len() {
        0 => false,
        1 => b[0].is_ascii_uppercase(),
        2 => b[0].is_ascii_uppercase() && b[1].is_ascii_digit(),
        _ => is_icd10cm(prefix),
    }
}

/// ICD-10-CM 3-character category (`C00`).
pub fn is_icd10cm_category(code: &str) -> bool {
    code.len() == 3 && is_icd10cm(code)
}

/// RadLex Playbook id: `RPID` and digits.
pub fn is_rpid(code: &str) -> bool {
    code.strip_prefix("RPID").is_some_and(all_digits)
}

/// NUCC provider taxonomy: 3 digits, 6 digits/upper-case letters, `X` (`207XS0117X`).
pub fn is_nucc(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 10
        && b[..3].iter().all(u8::is_ascii_digit)
        && b[3..9].iter().all(|&c| is_upper_alnum(c))
        && b[9] == b'X'
}

struct Ctx<'a> {
    kb: &'a Knowledge,
    systems: HashMap<&'a str, Option<KnownSystem>>,
    symbols: HashSet<&'a str>,
    problems: Vec<String>,
}

impl Ctx<'_> {
    fn push(&mut self, p: String) {
        self.problems.push(p);
    }

    /// Checks that `system` is a key of `code_systems` and `code` is well formed for it.
    fn check_code(&mut self, at: &str, system: &str, code: &str) {
        match self.systems.get(system) {
            None => self.push(format!("{at}: unknown code system key {system:?}")),
            Some(Some(known)) => {
                if let Some(p) = known.code_problem(code) {
                    self.push(format!("{at}: {p}"));
                }
            }
            Some(None) => {
                if code.trim().is_empty() {
                    self.push(format!("{at}: empty code"));
                }
            }
        }
    }

    fn check_rrl(&mut self, at: &str, text: &str) {
        if text == RRL_VARIES {
            return;
        }
        let symbol = text.split_whitespace().next().unwrap_or("");
        if !self.symbols.contains(symbol) || text.trim() == symbol {
            self.push(format!(
                "{at}: radiation level {text:?} must be \"{RRL_VARIES}\" or start with a symbol of radiation_levels followed by the dose band"
            ));
        }
    }
}

/// Every problem found in `kb` (empty when valid).
pub fn validate(kb: &Knowledge) -> Vec<String> {
    let mut cx = Ctx {
        kb,
        systems: kb
            .code_systems
            .iter()
            .map(|(k, cs)| (k.as_str(), KnownSystem::of(cs)))
            .collect(),
        symbols: kb
            .radiation_levels
            .iter()
            .map(|r| r.symbol.as_str())
            .collect(),
        problems: Vec::new(),
    };
    header(&mut cx);
    code_systems(&mut cx);
    radiation_levels(&mut cx);
    policy(&mut cx);
    procedures(&mut cx);
    variants(&mut cx);
    value_sets(&mut cx);
    override_reasons(&mut cx);
    related_topics(&mut cx);
    evidence_policy(&mut cx);
    report_language(&mut cx);
    report_findings(&mut cx);
    advanced_imaging(&mut cx);
    cx.problems
}

/// Every fact a variant uses has exactly one evidence-policy entry with a reason and a source.
fn evidence_policy(cx: &mut Ctx) {
    let kb = cx.kb;
    let mut seen = BTreeSet::new();
    for (i, e) in kb.evidence_policy.iter().enumerate() {
        let at = format!("evidence_policy[{i}] ({})", e.fact.key());
        if !seen.insert(e.fact) {
            cx.push(format!("{at}: fact listed twice"));
        }
        if e.why.trim().is_empty() {
            cx.push(format!("{at}: empty why"));
        }
        if e.source.trim().is_empty() {
            cx.push(format!("{at}: empty source"));
        }
    }
    let mut used = BTreeSet::new();
    for v in &kb.variants {
        used.extend(v.requires.keys().copied());
        used.extend(v.requires_any.iter().flatten().copied());
    }
    for f in used {
        if !seen.contains(&f) {
            cx.push(format!(
                "evidence_policy: fact {:?} is used by a variant but has no entry (may-assume or must-evidence, with why)",
                f.key()
            ));
        }
    }
}

fn phrase_list(cx: &mut Ctx, at: &str, list: &[String], required: bool) {
    if required && list.is_empty() {
        cx.push(format!("{at}: empty list"));
    }
    let mut seen = HashSet::new();
    for p in list {
        let t = p.trim();
        if t.is_empty() {
            cx.push(format!("{at}: empty phrase"));
        } else if t != p || p.to_lowercase() != *p {
            cx.push(format!(
                "{at}: phrase {p:?} must be lower case without surrounding spaces"
            ));
        } else if p.trim_end_matches('*').contains('*') {
            cx.push(format!(
                "{at}: phrase {p:?}: '*' is only allowed at the end"
            ));
        }
        if !seen.insert(p.as_str()) {
            cx.push(format!("{at}: phrase {p:?} listed twice"));
        }
    }
}

fn report_language(cx: &mut Ctx) {
    let l = &cx.kb.report_language;
    if l.source.trim().is_empty() {
        cx.push("report_language: empty source".to_string());
    }
    if l.scope_words == 0 || l.scope_words > 20 {
        cx.push(format!(
            "report_language.scope_words {} must be between 1 and 20",
            l.scope_words
        ));
    }
    for (name, list) in [
        ("negation_before", &l.negation_before),
        ("negation_after", &l.negation_after),
        ("uncertainty_before", &l.uncertainty_before),
        ("uncertainty_after", &l.uncertainty_after),
        ("history_before", &l.history_before),
        ("pseudo", &l.pseudo),
        ("terminators", &l.terminators),
        ("spine_phrases", &l.spine_phrases),
    ] {
        phrase_list(cx, &format!("report_language.{name}"), list, true);
    }
    for m in &l.modality_phrases {
        if !MODALITIES.contains(&m.modality.as_str()) {
            cx.push(format!(
                "report_language.modality_phrases: unknown modality {:?} (one of {MODALITIES:?})",
                m.modality
            ));
        }
        phrase_list(
            cx,
            &format!("report_language.modality_phrases.{}", m.modality),
            &m.phrases,
            true,
        );
    }
}

/// Modalities a report can have (DICOM modality abbreviations, plus XR for radiography).
pub const MODALITIES: &[&str] = &["MR", "CT", "XR", "NM", "PT"];

fn report_findings(cx: &mut Ctx) {
    let kb = cx.kb;
    let mut ids = HashSet::new();
    for f in &kb.report_findings {
        let at = format!("report finding {}", f.id);
        if !ids.insert(f.id.as_str()) {
            cx.push(format!("{at}: duplicate id"));
        }
        if !REQUIRED_REPORT_FINDINGS.contains(&f.id.as_str()) {
            cx.push(format!(
                "{at}: unknown id (the engine reads {REQUIRED_REPORT_FINDINGS:?})"
            ));
        }
        if f.description.trim().is_empty() {
            cx.push(format!("{at}: empty description"));
        }
        if f.source.trim().is_empty() {
            cx.push(format!("{at}: empty source"));
        }
        phrase_list(cx, &format!("{at}: phrases"), &f.phrases, true);
        phrase_list(cx, &format!("{at}: except"), &f.except, false);
        for m in &f.modalities {
            if !MODALITIES.contains(&m.as_str()) {
                cx.push(format!(
                    "{at}: unknown modality {m:?} (one of {MODALITIES:?})"
                ));
            }
        }
    }
    for id in REQUIRED_REPORT_FINDINGS {
        if !ids.contains(id) {
            cx.push(format!("required report finding {id:?} is missing"));
        }
    }
}

fn header(cx: &mut Ctx) {
    let kb = cx.kb;
    if kb.schema_version != SCHEMA_VERSION {
        cx.push(format!(
            "unsupported schema_version {} (this loader reads {SCHEMA_VERSION})",
            kb.schema_version
        ));
    }
    for (name, value) in [
        ("version", &kb.version),
        ("status", &kb.status),
        ("guideline.id", &kb.guideline.id),
        ("guideline.title", &kb.guideline.title),
        ("guideline.revision", &kb.guideline.revision),
        ("guideline.citation", &kb.guideline.citation),
        ("guideline.ratings_source", &kb.guideline.ratings_source),
        ("guideline.scope_note", &kb.guideline.scope_note),
    ] {
        if value.trim().is_empty() {
            cx.push(format!("{name} is empty"));
        }
    }
    for (name, value) in [
        ("guideline.url", &kb.guideline.url),
        ("guideline.auc_uri", &kb.guideline.auc_uri),
    ] {
        if !(value.starts_with("https://") || value.starts_with("http://")) {
            cx.push(format!("{name} {value:?} is not an http(s) URL"));
        }
    }
}

fn code_systems(cx: &mut Ctx) {
    let kb = cx.kb;
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (key, cs) in &kb.code_systems {
        if cs.uri.trim().is_empty() {
            cx.push(format!("code_systems.{key}: empty uri"));
        }
        for uri in std::iter::once(&cs.uri).chain(cs.aliases.iter()) {
            if let Some(other) = seen.insert(uri.as_str(), key.as_str()) {
                if other != key {
                    cx.push(format!(
                        "code_systems.{key}: URI {uri:?} is also used by code_systems.{other}"
                    ));
                } else {
                    cx.push(format!("code_systems.{key}: URI {uri:?} listed twice"));
                }
            }
        }
    }
}

fn radiation_levels(cx: &mut Ctx) {
    let kb = cx.kb;
    let mut symbols = HashSet::new();
    let mut levels = HashSet::new();
    for (i, r) in kb.radiation_levels.iter().enumerate() {
        let at = format!("radiation_levels[{i}] ({})", r.symbol);
        if !symbols.insert(r.symbol.as_str()) {
            cx.push(format!("{at}: symbol listed twice"));
        }
        if !levels.insert(r.level) {
            cx.push(format!("{at}: level {} listed twice", r.level));
        }
        let expected = if r.symbol == "O" {
            Some(0)
        } else if !r.symbol.is_empty() && r.symbol.chars().all(|c| c == '☢') {
            Some(r.symbol.chars().count())
        } else {
            None
        };
        match expected {
            None => cx.push(format!(
                "{at}: symbol must be \"O\" or a run of \u{2622} characters"
            )),
            Some(n) if n != usize::from(r.level) => cx.push(format!(
                "{at}: level {} does not match the symbol ({n})",
                r.level
            )),
            Some(_) => {}
        }
        if r.adult.trim().is_empty() || r.pediatric.trim().is_empty() {
            cx.push(format!("{at}: adult and pediatric bands are required"));
        }
    }
}

fn policy(cx: &mut Ctx) {
    let p = &cx.kb.policy;
    let mut problems = Vec::new();
    if p.new_fracture_window_days == 0 {
        problems.push("policy.new_fracture_window_days must be > 0".to_string());
    }
    if p.new_fracture_window_rationale.trim().is_empty() {
        problems.push("policy.new_fracture_window_rationale is empty".to_string());
    }
    if p.pediatric_age_below == 0 {
        problems.push("policy.pediatric_age_below must be > 0".to_string());
    }
    if !(p.egfr_contrast_threshold.is_finite() && p.egfr_contrast_threshold > 0.0) {
        problems.push(format!(
            "policy.egfr_contrast_threshold {} must be a positive number",
            p.egfr_contrast_threshold
        ));
    }
    if p.egfr_rationale.trim().is_empty() {
        problems.push("policy.egfr_rationale is empty".to_string());
    }
    if p.old_fracture_window_days <= p.new_fracture_window_days {
        problems.push(format!(
            "policy.old_fracture_window_days ({}) must be greater than new_fracture_window_days ({})",
            p.old_fracture_window_days, p.new_fracture_window_days
        ));
    }
    if p.old_fracture_window_rationale.trim().is_empty() {
        problems.push("policy.old_fracture_window_rationale is empty".to_string());
    }
    if p.older_adult_age_years == 0 || p.older_adult_age_years > 120 {
        problems.push(format!(
            "policy.older_adult_age_years {} must be between 1 and 120",
            p.older_adult_age_years
        ));
    }
    if p.older_adult_age_rationale.trim().is_empty() {
        problems.push("policy.older_adult_age_rationale is empty".to_string());
    }
    cx.problems.extend(problems);
}

fn procedures(cx: &mut Ctx) {
    let kb = cx.kb;
    let mut ids = HashSet::new();
    // (system key, code) -> procedure id, to catch one code recognising two procedures.
    let mut owners: HashMap<(&str, &str), &str> = HashMap::new();
    for p in &kb.procedures {
        let at = format!("procedure {}", p.id);
        if p.id.trim().is_empty() {
            cx.push("a procedure has an empty id".to_string());
        }
        if !ids.insert(p.id.as_str()) {
            cx.push(format!("{at}: duplicate procedure id"));
        }
        if p.name.trim().is_empty() {
            cx.push(format!("{at}: empty name"));
        }
        match p.kind {
            ProcedureKind::Imaging => {
                for (field, value) in [
                    ("rrl_adult", &p.rrl_adult),
                    ("rrl_pediatric", &p.rrl_pediatric),
                ] {
                    match value {
                        Some(text) => cx.check_rrl(&format!("{at}: {field}"), text),
                        None => cx.push(format!("{at}: imaging procedure needs {field}")),
                    }
                }
            }
            ProcedureKind::Treatment => {
                if p.rrl_adult.is_some() || p.rrl_pediatric.is_some() || !p.rrl_by_region.is_empty()
                {
                    cx.push(format!(
                        "{at}: treatment procedure must not carry radiation levels (ACR gives none)"
                    ));
                }
                if p.modality.is_some() {
                    cx.push(format!(
                        "{at}: treatment procedure must not have a modality"
                    ));
                }
            }
        }
        let mut regions = HashSet::new();
        for rr in &p.rrl_by_region {
            let rat = format!("{at}: rrl_by_region {:?}", rr.region);
            if !regions.insert(rr.region) {
                cx.push(format!("{rat}: region listed twice"));
            }
            if matches!(rr.region, Region::NotApplicable) {
                cx.push(format!(
                    "{rat}: region not-applicable has no radiation level"
                ));
            }
            cx.check_rrl(&format!("{rat} adult"), &rr.adult);
            cx.check_rrl(&format!("{rat} pediatric"), &rr.pediatric);
            if rr.source.trim().is_empty() {
                cx.push(format!("{rat}: empty source"));
            }
        }
        safety_rules(cx, p, &at);
        if p.no_order {
            if !p.codes.is_empty() || p.referral.is_some() {
                cx.push(format!(
                    "{at}: a no_order procedure must have no codes and no referral matcher"
                ));
            }
        } else if p.codes.is_empty() && p.referral.is_none() {
            cx.push(format!(
                "{at}: no codes and no referral matcher: nothing can recognise an order for it (set no_order if that is intended)"
            ));
        }
        let mut orderable = false;
        for c in &p.codes {
            let cat = format!("{at}: code {}|{}", c.system, c.code);
            cx.check_code(&cat, &c.system, &c.code);
            if c.display.trim().is_empty() {
                cx.push(format!("{cat}: empty display"));
            }
            if c.source.trim().is_empty() {
                cx.push(format!("{cat}: empty source"));
            }
            if matches!(c.region, Region::NotApplicable) && p.kind != ProcedureKind::Treatment {
                cx.push(format!(
                    "{cat}: region not-applicable is only allowed for treatment procedures"
                ));
            }
            orderable |= !c.match_only;
            match owners.insert((c.system.as_str(), c.code.as_str()), p.id.as_str()) {
                Some(other) if other == p.id => cx.push(format!("{cat}: listed twice")),
                Some(other) => cx.push(format!("{cat}: also recognises procedure {other}")),
                None => {}
            }
        }
        if !p.codes.is_empty() && !orderable && p.referral.is_none() {
            cx.push(format!(
                "{at}: every code is match_only, so the procedure can never be suggested as an order"
            ));
        }
        if let Some(r) = &p.referral {
            if r.category.is_empty() || r.specialty.is_empty() {
                cx.push(format!(
                    "{at}: referral matcher needs at least one category and one specialty code"
                ));
            }
            if r.source.trim().is_empty() {
                cx.push(format!("{at}: referral matcher has an empty source"));
            }
            for (field, refs) in [("category", &r.category), ("specialty", &r.specialty)] {
                for cr in refs {
                    let rat = format!("{at}: referral {field} {}|{}", cr.system, cr.code);
                    cx.check_code(&rat, &cr.system, &cr.code);
                    if cr.display.trim().is_empty() {
                        cx.push(format!("{rat}: empty display"));
                    }
                }
            }
        }
    }
}

/// Safety requirements that follow from modality and contrast.
fn safety_rules(cx: &mut Ctx, p: &Procedure, at: &str) {
    let has = |s: Safety| p.safety.contains(&s);
    let mut seen = HashSet::new();
    for s in &p.safety {
        if !seen.insert(*s) {
            cx.push(format!("{at}: safety {s:?} listed twice"));
        }
    }
    let modality = p.modality.as_deref();
    let contrast_given = matches!(
        p.contrast,
        Contrast::With | Contrast::WithoutAndWith | Contrast::Intrathecal
    );
    if modality == Some("MR") {
        if !has(Safety::MriSafe) {
            cx.push(format!("{at}: MR procedure must require safety mri-safe"));
        }
        if contrast_given && !has(Safety::Gadolinium) {
            cx.push(format!(
                "{at}: MR procedure with contrast must require safety gadolinium"
            ));
        }
    } else if has(Safety::MriSafe) || has(Safety::Gadolinium) {
        cx.push(format!(
            "{at}: mri-safe / gadolinium safety only applies to MR procedures"
        ));
    }
    if modality == Some("CT") && contrast_given && !has(Safety::IodinatedContrast) {
        cx.push(format!(
            "{at}: CT procedure with contrast must require safety iodinated-contrast"
        ));
    }
    if has(Safety::IodinatedContrast) && !(modality == Some("CT") && contrast_given) {
        cx.push(format!(
            "{at}: iodinated-contrast safety only applies to CT procedures with contrast"
        ));
    }
}

fn variants(cx: &mut Ctx) {
    let kb = cx.kb;
    let procs: HashMap<&str, &Procedure> =
        kb.procedures.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut ids = HashSet::new();
    let mut numbers = BTreeSet::new();
    for v in &kb.variants {
        let at = format!("variant {}", v.id);
        if !ids.insert(v.id.as_str()) {
            cx.push(format!("{at}: duplicate variant id"));
        }
        if !(1..=9).contains(&v.number) {
            cx.push(format!("{at}: number {} is outside 1..=9", v.number));
        }
        if !numbers.insert(v.number) {
            cx.push(format!("{at}: variant number {} used twice", v.number));
        }
        if v.id != format!("V{}", v.number) {
            cx.push(format!("{at}: id must be V{}", v.number));
        }
        if v.title.trim().is_empty() {
            cx.push(format!("{at}: empty title"));
        }
        if v.requires.is_empty() && v.requires_any.is_empty() {
            cx.push(format!("{at}: no defining facts"));
        }
        for group in &v.requires_any {
            if group.is_empty() {
                cx.push(format!("{at}: empty requires_any group"));
            }
            for f in group {
                if v.requires.contains_key(f) {
                    cx.push(format!(
                        "{at}: fact {f:?} is both in requires and in a requires_any group"
                    ));
                }
            }
        }
        if v.ratings.is_empty() {
            cx.push(format!("{at}: no ratings"));
        }
        let mut rated = HashSet::new();
        for r in &v.ratings {
            let rat = format!("{at}: rating of {}", r.procedure);
            match procs.get(r.procedure.as_str()) {
                None => cx.push(format!("{rat}: unknown procedure")),
                Some(p) if p.kind != v.applies_to => cx.push(format!(
                    "{rat}: procedure kind {:?} does not match the variant's applies_to {:?}",
                    p.kind, v.applies_to
                )),
                Some(_) => {}
            }
            if !rated.insert(r.procedure.as_str()) {
                cx.push(format!("{rat}: procedure rated twice in this variant"));
            }
            if !(1..=9).contains(&r.rating) {
                cx.push(format!("{rat}: rating {} is outside 1..=9", r.rating));
            } else if !r.category.admits(r.rating) {
                cx.push(format!(
                    "{rat}: rating {} does not belong to category {:?}",
                    r.rating,
                    r.category.label()
                ));
            }
            if r.median != r.rating {
                cx.push(format!(
                    "{rat}: median {} differs from rating {}",
                    r.median, r.rating
                ));
            }
            if !EVIDENCE_LABELS.contains(&r.evidence.as_str()) {
                cx.push(format!(
                    "{rat}: strength of evidence {:?} is not one of {EVIDENCE_LABELS:?}",
                    r.evidence
                ));
            }
        }
    }
}

fn value_sets(cx: &mut Ctx) {
    let kb = cx.kb;
    let mut ids = HashSet::new();
    for vs in &kb.value_sets {
        let at = format!("value set {}", vs.id);
        if !ids.insert(vs.id.as_str()) {
            cx.push(format!("{at}: duplicate value set id"));
        }
        if vs.description.trim().is_empty() {
            cx.push(format!("{at}: empty description"));
        }
        if vs.source.trim().is_empty() {
            cx.push(format!("{at}: empty source"));
        }
        if vs.codes.is_empty() && vs.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
            cx.push(format!(
                "{at}: empty value set needs a note saying why and where the fact comes from"
            ));
        }
        let mut seen = HashSet::new();
        for (i, m) in vs.codes.iter().enumerate() {
            matcher(cx, &format!("{at}: codes[{i}]"), m);
            let key = (
                m.system.as_str(),
                m.code.as_deref(),
                m.prefix.as_deref(),
                m.range.as_ref().map(|r| (r[0].as_str(), r[1].as_str())),
            );
            if !seen.insert(key) {
                cx.push(format!("{at}: codes[{i}] listed twice"));
            }
        }
        for (i, m) in vs.excludes.iter().enumerate() {
            let at = format!("{at}: excludes[{i}]");
            matcher(cx, &at, m);
            if m.source.as_deref().is_none_or(|s| s.trim().is_empty()) {
                cx.push(format!("{at}: an exclusion needs its source"));
            }
        }
    }
    for id in REQUIRED_VALUE_SETS {
        if !ids.contains(id) {
            cx.push(format!("required value set {id:?} is missing"));
        }
    }
}

fn matcher(cx: &mut Ctx, at: &str, m: &CodeMatcher) {
    let set = [m.code.is_some(), m.prefix.is_some(), m.range.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if set != 1 {
        cx.push(format!(
            "{at}: exactly one of code, prefix or range must be given ({set} given)"
        ));
    }
    let known = match cx.systems.get(m.system.as_str()) {
        None => {
            cx.push(format!("{at}: unknown code system key {:?}", m.system));
            return;
        }
        Some(k) => *k,
    };
    if let Some(code) = &m.code {
        cx.check_code(at, &m.system, code);
    }
    if let Some(prefix) = &m.prefix {
        if known != Some(KnownSystem::Icd10Cm) {
            cx.push(format!(
                "{at}: prefix matching is only defined for ICD-10-CM"
            ));
        } else if !is_icd10cm_prefix(prefix) {
            cx.push(format!(
                "{at}: {prefix:?} is not a well-formed ICD-10-CM prefix"
            ));
        }
    }
    if let Some([from, to]) = &m.range {
        if known != Some(KnownSystem::Icd10Cm) {
            cx.push(format!(
                "{at}: range matching is only defined for ICD-10-CM"
            ));
        } else if !is_icd10cm_category(from) || !is_icd10cm_category(to) {
            cx.push(format!(
                "{at}: range [{from:?}, {to:?}] must be two 3-character ICD-10-CM categories"
            ));
        } else if from > to {
            cx.push(format!("{at}: range [{from:?}, {to:?}] is reversed"));
        }
    }
}

fn override_reasons(cx: &mut Ctx) {
    let kb = cx.kb;
    let mut seen = HashSet::new();
    for (i, r) in kb.override_reasons.iter().enumerate() {
        let at = format!("override_reasons[{i}] ({})", r.code);
        if !cx.systems.contains_key(r.system.as_str()) {
            cx.push(format!("{at}: unknown code system key {:?}", r.system));
        }
        if r.code.trim().is_empty() {
            cx.push(format!("{at}: empty code"));
        }
        if r.display.trim().is_empty() {
            cx.push(format!("{at}: an override reason needs a display"));
        }
        if r.source.trim().is_empty() {
            cx.push(format!("{at}: empty source"));
        }
        if !seen.insert((r.system.as_str(), r.code.as_str())) {
            cx.push(format!("{at}: listed twice"));
        }
    }
}

fn advanced_imaging(cx: &mut Ctx) {
    let kb = cx.kb;
    for (i, r) in kb.advanced_imaging.iter().enumerate() {
        let at = format!("advanced_imaging[{i}] ({}-{})", r.from, r.to);
        if !cx.systems.contains_key(r.system.as_str()) {
            cx.push(format!("{at}: unknown code system key {:?}", r.system));
        }
        let numeric = |c: &str| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
        if !numeric(&r.from) || !numeric(&r.to) || r.from.len() != r.to.len() || r.from > r.to {
            cx.push(format!(
                "{at}: from and to must be numeric codes of one length, from <= to"
            ));
        }
        if r.source.trim().is_empty() || r.display.trim().is_empty() {
            cx.push(format!("{at}: display and source are required"));
        }
    }
}

fn related_topics(cx: &mut Ctx) {
    let kb = cx.kb;
    let mut seen = HashSet::new();
    for t in &kb.related_topics {
        if !seen.insert(t.id.as_str()) {
            cx.push(format!("related topic {}: duplicate id", t.id));
        }
        if t.title.trim().is_empty() || t.when.trim().is_empty() {
            cx.push(format!(
                "related topic {}: title and when are required",
                t.id
            ));
        }
    }
}

/// Counts describing a knowledge base, printed by `vcf-cds knowledge check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnowledgeSummary {
    pub title: String,
    pub revision: String,
    pub version: String,
    pub status: String,
    pub variants: usize,
    pub imaging_variants: usize,
    pub treatment_variants: usize,
    pub rating_rows: usize,
    /// In ACR order: usually appropriate, may be appropriate, may be appropriate (disagreement),
    /// usually not appropriate.
    pub rating_rows_by_category: Vec<(Category, usize)>,
    pub procedures: usize,
    pub imaging_procedures: usize,
    pub treatment_procedures: usize,
    pub order_codes: usize,
    /// Keyed by `code_systems` key.
    pub order_codes_by_system: BTreeMap<String, usize>,
    pub match_only_codes: usize,
    pub referral_matchers: usize,
    pub value_sets: usize,
    pub value_set_codes: usize,
    pub empty_value_sets: Vec<String>,
    /// Entries that carry a confidence tag (guideline, order codes, referral matchers, value
    /// sets), by tag A, B, C.
    pub sources_by_confidence: [usize; 3],
    /// Evidence-policy entries, and how many say must-evidence for a present fact.
    pub evidence_policies: usize,
    pub must_evidence: Vec<String>,
    /// Report findings and their phrases.
    pub report_findings: usize,
    pub report_phrases: usize,
    /// Value-set exclusions.
    pub value_set_exclusions: usize,
    pub override_reasons: usize,
    pub related_topics: usize,
}

/// Summarises `kb` (valid or not).
pub fn summary(kb: &Knowledge) -> KnowledgeSummary {
    let mut by_conf = [0usize; 3];
    let mut tally = |c: Confidence| {
        by_conf[match c {
            Confidence::A => 0,
            Confidence::B => 1,
            Confidence::C => 2,
        }] += 1
    };
    tally(kb.guideline.confidence);
    let mut order_codes_by_system = BTreeMap::new();
    let mut order_codes = 0;
    let mut match_only_codes = 0;
    let mut referral_matchers = 0;
    for p in &kb.procedures {
        for c in &p.codes {
            order_codes += 1;
            *order_codes_by_system.entry(c.system.clone()).or_insert(0) += 1;
            if c.match_only {
                match_only_codes += 1;
            }
            tally(c.confidence);
        }
        if let Some(r) = &p.referral {
            referral_matchers += 1;
            tally(r.confidence);
        }
    }
    for vs in &kb.value_sets {
        tally(vs.confidence);
    }
    let categories = [
        Category::UsuallyAppropriate,
        Category::MayBeAppropriate,
        Category::MayBeAppropriateDisagreement,
        Category::UsuallyNotAppropriate,
    ];
    let rows = kb.variants.iter().flat_map(|v| v.ratings.iter());
    KnowledgeSummary {
        title: kb.guideline.title.clone(),
        revision: kb.guideline.revision.clone(),
        version: kb.version.clone(),
        status: kb.status.clone(),
        variants: kb.variants.len(),
        imaging_variants: kb
            .variants
            .iter()
            .filter(|v| v.applies_to == ProcedureKind::Imaging)
            .count(),
        treatment_variants: kb
            .variants
            .iter()
            .filter(|v| v.applies_to == ProcedureKind::Treatment)
            .count(),
        rating_rows: rows.clone().count(),
        rating_rows_by_category: categories
            .iter()
            .map(|c| (*c, rows.clone().filter(|r| r.category == *c).count()))
            .collect(),
        procedures: kb.procedures.len(),
        imaging_procedures: kb
            .procedures
            .iter()
            .filter(|p| p.kind == ProcedureKind::Imaging)
            .count(),
        treatment_procedures: kb
            .procedures
            .iter()
            .filter(|p| p.kind == ProcedureKind::Treatment)
            .count(),
        order_codes,
        order_codes_by_system,
        match_only_codes,
        referral_matchers,
        value_sets: kb.value_sets.len(),
        value_set_codes: kb.value_sets.iter().map(|v| v.codes.len()).sum(),
        empty_value_sets: kb
            .value_sets
            .iter()
            .filter(|v| v.codes.is_empty())
            .map(|v| v.id.clone())
            .collect(),
        sources_by_confidence: by_conf,
        evidence_policies: kb.evidence_policy.len(),
        must_evidence: kb
            .evidence_policy
            .iter()
            .filter(|e| e.present == EvidenceRule::MustEvidence)
            .map(|e| e.fact.key().to_owned())
            .collect(),
        report_findings: kb.report_findings.len(),
        report_phrases: kb.report_findings.iter().map(|r| r.phrases.len()).sum(),
        value_set_exclusions: kb.value_sets.iter().map(|v| v.excludes.len()).sum(),
        override_reasons: kb.override_reasons.len(),
        related_topics: kb.related_topics.len(),
    }
}

impl std::fmt::Display for KnowledgeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} ({})", self.title, self.revision)?;
        writeln!(f, "knowledge version {}", self.version)?;
        writeln!(f, "status: {}", self.status)?;
        writeln!(
            f,
            "variants: {} ({} imaging, {} treatment)",
            self.variants, self.imaging_variants, self.treatment_variants
        )?;
        let cats: Vec<String> = self
            .rating_rows_by_category
            .iter()
            .map(|(c, n)| format!("{}: {n}", c.label()))
            .collect();
        writeln!(f, "rating rows: {} ({})", self.rating_rows, cats.join(", "))?;
        writeln!(
            f,
            "procedures: {} ({} imaging, {} treatment; {} with a referral matcher)",
            self.procedures,
            self.imaging_procedures,
            self.treatment_procedures,
            self.referral_matchers
        )?;
        let systems: Vec<String> = self
            .order_codes_by_system
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        writeln!(
            f,
            "order codes: {} ({}); match-only: {}",
            self.order_codes,
            systems.join(", "),
            self.match_only_codes
        )?;
        let empty = if self.empty_value_sets.is_empty() {
            "none".to_string()
        } else {
            self.empty_value_sets.join(", ")
        };
        writeln!(
            f,
            "value sets: {} with {} codes; empty (fact from clinician / reports): {} ({})",
            self.value_sets,
            self.value_set_codes,
            self.empty_value_sets.len(),
            empty
        )?;
        writeln!(f, "value-set exclusions: {}", self.value_set_exclusions)?;
        writeln!(
            f,
            "evidence policy: {} facts; must be evidenced when present: {}",
            self.evidence_policies,
            self.must_evidence.join(", ")
        )?;
        writeln!(
            f,
            "report findings: {} with {} phrases",
            self.report_findings, self.report_phrases
        )?;
        let [a, b, c] = self.sources_by_confidence;
        writeln!(f, "sourced entries by confidence: A {a}, B {b}, C {c}")?;
        write!(
            f,
            "override reasons: {}; related topics: {}",
            self.override_reasons, self.related_topics
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loinc_check_digits() {
        for ok in [
            "2160-0", "24531-6", "30667-0", "98979-8", "87091-5", "8302-2",
        ] {
            assert!(loinc_check_digit_ok(ok), "{ok}");
        }
        for bad in [
            "2160-1", "30667-1", "98979-0", "87091-4", "2160", "2160-", "-0", "21a0-0",
        ] {
            assert!(!loinc_check_digit_ok(bad), "{bad}");
        }
    }

    #[test]
    fn verhoeff_check_digits() {
        for ok in [
            "42942008",
            "363346000",
            "279039007",
            "3457005",
            "108290001",
            "1287742003",
        ] {
            assert!(verhoeff_ok(ok), "{ok}");
        }
        // 447766008 is the unverified "vertebral augmentation" code of research §3.3.
        for bad in ["42942009", "447766008", "279039008", "12a"] {
            assert!(!verhoeff_ok(bad), "{bad}");
        }
    }

    #[test]
    fn code_shapes() {
        assert!(is_cpt("72148") && is_cpt("0001U") && !is_cpt("7214") && !is_cpt("A9552"));
        assert!(is_hcpcs("A9552") && !is_hcpcs("72148") && !is_hcpcs("a9552"));
        assert!(is_icd10cm("M48.56XA") && is_icd10cm("Z91.041") && is_icd10cm("C96"));
        assert!(!is_icd10cm("M48.") && !is_icd10cm("M4856") && !is_icd10cm("m48.5"));
        assert!(is_icd10cm_prefix("C") && is_icd10cm_prefix("Z85") && is_icd10cm_prefix("M48.5"));
        assert!(!is_icd10cm_prefix("") && !is_icd10cm_prefix("5"));
        assert!(is_rpid("RPID541") && !is_rpid("RPID") && !is_rpid("RID541"));
        assert!(is_nucc("207XS0117X") && is_nucc("2085R0001X") && !is_nucc("207XS0117"));
        assert!(
            is_sctid_shape("3457005") && !is_sctid_shape("12345") && !is_sctid_shape("0457005")
        );
        assert!(sctid_is_concept("42942008") && !sctid_is_concept("42942018"));
        assert_eq!(
            KnownSystem::Snomed.code_problem("42942009").as_deref(),
            Some("SNOMED CT code \"42942009\" fails the Verhoeff check digit")
        );
    }

    #[test]
    fn systems_are_recognised_by_any_uri() {
        assert_eq!(
            KnownSystem::from_uri("http://www.ama-assn.org/go/cpt"),
            Some(KnownSystem::Cpt)
        );
        assert_eq!(
            KnownSystem::from_uri("http://www.radlex.org"),
            Some(KnownSystem::RadLex)
        );
        assert_eq!(KnownSystem::from_uri("http://example.org/x"), None);
    }
}

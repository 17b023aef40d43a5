//! Order recognition: a draft ServiceRequest's codings mapped to an ACR procedure of the
//! guideline, with the spine region and contrast the order asks for.
//!
//! "Spine area of interest" in ACR wording means any spine region, so recognition is by
//! procedure (modality + contrast); the region is kept to build alternatives for the same
//! region.

use crate::fhir::ServiceRequest;
use crate::index::Engine;
use crate::knowledge::Region;
use crate::types::RecognizedProcedure;

/// A recognised order, by procedure index.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// Index into `Knowledge::procedures`.
    pub procedure: usize,
    /// Region of the matched code (refined by other codings and the bodySite text).
    pub region: Region,
    /// `system|code` of the coding that identified the procedure.
    pub matched_code: String,
}

impl Recognition {
    pub fn to_public(&self, engine: &Engine) -> RecognizedProcedure {
        let p = &engine.knowledge().procedures[self.procedure];
        RecognizedProcedure {
            procedure_id: p.id.clone(),
            procedure_name: p.name.clone(),
            region: self.region,
            contrast: p.contrast,
            matched_code: self.matched_code.clone(),
        }
    }
}

/// Ranks regions by how precisely they locate the order (higher is better).
fn precision(r: Region) -> u8 {
    match r {
        Region::SpineUnspecified => 0,
        Region::NotApplicable => 1,
        Region::Body => 2,
        _ => 3,
    }
}

/// Maps a draft ServiceRequest to a procedure of the guideline, if any.
///
/// Every coding is looked up; the procedure named by most codings wins (so that a
/// myelography injection code plus a CT-with-contrast code identify CT myelography), ties go
/// to the first coding. Orders without a procedure code are tried as referrals (category +
/// specialty).
pub fn recognize(engine: &Engine, sr: &ServiceRequest) -> Option<Recognition> {
    let mut best: Option<(usize, u32, Region, String)> = None;
    // (procedure, votes, region, matched) per distinct procedure, in first-seen order.
    let mut seen: Vec<(usize, u32, Region, String)> = Vec::new();
    if let Some(code) = &sr.code {
        for (system, c) in code.codes() {
            for hit in engine.order_codes_of(system, c) {
                let proc_idx = hit.procedure as usize;
                let oc = &engine.knowledge().procedures[proc_idx].codes[hit.code as usize];
                match seen.iter_mut().find(|s| s.0 == proc_idx) {
                    Some(s) => {
                        s.1 += 1;
                        if precision(oc.region) > precision(s.2) {
                            s.2 = oc.region;
                        }
                    }
                    None => seen.push((proc_idx, 1, oc.region, format!("{system}|{c}"))),
                }
            }
        }
    }
    for s in seen {
        if best.as_ref().is_none_or(|b| s.1 > b.1) {
            best = Some(s);
        }
    }
    if let Some((procedure, _, mut region, matched_code)) = best {
        if region == Region::SpineUnspecified
            && let Some(r) = region_from_body_site(sr)
        {
            region = r;
        }
        return Some(Recognition {
            procedure,
            region,
            matched_code,
        });
    }
    recognize_referral(engine, sr)
}

fn recognize_referral(engine: &Engine, sr: &ServiceRequest) -> Option<Recognition> {
    for r in &engine.referrals {
        let is_referral = sr
            .category
            .iter()
            .flat_map(|c| c.codes())
            .any(|(s, c)| engine.in_refs(&r.category, s, c));
        if !is_referral {
            continue;
        }
        let specialty = sr
            .performer_type
            .iter()
            .chain(sr.code.iter())
            .flat_map(|c| c.codes())
            .find(|(s, c)| engine.in_refs(&r.specialty, s, c));
        if let Some((s, c)) = specialty {
            return Some(Recognition {
                procedure: r.procedure as usize,
                region: Region::NotApplicable,
                matched_code: format!("{s}|{c}"),
            });
        }
    }
    None
}

/// Spine region named in the order's bodySite (text or coding display), e.g. "Lumbar spine".
/// Used only when the order code itself does not state the region.
pub fn region_from_body_site(sr: &ServiceRequest) -> Option<Region> {
    let (mut c, mut t, mut l) = (false, false, false);
    for bs in &sr.body_site {
        let texts = bs
            .text
            .iter()
            .chain(bs.coding.iter().filter_map(|c| c.display.as_ref()));
        for text in texts {
            let lower = text.to_ascii_lowercase();
            c |= lower.contains("cervical");
            t |= lower.contains("thoracic");
            l |= lower.contains("lumbar");
        }
    }
    match (c, t, l) {
        (true, false, false) => Some(Region::Cervical),
        (false, true, false) => Some(Region::Thoracic),
        (false, false, true) => Some(Region::Lumbar),
        (true, true, false) => Some(Region::CervicalThoracic),
        (false, true, true) => Some(Region::ThoracicLumbar),
        (true, false, true) => Some(Region::CervicalLumbar),
        (true, true, true) => Some(Region::WholeSpine),
        (false, false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::FhirResource;
    use crate::index::test_kb;

    fn sr(json: &str) -> ServiceRequest {
        ServiceRequest::parse(json, "t").unwrap()
    }

    #[test]
    fn recognises_by_any_system_alias() {
        let e = test_kb::engine();
        let r = recognize(
            &e,
            &sr(
                r#"{"resourceType":"ServiceRequest","code":{"coding":[{"system":"urn:oid:2.16.840.1.113883.6.12","code":"72148"}]}}"#,
            ),
        )
        .unwrap();
        assert_eq!(e.knowledge().procedures[r.procedure].id, "MRI_SPINE_WO");
        assert_eq!(r.region, Region::Lumbar);
    }

    #[test]
    fn generic_codes_take_the_region_from_other_codings_or_body_site() {
        let e = test_kb::engine();
        let r = recognize(
            &e,
            &sr(
                r#"{"resourceType":"ServiceRequest","code":{"coding":[{"system":"http://loinc.org","code":"36531-2"}]},"bodySite":[{"text":"Thoracic spine"}]}"#,
            ),
        )
        .unwrap();
        assert_eq!(r.region, Region::Thoracic);
        let r = recognize(
            &e,
            &sr(
                r#"{"resourceType":"ServiceRequest","code":{"coding":[{"system":"http://loinc.org","code":"36531-2"},{"system":"http://www.ama-assn.org/go/cpt","code":"72148"}]}}"#,
            ),
        )
        .unwrap();
        assert_eq!(r.region, Region::Lumbar);
        assert_eq!(r.matched_code, "http://loinc.org|36531-2");
    }

    #[test]
    fn unrelated_orders_and_referrals() {
        let e = test_kb::engine();
        assert!(
            recognize(
                &e,
                &sr(
                    r#"{"resourceType":"ServiceRequest","code":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"71275"}]}}"#
                )
            )
            .is_none()
        );
        let r = recognize(
            &e,
            &sr(
                r#"{"resourceType":"ServiceRequest","category":[{"coding":[{"system":"http://snomed.info/sct","code":"3457005"}]}],"performerType":{"coding":[{"system":"http://snomed.info/sct","code":"394609007"}]}}"#,
            ),
        )
        .unwrap();
        assert_eq!(e.knowledge().procedures[r.procedure].id, "SURGICAL_CONSULT");
    }
}

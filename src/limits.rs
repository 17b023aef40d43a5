//! Input limits that protect the service from hostile JSON (issue 5, point 5), applied before
//! and during request parsing.

/// Deepest JSON nesting accepted in a request body. Real CDS Hooks requests, prefetch Bundles
/// included, stay far below this; anything deeper is rejected before it is deserialized
/// (checked by `vcf_engine::json_text::minify`, in its pass over the text).
pub const MAX_JSON_DEPTH: usize = 100;

/// Resource types that do not exist in FHIR R4 (renamed or removed after DSTU2/STU3), with the
/// version they come from. Sent as draft orders they mean the client speaks another FHIR
/// version, which this service does not read.
pub fn pre_r4_resource_type(resource_type: &str) -> Option<&'static str> {
    Some(match resource_type {
        "ProcedureRequest" | "ReferralRequest" => "STU3; R4 uses ServiceRequest",
        "DiagnosticOrder" => "DSTU2; R4 uses ServiceRequest",
        "DiagnosticRequest" => "STU3 draft; R4 uses ServiceRequest",
        "MedicationOrder" => "DSTU2; R4 uses MedicationRequest",
        "DeviceUseRequest" => "DSTU2; R4 uses DeviceRequest",
        "Order" | "OrderResponse" => "DSTU2; R4 uses Task",
        "ProcessRequest" | "ProcessResponse" => "STU3; removed in R4",
        "EligibilityRequest" | "EligibilityResponse" => "STU3; R4 uses CoverageEligibility*",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_r4_types() {
        assert!(pre_r4_resource_type("ProcedureRequest").is_some());
        assert!(pre_r4_resource_type("MedicationOrder").is_some());
        assert!(pre_r4_resource_type("ServiceRequest").is_none());
        assert!(pre_r4_resource_type("MedicationRequest").is_none());
    }
}

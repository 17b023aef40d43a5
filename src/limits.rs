//! Input limits that protect the service from hostile JSON (issue 5, point 5), applied before
//! and during request parsing.

/// Deepest JSON nesting accepted in a request body. Real CDS Hooks requests, prefetch Bundles
/// included, stay far below this; anything deeper is rejected before it is deserialized.
pub const MAX_JSON_DEPTH: usize = 100;

/// True when `bytes` (JSON text) nests arrays/objects deeper than `max`. A single linear scan
/// that skips string contents; it does not validate the JSON. String contents (most of a FHIR
/// body) are skipped with `memchr` to the next quote or backslash (issue 12: the byte-by-byte
/// loop was 8 % of a hook call's instructions). Outside strings the segments are a few bytes
/// (`": "`, `, `), too short for `memchr` to pay: a byte loop is cheaper there.
pub fn json_too_deep(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Inside a string: only `"` (its end) and `\` (escapes the next byte) matter.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                        None => return false,
                        Some(j) if bytes[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j + 1;
                            break;
                        }
                    }
                    if i >= bytes.len() {
                        return false;
                    }
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            // Indentation of pretty-printed JSON: eight spaces at a time.
            b' ' => {
                while bytes.get(i + 1..i + 9) == Some(b"        ") {
                    i += 8;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

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
    fn depth() {
        assert!(!json_too_deep(br#"{"a":[[1]]}"#, 3));
        assert!(json_too_deep(br#"{"a":[[[1]]]}"#, 3));
        // Brackets inside strings (and escaped quotes) do not count.
        assert!(!json_too_deep(br#"{"a":"[[[[\"[[[[","b":[1]}"#, 2));
        assert!(json_too_deep("[".repeat(200).as_bytes(), MAX_JSON_DEPTH));
        // A backslash at the very end, an unterminated string, an escaped backslash before
        // the closing quote.
        assert!(!json_too_deep(br#"{"a":"\"#, 1));
        assert!(!json_too_deep(br#"{"a":"[[[["#, 1));
        assert!(json_too_deep(br#"{"a":"\\",[[1]]}"#, 2));
        assert!(!json_too_deep(br#"{"a":"\\",[1]}"#, 2));
        // Closing brackets bring the depth back down (and never below zero).
        assert!(!json_too_deep(
            br#"]]]{"a":[1],"b":[[2]],"c":{"d":[3]}}"#,
            3
        ));
        assert!(json_too_deep(
            br#"]]]{"a":[1],"b":[[2]],"c":{"d":[[3]]}}"#,
            3
        ));
        // Runs of spaces of every length around the eight-at-a-time skip.
        for n in 0..20 {
            let pad = " ".repeat(n);
            let deep = format!("{{{pad}[{pad}[{pad}1]]}}");
            assert!(json_too_deep(deep.as_bytes(), 2), "{n}");
            assert!(!json_too_deep(deep.as_bytes(), 3), "{n}");
        }
    }

    /// The byte-by-byte scan the memchr version replaced, as the reference.
    fn too_deep_bytewise(bytes: &[u8], max: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in bytes {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    proptest::proptest! {
        #[test]
        fn depth_matches_the_bytewise_scan(
            text in proptest::collection::vec(proptest::sample::select(b"[]{}\"\\a   ,".to_vec()), 0..64),
            max in 0usize..6,
        ) {
            proptest::prop_assert_eq!(json_too_deep(&text, max), too_deep_bytewise(&text, max));
        }
    }

    #[test]
    fn pre_r4_types() {
        assert!(pre_r4_resource_type("ProcedureRequest").is_some());
        assert!(pre_r4_resource_type("MedicationOrder").is_some());
        assert!(pre_r4_resource_type("ServiceRequest").is_none());
        assert!(pre_r4_resource_type("MedicationRequest").is_none());
    }
}

//! Request parsing: `vcf_cds::cds::request::parse` on arbitrary bytes, for both hooks.
//! Invariants: never panics; every rejection is a 4xx whose OperationOutcome serializes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcf_engine::evaluate::Hook;

fuzz_target!(|data: &[u8]| {
    for hook in [Hook::OrderSelect, Hook::OrderSign] {
        if let Err(e) = vcf_cds::cds::request::parse(data, hook, 100) {
            assert!(e.status.is_client_error(), "parse answered {}", e.status);
            let outcome = e.outcome();
            assert_eq!(outcome["resourceType"], "OperationOutcome");
            let _ = outcome.to_string();
        }
    }
});

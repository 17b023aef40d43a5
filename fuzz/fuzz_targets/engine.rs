//! The engine on parsed input: the whole hook pipeline (`vcf_cds::cds::pipeline::process`:
//! parse, prefetch interpretation, evaluation, response check) on arbitrary bytes. No FHIR server
//! is trusted (the listen address is not loopback and the trusted list is empty), so nothing is
//! ever fetched. Invariants: never panics; never a 5xx; an accepted request yields a response
//! that passes `CdsResponse::check` (enforced inside the pipeline, which would answer 500).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vcf_cds::cds::{discovery, pipeline};
use vcf_cds::configuration::Settings;
use vcf_cds::startup::AppState;

struct Harness {
    rt: tokio::runtime::Runtime,
    state: AppState,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let settings = Settings {
            // Never bound: only makes the loopback FHIR rule inapplicable.
            listen: "192.0.2.1:8080".into(),
            ..Settings::default()
        };
        Harness {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap(),
            state: AppState::new(settings).unwrap(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    for service in discovery::SERVICES {
        match h.rt.block_on(pipeline::process(&h.state, service, data)) {
            Ok(processed) => {
                let _ = processed.body.to_string();
            }
            Err(e) => assert!(
                !e.status.is_server_error(),
                "{} answered {}: {:?}",
                service.id,
                e.status,
                e.issues
            ),
        }
    }
});

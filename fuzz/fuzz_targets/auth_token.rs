//! The JWT verifier on arbitrary `Authorization` header values (attacker-controlled input that
//! is parsed before anything is authenticated). Issuers: the spec's example issuer (inline key,
//! jku pinned) and the sandbox issuer. Invariant: never panics; nothing random verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vcf_cds::auth::Authenticator;
use vcf_cds::configuration::{Settings, TrustedIssuer};

const SPEC_JWKS: &str = r#"{"keys":[{"kty":"EC","use":"sig","crv":"P-384","kid":"example-kid",
"x":"46SDH7Znh821wblCBglA61sNE9ZrHYKKt3qRtRTmSXyOI_FIGBLWrWa0GPUkDCEk",
"y":"XMcRuuoGW7CXjQdy-F5i3FeBE0x9hPLdeFdSoDd3ELmx404tLX0VRRcqzAsPhXcI","alg":"ES384"}]}"#;

struct Harness {
    rt: tokio::runtime::Runtime,
    auth: Authenticator,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("vcf-cds-fuzz-jwks-{}.json", std::process::id()));
        std::fs::write(&path, SPEC_JWKS).unwrap();
        let settings = Settings {
            trust_sandbox: true,
            trusted_issuers: vec![TrustedIssuer {
                iss: "https://fhir-ehr.example.com/".into(),
                jwks_url: None,
                jwks_file: Some(path),
                algorithms: vec!["ES384".into(), "RS384".into()],
                tenant: None,
                jku_allowlist: vec!["https://fhir-ehr.example.com/jwk_uri".into()],
                fhir_servers: vec![],
            }],
            ..Settings::default()
        };
        Harness {
            rt: tokio::runtime::Builder::new_current_thread().build().unwrap(),
            auth: Authenticator::new(&settings).unwrap(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let h = harness();
    let aud = "https://cds.example.org/cds-services/some-service";
    for header in [text.to_owned(), format!("Bearer {text}")] {
        let r = h.rt.block_on(h.auth.verify_jwt(Some(&header), aud));
        assert!(r.is_err(), "a fuzzed token verified");
    }
});

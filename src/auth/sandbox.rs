//! The public CDS Hooks sandbox as a trusted issuer (`trust_sandbox = true`): **testing only**.
//!
//! The sandbox (<https://sandbox.cds-hooks.org>) signs its JWTs with an ES384 key whose
//! **private half is committed to its public repository** (`keys/ecprivkey.pem` in
//! `cds-hooks/sandbox`). Anyone can therefore mint a JWT that verifies as "the sandbox". Trusting
//! this issuer is only acceptable on a test deployment holding no real patient data.
//!
//! Only the PUBLIC key is embedded here. Source: repository `cds-hooks/sandbox`, file
//! `.well-known/jwks.json` at commit `c6cc0da41d06884e1ad4f5169c0bcffcd58192f6`, served by the
//! sandbox as `https://sandbox.cds-hooks.org/.well-known/jwks.json` (the `jku` its JWTs carry).
//! It is never fetched: the `jku` is pinned to this embedded copy.

/// `iss` of the sandbox's JWTs.
pub const SANDBOX_ISS: &str = "https://sandbox.cds-hooks.org";

/// `jku` header value of the sandbox's JWTs (mapped to [`SANDBOX_JWKS`], never fetched).
pub const SANDBOX_JWKS_URL: &str = "https://sandbox.cds-hooks.org/.well-known/jwks.json";

/// `kid` of the sandbox's signing key.
pub const SANDBOX_KID: &str = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f";

/// The sandbox's public JWK Set (public key only).
pub const SANDBOX_JWKS: &str = r#"{
  "keys": [
    {
      "kty": "EC",
      "use": "sig",
      "crv": "P-384",
      "kid": "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f",
      "x": "dw_JGR8nB2I6XveNxUOl2qk699ZPLM2nYI5STSdiEl9avAkrm3CkfYMbrrjr8laB",
      "y": "Sm3mLE-n1zYNla_aiE3cb3nZsL51RbC7ysw3q8aJLxGm-hx79RPMYpITDjp7kgzy",
      "alg": "ES384"
    }
  ]
}"#;

/// The warning logged at start-up when the sandbox issuer is trusted.
pub const SANDBOX_WARNING: &str = "trust_sandbox is on: JWTs from https://sandbox.cds-hooks.org \
are accepted, and that issuer's PRIVATE KEY IS PUBLIC (committed to its open-source repository). \
Anyone can forge these tokens. Use this only on a test deployment without real patient data.";

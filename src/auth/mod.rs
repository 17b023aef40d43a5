//! Authentication of CDS clients per CDS Hooks 2.0 "Trusting CDS Clients".
//!
//! Every service and feedback call (and discovery unless `open_discovery`) carries
//! `Authorization: Bearer <JWT>` signed by a trusted issuer. [`Authenticator::verify`] checks, in
//! order: a well-formed bearer token of bounded size; a header with `alg` in the issuer's
//! allowlist (never `none`, never HMAC), `kid` present, `typ` absent or `JWT`, no `crit`; a
//! payload whose `iss` (and `tenant`, when configured) selects a trusted issuer; the key chosen
//! by `kid` from the issuer's JWK Set (`jwks_file`, `jwks_url`, or the header's `jku` only when
//! it is on that issuer's allowlist); the signature; `aud` equal to the exact URL called;
//! `exp`, `iat` and `nbf` within a small clock skew and a bounded lifetime; a `jti` not seen
//! before (then remembered until the token expires).
//!
//! Any failure is a 401 whose OperationOutcome says only "authentication failed"; the precise
//! reason is logged at debug level. Tokens are never logged; `iss`, `tenant`, `kid` and `jti`
//! may be.

pub mod jwks;
pub mod middleware;
pub mod replay;
pub mod sandbox;

use crate::configuration::{Settings, TrustedIssuer};
use crate::error::{ApiError, IssueType};
use actix_web::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, PublicKeyUse};
use jwks::{JwksOptions, KeySet, KeySource, RemoteJwks};
use replay::{ReplayError, ReplayStore};
use serde::Deserialize;
use std::str::FromStr;
use std::sync::Arc;
use url::Url;

/// Accepted difference between our clock and the client's, in seconds.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// Tokens whose `exp` is further than this in the future are refused (CDS clients issue
/// five-minute tokens); this also bounds the replay store.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 3600;
/// Largest accepted bearer token.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest accepted `jti`.
pub const MAX_JTI_CHARS: usize = 256;
/// Realm in `WWW-Authenticate`.
pub const REALM: &str = "vcf-cds";

/// Algorithms an issuer may be configured with. `none` and every HMAC algorithm are refused by
/// construction (CDS Hooks: "SHALL NOT").
pub const ALLOWED_ALGORITHMS: &[&str] = &[
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// Who made the call. Put into the request extensions by the middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedClient {
    /// A verified JWT.
    Jwt {
        iss: String,
        tenant: Option<String>,
        jti: String,
        kid: String,
    },
    /// Open mode (no trusted issuer configured): nobody was authenticated.
    Anonymous,
}

impl VerifiedClient {
    pub fn iss(&self) -> Option<&str> {
        match self {
            VerifiedClient::Jwt { iss, .. } => Some(iss),
            VerifiedClient::Anonymous => None,
        }
    }

    pub fn tenant(&self) -> Option<&str> {
        match self {
            VerifiedClient::Jwt { tenant, .. } => tenant.as_deref(),
            VerifiedClient::Anonymous => None,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, VerifiedClient::Anonymous)
    }
}

/// How the service authenticates its callers, decided once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// JWTs from the configured issuers are required.
    Jwt,
    /// No issuer configured, listening on loopback only: calls are not authenticated.
    OpenLoopback,
    /// No issuer configured on a non-loopback address, explicitly allowed with
    /// `--allow-unauthenticated` / `allow_unauthenticated = true`.
    OpenUnauthenticated,
}

impl AuthMode {
    /// The start-up warning for this mode, if any (logged by `Application::build`).
    pub fn warning(&self, settings: &Settings) -> Option<String> {
        match self {
            AuthMode::Jwt => None,
            AuthMode::OpenLoopback => Some(format!(
                "!!! AUTHENTICATION IS OFF: no trusted_issuers are configured, so CDS calls on \
                 {} are NOT authenticated. This is allowed only because the service listens on \
                 a loopback address (local testing). Configure trusted_issuers before exposing \
                 it.",
                settings.listen
            )),
            AuthMode::OpenUnauthenticated => Some(format!(
                "!!! AUTHENTICATION IS OFF ON A NON-LOOPBACK ADDRESS ({}): allow_unauthenticated \
                 is set and no trusted_issuers are configured. ANYONE WHO CAN REACH THIS PORT \
                 CAN CALL THE SERVICE. Never run like this with real patient data.",
                settings.listen
            )),
        }
    }
}

/// Decides the authentication mode, or refuses to start.
pub fn startup_mode(settings: &Settings) -> Result<AuthMode, String> {
    if !settings.trusted_issuers.is_empty() || settings.trust_sandbox {
        return Ok(AuthMode::Jwt);
    }
    if settings.listens_on_loopback() {
        return Ok(AuthMode::OpenLoopback);
    }
    if settings.allow_unauthenticated {
        return Ok(AuthMode::OpenUnauthenticated);
    }
    Err(format!(
        "refusing to start: no trusted_issuers are configured and {} is not a loopback address, \
         so anyone could call the service unauthenticated. Configure trusted_issuers (see \
         docs/security.md), listen on 127.0.0.1, or pass --allow-unauthenticated (testing only).",
        settings.listen
    ))
}

/// Why a token was refused. Logged at debug level; never sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no Authorization header")]
    MissingHeader,
    #[error("more than one Authorization header")]
    MultipleHeaders,
    #[error("Authorization header is not a Bearer token")]
    NotBearer,
    #[error("bearer token is not a compact JWS")]
    Malformed,
    #[error("bearer token larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("JWT header invalid: {0}")]
    BadHeader(&'static str),
    #[error("algorithm {0:?} is not accepted")]
    AlgorithmNotAllowed(String),
    #[error("JWT claims invalid: {0}")]
    BadClaims(&'static str),
    #[error("issuer {0:?} is not trusted")]
    UntrustedIssuer(String),
    #[error("tenant does not match the trusted issuer's tenant")]
    TenantMismatch,
    #[error("jku is not on the issuer's allowlist")]
    JkuNotAllowed,
    #[error("no key with this kid in the issuer's JWK Set")]
    UnknownKid,
    #[error("the issuer's JWK Set could not be obtained")]
    KeysUnavailable,
    #[error("key does not fit the algorithm")]
    KeyMismatch,
    #[error("signature invalid")]
    BadSignature,
    #[error("aud does not name the endpoint called")]
    WrongAudience,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error("token lifetime too long")]
    LifetimeTooLong,
    #[error("jti already used")]
    Replayed,
    #[error("replay store full")]
    ReplayStoreFull,
}

impl AuthFailure {
    /// The 401 answer: no detail beyond "authentication failed".
    pub fn to_api_error(&self) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            IssueType::Login,
            "authentication failed",
        );
        e.www_authenticate = Some(match self {
            AuthFailure::MissingHeader => format!("Bearer realm=\"{REALM}\""),
            _ => format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
        });
        e
    }
}

/// Seconds since the Unix epoch; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// Knobs of the verifier (defaults are the production values).
#[derive(Clone)]
pub struct AuthOptions {
    pub jwks: JwksOptions,
    pub clock: Clock,
    pub clock_skew_secs: i64,
    pub max_token_lifetime_secs: i64,
    pub replay_max_entries: usize,
    /// Outbound client for key fetching; `None` builds [`crate::outbound::client`].
    pub http_client: Option<reqwest::Client>,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            jwks: JwksOptions::default(),
            clock: system_clock(),
            clock_skew_secs: CLOCK_SKEW_SECS,
            max_token_lifetime_secs: MAX_TOKEN_LIFETIME_SECS,
            replay_max_entries: replay::DEFAULT_MAX_ENTRIES,
            http_client: None,
        }
    }
}

struct IssuerVerifier {
    iss: String,
    tenant: Option<String>,
    algorithms: Vec<Algorithm>,
    /// Used when the token has no `jku`.
    default_source: Arc<KeySource>,
    /// `jku` values honoured, with their key source (`jwks_url` is implicitly on the list).
    jku_sources: Vec<(Url, Arc<KeySource>)>,
}

/// Verifies CDS client JWTs. Built once at start-up; cheap to share (`web::Data`).
pub struct Authenticator {
    mode: AuthMode,
    base_url: String,
    open_discovery: bool,
    issuers: Vec<IssuerVerifier>,
    replay: ReplayStore,
    /// Refused tokens by reason (registered with the metrics at start-up).
    failures: crate::metrics::JwtFailures,
    clock: Clock,
    skew: i64,
    max_lifetime: i64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.mode)
            .field("base_url", &self.base_url)
            .field(
                "issuers",
                &self.issuers.iter().map(|i| &i.iss).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Authenticator {
    /// Builds the verifier from the settings; fails on an unusable issuer configuration or when
    /// [`startup_mode`] refuses to start.
    pub fn new(settings: &Settings) -> Result<Authenticator, String> {
        Self::with_options(settings, AuthOptions::default())
    }

    pub fn with_options(
        settings: &Settings,
        options: AuthOptions,
    ) -> Result<Authenticator, String> {
        let mode = startup_mode(settings)?;
        let client = match options.http_client.clone() {
            Some(c) => c,
            None => RemoteJwks::default_client(&options.jwks)?,
        };
        let mut issuers = Vec::new();
        for cfg in &settings.trusted_issuers {
            issuers.push(build_issuer(cfg, &client, &options.jwks)?);
        }
        if settings.trust_sandbox {
            let set = Arc::new(
                KeySet::parse(sandbox::SANDBOX_JWKS.as_bytes())
                    .map_err(|e| format!("embedded sandbox JWKS: {e}"))?,
            );
            let source = Arc::new(KeySource::Static(set));
            let jku = Url::parse(sandbox::SANDBOX_JWKS_URL).map_err(|e| e.to_string())?;
            issuers.push(IssuerVerifier {
                iss: sandbox::SANDBOX_ISS.into(),
                tenant: None,
                algorithms: vec![Algorithm::ES384],
                default_source: source.clone(),
                jku_sources: vec![(jku, source)],
            });
        }
        Ok(Authenticator {
            mode,
            base_url: settings.base_url(),
            open_discovery: settings.open_discovery,
            issuers,
            replay: ReplayStore::for_audit_db(&settings.audit_db, options.replay_max_entries),
            failures: Default::default(),
            clock: options.clock,
            skew: options.clock_skew_secs,
            max_lifetime: options.max_token_lifetime_secs,
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Whether `jti`s are remembered in the shared PostgreSQL store (replicas) or in memory.
    pub fn replay_shared(&self) -> bool {
        self.replay.is_shared()
    }

    /// The refused-token counter family (for `GET /metrics`).
    pub fn failure_metrics(&self) -> crate::metrics::JwtFailures {
        self.failures.clone()
    }

    /// Counts one refused token.
    pub fn count_failure(&self, failure: &AuthFailure) {
        self.failures
            .get_or_create(&crate::metrics::ReasonLabels {
                reason: crate::metrics::jwt_reason(failure).to_owned(),
            })
            .inc();
    }

    /// `Settings::base_url()`: the audience prefix.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn open_discovery(&self) -> bool {
        self.open_discovery
    }

    /// Verifies the `Authorization` header value of a call to `audience` (the exact URL called:
    /// base URL + path, no query). Open mode answers [`VerifiedClient::Anonymous`] without
    /// looking at the header.
    pub async fn verify(
        &self,
        authorization_header: Option<&str>,
        audience: &str,
    ) -> Result<VerifiedClient, ApiError> {
        if self.mode != AuthMode::Jwt {
            return Ok(VerifiedClient::Anonymous);
        }
        match self.verify_jwt(authorization_header, audience).await {
            Ok(client) => {
                if let VerifiedClient::Jwt {
                    iss,
                    tenant,
                    jti,
                    kid,
                } = &client
                {
                    tracing::debug!(%iss, tenant = tenant.as_deref(), %kid, %jti, "CDS client authenticated");
                }
                Ok(client)
            }
            Err(failure) => {
                tracing::debug!(reason = %failure, "authentication failed");
                self.count_failure(&failure);
                Err(failure.to_api_error())
            }
        }
    }

    /// The verification itself, with the precise failure (tests assert on it).
    pub async fn verify_jwt(
        &self,
        authorization_header: Option<&str>,
        audience: &str,
    ) -> Result<VerifiedClient, AuthFailure> {
        let token = bearer_token(authorization_header)?;
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthFailure::Malformed);
        };
        if h64.is_empty() || p64.is_empty() {
            return Err(AuthFailure::Malformed);
        }
        let header: RawHeader = decode_part(h64).ok_or(AuthFailure::BadHeader("not JSON"))?;
        let alg_name = header
            .alg
            .as_deref()
            .ok_or(AuthFailure::BadHeader("no alg"))?;
        if !ALLOWED_ALGORITHMS.contains(&alg_name) {
            return Err(AuthFailure::AlgorithmNotAllowed(truncate(alg_name)));
        }
        let alg = Algorithm::from_str(alg_name)
            .map_err(|_| AuthFailure::AlgorithmNotAllowed(truncate(alg_name)))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or(AuthFailure::BadHeader("no kid"))?;
        if kid.is_empty() || kid.len() > 256 {
            return Err(AuthFailure::BadHeader("kid empty or too long"));
        }
        if let Some(typ) = &header.typ
            && !typ.eq_ignore_ascii_case("JWT")
        {
            return Err(AuthFailure::BadHeader("typ is not JWT"));
        }
        if header.crit.is_some() {
            return Err(AuthFailure::BadHeader("crit is not supported"));
        }
        if s64.is_empty() {
            return Err(AuthFailure::Malformed);
        }

        // Unverified claims: only `iss`/`tenant` are used before the signature is checked, to
        // pick the issuer.
        let claims: RawClaims = decode_part(p64).ok_or(AuthFailure::BadClaims("not JSON"))?;
        let iss = claims
            .iss
            .as_deref()
            .ok_or(AuthFailure::BadClaims("no iss"))?;
        let issuer = self.select_issuer(iss, claims.tenant.as_deref())?;
        if !issuer.algorithms.contains(&alg) {
            return Err(AuthFailure::AlgorithmNotAllowed(alg_name.to_owned()));
        }
        let source = match &header.jku {
            None => issuer.default_source.clone(),
            Some(jku) => {
                let jku = Url::parse(jku).map_err(|_| AuthFailure::JkuNotAllowed)?;
                issuer
                    .jku_sources
                    .iter()
                    .find(|(u, _)| *u == jku)
                    .map(|(_, s)| s.clone())
                    .ok_or(AuthFailure::JkuNotAllowed)?
            }
        };
        let entry = source.key(kid).await?;
        check_key_fits(&entry.jwk, alg, alg_name)?;
        let message_len = h64.len() + 1 + p64.len();
        let ok =
            jsonwebtoken::crypto::verify(s64, &token.as_bytes()[..message_len], &entry.key, alg)
                .map_err(|_| AuthFailure::BadSignature)?;
        if !ok {
            return Err(AuthFailure::BadSignature);
        }

        // Verified claims.
        match &claims.aud {
            Some(Audience::One(a)) if a == audience => {}
            Some(Audience::Many(list)) if list.iter().any(|a| a == audience) => {}
            Some(_) => return Err(AuthFailure::WrongAudience),
            None => return Err(AuthFailure::BadClaims("no aud")),
        }
        let now = (self.clock)();
        let exp = numeric_date(&claims.exp)
            .ok_or(AuthFailure::BadClaims("exp missing or not a number"))?;
        let iat = numeric_date(&claims.iat)
            .ok_or(AuthFailure::BadClaims("iat missing or not a number"))?;
        if exp < now - self.skew {
            return Err(AuthFailure::Expired);
        }
        if iat > now + self.skew {
            return Err(AuthFailure::IssuedInFuture);
        }
        if claims.nbf.is_some() {
            let nbf =
                numeric_date(&claims.nbf).ok_or(AuthFailure::BadClaims("nbf not a number"))?;
            if nbf > now + self.skew {
                return Err(AuthFailure::NotYetValid);
            }
        }
        if exp > now + self.max_lifetime + self.skew {
            return Err(AuthFailure::LifetimeTooLong);
        }
        let jti = claims
            .jti
            .as_deref()
            .ok_or(AuthFailure::BadClaims("no jti"))?;
        if jti.is_empty() || jti.chars().count() > MAX_JTI_CHARS {
            return Err(AuthFailure::BadClaims("jti empty or too long"));
        }
        self.replay
            .check_and_insert(&issuer.iss, jti, exp + self.skew, now)
            .await
            .map_err(|e| match e {
                ReplayError::Replayed => AuthFailure::Replayed,
                ReplayError::Full => {
                    tracing::warn!("jti replay store is full; refusing new tokens");
                    AuthFailure::ReplayStoreFull
                }
            })?;
        Ok(VerifiedClient::Jwt {
            iss: issuer.iss.clone(),
            tenant: claims.tenant.clone(),
            jti: jti.to_owned(),
            kid: kid.to_owned(),
        })
    }

    fn select_issuer(
        &self,
        iss: &str,
        tenant: Option<&str>,
    ) -> Result<&IssuerVerifier, AuthFailure> {
        let mut any_iss = false;
        let mut fallback = None;
        for i in &self.issuers {
            if i.iss != iss {
                continue;
            }
            any_iss = true;
            match (&i.tenant, tenant) {
                (Some(t), Some(tt)) if t == tt => return Ok(i),
                (None, _) => fallback = fallback.or(Some(i)),
                _ => {}
            }
        }
        match fallback {
            Some(i) => Ok(i),
            None if any_iss => Err(AuthFailure::TenantMismatch),
            None => Err(AuthFailure::UntrustedIssuer(truncate(iss))),
        }
    }
}

fn build_issuer(
    cfg: &TrustedIssuer,
    client: &reqwest::Client,
    options: &JwksOptions,
) -> Result<IssuerVerifier, String> {
    let ctx = |m: String| format!("trusted_issuers {:?}: {m}", cfg.iss);
    if cfg.iss.is_empty() {
        return Err("trusted_issuers: empty iss".into());
    }
    let mut algorithms = Vec::new();
    for a in &cfg.algorithms {
        if !ALLOWED_ALGORITHMS.contains(&a.as_str()) {
            return Err(ctx(format!(
                "algorithm {a:?} is not accepted (allowed: {})",
                ALLOWED_ALGORITHMS.join(", ")
            )));
        }
        algorithms.push(Algorithm::from_str(a).map_err(|e| ctx(e.to_string()))?);
    }
    if algorithms.is_empty() {
        return Err(ctx("algorithms is empty".into()));
    }
    if cfg.jwks_url.is_some() && cfg.jwks_file.is_some() {
        return Err(ctx("set jwks_url or jwks_file, not both".into()));
    }
    let mut jku_urls = Vec::new();
    for raw in cfg.jwks_url.iter().chain(&cfg.jku_allowlist) {
        let url = crate::trust::check_key_url(raw).map_err(&ctx)?;
        if !jku_urls.contains(&url) {
            jku_urls.push(url);
        }
    }
    let remote = |url: &Url| {
        Arc::new(KeySource::Remote(Box::new(RemoteJwks::new(
            url.clone(),
            client.clone(),
            options.clone(),
        ))))
    };
    let (default_source, jku_sources) = match (&cfg.jwks_file, &cfg.jwks_url) {
        // Keys exchanged out of band: allowlisted `jku` values are accepted as labels of this
        // set and never fetched (pinned).
        (Some(path), _) => {
            let bytes = std::fs::read(path)
                .map_err(|e| ctx(format!("jwks_file {}: {e}", path.display())))?;
            let set = KeySet::parse(&bytes)
                .map_err(|e| ctx(format!("jwks_file {}: {e}", path.display())))?;
            if set.is_empty() {
                return Err(ctx(format!(
                    "jwks_file {}: no usable public key (EC or RSA with kid)",
                    path.display()
                )));
            }
            let source = Arc::new(KeySource::Static(Arc::new(set)));
            let jku = jku_urls.into_iter().map(|u| (u, source.clone())).collect();
            (source, jku)
        }
        // Keys fetched from `jwks_url` (implicitly an allowed `jku`); each other allowlisted
        // `jku` is fetched and cached on its own.
        (None, Some(_)) => {
            let jku: Vec<(Url, Arc<KeySource>)> =
                jku_urls.iter().map(|u| (u.clone(), remote(u))).collect();
            (jku[0].1.clone(), jku)
        }
        (None, None) => return Err(ctx("needs jwks_url or jwks_file".into())),
    };
    Ok(IssuerVerifier {
        iss: cfg.iss.clone(),
        tenant: cfg.tenant.clone(),
        algorithms,
        default_source,
        jku_sources,
    })
}

fn bearer_token(header: Option<&str>) -> Result<&str, AuthFailure> {
    let h = header.ok_or(AuthFailure::MissingHeader)?;
    if h.len() > MAX_TOKEN_BYTES + 16 {
        return Err(AuthFailure::TooLarge);
    }
    let (scheme, rest) = h.trim().split_once(' ').ok_or(AuthFailure::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::NotBearer);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthFailure::Malformed);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthFailure::TooLarge);
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(AuthFailure::Malformed);
    }
    Ok(token)
}

fn decode_part<T: serde::de::DeserializeOwned>(b64: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The JWS header fields we read. Duplicate fields make the header invalid (serde refuses
/// them), which rules out parser-differential tricks.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    jku: Option<String>,
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    jti: Option<String>,
    tenant: Option<String>,
}

/// A NumericDate (RFC 7519: seconds, possibly fractional) as whole seconds.
fn numeric_date(v: &Option<serde_json::Value>) -> Option<i64> {
    let n = v.as_ref()?.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.is_finite() && f.abs() < 1e15).then(|| f.floor() as i64)
}

/// The JWK must be a signing key of the family and curve the algorithm needs, and its `alg`
/// (when given) must be the header's.
fn check_key_fits(
    jwk: &jsonwebtoken::jwk::Jwk,
    alg: Algorithm,
    alg_name: &str,
) -> Result<(), AuthFailure> {
    if let Some(u) = &jwk.common.public_key_use
        && *u != PublicKeyUse::Signature
    {
        return Err(AuthFailure::KeyMismatch);
    }
    if let Some(ka) = &jwk.common.key_algorithm {
        let name = serde_json::to_value(ka).ok();
        if name.as_ref().and_then(|v| v.as_str()) != Some(alg_name) {
            return Err(AuthFailure::KeyMismatch);
        }
    }
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(AuthFailure::KeyMismatch)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables `VCF_CDS_<KEY>`, then command-line flags. One scheme for the whole product; every key
//! is documented in the configuration table, docs/configuration.md.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable prefix for every key (`VCF_CDS_LISTEN` overrides `listen`).
pub const ENV_PREFIX: &str = "VCF_CDS_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How a card's alternative is offered to the EHR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuggestionStyle {
    /// One `update` action on the draft order (Argonaut PAMA style, what the CDS Hooks
    /// sandbox's PAMA screen applies): new code, same everything else.
    Update,
    /// `delete` of the draft order + `create` of the alternative.
    Replace,
}

/// A secret from configuration (`admin_token`, `audit_pseudonym_key`), held in a
/// [`secrecy::SecretString`]: `Debug` prints `[REDACTED]`, it has no `Serialize`, and the text
/// is zeroed when dropped. Read it only where it is used, with [`Secret::expose`].
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(secrecy::SecretString);

impl Secret {
    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// Equality of configurations (tests); not used to check a presented token, which goes through
/// a constant-time comparison.
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.expose() == other.expose()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.into())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s.into())
    }
}

/// A CDS client (EHR) whose JWTs are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// Expected `iss` claim.
    pub iss: String,
    /// Where the issuer's JWK Set is fetched from (https, or loopback http for tests). Cached
    /// for an hour, refetched on an unknown `kid` at most every 30 s; also an accepted `jku`.
    /// Exactly one of `jwks_url` and `jwks_file` must be set.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A JWK Set file exchanged out of band (public keys only; read at start-up).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Accepted signature algorithms (default ES384 and RS384; also ES256, RS256, RS512, PS256,
    /// PS384, PS512). `none` and HMAC algorithms are refused at start-up.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Expected `tenant` claim, when the EHR sends one.
    #[serde(default)]
    pub tenant: Option<String>,
    /// `jku` header values honoured for this issuer; a token whose `jku` is neither on this list
    /// nor `jwks_url` is rejected without fetching it. With `jwks_url`, each listed URL is
    /// fetched (same limits); with `jwks_file`, listed URLs name the file's keys (never fetched).
    #[serde(default)]
    pub jku_allowlist: Vec<String>,
    /// FHIR server base URLs this issuer may send as `fhirServer` (in addition to
    /// `trusted_fhir_servers`).
    #[serde(default)]
    pub fhir_servers: Vec<String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["ES384".into(), "RS384".into()]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// Externally visible base URL (scheme://host[:port][/prefix]), used only for the JWT `aud`
    /// check (this + the request path); the service builds no links to itself.
    /// Default: `http://{listen}`.
    pub public_base_url: Option<String>,
    /// Browser origins allowed by CORS.
    pub cors_origins: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Most draft orders evaluated in one hook call; a request with more is refused (400), so
    /// the work and the answer per request stay bounded.
    pub max_draft_orders: usize,
    /// Per-call timeout for FHIR server fallback fetches.
    pub fhir_timeout_ms: u64,
    /// Overall deadline for all FHIR fetches of one hook call (the spec asks for ~500 ms answers).
    pub fhir_deadline_ms: u64,
    /// Searchset pages followed per prefetch query.
    pub fhir_max_pages: u32,
    /// Largest FHIR response body accepted from a FHIR server.
    pub fhir_max_response_bytes: usize,
    /// FHIR server base URLs the service may fetch from.
    pub trusted_fhir_servers: Vec<String>,
    /// CDS clients whose JWTs are accepted.
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Run without JWT verification on a non-loopback address (never in production).
    pub allow_unauthenticated: bool,
    /// Accept the public CDS Hooks sandbox's JWTs (its private key is public: testing only).
    pub trust_sandbox: bool,
    /// Keep `GET /cds-services` open when JWT verification is on.
    pub open_discovery: bool,
    /// Audit store: a SQLite file path (or `sqlite:` URL) or a `postgres://` URL. One setting
    /// switches the back end; the schema is migrated at start-up.
    pub audit_db: String,
    /// Directory of the audit spool used when the store is unavailable.
    pub audit_spool_dir: PathBuf,
    /// Key for pseudonymizing patient / user / encounter ids in audit records (HMAC-SHA-256);
    /// ids are stored as given when unset.
    /// A secret: redacted from `Debug`, never serialized.
    #[serde(skip_serializing)]
    pub audit_pseudonym_key: Option<Secret>,
    /// Audit records older than this many days are purged (0 keeps them forever).
    pub audit_retention_days: u32,
    /// How long a hook call waits for the audit store to commit its records before they go to
    /// the durable spool instead (the clinician's answer is never held longer than this).
    pub audit_write_timeout_ms: u64,
    /// How often the spool is replayed into the store (and an unreachable store re-tried) while
    /// there is a backlog.
    pub audit_retry_interval_ms: u64,
    /// Group commit: how long (microseconds) a commit may wait for hook calls that are still
    /// being evaluated, so that one transaction and one `fsync` serve more of them. Only while
    /// such calls exist; a lone call on an idle server is committed at once. 0 turns it off.
    pub audit_group_commit_wait_us: u64,
    /// Bearer token for the audit API and dashboard; both are off when unset.
    /// A secret: redacted from `Debug`, never serialized.
    #[serde(skip_serializing)]
    pub admin_token: Option<Secret>,
    /// Replacement knowledge file (default: the compiled-in ACR VCF 2022 knowledge).
    pub knowledge_file: Option<PathBuf>,
    /// Local policy, not ACR (which gives no window): a fracture dated within this many days of
    /// the order is new. Unset: the knowledge file's `policy.new_fracture_window_days` (42).
    pub new_fracture_window_days: Option<u32>,
    /// Local policy, not ACR: a fracture dated more than this many days before the order is not
    /// new; between the two windows "new" is unknown. Unset: the knowledge file's
    /// `policy.old_fracture_window_days` (365).
    pub old_fracture_window_days: Option<u32>,
    /// `/readyz` answers 503 (instead of 200 "degraded") while the audit store is unreachable.
    /// Off by default: the spool keeps advice flowing and the records durable meanwhile.
    pub ready_requires_audit_store: bool,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish after the listener
    /// stops accepting (then open connections are closed and the audit trail is flushed).
    pub shutdown_grace_ms: u64,
    /// Separate address serving only `GET /metrics`, without a token (bind it to an internal
    /// interface). Unset: `/metrics` is on the main listener behind `admin_token`.
    pub metrics_listen: Option<String>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// tracing filter directive, e.g. `info` or `vcf_cds=debug`.
    pub log_level: String,
    /// Show an info card for "Usually appropriate" orders too.
    pub cards_for_appropriate: bool,
    /// Show an info card with a one-click switch when a patient under 18 has an ionizing study
    /// ordered and an equally or better rated study with no / lower pediatric radiation exists.
    pub pediatric_radiation_cards: bool,
    /// `update` (default: one update action on the draft order) or `replace` (delete + create).
    pub suggestion_style: SuggestionStyle,
    /// Rate advanced imaging orders (CT, MR, NM, PET code ranges in the knowledge file) that
    /// this guideline does not cover as `no-criteria-apply`, so EHR rating boxes do not go stale.
    pub rate_out_of_scope_imaging: bool,
    /// More than this many orders of one call with the same card get one grouped card that
    /// names them (CDS Hooks card-overload guidance); 0 never groups.
    pub group_cards_over: usize,
    /// Also emit the legacy `extension.systemActions` read by the sandbox's PAMA screen.
    pub legacy_system_actions: bool,
    /// `pama-rating-qcdsm-consulted` value (a CMS G-code), when wanted.
    pub qcdsm_consulted: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            public_base_url: None,
            cors_origins: vec!["https://sandbox.cds-hooks.org".into()],
            max_body_bytes: 5 * 1024 * 1024,
            max_draft_orders: 100,
            fhir_timeout_ms: 300,
            fhir_deadline_ms: 400,
            fhir_max_pages: 5,
            fhir_max_response_bytes: 5 * 1024 * 1024,
            trusted_fhir_servers: vec![],
            trusted_issuers: vec![],
            allow_unauthenticated: false,
            trust_sandbox: false,
            open_discovery: true,
            audit_db: "vcf-cds-audit.sqlite".into(),
            audit_spool_dir: PathBuf::from("vcf-cds-spool"),
            audit_pseudonym_key: None,
            audit_retention_days: 0,
            audit_write_timeout_ms: 2000,
            audit_retry_interval_ms: 1000,
            audit_group_commit_wait_us: 1000,
            admin_token: None,
            knowledge_file: None,
            new_fracture_window_days: None,
            old_fracture_window_days: None,
            ready_requires_audit_store: false,
            shutdown_grace_ms: 10_000,
            metrics_listen: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            cards_for_appropriate: false,
            pediatric_radiation_cards: true,
            suggestion_style: SuggestionStyle::Update,
            rate_out_of_scope_imaging: true,
            group_cards_over: 3,
            legacy_system_actions: true,
            qcdsm_consulted: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Defaults < `file` (if given) < `VCF_CDS_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, Env::prefixed(ENV_PREFIX))
    }

    fn load_with_env(file: Option<&Path>, env: Env) -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        // `VCF_CDS_CONFIG` names the file; it is not a setting itself.
        let env = env.ignore(&["CONFIG"]);
        let settings: Settings = fig
            .merge(env)
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| ConfigError(format!("listen: {:?} is not an IP:port", self.listen)))?;
        if let Some(u) = &self.public_base_url {
            let parsed = url::Url::parse(u)
                .map_err(|_| ConfigError(format!("public_base_url: {u:?} is not a URL")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError("public_base_url must be http(s)".into()));
            }
        }
        for o in &self.cors_origins {
            if o == "*" {
                return Err(ConfigError(
                    "cors_origins: '*' is not allowed; list the origins".into(),
                ));
            }
            url::Url::parse(o)
                .map_err(|_| ConfigError(format!("cors_origins: {o:?} is not an origin")))?;
        }
        // security (issue 5): the same strict parsing the allowlist check applies, so a base
        // URL that could never match is reported at start-up instead of being ignored.
        for s in &self.trusted_fhir_servers {
            crate::trust::check_trusted_base(s)
                .map_err(|e| ConfigError(format!("trusted_fhir_servers: {e}")))?;
        }
        for i in &self.trusted_issuers {
            for s in &i.fhir_servers {
                crate::trust::check_trusted_base(s).map_err(|e| {
                    ConfigError(format!("trusted_issuers {:?} fhir_servers: {e}", i.iss))
                })?;
            }
        }
        for i in &self.trusted_issuers {
            if i.jwks_url.is_none() && i.jwks_file.is_none() {
                return Err(ConfigError(format!(
                    "trusted_issuers: issuer {:?} needs jwks_url or jwks_file",
                    i.iss
                )));
            }
        }
        if let Some(m) = &self.metrics_listen {
            let addr = m
                .parse::<std::net::SocketAddr>()
                .map_err(|_| ConfigError(format!("metrics_listen: {m:?} is not an IP:port")))?;
            if Some(addr) == self.listen.parse().ok() && addr.port() != 0 {
                return Err(ConfigError("metrics_listen must differ from listen".into()));
            }
        }
        if self.shutdown_grace_ms == 0 {
            return Err(ConfigError("shutdown_grace_ms must be positive".into()));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes must be at least 1024".into()));
        }
        if self.new_fracture_window_days == Some(0) || self.old_fracture_window_days == Some(0) {
            return Err(ConfigError(
                "new_fracture_window_days and old_fracture_window_days must be positive".into(),
            ));
        }
        if self.max_draft_orders == 0 {
            return Err(ConfigError("max_draft_orders must be at least 1".into()));
        }
        crate::audit::db::AuditDbLocation::parse(&self.audit_db)
            .map_err(|e| ConfigError(format!("audit_db: {e}")))?;
        if self.audit_group_commit_wait_us > 100_000 {
            return Err(ConfigError(
                "audit_group_commit_wait_us must be at most 100000 (100 ms)".into(),
            ));
        }
        if self.audit_write_timeout_ms == 0 || self.audit_retry_interval_ms == 0 {
            return Err(ConfigError(
                "audit_write_timeout_ms and audit_retry_interval_ms must be positive".into(),
            ));
        }
        if let Some(k) = &self.audit_pseudonym_key
            && k.expose().len() < 16
        {
            return Err(ConfigError(
                "audit_pseudonym_key must be at least 16 characters".into(),
            ));
        }
        if let Some(t) = &self.admin_token
            && t.expose().len() < 16
        {
            return Err(ConfigError(
                "admin_token must be at least 16 characters".into(),
            ));
        }
        if self.fhir_timeout_ms == 0 || self.fhir_deadline_ms == 0 {
            return Err(ConfigError(
                "fhir_timeout_ms and fhir_deadline_ms must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The externally visible base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.public_base_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// True when the listen address is a loopback address.
    pub fn listens_on_loopback(&self) -> bool {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(false)
    }
}

#[cfg(test)]
// figment's Jail closures return its large error type; that is the crate's API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn secrets_never_reach_debug_output() {
        let s = Settings {
            admin_token: Some("admin-token-marker-5f1e".into()),
            audit_pseudonym_key: Some("pseudonym-key-marker-9c2d".into()),
            ..Settings::default()
        };
        let debug = format!("{s:?} {s:#?}");
        assert!(!debug.contains("admin-token-marker-5f1e"), "{debug}");
        assert!(!debug.contains("pseudonym-key-marker-9c2d"), "{debug}");
        assert!(debug.contains("[REDACTED]"));
        // Serialization (figment's defaults layer uses it) leaves them out as well.
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("marker"), "{json}");
        assert_eq!(
            s.admin_token.as_ref().unwrap().expose(),
            "admin-token-marker-5f1e"
        );
    }

    #[test]
    fn secrets_load_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("VCF_CDS_ADMIN_TOKEN", "admin-token-from-env-1234");
            let s = Settings::load(None).unwrap();
            assert_eq!(
                s.admin_token.as_ref().map(Secret::expose),
                Some("admin-token-from-env-1234")
            );
            Ok(())
        });
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::default();
        s.validate().unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.max_body_bytes, 5 * 1024 * 1024);
        assert!(
            s.cors_origins
                .contains(&"https://sandbox.cds-hooks.org".to_string())
        );
    }

    #[test]
    fn env_overrides_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "vcf.toml",
                r#"
                listen = "127.0.0.1:9000"
                cors_origins = ["https://ehr.example.org"]
                [[trusted_issuers]]
                iss = "https://ehr.example.org"
                jwks_url = "https://ehr.example.org/jwks"
                "#,
            )?;
            jail.set_env("VCF_CDS_LISTEN", "127.0.0.1:9100");
            jail.set_env("VCF_CDS_MAX_BODY_BYTES", "2048");
            let s = Settings::load(Some(Path::new("vcf.toml"))).unwrap();
            assert_eq!(s.listen, "127.0.0.1:9100");
            assert_eq!(s.max_body_bytes, 2048);
            assert_eq!(s.cors_origins, vec!["https://ehr.example.org".to_string()]);
            assert_eq!(s.trusted_issuers[0].algorithms, vec!["ES384", "RS384"]);
            Ok(())
        });
    }

    #[test]
    fn card_settings_default_on_and_parse() {
        let s = Settings::default();
        assert!(s.pediatric_radiation_cards && s.rate_out_of_scope_imaging);
        assert_eq!(s.suggestion_style, SuggestionStyle::Update);
        Jail::expect_with(|jail| {
            jail.set_env("VCF_CDS_SUGGESTION_STYLE", "replace");
            jail.set_env("VCF_CDS_PEDIATRIC_RADIATION_CARDS", "false");
            let s = Settings::load(None).unwrap();
            assert_eq!(s.suggestion_style, SuggestionStyle::Replace);
            assert!(!s.pediatric_radiation_cards);
            jail.set_env("VCF_CDS_SUGGESTION_STYLE", "swap");
            assert!(Settings::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn list_values_from_env() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "VCF_CDS_TRUSTED_FHIR_SERVERS",
                r#"["https://fhir.example.org/r4"]"#,
            );
            let s = Settings::load(None).unwrap();
            assert_eq!(s.trusted_fhir_servers, vec!["https://fhir.example.org/r4"]);
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_rejected() {
        Jail::expect_with(|jail| {
            jail.set_env("VCF_CDS_LISTEN", "localhost");
            assert!(Settings::load(None).is_err());
            jail.set_env("VCF_CDS_LISTEN", "127.0.0.1:1");
            jail.set_env("VCF_CDS_CORS_ORIGINS", r#"["*"]"#);
            assert!(Settings::load(None).is_err());
            jail.set_env("VCF_CDS_CORS_ORIGINS", r#"[]"#);
            jail.set_env("VCF_CDS_NOT_A_KEY", "1");
            assert!(
                Settings::load(None).is_err(),
                "unknown keys must be reported"
            );
            Ok(())
        });
        assert!(Settings::load(Some(Path::new("/nonexistent/vcf.toml"))).is_err());
    }
}

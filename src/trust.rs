//! Which outbound URLs the service may call: FHIR servers named by a request's `fhirServer`, and
//! the JWK Set URLs of trusted CDS clients.
//!
//! Every comparison is between parsed, normalized URLs (WHATWG parsing by the `url` crate: the
//! host is lower-cased and IDNA-encoded to punycode, default ports are dropped), never between
//! raw strings. A candidate is refused outright when it carries user info, a query, a fragment,
//! a non-http(s) scheme, dot segments (`.`/`..`, also percent-encoded), encoded slashes or
//! backslashes, or control characters; then it must share scheme, host and port with a trusted
//! base URL and have that base's path as a prefix on a segment boundary
//! (`https://h/fhir` trusts `https://h/fhir` and `https://h/fhir/r4`, never `https://h/fhir-evil`).
//! A host with a trailing dot is a different host (`h.` never matches `h`), and look-alike
//! Unicode hosts become different punycode hosts.

use crate::auth::VerifiedClient;
use crate::configuration::Settings;
use std::net::IpAddr;
use url::{Host, Url};

/// Largest JWK Set document fetched from a key URL.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Decides whether a request's `fhirServer` may be fetched from, before any outbound call.
///
/// Trusted base URLs are the global `trusted_fhir_servers` plus the `fhir_servers` of the
/// trusted-issuer entries matching the verified client (same `iss`, and either no configured
/// `tenant` or the client's tenant). In the open mode (anonymous client, no issuers), with
/// `trusted_fhir_servers` left empty and the service listening on loopback, a `fhirServer` on a
/// loopback host (`127.0.0.0/8`, `::1`, `localhost`) is trusted and nothing else is.
///
/// Returns the normalized URL to fetch from, or why it was refused (safe to show the client:
/// it never echoes the configuration).
pub fn check_fhir_server(
    settings: &Settings,
    client: &VerifiedClient,
    fhir_server: &str,
) -> Result<Url, String> {
    let candidate = parse_candidate(fhir_server)?;
    let mut bases: Vec<&str> = settings
        .trusted_fhir_servers
        .iter()
        .map(String::as_str)
        .collect();
    if let VerifiedClient::Jwt { iss, tenant, .. } = client {
        for issuer in settings.trusted_issuers.iter().filter(|i| {
            &i.iss == iss && (i.tenant.is_none() || i.tenant.as_deref() == tenant.as_deref())
        }) {
            bases.extend(issuer.fhir_servers.iter().map(String::as_str));
        }
    }
    if bases.iter().any(|b| base_matches(b, &candidate)) {
        return Ok(candidate);
    }
    let open_loopback = matches!(client, VerifiedClient::Anonymous)
        && settings.trusted_fhir_servers.is_empty()
        && settings.trusted_issuers.is_empty()
        && !settings.trust_sandbox
        && settings.listens_on_loopback();
    if open_loopback && is_loopback_host(&candidate) {
        return Ok(candidate);
    }
    Err("fhirServer is not a trusted FHIR server of this CDS service".into())
}

/// Checks a JWK Set URL (`jwks_url`, an allowlisted `jku`): https, or http on a loopback host
/// (tests); no user info, no fragment, no dot segments. Returns the normalized URL.
pub fn check_key_url(raw: &str) -> Result<Url, String> {
    let url = parse_url_strict(raw, true)?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(&url) => Ok(url),
        "http" => Err(format!(
            "{raw:?}: key URLs must use https (plain http only on a loopback host)"
        )),
        _ => Err(format!("{raw:?}: key URLs must use https")),
    }
}

/// Checks a configured trusted FHIR base URL (used by start-up validation).
pub fn check_trusted_base(raw: &str) -> Result<Url, String> {
    parse_url_strict(raw, false)
}

/// True when the URL's host is a loopback IP literal or `localhost`.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

fn parse_candidate(raw: &str) -> Result<Url, String> {
    parse_url_strict(raw, false).map_err(|_| {
        "fhirServer is not an acceptable absolute http(s) base URL (no user info, query, \
         fragment or dot segments)"
            .to_string()
    })
}

/// Parses and rejects URL tricks. `allow_query`: key URLs may carry a query string.
fn parse_url_strict(raw: &str, allow_query: bool) -> Result<Url, String> {
    if raw.is_empty() || raw.len() > 2048 {
        return Err("empty or over-long URL".into());
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(format!(
            "{raw:?}: control characters, spaces or backslashes"
        ));
    }
    let lower = raw.to_ascii_lowercase();
    for bad in ["%2e", "%2f", "%5c", "%00"] {
        if lower.contains(bad) {
            return Err(format!("{raw:?}: percent-encoded dot, slash or NUL"));
        }
    }
    // Dot segments in the raw path (the parser would resolve them silently).
    let after_scheme = raw.split_once("://").map(|(_, r)| r).unwrap_or(raw);
    let path_part = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split_once('/')
        .map(|(_, p)| p)
        .unwrap_or("");
    if path_part.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("{raw:?}: dot segments"));
    }
    let url = Url::parse(raw).map_err(|e| format!("{raw:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{raw:?}: only http and https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{raw:?}: user info is not allowed"));
    }
    if url.host().is_none() {
        return Err(format!("{raw:?}: no host"));
    }
    if url.fragment().is_some() || (!allow_query && url.query().is_some()) {
        return Err(format!("{raw:?}: query or fragment"));
    }
    Ok(url)
}

/// A configured base (parsed strictly) contains the candidate. A malformed configured base
/// never matches.
fn base_matches(base: &str, candidate: &Url) -> bool {
    parse_url_strict(base, false).is_ok_and(|base| is_under(&base, candidate))
}

/// The one URL-containment check (trusted FHIR bases, searchset `next` links): same scheme,
/// host and port, no user info, and the base path is a prefix of the candidate's path on a
/// segment boundary (`/fhir` contains `/fhir` and `/fhir/r4`, never `/fhir-evil`).
pub fn is_under(base: &Url, candidate: &Url) -> bool {
    if base.scheme() != candidate.scheme()
        || base.host() != candidate.host()
        || base.port_or_known_default() != candidate.port_or_known_default()
        || !candidate.username().is_empty()
        || candidate.password().is_some()
    {
        return false;
    }
    let bp = base.path().trim_end_matches('/');
    let cp = candidate.path().trim_end_matches('/');
    cp == bp || (cp.starts_with(bp) && cp.as_bytes().get(bp.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::TrustedIssuer;

    fn settings(trusted: &[&str]) -> Settings {
        Settings {
            trusted_fhir_servers: trusted.iter().map(|s| s.to_string()).collect(),
            ..Settings::default()
        }
    }

    fn jwt(iss: &str, tenant: Option<&str>) -> VerifiedClient {
        VerifiedClient::Jwt {
            iss: iss.into(),
            tenant: tenant.map(Into::into),
            jti: "j".into(),
            kid: "k".into(),
        }
    }

    #[test]
    fn base_and_sub_paths_match_on_segment_boundary() {
        let s = settings(&["https://fhir.example.org/r4"]);
        let c = VerifiedClient::Anonymous;
        for ok in [
            "https://fhir.example.org/r4",
            "https://fhir.example.org/r4/",
            "https://FHIR.example.org/r4",
            "https://fhir.example.org:443/r4",
            "https://fhir.example.org/r4/tenant1",
        ] {
            let u = check_fhir_server(&s, &c, ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(u.host_str(), Some("fhir.example.org"));
        }
        for bad in [
            "https://fhir.example.org/r4-evil",
            "https://fhir.example.org/r",
            "https://fhir.example.org/",
            "http://fhir.example.org/r4",
            "https://fhir.example.org:8443/r4",
            "https://fhir.example.org.evil.com/r4",
            "https://evil.com/fhir.example.org/r4",
            "https://fhir.example.org./r4",
            "https://user:pw@fhir.example.org/r4",
            "https://fhir.example.org@evil.com/r4",
            "https://fhir.example.org/r4/../admin",
            "https://fhir.example.org/r4/%2e%2e/admin",
            "https://fhir.example.org/r4/%2E%2E/admin",
            "https://fhir.example.org/r4%2f..%2fadmin",
            "https://fhir.example.org/r4/./x",
            "https://fhir.example.org\\r4",
            "https://fhir.example.org/r4?x=1",
            "https://fhir.example.org/r4#frag",
            "https://fhir.exаmple.org/r4", // Cyrillic 'а'
            "ftp://fhir.example.org/r4",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "//fhir.example.org/r4",
            "fhir.example.org/r4",
            "",
            " https://fhir.example.org/r4",
            "https://fhir.example.org/r4\n",
            "http://127.0.0.1:8080/fhir",
        ] {
            assert!(check_fhir_server(&s, &c, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn trailing_dot_configured_host_is_distinct() {
        let s = settings(&["https://fhir.example.org./r4"]);
        let c = VerifiedClient::Anonymous;
        assert!(check_fhir_server(&s, &c, "https://fhir.example.org/r4").is_err());
        assert!(check_fhir_server(&s, &c, "https://fhir.example.org./r4").is_ok());
    }

    #[test]
    fn root_base_trusts_whole_origin() {
        let s = settings(&["https://fhir.example.org"]);
        let c = VerifiedClient::Anonymous;
        assert!(check_fhir_server(&s, &c, "https://fhir.example.org/any/path").is_ok());
        assert!(check_fhir_server(&s, &c, "https://other.example.org/any").is_err());
    }

    #[test]
    fn idn_hosts_compare_as_punycode() {
        let s = settings(&["https://bücher.example/fhir"]);
        let c = VerifiedClient::Anonymous;
        assert!(check_fhir_server(&s, &c, "https://xn--bcher-kva.example/fhir").is_ok());
        assert!(check_fhir_server(&s, &c, "https://bucher.example/fhir").is_err());
    }

    #[test]
    fn per_issuer_and_tenant_servers() {
        let mut s = settings(&[]);
        s.listen = "10.0.0.1:8080".into();
        s.trusted_issuers = vec![
            TrustedIssuer {
                iss: "https://ehr.example.org".into(),
                jwks_url: Some("https://ehr.example.org/jwks".into()),
                jwks_file: None,
                algorithms: vec!["ES384".into()],
                tenant: None,
                jku_allowlist: vec![],
                fhir_servers: vec!["https://ehr.example.org/fhir".into()],
            },
            TrustedIssuer {
                iss: "https://ehr.example.org".into(),
                jwks_url: Some("https://ehr.example.org/jwks".into()),
                jwks_file: None,
                algorithms: vec!["ES384".into()],
                tenant: Some("hospital-a".into()),
                jku_allowlist: vec![],
                fhir_servers: vec!["https://a.example.org/fhir".into()],
            },
        ];
        let a = jwt("https://ehr.example.org", Some("hospital-a"));
        let b = jwt("https://ehr.example.org", Some("hospital-b"));
        let other = jwt("https://other.example.org", None);
        assert!(check_fhir_server(&s, &a, "https://a.example.org/fhir").is_ok());
        assert!(check_fhir_server(&s, &a, "https://ehr.example.org/fhir").is_ok());
        assert!(check_fhir_server(&s, &b, "https://a.example.org/fhir").is_err());
        assert!(check_fhir_server(&s, &b, "https://ehr.example.org/fhir").is_ok());
        assert!(check_fhir_server(&s, &other, "https://ehr.example.org/fhir").is_err());
        assert!(
            check_fhir_server(&s, &VerifiedClient::Anonymous, "http://127.0.0.1/fhir").is_err()
        );
    }

    #[test]
    fn open_loopback_mode_trusts_only_loopback() {
        let s = settings(&[]);
        let c = VerifiedClient::Anonymous;
        for ok in [
            "http://127.0.0.1:8080/fhir",
            "http://localhost:8080/fhir",
            "http://[::1]/fhir",
            "https://127.0.0.2/fhir",
        ] {
            assert!(check_fhir_server(&s, &c, ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://launch.smarthealthit.org/v/r2/fhir",
            "http://10.0.0.1/fhir",
            "http://localhost.evil.com/fhir",
            "http://127.0.0.1.nip.io/fhir",
            "http://0.0.0.0/fhir",
        ] {
            assert!(check_fhir_server(&s, &c, bad).is_err(), "{bad}");
        }
        // Not on loopback: nothing is trusted by default.
        let mut s2 = settings(&[]);
        s2.listen = "10.1.2.3:8080".into();
        assert!(check_fhir_server(&s2, &c, "http://127.0.0.1:8080/fhir").is_err());
        // A configured list replaces the loopback rule.
        let s3 = settings(&["https://fhir.example.org"]);
        assert!(check_fhir_server(&s3, &c, "http://127.0.0.1:8080/fhir").is_err());
    }

    #[test]
    fn key_urls() {
        assert!(check_key_url("https://ehr.example.org/jwks").is_ok());
        assert!(check_key_url("https://ehr.example.org/jwks?tenant=1").is_ok());
        assert!(check_key_url("http://127.0.0.1:9999/jwks").is_ok());
        assert!(check_key_url("http://ehr.example.org/jwks").is_err());
        assert!(check_key_url("https://u:p@ehr.example.org/jwks").is_err());
        assert!(check_key_url("https://ehr.example.org/a/../jwks").is_err());
        assert!(check_key_url("file:///jwks.json").is_err());
    }
}

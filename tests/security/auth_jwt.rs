//! JWT verification (issue 5, point 8): keys generated here (ES384, RS384, ES256), the spec's
//! JWT test vector, a token issued by the public CDS Hooks sandbox, and JWK Sets served by an
//! in-process server on 127.0.0.1 for the URL / jku / refresh cases.

use crate::support::{JwksServer, TestKey, claims, jwks, now, sign_raw, unsigned};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use vcf_cds::auth::jwks::JwksOptions;
use vcf_cds::auth::{AuthFailure, AuthOptions, Authenticator, VerifiedClient};
use vcf_cds::configuration::{Settings, TrustedIssuer};

const ISS: &str = "https://ehr.example.org";
const AUD: &str = "http://127.0.0.1:8080/cds-services/vcf-order-select";

fn issuer(iss: &str) -> TrustedIssuer {
    TrustedIssuer {
        iss: iss.into(),
        jwks_url: None,
        jwks_file: None,
        algorithms: vec!["ES384".into(), "RS384".into()],
        tenant: None,
        jku_allowlist: vec![],
        fhir_servers: vec![],
    }
}

fn jwks_file(doc: &Value) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(doc.to_string().as_bytes()).unwrap();
    f
}

fn settings_with(issuers: Vec<TrustedIssuer>) -> Settings {
    Settings {
        trusted_issuers: issuers,
        ..Settings::default()
    }
}

fn fast_options() -> AuthOptions {
    AuthOptions {
        jwks: JwksOptions {
            min_refresh_interval: Duration::from_millis(300),
            timeout: Duration::from_secs(3),
            ..JwksOptions::default()
        },
        ..AuthOptions::default()
    }
}

fn clock_at(t: i64) -> vcf_cds::auth::Clock {
    Arc::new(move || t)
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// An authenticator trusting `ISS` with the given keys inline (jwks_file).
fn inline_auth(keys: &[&TestKey]) -> (Authenticator, tempfile::NamedTempFile) {
    let f = jwks_file(&jwks(keys));
    let mut i = issuer(ISS);
    i.jwks_file = Some(f.path().to_owned());
    (Authenticator::new(&settings_with(vec![i])).unwrap(), f)
}

async fn verify(a: &Authenticator, token: &str) -> Result<VerifiedClient, AuthFailure> {
    a.verify_jwt(Some(&bearer(token)), AUD).await
}

#[actix_web::test]
async fn valid_es384_and_rs384_tokens() {
    let es = TestKey::es384("es-1");
    let rs = TestKey::rs384("rs-1");
    let (a, _f) = inline_auth(&[&es, &rs]);
    for key in [&es, &rs] {
        let mut c = claims(ISS, AUD);
        c["tenant"] = json!("hospital-a");
        let got = verify(&a, &key.sign(json!({}), &c)).await.unwrap();
        match got {
            VerifiedClient::Jwt {
                iss,
                tenant,
                jti,
                kid,
            } => {
                assert_eq!(iss, ISS);
                assert_eq!(tenant.as_deref(), Some("hospital-a"));
                assert_eq!(jti, c["jti"].as_str().unwrap());
                assert_eq!(kid, key.kid);
            }
            VerifiedClient::Anonymous => panic!("anonymous"),
        }
    }
    // aud as an array containing the endpoint; unknown claims (sub, nbf in the past) ignored.
    let mut c = claims(ISS, AUD);
    c["aud"] = json!(["https://other.example.org/x", AUD]);
    c["sub"] = json!("someone");
    c["nbf"] = json!(now() - 10);
    verify(&a, &es.sign(json!({}), &c)).await.unwrap();
    // Fractional NumericDates are accepted; a header without typ too.
    let mut c = claims(ISS, AUD);
    c["exp"] = json!(now() as f64 + 120.5);
    verify(&a, &es.sign(json!({"typ": null}), &c))
        .await
        .unwrap();
    // The public API maps success to VerifiedClient.
    let c = claims(ISS, AUD);
    let ok = a
        .verify(Some(&bearer(&es.sign(json!({}), &c))), AUD)
        .await
        .unwrap();
    assert!(!ok.is_anonymous());
}

#[actix_web::test]
async fn expired_and_not_yet_valid_tokens() {
    let es = TestKey::es384("es-1");
    let (a, _f) = inline_auth(&[&es]);
    let t = now();
    let mut c = claims(ISS, AUD);
    c["iat"] = json!(t - 600);
    c["exp"] = json!(t - 120);
    assert_eq!(
        verify(&a, &es.sign(json!({}), &c)).await,
        Err(AuthFailure::Expired)
    );
    // Within the clock skew: accepted.
    let mut c = claims(ISS, AUD);
    c["iat"] = json!(t - 600);
    c["exp"] = json!(t - 30);
    verify(&a, &es.sign(json!({}), &c)).await.unwrap();

    let mut c = claims(ISS, AUD);
    c["nbf"] = json!(t + 600);
    c["exp"] = json!(t + 900);
    assert_eq!(
        verify(&a, &es.sign(json!({}), &c)).await,
        Err(AuthFailure::NotYetValid)
    );
    let mut c = claims(ISS, AUD);
    c["iat"] = json!(t + 600);
    c["exp"] = json!(t + 900);
    assert_eq!(
        verify(&a, &es.sign(json!({}), &c)).await,
        Err(AuthFailure::IssuedInFuture)
    );
    let mut c = claims(ISS, AUD);
    c["exp"] = json!(t + 7 * 24 * 3600);
    assert_eq!(
        verify(&a, &es.sign(json!({}), &c)).await,
        Err(AuthFailure::LifetimeTooLong)
    );
    for missing in ["exp", "iat", "jti", "aud", "iss"] {
        let mut c = claims(ISS, AUD);
        c.as_object_mut().unwrap().remove(missing);
        let r = verify(&a, &es.sign(json!({}), &c)).await;
        assert!(r.is_err(), "token without {missing} accepted");
    }
    let mut c = claims(ISS, AUD);
    c["exp"] = json!("tomorrow");
    assert!(verify(&a, &es.sign(json!({}), &c)).await.is_err());
}

#[actix_web::test]
async fn wrong_audience_issuer_and_tenant() {
    let es = TestKey::es384("es-1");
    let (a, _f) = inline_auth(&[&es]);
    for aud in [
        json!("http://127.0.0.1:8080/cds-services"),
        json!("http://127.0.0.1:8080/cds-services/vcf-order-select/"),
        json!("http://127.0.0.1:8080/cds-services/vcf-order-sign"),
        json!("https://127.0.0.1:8080/cds-services/vcf-order-select"),
        json!(["https://other.example.org"]),
        json!([]),
        json!(42),
    ] {
        let mut c = claims(ISS, AUD);
        c["aud"] = aud.clone();
        let r = verify(&a, &es.sign(json!({}), &c)).await;
        assert!(
            matches!(
                r,
                Err(AuthFailure::WrongAudience) | Err(AuthFailure::BadClaims(_))
            ),
            "aud {aud} gave {r:?}"
        );
    }
    let c = claims("https://evil.example.org", AUD);
    assert!(matches!(
        verify(&a, &es.sign(json!({}), &c)).await,
        Err(AuthFailure::UntrustedIssuer(_))
    ));
    // iss differing only by a trailing slash is another issuer.
    let c = claims("https://ehr.example.org/", AUD);
    assert!(matches!(
        verify(&a, &es.sign(json!({}), &c)).await,
        Err(AuthFailure::UntrustedIssuer(_))
    ));

    // A tenant-bound issuer entry.
    let f = jwks_file(&jwks(&[&es]));
    let mut i = issuer(ISS);
    i.jwks_file = Some(f.path().to_owned());
    i.tenant = Some("hospital-a".into());
    let a = Authenticator::new(&settings_with(vec![i])).unwrap();
    let mut c = claims(ISS, AUD);
    c["tenant"] = json!("hospital-b");
    assert_eq!(
        verify(&a, &es.sign(json!({}), &c)).await,
        Err(AuthFailure::TenantMismatch)
    );
    let c = claims(ISS, AUD);
    assert_eq!(
        verify(&a, &es.sign(json!({}), &c)).await,
        Err(AuthFailure::TenantMismatch)
    );
    let mut c = claims(ISS, AUD);
    c["tenant"] = json!("hospital-a");
    verify(&a, &es.sign(json!({}), &c)).await.unwrap();
}

#[actix_web::test]
async fn bad_signatures_and_keys() {
    let es = TestKey::es384("es-1");
    let other = TestKey::es384("es-1"); // same kid, different key
    let rs = TestKey::rs384("rs-1");
    let (a, _f) = inline_auth(&[&es, &rs]);
    let c = claims(ISS, AUD);
    assert_eq!(
        verify(&a, &other.sign(json!({}), &c)).await,
        Err(AuthFailure::BadSignature)
    );
    // Tampered payload.
    let t = es.sign(json!({}), &claims(ISS, AUD));
    let parts: Vec<&str> = t.split('.').collect();
    let forged = unsigned(
        &json!({"alg":"ES384","typ":"JWT","kid":"es-1"}),
        &json!({"iss": ISS, "aud": AUD, "iat": now(), "exp": now()+300, "jti": "x", "admin": true}),
        parts[2],
    );
    assert_eq!(verify(&a, &forged).await, Err(AuthFailure::BadSignature));
    // ES384 header pointing at the RSA key.
    let c = claims(ISS, AUD);
    assert_eq!(
        verify(&a, &es.sign(json!({"kid": "rs-1"}), &c)).await,
        Err(AuthFailure::KeyMismatch)
    );
    // An ES256 token when only ES384/RS384 are configured.
    let es256 = TestKey::es256("es256");
    let (a2, _f2) = inline_auth(&[&es256]);
    let c = claims(ISS, AUD);
    assert!(matches!(
        verify(&a2, &es256.sign(json!({}), &c)).await,
        Err(AuthFailure::AlgorithmNotAllowed(_))
    ));
    // ...accepted once configured.
    let f = jwks_file(&jwks(&[&es256]));
    let mut i = issuer(ISS);
    i.jwks_file = Some(f.path().to_owned());
    i.algorithms = vec!["ES256".into()];
    let a3 = Authenticator::new(&settings_with(vec![i])).unwrap();
    verify(&a3, &es256.sign(json!({}), &claims(ISS, AUD)))
        .await
        .unwrap();
}

#[actix_web::test]
async fn alg_none_and_hmac_with_the_public_key_are_rejected() {
    let es = TestKey::es384("es-1");
    let rs = TestKey::rs384("rs-1");
    let (a, _f) = inline_auth(&[&es, &rs]);
    let c = claims(ISS, AUD);
    for alg in ["none", "None", "NONE"] {
        let t = unsigned(&json!({"alg": alg, "typ": "JWT", "kid": "es-1"}), &c, "");
        assert!(
            matches!(
                verify(&a, &t).await,
                Err(AuthFailure::AlgorithmNotAllowed(_))
            ),
            "{alg}"
        );
    }
    // HS256 "signed" with the issuer's public key (the classic key-confusion attack), for both
    // the EC and the RSA key, with several serializations of the key as the secret.
    for key in [&es, &rs] {
        let secrets = [
            key.jwk.to_string(),
            serde_json::to_string_pretty(&key.jwk).unwrap(),
        ];
        for secret in secrets {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let name = format!("{alg:?}");
                let t = sign_raw(
                    &json!({"alg": name, "typ": "JWT", "kid": key.kid}),
                    &claims(ISS, AUD),
                    &EncodingKey::from_secret(secret.as_bytes()),
                    alg,
                );
                assert!(matches!(
                    verify(&a, &t).await,
                    Err(AuthFailure::AlgorithmNotAllowed(_))
                ));
            }
        }
    }
    // HMAC cannot even be configured.
    let f = jwks_file(&jwks(&[&es]));
    let mut i = issuer(ISS);
    i.jwks_file = Some(f.path().to_owned());
    i.algorithms = vec!["HS256".into()];
    assert!(Authenticator::new(&settings_with(vec![i.clone()])).is_err());
    i.algorithms = vec!["none".into()];
    assert!(Authenticator::new(&settings_with(vec![i])).is_err());
}

#[actix_web::test]
async fn replayed_jti_is_rejected() {
    let es = TestKey::es384("es-1");
    let (a, _f) = inline_auth(&[&es]);
    let c = claims(ISS, AUD);
    let t = es.sign(json!({}), &c);
    verify(&a, &t).await.unwrap();
    assert_eq!(verify(&a, &t).await, Err(AuthFailure::Replayed));
    // A new token reusing the jti is a replay too.
    let t2 = es.sign(json!({}), &c);
    assert_eq!(verify(&a, &t2).await, Err(AuthFailure::Replayed));
    // A failed verification does not burn the jti.
    let mut c3 = claims(ISS, AUD);
    c3["aud"] = json!("http://wrong/");
    let jti = c3["jti"].clone();
    assert!(verify(&a, &es.sign(json!({}), &c3)).await.is_err());
    let mut c4 = claims(ISS, AUD);
    c4["jti"] = jti;
    verify(&a, &es.sign(json!({}), &c4)).await.unwrap();
}

#[actix_web::test]
async fn missing_and_malformed_headers() {
    let es = TestKey::es384("es-1");
    let (a, _f) = inline_auth(&[&es]);
    assert_eq!(
        a.verify_jwt(None, AUD).await,
        Err(AuthFailure::MissingHeader)
    );
    let t = es.sign(json!({}), &claims(ISS, AUD));
    for (h, want) in [
        (format!("Basic {t}"), AuthFailure::NotBearer),
        (t.clone(), AuthFailure::NotBearer),
        ("Bearer ".into(), AuthFailure::NotBearer),
        ("Bearer    ".into(), AuthFailure::NotBearer),
        ("Bearer a.b".into(), AuthFailure::Malformed),
        ("Bearer a.b.c.d".into(), AuthFailure::Malformed),
        (format!("Bearer {t}=="), AuthFailure::Malformed),
        (
            format!("Bearer {}", "a".repeat(20_000)),
            AuthFailure::TooLarge,
        ),
        ("Bearer ...".into(), AuthFailure::Malformed),
        ("Bearer e30.e30.".into(), AuthFailure::BadHeader("no alg")),
    ] {
        assert_eq!(a.verify_jwt(Some(&h), AUD).await, Err(want), "{h:.40}");
    }
    // Lower-case scheme is accepted.
    a.verify_jwt(Some(&format!("bearer {t}")), AUD)
        .await
        .unwrap();
    // Header rules: kid required, typ must be JWT, crit refused, duplicate keys refused.
    let c = claims(ISS, AUD);
    for (hdr, why) in [
        (json!({"kid": null}), "no kid"),
        (json!({"typ": "at+jwt"}), "typ"),
        (json!({"crit": ["exp"]}), "crit"),
    ] {
        let r = verify(&a, &es.sign(hdr, &c)).await;
        assert!(matches!(r, Err(AuthFailure::BadHeader(_))), "{why}: {r:?}");
    }
    let dup = format!(
        "{}.{}.{}",
        base64_url(r#"{"alg":"ES384","kid":"es-1","kid":"other"}"#),
        base64_url(&c.to_string()),
        "AAAA"
    );
    assert!(matches!(
        verify(&a, &dup).await,
        Err(AuthFailure::BadHeader(_))
    ));
    let dup_claims = format!(
        r#"{{"iss":"{ISS}","iss":"https://evil","aud":"{AUD}","iat":{},"exp":{},"jti":"d"}}"#,
        now(),
        now() + 100
    );
    let t = format!(
        "{}.{}.AAAA",
        base64_url(r#"{"alg":"ES384","kid":"es-1","typ":"JWT"}"#),
        base64_url(&dup_claims)
    );
    assert!(matches!(
        verify(&a, &t).await,
        Err(AuthFailure::BadClaims(_))
    ));
    // 401 body says nothing specific; WWW-Authenticate is set.
    let e = a.verify(None, AUD).await.unwrap_err();
    assert_eq!(e.status.as_u16(), 401);
    assert_eq!(
        e.www_authenticate.as_deref(),
        Some("Bearer realm=\"vcf-cds\"")
    );
    assert_eq!(
        e.outcome()["issue"][0]["diagnostics"],
        "authentication failed"
    );
    let e = a.verify(Some("Bearer x.y.z"), AUD).await.unwrap_err();
    assert_eq!(
        e.www_authenticate.as_deref(),
        Some("Bearer realm=\"vcf-cds\", error=\"invalid_token\"")
    );
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[actix_web::test]
async fn jwks_url_unknown_kid_refresh_and_rate_limit() {
    let server = JwksServer::start();
    let k1 = TestKey::es384("k1");
    let k2 = TestKey::rs384("k2");
    server.set("/jwks", &jwks(&[&k1]));
    let mut i = issuer(ISS);
    i.jwks_url = Some(server.url("/jwks"));
    let a = Authenticator::with_options(&settings_with(vec![i]), fast_options()).unwrap();

    verify(&a, &k1.sign(json!({}), &claims(ISS, AUD)))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    // Cached: no new fetch.
    verify(&a, &k1.sign(json!({}), &claims(ISS, AUD)))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);

    // Unknown kid: refresh is rate-limited right after the first fetch...
    server.set("/jwks", &jwks(&[&k1, &k2]));
    assert_eq!(
        verify(&a, &k2.sign(json!({}), &claims(ISS, AUD))).await,
        Err(AuthFailure::UnknownKid)
    );
    assert_eq!(server.hits(), 1);
    // ...and after the interval one refresh picks up the rotated key.
    tokio::time::sleep(Duration::from_millis(350)).await;
    verify(&a, &k2.sign(json!({}), &claims(ISS, AUD)))
        .await
        .unwrap();
    assert_eq!(server.hits(), 2);
    // A burst of random kids causes at most one fetch per interval.
    tokio::time::sleep(Duration::from_millis(350)).await;
    for n in 0..20 {
        let stranger = TestKey::es384(&format!("random-{n}"));
        assert_eq!(
            verify(&a, &stranger.sign(json!({}), &claims(ISS, AUD))).await,
            Err(AuthFailure::UnknownKid)
        );
    }
    assert_eq!(server.hits(), 3);
    // Key server down: the cached set keeps working.
    server.set_raw("/jwks", 500, "oops".into());
    tokio::time::sleep(Duration::from_millis(350)).await;
    let stranger = TestKey::es384("another");
    assert_eq!(
        verify(&a, &stranger.sign(json!({}), &claims(ISS, AUD))).await,
        Err(AuthFailure::UnknownKid)
    );
    verify(&a, &k1.sign(json!({}), &claims(ISS, AUD)))
        .await
        .unwrap();
}

#[actix_web::test]
async fn jwks_fetch_limits() {
    let server = JwksServer::start();
    let k1 = TestKey::es384("k1");
    // Redirects are not followed (the server answers 302 with a Location elsewhere).
    server.set_raw("/redirect", 302, jwks(&[&k1]).to_string());
    // Oversized documents are refused.
    let mut big = jwks(&[&k1]);
    big["padding"] = json!("x".repeat(300 * 1024));
    server.set("/big", &big);
    server.set_raw("/notjson", 200, "<html>".into());
    for path in ["/redirect", "/big", "/notjson", "/missing"] {
        let mut i = issuer(ISS);
        i.jwks_url = Some(server.url(path));
        let a = Authenticator::with_options(&settings_with(vec![i]), fast_options()).unwrap();
        assert_eq!(
            verify(&a, &k1.sign(json!({}), &claims(ISS, AUD))).await,
            Err(AuthFailure::KeysUnavailable),
            "{path}"
        );
    }
    // Key URLs must be https (or loopback http) and are checked at start-up.
    for bad in [
        "http://ehr.example.org/jwks",
        "ftp://ehr.example.org/jwks",
        "https://user:pw@ehr.example.org/jwks",
    ] {
        let mut i = issuer(ISS);
        i.jwks_url = Some(bad.into());
        assert!(
            Authenticator::new(&settings_with(vec![i])).is_err(),
            "{bad}"
        );
        let mut i = issuer(ISS);
        i.jwks_url = Some("https://ehr.example.org/jwks".into());
        i.jku_allowlist = vec![bad.into()];
        assert!(
            Authenticator::new(&settings_with(vec![i])).is_err(),
            "{bad}"
        );
    }
}

#[actix_web::test]
async fn jku_allowlist() {
    let server = JwksServer::start();
    let main = TestKey::es384("main");
    let rotated = TestKey::es384("rotated");
    let attacker = TestKey::es384("attacker");
    server.set("/jwks", &jwks(&[&main]));
    server.set("/jwks-2", &jwks(&[&rotated]));
    server.set("/attacker", &jwks(&[&attacker]));
    let mut i = issuer(ISS);
    i.jwks_url = Some(server.url("/jwks"));
    i.jku_allowlist = vec![server.url("/jwks-2")];
    let a = Authenticator::with_options(&settings_with(vec![i]), fast_options()).unwrap();

    // jku equal to jwks_url, and an allowlisted jku, are honoured.
    let t = main.sign(json!({"jku": server.url("/jwks")}), &claims(ISS, AUD));
    verify(&a, &t).await.unwrap();
    let t = rotated.sign(json!({"jku": server.url("/jwks-2")}), &claims(ISS, AUD));
    verify(&a, &t).await.unwrap();
    let hits = server.hits();
    // A jku off the allowlist is refused without fetching it.
    for jku in [
        server.url("/attacker"),
        server.url("/jwks-2/../attacker"),
        server.url("/jwks-2?x=1"),
        "https://evil.example.org/jwks".to_string(),
        "not a url".to_string(),
    ] {
        let t = attacker.sign(json!({"jku": jku}), &claims(ISS, AUD));
        assert_eq!(
            verify(&a, &t).await,
            Err(AuthFailure::JkuNotAllowed),
            "{jku}"
        );
    }
    assert_eq!(server.hits(), hits, "an off-list jku was fetched");
    // The key must come from the jku's own set: main's kid via jwks-2 is unknown there.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let t = main.sign(json!({"jku": server.url("/jwks-2")}), &claims(ISS, AUD));
    assert_eq!(verify(&a, &t).await, Err(AuthFailure::UnknownKid));
}

// ---- The spec's JWT test vector (CDS Hooks 2.0.1, "Trusting CDS Clients" > Example) ----

/// The spec's example files, carried into `fixtures/reference/cds-hooks-spec/` (source and
/// licence in `fixtures/reference/README.md`).
fn spec_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/reference/cds-hooks-spec")
        .join(name)
}

fn spec_vector() -> (String, std::path::PathBuf) {
    let v: Value =
        serde_json::from_slice(&std::fs::read(spec_file("spec-jwt-test-vector.json")).unwrap())
            .unwrap();
    (
        v["jwt"].as_str().unwrap().to_owned(),
        spec_file("spec-L1058-jwks-public.json"),
    )
}

const SPEC_ISS: &str = "https://fhir-ehr.example.com/";
const SPEC_AUD: &str = "https://cds.example.org/cds-services/some-service";
const SPEC_JKU: &str = "https://fhir-ehr.example.com/jwk_uri";
const SPEC_EXP: i64 = 1_422_568_860;

fn spec_auth(jku_allowlisted: bool, clock: Option<i64>) -> Authenticator {
    let (_, jwks) = spec_vector();
    let mut i = issuer(SPEC_ISS);
    i.jwks_file = Some(jwks);
    i.tenant = Some("2ddd6c3a-8e9a-44c6-a305-52111ad302a2".into());
    if jku_allowlisted {
        i.jku_allowlist = vec![SPEC_JKU.into()];
    }
    let mut opts = AuthOptions::default();
    if let Some(t) = clock {
        opts.clock = clock_at(t);
    }
    Authenticator::with_options(&settings_with(vec![i]), opts).unwrap()
}

#[actix_web::test]
async fn spec_test_vector() {
    let (jwt, _) = spec_vector();
    let h = bearer(&jwt);
    // Valid at a time inside its validity window, with its jku pinned to the out-of-band set.
    let a = spec_auth(true, Some(SPEC_EXP - 100));
    let got = a.verify_jwt(Some(&h), SPEC_AUD).await.unwrap();
    assert_eq!(
        got,
        VerifiedClient::Jwt {
            iss: SPEC_ISS.into(),
            tenant: Some("2ddd6c3a-8e9a-44c6-a305-52111ad302a2".into()),
            jti: "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e".into(),
            kid: "example-kid".into(),
        }
    );
    // Replayed.
    assert_eq!(
        a.verify_jwt(Some(&h), SPEC_AUD).await,
        Err(AuthFailure::Replayed)
    );
    // Today it is expired (exp is in 2015).
    let a = spec_auth(true, None);
    assert_eq!(
        a.verify_jwt(Some(&h), SPEC_AUD).await,
        Err(AuthFailure::Expired)
    );
    // Wrong audience.
    let a = spec_auth(true, Some(SPEC_EXP - 100));
    assert_eq!(
        a.verify_jwt(Some(&h), "https://cds.example.org/cds-services/other")
            .await,
        Err(AuthFailure::WrongAudience)
    );
    // Its jku is not on the allowlist.
    let a = spec_auth(false, Some(SPEC_EXP - 100));
    assert_eq!(
        a.verify_jwt(Some(&h), SPEC_AUD).await,
        Err(AuthFailure::JkuNotAllowed)
    );
    // Not yet issued (clock before iat, beyond the skew).
    let a = spec_auth(true, Some(1_311_280_970 - 3600));
    assert_eq!(
        a.verify_jwt(Some(&h), SPEC_AUD).await,
        Err(AuthFailure::IssuedInFuture)
    );
}

// ---- The public sandbox issuer ----

/// A token issued by the CDS Hooks sandbox (ES384, kid 44823f3d-…), as published in a public
/// python-jose example: iss https://sandbox.cds-hooks.org, aud
/// http://127.0.0.1:8000/cds-services, iat 1594230600, exp 1594230900.
const SANDBOX_TOKEN: &str = "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6IjQ0ODIzZjNkLTBiMDEtNGE2Yy1hODBlLWI5ZDNlOGE3MjI2ZiIsImprdSI6Imh0dHBzOi8vc2FuZGJveC5jZHMtaG9va3Mub3JnLy53ZWxsLWtub3duL2p3a3MuanNvbiJ9.eyJpc3MiOiJodHRwczovL3NhbmRib3guY2RzLWhvb2tzLm9yZyIsImF1ZCI6Imh0dHA6Ly8xMjcuMC4wLjE6ODAwMC9jZHMtc2VydmljZXMiLCJleHAiOjE1OTQyMzA5MDAsImlhdCI6MTU5NDIzMDYwMCwianRpIjoiZWZiMzc3M2QtM2EyOC00M2UyLTlmYmMtYjkzNmE5YWUzODhiIn0.Cbey3n5NkDRoCLHZ2WMFc1z_RY8Rlq5oGxdAYfbrBPMiJXLCwjbYoU0av2CQj-Olhbnpe7Vs8vzJ5oHP5gc2-0ooc5J49t4Uz9iYKpiM9KLUrqaJe0umc_klM2-ynHAI";

#[actix_web::test]
async fn sandbox_issuer_only_when_enabled() {
    let aud = "http://127.0.0.1:8000/cds-services";
    let h = bearer(SANDBOX_TOKEN);
    let mut s = Settings {
        trust_sandbox: true,
        ..Settings::default()
    };
    let opts = AuthOptions {
        clock: clock_at(1_594_230_700),
        ..AuthOptions::default()
    };
    let a = Authenticator::with_options(&s, opts.clone()).unwrap();
    let got = a.verify_jwt(Some(&h), aud).await.unwrap();
    assert_eq!(got.iss(), Some("https://sandbox.cds-hooks.org"));
    // Expired today.
    let a = Authenticator::new(&s).unwrap();
    assert_eq!(a.verify_jwt(Some(&h), aud).await, Err(AuthFailure::Expired));
    // Without trust_sandbox the sandbox is an unknown issuer.
    s.trust_sandbox = false;
    s.trusted_issuers = vec![{
        let mut i = issuer(ISS);
        i.jwks_url = Some("https://ehr.example.org/jwks".into());
        i
    }];
    let a = Authenticator::with_options(&s, opts).unwrap();
    assert!(matches!(
        a.verify_jwt(Some(&h), aud).await,
        Err(AuthFailure::UntrustedIssuer(_))
    ));
}

#[actix_web::test]
async fn open_mode_is_anonymous() {
    let s = Settings::default(); // loopback, no issuers
    let a = Authenticator::new(&s).unwrap();
    assert_eq!(a.mode(), vcf_cds::auth::AuthMode::OpenLoopback);
    assert_eq!(
        a.verify(None, AUD).await.unwrap(),
        VerifiedClient::Anonymous
    );
    assert_eq!(
        a.verify(Some("Bearer garbage"), AUD).await.unwrap(),
        VerifiedClient::Anonymous
    );
}

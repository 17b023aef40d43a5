//! Test helpers: keys generated at test time, JWT signing, and a JWK Set server on 127.0.0.1.
#![allow(dead_code)]

use actix_web::{App, HttpResponse, HttpServer, web};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A signing key made for the test run.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub alg_name: &'static str,
    pub encoding: EncodingKey,
    /// Public JWK (with kid, alg, use).
    pub jwk: Value,
}

impl TestKey {
    pub fn es384(kid: &str) -> TestKey {
        Self::ec(kid, Algorithm::ES384, "ES384")
    }

    pub fn es256(kid: &str) -> TestKey {
        Self::ec(kid, Algorithm::ES256, "ES256")
    }

    fn ec(kid: &str, alg: Algorithm, alg_name: &'static str) -> TestKey {
        let signing = match alg {
            Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
            _ => &ECDSA_P384_SHA384_FIXED_SIGNING,
        };
        let doc = EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new()).unwrap();
        let encoding = EncodingKey::from_ec_der(doc.as_ref());
        Self::finish(kid, alg, alg_name, encoding)
    }

    pub fn rs384(kid: &str) -> TestKey {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).unwrap();
        let b64 = STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        Self::finish(kid, Algorithm::RS384, "RS384", encoding)
    }

    fn finish(kid: &str, alg: Algorithm, alg_name: &'static str, encoding: EncodingKey) -> TestKey {
        let jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        TestKey {
            kid: kid.into(),
            alg,
            alg_name,
            encoding,
            jwk,
        }
    }

    /// Signs `claims` with a CDS Hooks header (`alg`, `typ: JWT`, `kid`) merged with `extra`.
    pub fn sign(&self, extra_header: Value, claims: &Value) -> String {
        let mut header = json!({"alg": self.alg_name, "typ": "JWT", "kid": self.kid});
        if let Value::Object(m) = extra_header {
            for (k, v) in m {
                if v.is_null() {
                    header.as_object_mut().unwrap().remove(&k);
                } else {
                    header[k] = v;
                }
            }
        }
        sign_raw(&header, claims, &self.encoding, self.alg)
    }
}

/// Signs arbitrary header and claims JSON.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let message = format!("{h}.{p}");
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{sig}")
}

/// Unsigned token parts (for `alg: none` and friends).
pub fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}

pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims valid now for `aud`, with a fresh jti.
pub fn claims(iss: &str, aud: &str) -> Value {
    let now = now();
    json!({
        "iss": iss,
        "aud": aud,
        "iat": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// A JWK Set server on 127.0.0.1:0 (call inside an actix/tokio runtime). Every path serves
/// the document registered for it (404 otherwise) and counts hits.
#[derive(Clone)]
pub struct JwksServer {
    pub base: String,
    docs: Arc<Mutex<std::collections::HashMap<String, (u16, String)>>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub fn start() -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let docs: Arc<Mutex<std::collections::HashMap<String, (u16, String)>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let (d, h) = (docs.clone(), hits.clone());
        let server = HttpServer::new(move || {
            let d = d.clone();
            let h = h.clone();
            App::new().default_service(web::to(move |req: actix_web::HttpRequest| {
                let d = d.clone();
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let path = req.path().to_owned();
                    match d.lock().unwrap().get(&path) {
                        Some((status, body)) => HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(*status).unwrap(),
                        )
                        .insert_header(("content-type", "application/json"))
                        .insert_header(("location", "http://127.0.0.1:1/elsewhere"))
                        .body(body.clone()),
                        None => HttpResponse::NotFound().finish(),
                    }
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        JwksServer {
            base: format!("http://127.0.0.1:{port}"),
            docs,
            hits,
        }
    }

    pub fn set(&self, path: &str, doc: &Value) {
        self.set_raw(path, 200, doc.to_string());
    }

    pub fn set_raw(&self, path: &str, status: u16, body: String) {
        self.docs
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body));
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

//! JWK Sets: parsing (tolerant of keys we cannot use), and the per-URL cache with rate-limited
//! refresh.
//!
//! A remote set is fetched lazily on first use, re-fetched when older than the TTL, and
//! re-fetched early when a token names an unknown `kid` (key rotation), but never more often
//! than the minimum refresh interval, so random `kid`s cannot make the service hammer a key
//! server. When a refresh fails the previous set stays in use.

use super::AuthFailure;
use crate::outbound;
use crate::trust::MAX_JWKS_BYTES;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use url::Url;

/// One usable public key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub jwk: Jwk,
    pub key: DecodingKey,
}

/// A parsed JWK Set: `kid` to key. Keys without `kid`, symmetric keys, private-only or
/// malformed entries are skipped.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: HashMap<String, Arc<KeyEntry>>,
}

impl KeySet {
    /// Parses a JWK Set document. Fails only when it is not `{"keys": [...]}`.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a JWK Set: {e}"))?;
        let mut keys = HashMap::new();
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if !matches!(
                jwk.algorithm,
                AlgorithmParameters::EllipticCurve(_) | AlgorithmParameters::RSA(_)
            ) {
                continue; // symmetric (oct), OKP and unknown key types are never used
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            // First key wins on a duplicate kid.
            keys.entry(kid)
                .or_insert_with(|| Arc::new(KeyEntry { jwk, key }));
        }
        Ok(KeySet { keys })
    }

    pub fn find(&self, kid: &str) -> Option<Arc<KeyEntry>> {
        self.keys.get(kid).cloned()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Tuning of remote key sets.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// A cached set older than this is re-fetched before use.
    pub ttl: Duration,
    /// At most one fetch per URL in this interval (unknown-`kid` refreshes included).
    pub min_refresh_interval: Duration,
    /// Total time allowed for one fetch.
    pub timeout: Duration,
    /// Largest accepted JWK Set document.
    pub max_bytes: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            ttl: Duration::from_secs(3600),
            min_refresh_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            max_bytes: MAX_JWKS_BYTES,
        }
    }
}

/// Where one issuer's keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// An inline set (`jwks_file`, the embedded sandbox key).
    Static(Arc<KeySet>),
    /// A URL (`jwks_url`, an allowlisted `jku`).
    Remote(Box<RemoteJwks>),
}

impl KeySource {
    pub async fn key(&self, kid: &str) -> Result<Arc<KeyEntry>, AuthFailure> {
        match self {
            KeySource::Static(set) => set.find(kid).ok_or(AuthFailure::UnknownKid),
            KeySource::Remote(remote) => remote.key(kid).await,
        }
    }
}

#[derive(Debug)]
struct Cached {
    set: Arc<KeySet>,
    fetched_at: Instant,
}

/// A cached remote JWK Set.
#[derive(Debug)]
pub struct RemoteJwks {
    url: Url,
    client: reqwest::Client,
    options: JwksOptions,
    cached: RwLock<Option<Cached>>,
    last_attempt: Mutex<Option<Instant>>,
    fetch_lock: tokio::sync::Mutex<()>,
}

impl RemoteJwks {
    /// `url` must already have passed [`crate::trust::check_key_url`].
    pub fn new(url: Url, client: reqwest::Client, options: JwksOptions) -> RemoteJwks {
        RemoteJwks {
            url,
            client,
            options,
            cached: RwLock::new(None),
            last_attempt: Mutex::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Builds the default outbound client for key fetching.
    pub fn default_client(options: &JwksOptions) -> Result<reqwest::Client, String> {
        outbound::client(options.timeout).map_err(|e| format!("HTTP client: {e}"))
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    fn snapshot(&self) -> Option<(Arc<KeySet>, bool)> {
        let guard = self.cached.read().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .map(|c| (c.set.clone(), c.fetched_at.elapsed() <= self.options.ttl))
    }

    pub async fn key(&self, kid: &str) -> Result<Arc<KeyEntry>, AuthFailure> {
        if let Some((set, true)) = self.snapshot()
            && let Some(k) = set.find(kid)
        {
            return Ok(k);
        }
        // Missing, stale, or unknown kid: one task fetches, the others wait and re-check.
        let _guard = self.fetch_lock.lock().await;
        let current = self.snapshot();
        if let Some((set, true)) = &current
            && let Some(k) = set.find(kid)
        {
            return Ok(k);
        }
        let rate_limited = {
            let mut last = self.last_attempt.lock().unwrap_or_else(|e| e.into_inner());
            match *last {
                Some(t) if t.elapsed() < self.options.min_refresh_interval => true,
                _ => {
                    *last = Some(Instant::now());
                    false
                }
            }
        };
        if rate_limited {
            return match current {
                Some((set, _)) => set.find(kid).ok_or(AuthFailure::UnknownKid),
                None => Err(AuthFailure::KeysUnavailable),
            };
        }
        match self.fetch().await {
            Ok(set) => {
                let set = Arc::new(set);
                tracing::debug!(url = %self.url, keys = set.len(), "JWK Set fetched");
                *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
                    set: set.clone(),
                    fetched_at: Instant::now(),
                });
                set.find(kid).ok_or(AuthFailure::UnknownKid)
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWK Set fetch failed");
                match current {
                    Some((set, _)) => set.find(kid).ok_or(AuthFailure::UnknownKid),
                    None => Err(AuthFailure::KeysUnavailable),
                }
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let resp = self
            .client
            .get(self.url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP status {}", resp.status().as_u16()));
        }
        let body = outbound::read_limited(resp, self.options.max_bytes)
            .await
            .map_err(|e| e.to_string())?;
        KeySet::parse(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_skips_unusable_keys() {
        let doc = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"hmac","alg":"HS256"},
            {"kty":"EC","crv":"P-384","kid":"nokid-missing-x"},
            {"kty":"XYZ","kid":"unknown"},
            {"kty":"EC","crv":"P-384","x":"46SDH7Znh821wblCBglA61sNE9ZrHYKKt3qRtRTmSXyOI_FIGBLWrWa0GPUkDCEk","y":"XMcRuuoGW7CXjQdy-F5i3FeBE0x9hPLdeFdSoDd3ELmx404tLX0VRRcqzAsPhXcI"},
            {"kty":"EC","use":"sig","crv":"P-384","kid":"example-kid","x":"46SDH7Znh821wblCBglA61sNE9ZrHYKKt3qRtRTmSXyOI_FIGBLWrWa0GPUkDCEk","y":"XMcRuuoGW7CXjQdy-F5i3FeBE0x9hPLdeFdSoDd3ELmx404tLX0VRRcqzAsPhXcI","alg":"ES384"}
        ]}"#;
        let set = KeySet::parse(doc).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.find("example-kid").is_some());
        assert!(set.find("hmac").is_none());
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\":{}}").is_err());
    }
}

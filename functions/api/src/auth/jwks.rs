//! The identity provider's signing keys (a JSON Web Key Set), fetched once per warm
//! instance and kept.
//!
//! Invariants:
//! - Only asymmetric keys are taken (RSA, EC, Ed25519). A symmetric (`oct`) key in a JWKS
//!   is ignored: accepting one would let anyone who can read the set mint tokens.
//! - Every key is bound to exactly one algorithm: the JWK's `alg`, or the one its type and
//!   curve imply (RSA: RS256, P-256: ES256, P-384: ES384, Ed25519: EdDSA). A token whose
//!   header names another algorithm is refused (no algorithm confusion).
//! - An unknown `kid` refetches the set (the provider rotated its keys), at most once per
//!   [`MIN_REFETCH`] (counting the fetch that brought the keys in hand), so a flood of made-up `kid`s cannot turn into a flood of fetches.
//!   The set is also refetched when older than [`MAX_AGE`]; if that fails, the keys in hand
//!   stay in use (a provider outage does not sign everybody out).
//! - Fetches are bounded: [`FETCH_TIMEOUT`], at most [`MAX_BODY`] bytes, `https` only
//!   (plain `http` is allowed for loopback addresses, for tests).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

/// Least time between two fetches caused by unknown `kid`s.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
/// Age after which the set is fetched again before use.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
pub const MAX_BODY: usize = 256 * 1024;

/// One verification key and the only algorithm it verifies.
#[derive(Clone)]
pub struct Key {
    pub decoding: DecodingKey,
    pub alg: Algorithm,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("alg", &self.alg).finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The set holds no key with this id (after a refetch, when one was allowed).
    #[error("no signing key with this kid")]
    UnknownKid,
    /// No keys in hand and the provider could not be read.
    #[error("the identity provider's keys could not be fetched: {0}")]
    Unreachable(String),
}

/// The keys of a set, by `kid`. Keys without a `kid`, for encryption, symmetric, or of an
/// unsupported type are skipped; the set as a whole is refused only if it is not a JWKS.
pub fn parse_set(body: &[u8]) -> Result<HashMap<String, Key>, String> {
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| Some((jwk.common.key_id.clone()?, key_of(jwk)?)))
        .collect())
}

fn key_of(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        Some(named) => Algorithm::try_from(named).ok()?,
        None => implied,
    };
    let family_matches = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        _ => alg == implied,
    };
    if !family_matches {
        return None;
    }
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key { decoding, alg })
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Key>,
    /// When the keys in hand were fetched.
    fetched: Option<Instant>,
    /// When a fetch was last tried, successful or not.
    tried: Option<Instant>,
}

/// Where keys come from (HTTPS; the seam keeps the caching rules apart from the transport).
pub trait Source: Send + Sync {
    fn fetch(&self) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send;
}

/// A JWKS behind a URL, cached.
pub struct KeySet<S = HttpsSource> {
    source: S,
    state: Mutex<State>,
    min_refetch: Duration,
}

impl<S> std::fmt::Debug for KeySet<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet").finish_non_exhaustive()
    }
}

impl<S: Source> KeySet<S> {
    pub fn with_source(source: S) -> Self {
        KeySet {
            source,
            state: Mutex::new(State::default()),
            min_refetch: MIN_REFETCH,
        }
    }

    /// Another least time between fetches for unknown `kid`s (tests use a short one).
    pub fn with_min_refetch(mut self, min_refetch: Duration) -> Self {
        self.min_refetch = min_refetch;
        self
    }

    /// The key for `kid`, fetching the set when it is not in hand yet, too old, or does not
    /// have `kid` (subject to [`MIN_REFETCH`]).
    pub async fn key(&self, kid: &str) -> Result<Key, KeyError> {
        // One fetch at a time: concurrent callers with the same unknown kid wait for it.
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let fresh = state.fetched.is_some_and(|t| now - t < MAX_AGE);
        if fresh && let Some(key) = state.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_fetch = !fresh || state.tried.is_none_or(|t| now - t >= self.min_refetch);
        if may_fetch {
            state.tried = Some(now);
            match self.source.fetch().await.and_then(|b| parse_set(&b)) {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "fetched the identity provider's JWKS");
                    state.keys = keys;
                    state.fetched = Some(now);
                }
                Err(e) if state.keys.is_empty() => return Err(KeyError::Unreachable(e)),
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS refetch failed; keeping the keys in hand")
                }
            }
        }
        state.keys.get(kid).cloned().ok_or(KeyError::UnknownKid)
    }
}

/// Fetches the set over HTTPS (rustls, the system's roots).
pub struct HttpsSource {
    url: http::Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl std::fmt::Debug for HttpsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsSource")
            .field("url", &self.url)
            .finish()
    }
}

impl KeySet<HttpsSource> {
    /// Checks the URL once (https, or http to a loopback address) and builds the client; no
    /// network call.
    pub fn new(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("JWKS_URL is not a URL: {e}"))?;
        let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            _ => return Err("JWKS_URL must be https (http only for 127.0.0.1)".into()),
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("TLS root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(KeySet::with_source(HttpsSource {
            url: uri,
            client: Client::builder(TokioExecutor::new()).build(https),
        }))
    }
}

impl Source for HttpsSource {
    async fn fetch(&self) -> Result<Vec<u8>, String> {
        let get = async {
            let reply = self
                .client
                .get(self.url.clone())
                .await
                .map_err(|e| format!("GET failed: {e}"))?;
            if !reply.status().is_success() {
                return Err(format!("GET answered {}", reply.status()));
            }
            let body = Limited::new(reply.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e}"))?;
            Ok(body.to_bytes().to_vec())
        };
        tokio::time::timeout(FETCH_TIMEOUT, get)
            .await
            .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))?
    }
}

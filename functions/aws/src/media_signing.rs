//! CloudFront signed access to members-only media (`members/{streamId}/*`): what
//! `streams-hls` hands a member ([`MediaSigner`]) and what the local gateway's `/hls`
//! checks as CloudFront would ([`MediaVerifier`]).
//!
//! The format is CloudFront's custom policy: the policy JSON
//! `{"Statement":[{"Resource":"<url with *>","Condition":{"DateLessThan":{"AWS:EpochTime":<s>}}}]}`,
//! signed with the key group's ECDSA P-256 key over SHA-256 (hash algorithm `SHA256`),
//! both in CloudFront's URL-safe base64 (`+` -> `-`, `=` -> `_`, `/` -> `~`). The same
//! three values travel as cookies (`CloudFront-Policy`, `CloudFront-Signature`,
//! `CloudFront-Key-Pair-Id`, plus `CloudFront-Hash-Algorithm`) or as query parameters
//! (`Policy`, `Signature`, `Key-Pair-Id`, `Hash-Algorithm`) that the player adds to every
//! media request.
//!
//! Invariants: a grant names one stream's prefix and an expiry, nothing else; a verifier
//! accepts a request only when the key id is its own, the signature is valid over the
//! policy exactly as sent, the policy's resource matches the requested URL (CloudFront's
//! `*` wildcard) and the expiry is in the future. The private key never leaves the
//! signer (no `Debug` shows it).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::ecs::{Service, SignedClient};

/// The hash algorithm named in every grant.
pub const HASH_ALGORITHM: &str = "SHA256";

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    #[error("the media signing key is neither PEM nor base64")]
    NotBase64,
    #[error("the media signing key is not an ECDSA P-256 private key (PKCS#8 or SEC1)")]
    NotP256,
    #[error("the media signing key could not be read from Secrets Manager: {0}")]
    Secret(String),
}

/// Signs grants with the key group's private key.
pub struct MediaSigner {
    key_pair_id: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for MediaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSigner")
            .field("key_pair_id", &self.key_pair_id)
            .finish_non_exhaustive()
    }
}

/// One signed grant: the values for cookies or query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub policy: String,
    pub signature: String,
    pub key_pair_id: String,
    /// Seconds since the epoch.
    pub expires: i64,
}

impl Grant {
    /// The query string a player appends to every media URL.
    pub fn query(&self) -> String {
        format!(
            "Policy={}&Signature={}&Key-Pair-Id={}&Hash-Algorithm={HASH_ALGORITHM}",
            self.policy, self.signature, self.key_pair_id
        )
    }

    /// `(name, value)` of the cookies CloudFront reads.
    pub fn cookies(&self) -> [(&'static str, String); 4] {
        [
            ("CloudFront-Policy", self.policy.clone()),
            ("CloudFront-Signature", self.signature.clone()),
            ("CloudFront-Key-Pair-Id", self.key_pair_id.clone()),
            ("CloudFront-Hash-Algorithm", HASH_ALGORITHM.to_owned()),
        ]
    }
}

impl MediaSigner {
    /// From the key group's public key id and the private key as base64 PKCS#8 DER.
    pub fn from_base64_pkcs8(
        key_pair_id: impl Into<String>,
        pkcs8_base64: &str,
    ) -> Result<MediaSigner, SigningKeyError> {
        MediaSigner::from_key_text(key_pair_id, pkcs8_base64)
    }

    /// From the key group's public key id and the private key as text: PEM (`openssl
    /// ecparam -name prime256v1 -genkey` writes SEC1 `EC PRIVATE KEY`; PKCS#8 `PRIVATE
    /// KEY` works too) or the base64 of its DER.
    pub fn from_key_text(
        key_pair_id: impl Into<String>,
        text: &str,
    ) -> Result<MediaSigner, SigningKeyError> {
        let body: String = if text.contains("-----BEGIN") {
            text.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<Vec<_>>()
                .concat()
        } else {
            text.split_whitespace().collect()
        };
        let der = STANDARD
            .decode(body)
            .map_err(|_| SigningKeyError::NotBase64)?;
        let key = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
            .map_err(|_| SigningKeyError::NotP256)?;
        Ok(MediaSigner {
            key_pair_id: key_pair_id.into(),
            key,
            rng: SystemRandom::new(),
        })
    }

    /// From a Secrets Manager secret whose string is the private key (as
    /// [`MediaSigner::from_key_text`] reads it): one `GetSecretValue` at cold start, so the
    /// key is never in a function's configuration.
    pub async fn from_secret(
        aws: &SignedClient,
        key_pair_id: impl Into<String>,
        secret_id: &str,
    ) -> Result<MediaSigner, SigningKeyError> {
        let reply = aws
            .call_json(
                Service::SecretsManager,
                "secretsmanager.GetSecretValue",
                &serde_json::json!({ "SecretId": secret_id }),
            )
            .await
            .map_err(|e| SigningKeyError::Secret(e.to_string()))?;
        let text = reply["SecretString"]
            .as_str()
            .ok_or_else(|| SigningKeyError::Secret("the secret has no SecretString".into()))?;
        MediaSigner::from_key_text(key_pair_id, text)
    }

    /// A new key (the local stack makes one per gateway start): the signer and the
    /// private key as base64 PKCS#8, to hand to the functions.
    pub fn generate(key_pair_id: impl Into<String>) -> (MediaSigner, String) {
        let key =
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("the system RNG works");
        let pkcs8 = STANDARD.encode(key.to_pkcs8v1().expect("a fresh key encodes").as_ref());
        let signer = MediaSigner {
            key_pair_id: key_pair_id.into(),
            key,
            rng: SystemRandom::new(),
        };
        (signer, pkcs8)
    }

    /// The verifier for this key (the local gateway's `/hls`).
    pub fn verifier(&self) -> MediaVerifier {
        MediaVerifier {
            key_pair_id: self.key_pair_id.clone(),
            public_key: self.key.public_key().as_ref().to_vec(),
        }
    }

    /// A grant for every object under `resource` (a URL ending in `/*`) until `expires`.
    pub fn grant(&self, resource: &str, expires: i64) -> Grant {
        let policy = policy_json(resource, expires);
        let signature = self
            .key
            .sign(&self.rng, policy.as_bytes())
            .expect("ECDSA signing does not fail");
        Grant {
            policy: cloudfront_base64(policy.as_bytes()),
            signature: cloudfront_base64(signature.as_ref()),
            key_pair_id: self.key_pair_id.clone(),
            expires,
        }
    }
}

/// Checks grants as CloudFront does for a behaviour with a trusted key group.
#[derive(Debug, Clone)]
pub struct MediaVerifier {
    key_pair_id: String,
    public_key: Vec<u8>,
}

/// Why a request is refused (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no signed grant")]
    Missing,
    #[error("unknown key pair id")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("malformed policy")]
    BadPolicy,
    #[error("the policy does not cover this URL")]
    OtherResource,
    #[error("the grant has expired")]
    Expired,
}

impl MediaVerifier {
    /// Whether `(policy, signature, key_pair_id)` (as sent, CloudFront base64) grants
    /// `url` at `now` (seconds since the epoch).
    pub fn verify(
        &self,
        policy: &str,
        signature: &str,
        key_pair_id: &str,
        url: &str,
        now: i64,
    ) -> Result<(), Refusal> {
        if key_pair_id != self.key_pair_id {
            return Err(Refusal::UnknownKey);
        }
        let policy = cloudfront_unbase64(policy).ok_or(Refusal::BadPolicy)?;
        let signature = cloudfront_unbase64(signature).ok_or(Refusal::BadSignature)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.public_key)
            .verify(&policy, &signature)
            .map_err(|_| Refusal::BadSignature)?;
        let policy: serde_json::Value =
            serde_json::from_slice(&policy).map_err(|_| Refusal::BadPolicy)?;
        let statement = &policy["Statement"][0];
        let resource = statement["Resource"].as_str().ok_or(Refusal::BadPolicy)?;
        let expires = statement["Condition"]["DateLessThan"]["AWS:EpochTime"]
            .as_i64()
            .ok_or(Refusal::BadPolicy)?;
        if !wildcard_match(resource, url) {
            return Err(Refusal::OtherResource);
        }
        if now >= expires {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}

fn policy_json(resource: &str, expires: i64) -> String {
    serde_json::json!({
        "Statement": [{
            "Resource": resource,
            "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}
        }]
    })
    .to_string()
}

/// Base64 with CloudFront's replacements for characters a query string cannot carry.
pub fn cloudfront_base64(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

/// The bytes of CloudFront's base64 ([`cloudfront_base64`]); `None` if it is not that.
pub fn cloudfront_unbase64(text: &str) -> Option<Vec<u8>> {
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            c => c,
        })
        .collect();
    STANDARD.decode(standard).ok()
}

/// CloudFront's resource match: `*` is any run of characters (also `/`), `?` one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOURCE: &str = "https://media.example/members/s1/*";
    const NOW: i64 = 1_800_000_000;

    fn signer() -> MediaSigner {
        MediaSigner::generate("K1").0
    }

    #[test]
    fn a_grant_opens_every_object_of_its_stream_until_it_expires() {
        let s = signer();
        let g = s.grant(RESOURCE, NOW + 60);
        let v = s.verifier();
        for url in [
            "https://media.example/members/s1/master.m3u8",
            "https://media.example/members/s1/720p/seg-000001.m4s",
        ] {
            assert_eq!(v.verify(&g.policy, &g.signature, "K1", url, NOW), Ok(()));
        }
        assert_eq!(
            v.verify(
                &g.policy,
                &g.signature,
                "K1",
                "https://media.example/members/s2/master.m3u8",
                NOW
            ),
            Err(Refusal::OtherResource)
        );
        assert_eq!(
            v.verify(
                &g.policy,
                &g.signature,
                "K1",
                "https://media.example/members/s1/master.m3u8",
                NOW + 60
            ),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn a_changed_policy_another_key_or_a_foreign_signature_is_refused() {
        let s = signer();
        let g = s.grant(RESOURCE, NOW + 60);
        let url = "https://media.example/members/s1/master.m3u8";
        let v = s.verifier();
        let wider = cloudfront_base64(policy_json("https://media.example/*", NOW + 60).as_bytes());
        assert_eq!(
            v.verify(&wider, &g.signature, "K1", url, NOW),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            v.verify(&g.policy, &g.signature, "K2", url, NOW),
            Err(Refusal::UnknownKey)
        );
        let other = signer().grant(RESOURCE, NOW + 60);
        assert_eq!(
            v.verify(&other.policy, &other.signature, "K1", url, NOW),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            v.verify("!!", &g.signature, "K1", url, NOW),
            Err(Refusal::BadPolicy)
        );
    }

    #[test]
    fn a_signer_loads_the_key_it_exported() {
        let (a, pkcs8) = MediaSigner::generate("K1");
        let b = MediaSigner::from_base64_pkcs8("K1", &pkcs8).expect("loads");
        let g = b.grant(RESOURCE, NOW + 1);
        assert_eq!(
            a.verifier().verify(
                &g.policy,
                &g.signature,
                "K1",
                "https://media.example/members/s1/x",
                NOW
            ),
            Ok(())
        );
        assert_eq!(
            MediaSigner::from_base64_pkcs8("K1", "bm90IGEga2V5").map(|_| ()),
            Err(SigningKeyError::NotP256)
        );
        assert!(!format!("{b:?}").contains(&pkcs8));
    }

    #[test]
    fn cloudfront_base64_has_no_query_breaking_characters() {
        let text = cloudfront_base64(&[0xfb, 0xff, 0xfe, 0x01]);
        assert!(!text.contains(['+', '=', '/']), "{text}");
        assert_eq!(
            cloudfront_unbase64(&text),
            Some(vec![0xfb, 0xff, 0xfe, 0x01])
        );
    }

    #[test]
    fn the_wildcard_spans_path_segments_and_nothing_else_matches_loosely() {
        assert!(wildcard_match(
            "https://m/members/s1/*",
            "https://m/members/s1/a/b.m4s"
        ));
        assert!(!wildcard_match(
            "https://m/members/s1/*",
            "https://m/members/s10/a"
        ));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("abc", "abcd"));
    }
}

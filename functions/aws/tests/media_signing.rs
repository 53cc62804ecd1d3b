//! `rill_aws::media_signing` against independent parts: keys and signatures made by the
//! `openssl` CLI (what an operator runs to make the key group's key pair), and the private
//! key read from a Secrets Manager secret in moto (arranged with boto3,
//! `tests/secrets_setup.py`), as `streams-hls` reads it on AWS.
//!
//! A missing moto is a failure, not a skip: CI has it (`scripts/setup.sh`).

mod common;
use common::{Keys, run_setup, signed_client, start_moto};

use std::path::{Path, PathBuf};
use std::process::Command;

use rill_aws::media_signing::{
    MediaSigner, SigningKeyError, cloudfront_base64, cloudfront_unbase64,
};

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh directory with an operator's key pair made as the README says: `hls.pem`
/// (SEC1 private key) and `hls.pub.pem` (the public key CloudFront gets).
fn operator_keys() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rill-keys-{}", rill_core::ids::new_id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("hls.pem");
    let public = dir.join("hls.pub.pem");
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        path(&key),
    ]);
    openssl(&["ec", "-in", path(&key), "-pubout", "-out", path(&public)]);
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn unbase64(text: &str) -> Vec<u8> {
    cloudfront_unbase64(text).expect("CloudFront base64")
}

#[test]
fn openssl_verifies_a_grant_signed_with_an_openssl_made_key() {
    let dir = operator_keys();
    let pem = std::fs::read_to_string(dir.join("hls.pem")).expect("key");
    let signer = MediaSigner::from_key_text("K2JCJMDEHXQW5F", &pem).expect("SEC1 PEM loads");
    let grant = signer.grant("https://cdn.example/members/01J/*", 1_900_000_000);
    std::fs::write(dir.join("policy.json"), unbase64(&grant.policy)).expect("policy");
    std::fs::write(dir.join("sig.der"), unbase64(&grant.signature)).expect("signature");
    let verified = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        path(&dir.join("hls.pub.pem")),
        "-signature",
        path(&dir.join("sig.der")),
        path(&dir.join("policy.json")),
    ]);
    assert_eq!(String::from_utf8_lossy(&verified).trim(), "Verified OK");
    // The same key as PKCS#8 base64 DER (what `generate` exports) is the same key.
    let pkcs8 = openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        path(&dir.join("hls.pem")),
        "-outform",
        "DER",
    ]);
    let again = {
        use base64::Engine as _;
        MediaSigner::from_base64_pkcs8(
            "K2JCJMDEHXQW5F",
            &base64::engine::general_purpose::STANDARD.encode(pkcs8),
        )
        .expect("PKCS#8 loads")
    };
    let other = again.grant("https://cdn.example/members/01J/*", 1_900_000_000);
    assert_eq!(
        signer.verifier().verify(
            &other.policy,
            &other.signature,
            "K2JCJMDEHXQW5F",
            "https://cdn.example/members/01J/master.m3u8",
            1_800_000_000
        ),
        Ok(())
    );
}

#[test]
fn the_verifier_accepts_what_openssl_signs_and_nothing_else() {
    let dir = operator_keys();
    let pem = std::fs::read_to_string(dir.join("hls.pem")).expect("key");
    let verifier = MediaSigner::from_key_text("K1", &pem)
        .expect("loads")
        .verifier();
    let policy = r#"{"Statement":[{"Resource":"https://cdn.example/members/01J/*","Condition":{"DateLessThan":{"AWS:EpochTime":1900000000}}}]}"#;
    std::fs::write(dir.join("policy.json"), policy).expect("policy");
    let signature = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        path(&dir.join("hls.pem")),
        path(&dir.join("policy.json")),
    ]);
    let (policy, signature) = (
        cloudfront_base64(policy.as_bytes()),
        cloudfront_base64(&signature),
    );
    let url = "https://cdn.example/members/01J/v0/seg-000001.m4s";
    assert_eq!(
        verifier.verify(&policy, &signature, "K1", url, 1_800_000_000),
        Ok(())
    );
    assert!(
        verifier
            .verify(
                &policy,
                &signature,
                "K1",
                "https://cdn.example/members/01K/master.m3u8",
                1_800_000_000
            )
            .is_err()
    );
    assert!(
        verifier
            .verify(&policy, &signature, "K1", url, 1_900_000_000)
            .is_err()
    );
}

#[tokio::test]
async fn a_signer_reads_its_key_from_a_secrets_manager_secret() {
    let moto = start_moto("");
    let keys = Keys {
        id: "test".into(),
        secret: "test".into(),
    };
    let dir = operator_keys();
    let made = run_setup(
        "secrets_setup.py",
        &[
            &moto.url,
            &keys.id,
            &keys.secret,
            "rill/hls-signing-key",
            path(&dir.join("hls.pem")),
        ],
    );
    let arn = made["arn"].as_str().expect("arn");
    let aws = signed_client(&moto.url, &keys);
    let signer = MediaSigner::from_secret(&aws, "K1", arn)
        .await
        .expect("the secret's key loads");
    let pem = std::fs::read_to_string(dir.join("hls.pem")).expect("key");
    let local = MediaSigner::from_key_text("K1", &pem).expect("loads");
    let grant = signer.grant("https://cdn.example/members/01J/*", 1_900_000_000);
    assert_eq!(
        local.verifier().verify(
            &grant.policy,
            &grant.signature,
            "K1",
            "https://cdn.example/members/01J/master.m3u8",
            1_800_000_000
        ),
        Ok(()),
        "signed with the secret's key"
    );
    // By name too; a missing secret is an error that names no key material.
    assert!(
        MediaSigner::from_secret(&aws, "K1", "rill/hls-signing-key")
            .await
            .is_ok()
    );
    match MediaSigner::from_secret(&aws, "K1", "rill/missing").await {
        Err(SigningKeyError::Secret(reason)) => {
            assert!(reason.contains("ResourceNotFound"), "{reason}");
            assert!(!reason.contains("PRIVATE KEY"));
        }
        other => panic!("a missing secret gives {other:?}"),
    }
}

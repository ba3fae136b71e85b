//! The public keys ServiceAccount tokens are checked with: the signing key's own, and the
//! operator's extra ones (`--service-account-key-file`, as kube-apiserver's): after a key
//! rotation the old key's public half keeps the tokens it signed valid until they expire. Each
//! key carries its JWK, which the issuer's JWKS (`/openid/v1/jwks`) publishes.

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::service_account::SigningKeyError;

/// A key tokens may be signed with, its algorithm and its JWK (`kid` = the RFC 7638 thumbprint,
/// so a token's `kid` names the same key whichever server computed it).
#[derive(Clone)]
pub struct VerificationKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
    pub jwk: Jwk,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// The key `decoding` verifies with `algorithm`, and its JWK.
    pub fn new(
        decoding: DecodingKey,
        algorithm: Algorithm,
    ) -> jsonwebtoken::errors::Result<VerificationKey> {
        let mut jwk = Jwk::from_decoding_key(&decoding, Some(algorithm))?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(VerificationKey {
            kid,
            algorithm,
            decoding,
            jwk,
        })
    }
}

/// Every key of a PEM file, as kube-apiserver reads `--service-account-key-file`: public keys
/// (`PUBLIC KEY`: ECDSA P-256/P-384 or RSA; `RSA PUBLIC KEY`) and private keys (PKCS#8, whose
/// public half is taken). `what` names the file in errors; a file with no key is an error.
pub fn from_pem(text: &str, what: &str) -> Result<Vec<VerificationKey>, SigningKeyError> {
    let mut keys = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let block = block.map_err(|e| rejected(what, format!("not PEM: {e}")))?;
        keys.push(from_block(&block.label, &block.contents, what)?);
    }
    if keys.is_empty() {
        return Err(rejected(what, "no PEM key in it".into()));
    }
    Ok(keys)
}

fn from_block(label: &str, der: &[u8], what: &str) -> Result<VerificationKey, SigningKeyError> {
    let pem = encode_pem(label, der);
    match label {
        "PUBLIC KEY" => from_public_pem(&pem, what),
        "RSA PUBLIC KEY" => rsa(&pem, what),
        "PRIVATE KEY" => {
            let pair = rcgen::KeyPair::from_pem(&pem)
                .map_err(|_| rejected(what, "a private key rotor cannot read".into()))?;
            from_public_pem(&pair.public_key_pem(), what)
        }
        other => Err(rejected(
            what,
            format!("a PEM block {other:?}: want PUBLIC KEY, RSA PUBLIC KEY or PRIVATE KEY"),
        )),
    }
}

/// A `PUBLIC KEY` PEM: ECDSA (its curve picks ES256 or ES384) or RSA (RS256).
fn from_public_pem(pem: &str, what: &str) -> Result<VerificationKey, SigningKeyError> {
    let Ok(decoding) = DecodingKey::from_ec_pem(pem.as_bytes()) else {
        return rsa(pem, what);
    };
    let jwk = Jwk::from_decoding_key(&decoding, None).map_err(|e| rejected(what, e.to_string()))?;
    let algorithm = match jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P384 => {
            Algorithm::ES384
        }
        _ => {
            return Err(rejected(
                what,
                "an ECDSA key on neither P-256 nor P-384".into(),
            ));
        }
    };
    VerificationKey::new(decoding, algorithm).map_err(|e| rejected(what, e.to_string()))
}

fn rsa(pem: &str, what: &str) -> Result<VerificationKey, SigningKeyError> {
    let decoding = DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| rejected(what, "a public key neither ECDSA nor RSA".into()))?;
    VerificationKey::new(decoding, Algorithm::RS256).map_err(|e| rejected(what, e.to_string()))
}

fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn rejected(what: &str, problem: String) -> SigningKeyError {
    SigningKeyError::Rejected {
        what: what.to_string(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_pems_give_the_same_key() {
        let private = rcgen::KeyPair::generate().expect("key");
        let from_private = from_pem(&private.serialize_pem(), "f").expect("private");
        let both = format!("{}{}", private.public_key_pem(), private.serialize_pem());
        let from_both = from_pem(&both, "f").expect("public and private");
        assert_eq!(from_both.len(), 2);
        assert_eq!(from_both[0].kid, from_private[0].kid);
        assert_eq!(from_both[1].kid, from_private[0].kid);
        assert_eq!(from_private[0].algorithm, Algorithm::ES256);
    }

    #[test]
    fn a_file_without_keys_or_with_a_certificate_is_refused_by_name() {
        let err = from_pem("nothing here", "--service-account-key-file k.pem").expect_err("empty");
        assert!(
            err.to_string()
                .starts_with("--service-account-key-file k.pem: "),
            "{err}"
        );
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = from_pem(cert, "k.pem").expect_err("certificate");
        assert!(err.to_string().contains("\"CERTIFICATE\""), "{err}");
    }
}

//! The signature of a hook call: HMAC-SHA256 with the hook's shared key over
//! `{timestamp}.{body}`, sent as `Rotor-Signature: t=UNIX,v1=HEX`. The timestamp is signed
//! with the body, so a receiver that refuses old timestamps refuses a replay: it cannot be
//! moved forward without the key. [`verify`] is what a receiver does (the tests' and the
//! demo's receivers use it; receivers in other languages follow docs/design.md).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "Rotor-Signature";

/// How old a signed timestamp a receiver should accept, by default.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// Why a receiver refuses a signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {HEADER} header is not t=UNIX,v1=HEX")]
    Malformed,
    #[error("the signed timestamp is {age_seconds} s old, more than the tolerance")]
    TooOld { age_seconds: i64 },
    #[error("the signed timestamp is {ahead_seconds} s in the future")]
    FromTheFuture { ahead_seconds: i64 },
    #[error("the signature does not match the body and timestamp")]
    Mismatch,
}

fn mac(key: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at `timestamp` (Unix seconds) with `key`.
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(key, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex(&digest))
}

/// Checks `header` against `body` as a receiver would: the timestamp within `tolerance_seconds`
/// of `now` (Unix seconds; a minute ahead is allowed for clock skew), the HMAC compared in
/// constant time. The signed timestamp, when it holds.
pub fn verify(
    key: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<i64, SignatureError> {
    let (timestamp, signature) = parse(header).ok_or(SignatureError::Malformed)?;
    if now - timestamp > tolerance_seconds {
        return Err(SignatureError::TooOld {
            age_seconds: now - timestamp,
        });
    }
    if timestamp - now > 60 {
        return Err(SignatureError::FromTheFuture {
            ahead_seconds: timestamp - now,
        });
    }
    mac(key, timestamp, body)
        .verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(timestamp)
}

/// `t=…,v1=…` in any order; other schemes (`v0=`) are skipped, as a newer sender may add some.
fn parse(header: &str) -> Option<(i64, Vec<u8>)> {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=')? {
            ("t", t) => timestamp = Some(t.parse().ok()?),
            ("v1", v) => signature = Some(unhex(v)?),
            _ => {}
        }
    }
    Some((timestamp?, signature?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"k3y-for-tests";
    const BODY: &[u8] = br#"{"hook":"smoke"}"#;
    const T: i64 = 1_733_472_000;

    /// The digest as Python's `hmac.new(key, b"1733472000." + body, hashlib.sha256)` gives it:
    /// a receiver in another language computes the same.
    #[test]
    fn signs_as_any_hmac_sha256_does() {
        assert_eq!(
            sign(KEY, T, BODY),
            "t=1733472000,v1=274c770a12fa61a85a2b7dfc1d31e1300744ba637c02bb6c961b9399d7fbb7b3"
        );
    }

    #[test]
    fn a_receiver_accepts_what_was_signed_and_nothing_else() {
        let header = sign(KEY, T, BODY);
        assert_eq!(verify(KEY, &header, BODY, T + 10, 300), Ok(T));
        assert_eq!(
            verify(KEY, &header, br#"{"hook":"smoke!"}"#, T, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"another key", &header, BODY, T, 300),
            Err(SignatureError::Mismatch)
        );
        // A replay later than the tolerance is refused, and its timestamp cannot be moved
        // forward without the key.
        assert_eq!(
            verify(KEY, &header, BODY, T + 301, 300),
            Err(SignatureError::TooOld { age_seconds: 301 })
        );
        let moved = header.replace("t=1733472000", "t=1733472301");
        assert_eq!(
            verify(KEY, &moved, BODY, T + 301, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(KEY, &header, BODY, T - 61, 300),
            Err(SignatureError::FromTheFuture { ahead_seconds: 61 })
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=0g",
            "t=1,v1=abc",
            "nonsense",
        ] {
            assert_eq!(
                verify(KEY, header, BODY, 1, 300),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
        // Unknown schemes are skipped; order does not matter.
        let header = sign(KEY, T, BODY);
        let (t, v1) = header.split_once(',').unwrap();
        assert_eq!(verify(KEY, &format!("v0=ff,{v1},{t}"), BODY, T, 300), Ok(T));
    }
}

//! Gitaly's v2 authentication tokens.
//!
//! A client sends `authorization: Bearer v2.<hex hmac>.<unix seconds>`, where
//! the HMAC-SHA256 key is the shared secret and the message is only the
//! decimal timestamp. Servers accept timestamps within 30 seconds either way.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far a token's timestamp may be from the server's clock.
pub const TOKEN_VALIDITY: Duration = Duration::from_secs(30);

/// Why a presented token was not accepted. The split mirrors upstream's
/// status codes: [`TokenError::Unauthenticated`] cases become UNAUTHENTICATED,
/// the rest PERMISSION_DENIED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No header, not `Bearer`, wrong number of parts, or undecodable hex.
    #[error("authentication required")]
    Unauthenticated,
    /// The version part is not `v2`.
    #[error("unknown token version")]
    UnknownVersion,
    /// The signature does not match the secret.
    #[error("wrong hmac signature")]
    WrongSignature,
    /// The timestamp is not a number.
    #[error("cannot parse timestamp")]
    BadTimestamp,
    /// The timestamp is more than 30 s in the past.
    #[error("timestamp too old")]
    TooOld,
    /// The timestamp is more than 30 s in the future.
    #[error("timestamp too new")]
    TooNew,
}

impl TokenError {
    /// True for the failures upstream answers with UNAUTHENTICATED.
    pub fn is_unauthenticated(self) -> bool {
        self == Self::Unauthenticated
    }
}

fn mac(secret: &str, message: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The token string (without `Bearer `) a client presents at time `now`.
pub fn v2_token(secret: &str, now: SystemTime) -> String {
    let ts = unix_seconds(now).to_string();
    let sig = mac(secret, ts.as_bytes()).finalize().into_bytes();
    format!("v2.{}.{ts}", hex::encode(sig))
}

/// The full `authorization` header value for `secret` at `now`.
pub fn bearer(secret: &str, now: SystemTime) -> String {
    format!("Bearer {}", v2_token(secret, now))
}

/// Checks an `authorization` header value against `secret` at time `now`.
pub fn verify(header: Option<&str>, secret: &str, now: SystemTime) -> Result<(), TokenError> {
    let header = header.ok_or(TokenError::Unauthenticated)?;
    let (scheme, token) = header.split_once(' ').ok_or(TokenError::Unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Unauthenticated);
    }
    let parts: Vec<&str> = token.splitn(3, '.').collect();
    let [version, sig_hex, ts] = parts.as_slice() else {
        return Err(TokenError::Unauthenticated);
    };
    let sig = hex::decode(sig_hex).map_err(|_| TokenError::Unauthenticated)?;
    if *version != "v2" {
        return Err(TokenError::UnknownVersion);
    }
    // Constant-time comparison through the Mac API.
    mac(secret, ts.as_bytes()).verify_slice(&sig).map_err(|_| TokenError::WrongSignature)?;
    let issued: i64 = ts.parse().map_err(|_| TokenError::BadTimestamp)?;
    let now = unix_seconds(now);
    let window = i64::try_from(TOKEN_VALIDITY.as_secs()).expect("30 fits in i64");
    if issued < now - window {
        return Err(TokenError::TooOld);
    }
    if issued > now + window {
        return Err(TokenError::TooNew);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn round_trip_and_window_edges() {
        let now = at(1_700_000_000);
        let header = bearer("secret", now);
        assert_eq!(verify(Some(&header), "secret", now), Ok(()));
        assert_eq!(verify(Some(&header), "secret", at(1_700_000_030)), Ok(()));
        assert_eq!(verify(Some(&header), "secret", at(1_699_999_970)), Ok(()));
        assert_eq!(verify(Some(&header), "secret", at(1_700_000_031)), Err(TokenError::TooOld));
        assert_eq!(verify(Some(&header), "secret", at(1_699_999_969)), Err(TokenError::TooNew));
        assert_eq!(verify(Some(&header), "other", now), Err(TokenError::WrongSignature));
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256(key="abc123secret", msg="1700000000"), computed with openssl:
        // printf 1700000000 | openssl dgst -sha256 -hmac abc123secret
        let token = v2_token("abc123secret", at(1_700_000_000));
        assert_eq!(token, "v2.34f3badcbdb7ed895e3610936a58e688bae8b11d5491c8a55423fd02a0d2ab94.1700000000");
    }

    #[test]
    fn malformed_headers() {
        let now = at(1_700_000_000);
        for h in
            [None, Some(""), Some("Bearer"), Some("Basic abc"), Some("Bearer v2.zz.1700000000"), Some("Bearer v2.abcd")]
        {
            assert_eq!(verify(h, "s", now), Err(TokenError::Unauthenticated), "{h:?}");
        }
        let sig = hex::encode(mac("s", b"1700000000").finalize().into_bytes());
        assert_eq!(verify(Some(&format!("Bearer v1.{sig}.1700000000")), "s", now), Err(TokenError::UnknownVersion));
        assert_eq!(verify(Some(&format!("bearer v2.{sig}.1700000000")), "s", now), Ok(()));
        let sig = hex::encode(mac("s", b"soon").finalize().into_bytes());
        assert_eq!(verify(Some(&format!("Bearer v2.{sig}.soon")), "s", now), Err(TokenError::BadTimestamp));
    }
}

//! The token GitLab's internal API authenticates hooks with: an HS256 JWT
//! in the `Gitlab-Shell-Api-Request` header, issued by `gitlab-shell`,
//! valid for a minute, signed with the shared secret (surrounding
//! whitespace of the secret file ignored), as gitlab-shell and Gitaly send it.

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The header carrying the token.
pub const HEADER: &str = "Gitlab-Shell-Api-Request";
/// The token's issuer.
pub const ISSUER: &str = "gitlab-shell";
/// How long a token is valid.
const TTL_SECS: u64 = 60;

/// A token issued at `now` (seconds since the epoch).
pub fn token(secret: &str, now: u64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({ "iss": ISSUER, "exp": now + TTL_SECS, "iat": now });
    let claims = b64.encode(serde_json::to_vec(&claims).expect("claims are plain data"));
    let signing_input = format!("{header}.{claims}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.trim().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(signing_input.as_bytes());
    let signature = b64.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// A token issued now.
pub fn token_now(secret: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    token(secret, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(token: &str, secret: &str) -> serde_json::Value {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(input.as_bytes());
        mac.verify_slice(&b64.decode(signature).expect("base64url")).expect("signature matches");
        let (header, claims) = input.split_once('.').expect("header and claims");
        let header: serde_json::Value = serde_json::from_slice(&b64.decode(header).expect("b64")).expect("json");
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["typ"], "JWT");
        serde_json::from_slice(&b64.decode(claims).expect("b64")).expect("json")
    }

    #[test]
    fn signed_with_the_trimmed_secret() {
        let t = token("  s3cret\n", 1_700_000_000);
        assert!(!t.contains('='), "unpadded base64url: {t}");
        let claims = verify(&t, "s3cret");
        assert_eq!(claims["iss"], "gitlab-shell");
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_000_060u64);
    }

    #[test]
    #[should_panic(expected = "signature matches")]
    fn another_secret_does_not_verify() {
        verify(&token("one", 1), "two");
    }
}

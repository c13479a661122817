//! JWT tokens (SPEC §6): HS256 only, issuer `osapi`, `roles` required.
//!
//! Deliberately small and strict: we only ever issue and accept one algorithm, so
//! the header must be exactly `HS256` (never `none`, never another family), the
//! signature is checked in constant time before any claim is trusted, and
//! expiry allows a small leeway for clock skew.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::rbac::Permission;

/// Clock skew tolerated on `exp` and `iat`.
pub const LEEWAY_SECS: i64 = 30;
pub const ISSUER: &str = "osapi";
/// Keys shorter than this are refused: HS256 wants at least 256 bits.
pub const MIN_KEY_BYTES: usize = 32;

/// The claims of an OSAPI token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Why a token was refused. The message is safe to show: it never echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not three base64url parts")]
    Malformed,
    #[error("token header is not valid JSON with alg and typ")]
    BadHeader,
    #[error("token algorithm {0:?} is not accepted (only HS256)")]
    Algorithm(String),
    #[error("token signature does not match")]
    Signature,
    #[error("token claims are invalid: {0}")]
    Claims(String),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (iat in the future)")]
    NotYetValid,
    #[error("token issuer must be {ISSUER:?}")]
    Issuer,
    #[error("signing key must be at least {MIN_KEY_BYTES} bytes")]
    KeyTooShort,
    #[error("token has been revoked")]
    Revoked,
}

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies tokens with one HS256 key.
#[derive(Clone)]
pub struct TokenKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

impl TokenKey {
    pub fn new(key: Vec<u8>) -> Result<Self, TokenError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(TokenError::KeyTooShort);
        }
        Ok(TokenKey { key })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }

    /// Issue a token for `sub` with `roles` (and optionally explicit permissions),
    /// valid for `ttl` from `now` (unix seconds).
    pub fn issue(
        &self,
        sub: &str,
        roles: Vec<String>,
        permissions: Option<Vec<Permission>>,
        now: i64,
        ttl_secs: i64,
    ) -> String {
        let claims = Claims {
            sub: sub.to_owned(),
            roles,
            permissions,
            iat: now,
            exp: now.saturating_add(ttl_secs),
            iss: ISSUER.to_owned(),
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        // Serialising a struct of strings and integers cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Verify a token at `now` (unix seconds) and return its claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| TokenError::Malformed)?;
        let header: Header =
            serde_json::from_slice(&header_bytes).map_err(|_| TokenError::BadHeader)?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|e| TokenError::Claims(e.to_string()))?;
        if claims.iss != ISSUER {
            return Err(TokenError::Issuer);
        }
        if claims.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(TokenError::Expired);
        }
        if claims.iat.saturating_sub(LEEWAY_SECS) > now {
            return Err(TokenError::NotYetValid);
        }
        if claims.sub.is_empty() {
            return Err(TokenError::Claims("sub must not be empty".into()));
        }
        Ok(claims)
    }
}

/// Current unix time in seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
    }

    fn forge(header: &str, claims: &str, k: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims);
        let mut mac = HmacSha256::new_from_slice(k).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        format!(
            "{h}.{p}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn round_trip() {
        let t = key().issue("alice", vec!["admin".into()], None, 1000, 3600);
        let c = key().verify(&t, 1001).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.roles, vec!["admin"]);
    }

    #[test]
    fn refuses_everything_else() {
        let k = key();
        let good_claims = r#"{"sub":"a","roles":["admin"],"iat":1000,"exp":5000,"iss":"osapi"}"#;
        let secret = b"0123456789abcdef0123456789abcdef";
        // alg none with an empty signature
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(good_claims)
        );
        assert_eq!(
            k.verify(&none, 1001),
            Err(TokenError::Algorithm("none".into()))
        );
        assert!(matches!(
            k.verify(&forge(r#"{"alg":"HS512"}"#, good_claims, secret), 1001),
            Err(TokenError::Algorithm(_))
        ));
        assert!(matches!(
            k.verify(&forge(r#"{"alg":"RS256"}"#, good_claims, secret), 1001),
            Err(TokenError::Algorithm(_))
        ));
        assert_eq!(
            k.verify(
                &forge(
                    r#"{"alg":"HS256"}"#,
                    good_claims,
                    b"another key another key another!!"
                ),
                1001
            ),
            Err(TokenError::Signature)
        );
        assert_eq!(
            k.verify(&forge(r#"{"alg":"HS256"}"#, good_claims, secret), 9000),
            Err(TokenError::Expired)
        );
        let no_roles = r#"{"sub":"a","iat":1000,"exp":5000,"iss":"osapi"}"#;
        assert!(matches!(
            k.verify(&forge(r#"{"alg":"HS256"}"#, no_roles, secret), 1001),
            Err(TokenError::Claims(_))
        ));
        let bad_iss = r#"{"sub":"a","roles":[],"iat":1000,"exp":5000,"iss":"x"}"#;
        assert_eq!(
            k.verify(&forge(r#"{"alg":"HS256"}"#, bad_iss, secret), 1001),
            Err(TokenError::Issuer)
        );
        assert_eq!(k.verify("garbage", 1001), Err(TokenError::Malformed));
        assert_eq!(k.verify("a.b.c.d", 1001), Err(TokenError::Malformed));
        assert_eq!(k.verify("", 1001), Err(TokenError::Malformed));
        // leeway: just expired is still fine
        assert!(
            k.verify(
                &forge(r#"{"alg":"HS256"}"#, good_claims, secret),
                5000 + LEEWAY_SECS
            )
            .is_ok()
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            TokenKey::new(b"short".to_vec()).unwrap_err(),
            TokenError::KeyTooShort
        );
    }
}

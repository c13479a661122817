//! JWT tokens (SPEC §6) through `jsonwebtoken`: HS256 only, issuer `osapi`,
//! `roles` required.
//!
//! Strict: we only ever issue and accept one algorithm, so the header must be
//! `HS256` (never `none`, never another family); the crate checks the
//! signature in constant time before any claim is read. Expiry and issue
//! time are checked here, against the `now` the caller gives (testable, and
//! one clock for the whole request), with a small leeway for clock skew.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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
    #[error("token header is not a JWT header of a known algorithm")]
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

/// Signs and verifies tokens with one HS256 key.
#[derive(Clone)]
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    pub fn new(key: Vec<u8>) -> Result<Self, TokenError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(TokenError::KeyTooShort);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        // Checked in `verify` against the caller's clock.
        validation.validate_exp = false;
        Ok(TokenKey {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
        })
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
        // HMAC signs any key, and claims of strings and integers serialise.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Verify a token at `now` (unix seconds) and return its claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        // The header alone first, to say which algorithm was refused.
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::Json(_) | ErrorKind::Utf8(_) => TokenError::BadHeader,
            _ => TokenError::Malformed,
        })?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.into_kind() {
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::InvalidIssuer => TokenError::Issuer,
                ErrorKind::Json(e) => TokenError::Claims(e.to_string()),
                ErrorKind::MissingRequiredClaim(c) => TokenError::Claims(format!("{c} is missing")),
                _ => TokenError::Malformed,
            })?
            .claims;
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

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// A token with any header and claims, signed with HMAC-SHA256 and `k`.
    fn forge(header: &str, claims: &str, k: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k);
        let tag = ring::hmac::sign(&key, format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
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
        // jsonwebtoken does not even know `none`.
        assert_eq!(k.verify(&none, 1001), Err(TokenError::BadHeader));
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

//! Authentication (JWT, see [`crate::token`]) and RBAC enforcement per route.
//!
//! Every protected route carries the permission it needs; [`guard`] verifies the
//! bearer token, expands roles, and refuses with 401/403 before the handler runs.
//! Handlers that need more (`POST /jobs` also needs the operation's own
//! permission) call [`Principal::require`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use crate::rbac::{Permission, PermissionSet, Roles};
use crate::revocation::RevocationList;
use crate::token::{TokenError, TokenKey, now_unix};

/// Verifies tokens and expands roles.
pub struct Authenticator {
    pub key: TokenKey,
    pub roles: Roles,
    /// Tokens revoked before their expiry (`osapi token revoke`).
    pub revoked: RevocationList,
}

/// The caller, once authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub roles: Vec<String>,
    pub permissions: PermissionSet,
    /// When the token expires (Unix seconds).
    pub expires_at: i64,
}

impl Principal {
    pub fn require(&self, perm: Permission) -> Result<(), ApiError> {
        if self.permissions.contains(&perm) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(perm))
        }
    }
}

impl Authenticator {
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::MissingToken)?;
        let value = value.to_str().map_err(|_| ApiError::MissingToken)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(ApiError::MissingToken)?
            .trim();
        let claims = self.key.verify(token, now_unix())?;
        if self.revoked.is_revoked(token, &claims) {
            return Err(TokenError::Revoked.into());
        }
        let permissions = self
            .roles
            .effective(&claims.roles, claims.permissions.as_deref());
        Ok(Principal {
            subject: claims.sub,
            roles: claims.roles,
            permissions,
            expires_at: claims.exp,
        })
    }
}

/// The state of one route's guard: who checks, and what the route needs
/// (`None`: any valid token, for `GET /auth/whoami`).
#[derive(Clone)]
pub struct Guard {
    pub auth: Arc<Authenticator>,
    pub permission: Option<Permission>,
}

/// Middleware: authenticate, authorise, and hand the [`Principal`] to the handler.
pub async fn guard(
    State(g): State<Guard>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // The audit layer outside may have verified the token already.
    let principal = match req.extensions_mut().remove::<Principal>() {
        Some(p) => p,
        None => g.auth.authenticate(req.headers())?,
    };
    if let Some(permission) = g.permission {
        principal.require(permission)?;
    }
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use axum::middleware::from_fn_with_state;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> (Router, TokenKey) {
        let key = TokenKey::new(b"unit-test-key-unit-test-key-0123".to_vec()).unwrap();
        let auth = Arc::new(Authenticator {
            key: key.clone(),
            roles: Roles::default(),
            revoked: crate::revocation::RevocationList::new(None),
        });
        let guarded =
            get(|axum::Extension(p): axum::Extension<Principal>| async move { p.subject })
                .route_layer(from_fn_with_state(
                    Guard {
                        auth,
                        permission: Some(Permission::AuditRead),
                    },
                    guard,
                ));
        (Router::new().route("/x", guarded), key)
    }

    async fn call(app: Router, auth: Option<String>) -> (StatusCode, String) {
        let mut req = HttpRequest::get("/x");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn guard_allows_forbids_and_rejects() {
        let (app, key) = app();
        let now = now_unix();
        let admin = key.issue("alice", vec!["admin".into()], None, now, 60);
        let read = key.issue("bob", vec!["read".into()], None, now, 60);
        assert_eq!(
            call(app.clone(), Some(format!("Bearer {admin}"))).await,
            (StatusCode::OK, "alice".into())
        );
        let (status, body) = call(app.clone(), Some(format!("Bearer {read}"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("audit:read"), "{body}");
        assert_eq!(call(app.clone(), None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            call(app, Some(format!("Token {admin}"))).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}

//! Optional HTTP basic auth (`[http] basic_auth_user` +
//! `basic_auth_password`/`_file`, FR-17.4) for the status page and
//! `/metrics`. `/healthz` stays open for Docker's HEALTHCHECK, and the
//! download route is guarded by its link's signature instead, so a link in
//! the mail works for an administrator who does not know this password.
//!
//! The comparison is constant-time over SHA-256 digests of the expected and
//! the offered `user:password`, so neither the content nor the length of
//! the secret leaks through timing.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The digest of `user:password`, computed once at start.
#[derive(Clone)]
pub struct Credentials([u8; 32]);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    pub fn new(user: &str, password: &str) -> Credentials {
        Credentials(digest(format!("{user}:{password}").as_bytes()))
    }

    /// Whether an `Authorization` header value carries these credentials.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let offered = authorization
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok());
        match offered {
            Some(pair) => bool::from(digest(&pair).ct_eq(&self.0)),
            None => false,
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The middleware: passes the request on, or answers 401 with a challenge.
/// Its state is only the credentials (none: no auth), not the app's.
pub async fn require(State(credentials): State<Option<Credentials>>, request: Request, next: Next) -> Response {
    let Some(creds) = &credentials else { return next.run(request).await };
    if creds.accepts(request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        return next.run(request).await;
    }
    tracing::info!(path = ?request.uri().path(), "refused: missing or wrong basic-auth credentials");
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic realm=\"lifeboat\", charset=\"UTF-8\""),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "unauthorized: this page needs the user and password of [http] basic_auth_user\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(pair: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }

    // covers: FR-17.4
    #[test]
    fn only_the_exact_user_and_password_are_accepted() {
        let c = Credentials::new("ops", "pa:ss");
        assert!(c.accepts(Some(basic("ops:pa:ss").as_bytes())));
        for bad in ["ops:pa:s", "ops:pa:ss ", "op:pa:ss", "ops", ""] {
            assert!(!c.accepts(Some(basic(bad).as_bytes())), "{bad}");
        }
        assert!(!c.accepts(None));
        assert!(!c.accepts(Some(b"Bearer x")));
        assert!(!c.accepts(Some(b"Basic !!!")));
        assert_eq!(format!("{c:?}"), "Credentials(***)");
    }
}

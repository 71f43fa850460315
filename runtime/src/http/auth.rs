//! Who may change things through the HTTP endpoint. Reading is open (the
//! probes, the metrics, the page and the JSON API). A route that changes
//! something takes an [`Authorized`] extractor: without a configured token
//! the endpoint is read-only and such a route answers 403; with one it
//! needs `Authorization: Bearer <token>`, else 401.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use super::error;

/// The secret that unlocks the routes that change things. Never printed.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// A token; an empty one is refused (an unset variable is more likely
    /// than a wish for no secret).
    pub fn new(secret: &str) -> Result<Token, EmptyToken> {
        if secret.trim().is_empty() {
            return Err(EmptyToken);
        }
        Ok(Token(secret.into()))
    }

    /// Constant time in the content, so a guess cannot be refined by
    /// timing how far it matched.
    fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The error of an empty [`Token`].
#[derive(Debug, thiserror::Error)]
#[error("the HTTP token is empty")]
pub struct EmptyToken;

/// Proof that a request may change things.
pub struct Authorized;

/// Why it may not.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No token is configured: the endpoint is read-only.
    ReadOnly,
    /// No `Authorization: Bearer` header, or the wrong token.
    Unauthorized,
}

/// What a request must show, per the configured token.
pub fn check(token: Option<&Token>, headers: &HeaderMap) -> Result<Authorized, Refusal> {
    let token = token.ok_or(Refusal::ReadOnly)?;
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(candidate) if token.matches(candidate.trim()) => Ok(Authorized),
        _ => Err(Refusal::Unauthorized),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::ReadOnly => error(
                StatusCode::FORBIDDEN,
                "this endpoint is read-only: a token is required to change anything \
                 (start `sluice run` with --http-token or SLUICE_HTTP_TOKEN)",
            ),
            Refusal::Unauthorized => (
                [(WWW_AUTHENTICATE, "Bearer")],
                error(
                    StatusCode::UNAUTHORIZED,
                    "a valid `Authorization: Bearer <token>` header is required",
                ),
            )
                .into_response(),
        }
    }
}

impl<S> FromRequestParts<S> for Authorized
where
    Option<Token>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        check(Option::<Token>::from_ref(state).as_ref(), &parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(authorization).expect("a header value"),
        );
        headers
    }

    #[test]
    fn read_only_without_a_token_and_only_the_right_bearer_passes() {
        assert!(matches!(
            check(None, &with("Bearer s3cret")),
            Err(Refusal::ReadOnly)
        ));
        let token = Token::new("s3cret").expect("a token");
        assert!(check(Some(&token), &with("Bearer s3cret")).is_ok());
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "",
        ] {
            assert!(
                matches!(
                    check(Some(&token), &with(wrong)),
                    Err(Refusal::Unauthorized)
                ),
                "{wrong:?}"
            );
        }
        assert!(matches!(
            check(Some(&token), &HeaderMap::new()),
            Err(Refusal::Unauthorized)
        ));
        assert!(Token::new(" ").is_err());
        assert_eq!(format!("{token:?}"), "Token(..)");
    }
}

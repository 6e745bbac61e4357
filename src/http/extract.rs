//! Extractors whose rejections speak the API's error format.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, Code};
use crate::domain::FieldErrors;
use crate::services::account::Authenticated;

/// JSON body. Malformed JSON or a wrong field type is 400
/// `MALFORMED_REQUEST`; a body over the limit is 413; a non-JSON content
/// type is 415.
///
/// A whole-number float (`5.0`) is accepted where an integer is expected:
/// JSON Schema's `integer` admits it, so generated clients and languages
/// whose numbers are all doubles send it. `5.5` there stays a 400, and so
/// does an array where an object is expected (see [`super::strict`]).
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // axum's extractor checks the content type, the size limit and the
        // syntax; the shapes are then read by our stricter rules.
        let axum::Json(value) = axum::Json::<Value>::from_request(request, state).await?;
        super::strict::from_value(value)
            .map(Json)
            .map_err(|e| ApiError::new(Code::MalformedRequest, format!("invalid body: {e}")))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(Code::PayloadTooLarge, "the request body is too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                Code::UnsupportedMediaType,
                "send JSON with `Content-Type: application/json`",
            ),
            _ => ApiError::new(Code::MalformedRequest, rejection.body_text()),
        }
    }
}

/// Path parameters; a segment that does not parse is simply "not found".
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::not_found("resource")
    }
}

/// Who sent the request, decided once per request by the gateway layer.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No `Authorization` header (or `?token=`).
    Anonymous,
    /// A token was sent but is unknown, expired or malformed.
    InvalidToken,
    /// A valid session.
    SignedIn(Authenticated),
}

/// A signed-in caller; rejects with 401 and `WWW-Authenticate: Bearer`.
pub struct SignedIn(pub Authenticated);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::SignedIn(who)) => Ok(SignedIn(who.clone())),
            _ => Err(ApiError::unauthenticated()),
        }
    }
}

/// The bearer token of a request, from `Authorization: Bearer`, or, on
/// `/ws` only (browsers cannot set headers on a WebSocket), from `?token=`.
/// Elsewhere a token in the URL is ignored: URLs end up in logs and histories.
pub fn bearer_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    if parts.uri.path() != "/ws" {
        return None;
    }
    parts
        .uri
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_owned)
}

/// A list's `size` query parameter: `default` when absent; outside
/// `1..=max` (or not a number) it is named in `errors` and `default` is used.
pub fn page_size(raw: Option<&str>, default: usize, max: usize, errors: &mut FieldErrors) -> usize {
    match raw {
        None => default,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errors.add("size", format!("must be an integer in 1..={max}"));
                default
            }
        },
    }
}

/// The request's `If-None-Match` header, if it has one.
pub struct IfNoneMatch(pub Option<axum::http::HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts
                .headers
                .get(axum::http::header::IF_NONE_MATCH)
                .cloned(),
        ))
    }
}

impl IfNoneMatch {
    /// Whether the client already holds the representation tagged `etag`
    /// (`"…"`): the header is `*` or lists that tag. The comparison is the
    /// weak one RFC 9110 prescribes for `If-None-Match`, so `W/"x"`
    /// matches `"x"`.
    pub fn matches(&self, etag: &str) -> bool {
        let Some(header) = self.0.as_ref().and_then(|v| v.to_str().ok()) else {
            return false;
        };
        header
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    }
}

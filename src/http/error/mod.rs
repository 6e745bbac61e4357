//! The one HTTP error type: every failure becomes RFC 9457 problem+json with
//! a stable machine-readable `code`.
//!
//! [`Code`] (`code.rs`) is the single table from code to status; clients
//! match on codes, never on messages. 5xx details are logged and replaced by
//! a generic text, so internal error text never reaches a client. The
//! mapping of each lower layer's errors to codes is in `convert.rs`.

mod code;
mod convert;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::domain::FieldErrors;
pub use code::Code;

/// Content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response in the making.
#[derive(Debug)]
pub struct ApiError {
    code: Code,
    detail: String,
    extra: Map<String, Value>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with `code` and a client-facing `detail`.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after_secs: None,
        }
    }

    /// 422 naming every bad field.
    pub fn validation(errors: FieldErrors) -> Self {
        let fields: Map<String, Value> = errors
            .as_map()
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let names: Vec<&str> = errors.as_map().keys().map(String::as_str).collect();
        ApiError::new(
            Code::ValidationFailed,
            format!("invalid fields: {}", names.join(", ")),
        )
        .with("errors", Value::Object(fields))
    }

    /// A 500 whose cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(Code::Internal, "the server could not complete the request")
    }

    /// 401 for a missing, unknown or expired token.
    pub fn unauthenticated() -> Self {
        ApiError::new(Code::Unauthenticated, "a valid bearer token is required")
    }

    /// 426 for a plain request to a websocket endpoint.
    pub fn upgrade_required() -> Self {
        ApiError::new(
            Code::UpgradeRequired,
            "this endpoint speaks the websocket protocol: send an upgrade request",
        )
    }

    /// 404 for the generic "no such thing (visible to you)".
    pub fn not_found(what: &str) -> Self {
        ApiError::new(Code::NotFound, format!("{what} not found"))
    }

    /// Adds an extension member to the problem body.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// Sets `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The error's code.
    pub fn code(&self) -> Code {
        self.code
    }
}

impl ApiError {
    /// The problem+json body.
    pub fn body(&self) -> String {
        let mut body = json!({
            "type": "about:blank",
            "title": self.code.title(),
            "status": self.code.status().as_u16(),
            "detail": self.detail,
            "code": self.code.as_str(),
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extra.clone());
        }
        body.to_string()
    }

    /// The `Retry-After` seconds, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let mut response = (status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// The problem+json body, for the OpenAPI document.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    kind: String,
    /// Summary of the code.
    title: String,
    /// HTTP status.
    status: u16,
    /// What went wrong, for humans.
    detail: String,
    /// Stable code clients match on (`VALIDATION_FAILED`, `NOT_FOUND`, ...).
    code: String,
    /// For `VALIDATION_FAILED`: field path → message.
    errors: Option<std::collections::BTreeMap<String, String>>,
}

//! The one HTTP error type: every failure becomes RFC 9457 problem+json with
//! a stable machine-readable `code`.
//!
//! [`Code`] is the single table from code to status; clients match on codes,
//! never on messages. 5xx details are logged and replaced by a generic text,
//! so internal error text never reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::actors::cart::CartError;
use crate::actors::checkout::CheckoutError;
use crate::actors::order::OrderError;
use crate::actors::runtime::EntityError;
use crate::domain::cart::CartRuleError;
use crate::domain::order::FulfilmentRefused;
use crate::domain::FieldErrors;
use crate::services::account::AccountError;
use crate::services::cart::CartServiceError;
use crate::services::catalog::CatalogError;
use crate::services::checkout::CheckoutServiceError;
use crate::services::order::OrderServiceError;
use crate::storage::StorageError;

/// Content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! codes {
    ($($variant:ident => $status:ident, $code:literal, $title:literal;)*) => {
        /// Every error code the API can answer with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $(#[doc = $title] $variant,)*
        }

        impl Code {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The HTTP status this code is sent with.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }

            /// The stable string clients match on.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// Short human-readable summary.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }
        }
    };
}

codes! {
    MalformedRequest => BAD_REQUEST, "MALFORMED_REQUEST", "Malformed request";
    InvalidCursor => BAD_REQUEST, "INVALID_CURSOR", "Invalid cursor";
    Unauthenticated => UNAUTHORIZED, "UNAUTHENTICATED", "Authentication required";
    InvalidCredentials => UNAUTHORIZED, "INVALID_CREDENTIALS", "Invalid credentials";
    Forbidden => FORBIDDEN, "FORBIDDEN", "Forbidden";
    NotFound => NOT_FOUND, "NOT_FOUND", "Not found";
    MethodNotAllowed => METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "Method not allowed";
    EmailTaken => CONFLICT, "EMAIL_TAKEN", "Email already registered";
    InsufficientStock => CONFLICT, "INSUFFICIENT_STOCK", "Insufficient stock";
    ItemInactive => CONFLICT, "ITEM_INACTIVE", "Item inactive";
    CheckoutInProgress => CONFLICT, "CHECKOUT_IN_PROGRESS", "Checkout in progress";
    PriceChanged => CONFLICT, "PRICE_CHANGED", "Price changed";
    OutOfStock => CONFLICT, "OUT_OF_STOCK", "Out of stock";
    InvalidTransition => CONFLICT, "INVALID_TRANSITION", "Invalid transition";
    RequestInProgress => CONFLICT, "REQUEST_IN_PROGRESS", "Request in progress";
    IdempotencyKeyReused => UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED", "Idempotency key reused";
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "Payload too large";
    RequestTimeout => REQUEST_TIMEOUT, "REQUEST_TIMEOUT", "Request body timed out";
    UriTooLong => URI_TOO_LONG, "URI_TOO_LONG", "URI too long";
    HeadersTooLarge => REQUEST_HEADER_FIELDS_TOO_LARGE, "HEADERS_TOO_LARGE", "Request headers too large";
    UpgradeRequired => UPGRADE_REQUIRED, "UPGRADE_REQUIRED", "Upgrade required";
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type";
    ValidationFailed => UNPROCESSABLE_ENTITY, "VALIDATION_FAILED", "Validation failed";
    EmptyCart => UNPROCESSABLE_ENTITY, "EMPTY_CART", "Empty cart";
    RateLimited => TOO_MANY_REQUESTS, "RATE_LIMITED", "Too many requests";
    SignInThrottled => TOO_MANY_REQUESTS, "SIGN_IN_THROTTLED", "Too many failed sign-ins";
    Internal => INTERNAL_SERVER_ERROR, "INTERNAL", "Internal error";
    Unavailable => SERVICE_UNAVAILABLE, "UNAVAILABLE", "Service unavailable";
    Timeout => SERVICE_UNAVAILABLE, "TIMEOUT", "Request timed out";
    Overloaded => SERVICE_UNAVAILABLE, "OVERLOADED", "Overloaded";
}

impl Code {
    /// The code for a bare status produced outside our handlers (axum's own
    /// 404/405, a layer's 413, ...).
    pub fn for_status(status: StatusCode) -> Code {
        match status.as_u16() {
            401 => Code::Unauthenticated,
            403 => Code::Forbidden,
            404 => Code::NotFound,
            405 => Code::MethodNotAllowed,
            408 => Code::RequestTimeout,
            504 => Code::Timeout,
            413 => Code::PayloadTooLarge,
            414 => Code::UriTooLong,
            431 => Code::HeadersTooLarge,
            415 => Code::UnsupportedMediaType,
            422 => Code::ValidationFailed,
            429 => Code::RateLimited,
            503 => Code::Unavailable,
            400..=499 => Code::MalformedRequest,
            _ => Code::Internal,
        }
    }
}

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

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Closed => {
                ApiError::new(Code::Unavailable, "the node is not accepting writes")
            }
            StorageError::FlushFailed(cause) => {
                tracing::error!(error = %cause, "flush failed");
                ApiError::new(
                    Code::Unavailable,
                    "storage failed; the outcome of this request is unknown",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(errors) => ApiError::validation(errors),
            AccountError::EmailTaken => ApiError::new(
                Code::EmailTaken,
                "an account with this email already exists",
            ),
            AccountError::InvalidCredentials => {
                ApiError::new(Code::InvalidCredentials, "email or password is incorrect")
            }
            AccountError::Unauthenticated => ApiError::unauthenticated(),
            AccountError::Throttled(wait) => ApiError::new(
                Code::SignInThrottled,
                "too many failed sign-ins for this email; wait before trying again",
            )
            // Rounded up: a client that waits exactly this long gets in.
            .retry_after(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
            AccountError::Busy => ApiError::new(
                Code::Overloaded,
                "too many sign-ins in progress; retry shortly",
            )
            .retry_after(1),
            AccountError::Hashing(cause) => ApiError::internal(cause),
            AccountError::Storage(e) => e.into(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid(errors) => ApiError::validation(errors),
            CatalogError::NotASeller => {
                ApiError::new(Code::Forbidden, "only sellers may list items")
            }
            CatalogError::NotFound => ApiError::not_found("item"),
            CatalogError::InsufficientStock { available } => ApiError::new(
                Code::InsufficientStock,
                format!("the change would make stock negative: {available} available"),
            )
            .with("available", json!(available)),
            CatalogError::Unavailable(e) => e.into(),
            CatalogError::Storage(e) => e.into(),
        }
    }
}

impl From<CartServiceError> for ApiError {
    fn from(e: CartServiceError) -> Self {
        match e {
            CartServiceError::Invalid(errors) => ApiError::validation(errors),
            CartServiceError::ItemNotFound => ApiError::not_found("item"),
            CartServiceError::ItemInactive => {
                ApiError::new(Code::ItemInactive, "the item is not for sale")
            }
            CartServiceError::InsufficientStock { available } => ApiError::new(
                Code::InsufficientStock,
                format!("only {available} available"),
            )
            .with("available", json!(available)),
            CartServiceError::Cart(e) => e.into(),
            CartServiceError::Catalog(e) => e.into(),
            CartServiceError::Storage(e) => e.into(),
        }
    }
}

impl From<CartError> for ApiError {
    fn from(e: CartError) -> Self {
        match e {
            CartError::Rule(CartRuleError::Locked) | CartError::InProgress => ApiError::new(
                Code::CheckoutInProgress,
                "a checkout of this cart is in progress",
            ),
            CartError::Rule(rule) => {
                ApiError::validation(FieldErrors::single("itemId", rule.to_string()))
            }
            CartError::Empty => ApiError::new(Code::EmptyCart, "the cart is empty"),
            CartError::Unavailable(e) => e.into(),
            CartError::Storage(e) => e.into(),
        }
    }
}

impl From<CheckoutServiceError> for ApiError {
    fn from(e: CheckoutServiceError) -> Self {
        match e {
            CheckoutServiceError::CartNotFound => ApiError::not_found("cart"),
            CheckoutServiceError::Checkout(e) => e.into(),
            CheckoutServiceError::Storage(e) => e.into(),
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        match e {
            CheckoutError::EmptyCart => ApiError::new(Code::EmptyCart, "the cart is empty"),
            CheckoutError::InProgress => ApiError::new(
                Code::CheckoutInProgress,
                "this cart is already being checked out",
            ),
            CheckoutError::PriceChanged { expected } => ApiError::new(
                Code::PriceChanged,
                format!("the cart's total is now {expected}; confirm the new amount"),
            )
            .with("expectedAmount", json!(expected)),
            CheckoutError::CurrencyMismatch { cart } => ApiError::validation(FieldErrors::single(
                "currency",
                format!("the cart is in {cart}"),
            )),
            CheckoutError::OutOfStock(lines) => {
                let lines: Vec<Value> = lines
                    .into_iter()
                    .map(|l| {
                        json!({
                            "itemId": l.item_id,
                            "variantId": l.variant_id,
                            "requested": l.requested,
                            "available": l.available,
                        })
                    })
                    .collect();
                ApiError::new(
                    Code::OutOfStock,
                    "some lines are out of stock; nothing was reserved and no order was created",
                )
                .with("lines", Value::Array(lines))
            }
            CheckoutError::Unavailable(reason) => {
                tracing::warn!(%reason, "checkout unavailable");
                ApiError::new(
                    Code::Unavailable,
                    "checkout could not complete; retry shortly",
                )
                .retry_after(1)
            }
            CheckoutError::Storage(e) => e.into(),
        }
    }
}

impl From<OrderServiceError> for ApiError {
    fn from(e: OrderServiceError) -> Self {
        match e {
            OrderServiceError::NotFound => ApiError::not_found("order"),
            OrderServiceError::NotASeller => {
                ApiError::new(Code::Forbidden, "only sellers see and fulfil orders")
            }
            OrderServiceError::InvalidCursor => ApiError::new(
                Code::InvalidCursor,
                "the cursor was not issued by this server",
            ),
            OrderServiceError::Order(e) => e.into(),
            OrderServiceError::Storage(e) => e.into(),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::InvalidTransition(refused) => {
                ApiError::new(Code::InvalidTransition, refused.to_string())
                    .with("orderStatus", json!(refused.from.as_str()))
            }
            OrderError::Fulfilment(FulfilmentRefused::NotTheSellers)
            | OrderError::NotFound
            | OrderError::Conflict => ApiError::not_found("order"),
            OrderError::Fulfilment(refused) => {
                ApiError::new(Code::InvalidTransition, refused.to_string()).with(
                    "orderStatus",
                    json!(refused.order_status().map(|s| s.as_str())),
                )
            }
            OrderError::RefundFailed(reason) => {
                tracing::warn!(%reason, "refund failed");
                ApiError::new(
                    Code::Unavailable,
                    "the payment gateway did not confirm the refund; nothing changed, retry shortly",
                )
                .retry_after(5)
            }
            OrderError::Unavailable(e) => e.into(),
            OrderError::Storage(e) => e.into(),
        }
    }
}

impl From<EntityError> for ApiError {
    fn from(e: EntityError) -> Self {
        match e {
            EntityError::Overloaded => ApiError::new(
                Code::Overloaded,
                "too many requests in flight; retry shortly",
            )
            .retry_after(1),
            EntityError::Timeout => {
                ApiError::new(Code::Timeout, "the request took too long").retry_after(1)
            }
            EntityError::Unavailable(reason) => {
                tracing::warn!(%reason, "entity unavailable");
                ApiError::new(Code::Unavailable, "temporarily unavailable; retry shortly")
                    .retry_after(1)
            }
            EntityError::Storage(e) => e.into(),
        }
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

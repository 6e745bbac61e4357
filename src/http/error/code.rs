//! The table of error codes: each code's HTTP status, stable string and
//! title, in one place.

use axum::http::StatusCode;

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
    NodeUnavailable => SERVICE_UNAVAILABLE, "NODE_UNAVAILABLE", "Node unavailable";
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

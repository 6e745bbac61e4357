//! Security headers every response carries, errors included.
//!
//! The API serves JSON and images, never a page, so each response forbids
//! everything a browser might do with it: no type sniffing, no framing, no
//! scripts or styles (`default-src 'none'`), no referrer. The pages (the
//! storefront at `/`, the seller page) set their own
//! `Content-Security-Policy`, which this layer leaves in place; `/media`
//! adds `Cross-Origin-Resource-Policy`.

use axum::http::{header, HeaderValue};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of every response that does not bring its own.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Adds the headers to every response of `router` (static values: no
/// allocation per response).
pub fn with_security_headers(router: Router) -> Router {
    let headers = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ));
    router.layer(headers)
}

//! The pages: `GET /` (the storefront, a single-page app with hash routes),
//! `GET /seller` (the seller page) and `GET /assets/{file}` (their ES
//! modules, style sheet and icon), all embedded in the binary from `web/`.
//!
//! They are not part of the OpenAPI document (HTML is not the contract;
//! the pages are clients of it), so they are a plain `Router` merged beside
//! the documented routes. Each page brings its own strict
//! `Content-Security-Policy`, which the security layer leaves in place:
//! scripts, styles and connections only from this origin (plus its
//! websocket), no inline code, no framing.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::{ApiError, Code};
use super::AppState;

/// Pages and assets are revalidated on every load (their names carry no
/// hash); the `ETag` makes that a `304` without a body.
const REVALIDATE: &str = "no-cache";

/// One embedded file: its name under `/assets/`, type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../web/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything `/assets/{file}` serves.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("live.js", JS),
    asset!("storefront.js", JS),
    asset!("shell.js", JS),
    asset!("browse.js", JS),
    asset!("buy.js", JS),
    asset!("account.js", JS),
    asset!("seller.js", JS),
];

const STOREFRONT: Asset = asset!("index.html", "text/html; charset=utf-8");
const SELLER: Asset = asset!("seller.html", "text/html; charset=utf-8");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(storefront))
        .route("/seller", get(seller))
        .route("/assets/{file}", get(asset))
}

async fn storefront(headers: HeaderMap) -> Response {
    page(&STOREFRONT, &headers)
}

async fn seller(headers: HeaderMap) -> Response {
    page(&SELLER, &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(found) => serve(found, &headers),
        None => ApiError::new(Code::NotFound, "no such asset").into_response(),
    }
}

/// A page: the file with its policy. `connect-src` names this host's
/// websocket explicitly, since older browsers do not let `'self'` cover
/// `ws:`; the host is the one the browser asked for, so naming it grants
/// nothing the page did not already have.
fn page(file: &Asset, headers: &HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| is_plain_host(h));
    let sockets = host.map_or(String::new(), |h| format!(" ws://{h} wss://{h}"));
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; \
         connect-src 'self'{sockets}; img-src 'self' data:; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    let mut response = serve(file, headers);
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// A `Host` made only of name, address and port characters (nothing that
/// could end a CSP directive).
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// The file with its type, cache policy and `ETag`; `304` when the
/// browser's copy is current. The tag is weak: compression may change the
/// bytes on the wire, not what they mean.
fn serve(file: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag_of(file);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let common = [
        (header::CACHE_CONTROL, REVALIDATE.to_owned()),
        (header::ETAG, tag.to_owned()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        [(header::CONTENT_TYPE, file.content_type.to_owned())],
        common,
        file.bytes,
    )
        .into_response()
}

/// The file's tag: a hash of its bytes, computed once per file.
fn etag_of(file: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .chain([&STOREFRONT, &SELLER])
            .map(|a| {
                let hash = xxhash_rust::xxh3::xxh3_64(a.bytes);
                (a.name, format!("W/\"{hash:016x}\""))
            })
            .collect()
    });
    tags.iter()
        .find(|(name, _)| *name == file.name)
        .map_or("W/\"0\"", |(_, tag)| tag.as_str())
}

//! The gateway's duties as middleware: who is calling, rate limits, request
//! timeouts, and a guarantee that every error body is problem+json (metrics
//! are [`super::request_metrics`]).
//! Request ids, tracing spans, compression and body limits are tower-http
//! layers, assembled in [`super::router`]; CORS is tower-http's, applied by
//! [`super::cors`] to the requests that ask for it.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_http::compression::predicate::{DefaultPredicate, Predicate};

use super::error::{ApiError, Code, PROBLEM_JSON};
use super::extract::{bearer_token, Caller};
use super::AppState;

/// The gateway's admission of a request, in one middleware (one boxed future
/// per request where there were four): within `request_timeout_ms` (else 503
/// `TIMEOUT`), identify the caller, apply the rate limit, and serve the
/// request here or forward it to its owner ([`super::route::to_owner`]).
pub async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = Duration::from_millis(state.settings.request_timeout_ms);
    match tokio::time::timeout(limit, admitted(&state, request, next)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(Code::Timeout, "the request took too long").into_response(),
    }
}

async fn admitted(state: &AppState, request: Request, next: Next) -> Response {
    let request = match identify_caller(state, request).await {
        Ok(request) => request,
        Err(refusal) => return refusal,
    };
    if let Some(refusal) = rate_limit(state, &request) {
        return refusal;
    }
    super::route::to_owner(state, request, next).await
}

/// Resolves the caller's token once and stores a [`Caller`] in the request
/// (or answers the storage error that prevented it).
async fn identify_caller(state: &AppState, request: Request) -> Result<Request, Response> {
    let (mut parts, body) = request.into_parts();
    let caller = match bearer_token(&parts) {
        None => Caller::Anonymous,
        Some(token) => match state.accounts.authenticate(&token).await {
            Ok(Some(who)) => Caller::SignedIn(who),
            Ok(None) => Caller::InvalidToken,
            Err(e) => return Err(ApiError::from(e).into_response()),
        },
    };
    parts.extensions.insert(caller);
    Ok(Request::from_parts(parts, body))
}

/// What a rate-limit bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// A valid session (by its storage key).
    Session([u8; 32]),
    /// An anonymous client (or one with an invalid token), by IP.
    Ip(IpAddr),
}

/// Token buckets per [`RateKey`].
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<RateKey>,
}

impl RateLimits {
    /// Buckets refilling `per_sec` with room for `burst` (0: same as `per_sec`);
    /// `None` when `per_sec` is 0 (limits off).
    pub fn new(per_sec: u32, burst: u32) -> Option<Arc<RateLimits>> {
        let rate = NonZeroU32::new(per_sec)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        let limiter = RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst));
        Some(Arc::new(RateLimits { limiter }))
    }

    /// `Ok` if `key` may proceed, else how many seconds to wait.
    fn check(&self, key: &RateKey) -> Result<(), u64> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets buckets that have refilled, bounding memory by active clients.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// 429 `RATE_LIMITED` with `Retry-After` once a caller's bucket is empty.
fn rate_limit(state: &AppState, request: &Request) -> Option<Response> {
    // A request forwarded by another node was counted there.
    let forwarded = request
        .extensions()
        .get::<super::route::Forwarded>()
        .is_some();
    let limits = state.rate_limits.as_ref().filter(|_| !forwarded)?;
    let key = match request.extensions().get::<Caller>() {
        Some(Caller::SignedIn(who)) => RateKey::Session(who.session_key),
        _ => RateKey::Ip(
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip()),
        ),
    };
    let wait_secs = limits.check(&key).err()?;
    metrics::counter!("agora_http_rate_limited_total").increment(1);
    Some(
        ApiError::new(Code::RateLimited, "too many requests; slow down")
            .retry_after(wait_secs)
            .into_response(),
    )
}

/// What the compression layer compresses: what tower-http would by default,
/// except a response with a strong `ETag` (an item page). A strong tag names
/// exact bytes, and a gzip of them is other bytes: they are sent as tagged.
pub fn compressible() -> impl Predicate {
    DefaultPredicate::new().and(
        |_: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions| {
            !headers
                .get(header::ETAG)
                .is_some_and(|tag| tag.as_bytes().starts_with(b"\""))
        },
    )
}

/// Rewrites any error response that is not already problem+json (axum's own
/// 404 and 405, a layer's 413, ...) into one, keeping its status and headers.
/// A plain map of the response (`ServiceBuilder::map_response`): no boxed
/// future per request, as `middleware::from_fn` would make.
pub fn problem_fallback<B>(response: axum::http::Response<B>) -> Response
where
    B: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let response = response.map(Body::new);
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let code = Code::for_status(status);
    let detail = match code {
        Code::NotFound => "no such resource",
        Code::MethodNotAllowed => "this resource does not support that method",
        _ => code.title(),
    };
    let (mut parts, _) = response.into_parts();
    let problem = ApiError::new(code, detail).into_response();
    let (problem_parts, body) = problem.into_parts();
    parts.status = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    for (name, value) in problem_parts.headers.iter() {
        if name == header::WWW_AUTHENTICATE {
            parts.headers.insert(name, value.clone());
        }
    }
    Response::from_parts(parts, Body::new(body))
}

/// The request id's header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids are ULIDs from a thread-local generator: tower-http's UUID v4
/// maker asks the OS for randomness on every request (a `getrandom` syscall,
/// ~2% of a `GET /items/{id}` when profiled).
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeUlidRequestId;

impl tower_http::request_id::MakeRequestId for MakeUlidRequestId {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        // The 26 characters are written on the stack and become the header's
        // own shared bytes: one allocation, which the request header, its
        // extension and the response header share (a `String` and a copy of
        // it, then a second allocation on the first clone, before).
        let mut text = [0u8; ulid::ULID_LEN];
        ulid::Ulid::new().array_to_str(&mut text);
        HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// Longest `x-request-id` a client may choose.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// Removes a client's `x-request-id` unless it is 1..=128 visible ASCII
/// characters, so that the next layer makes a fresh one: the id is echoed
/// in the response and written to every log line of the request.
pub fn drop_invalid_request_id(mut request: Request) -> Request {
    let valid = request.headers().get(REQUEST_ID).is_none_or(|id| {
        let id = id.as_bytes();
        (1..=MAX_REQUEST_ID_BYTES).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
    });
    if !valid {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

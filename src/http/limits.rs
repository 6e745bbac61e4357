//! Limits checked before a handler runs: the request target's length, the
//! headers' size, a declared body length over the route's limit, and a
//! body that stops arriving. Each answers problem+json with its own code;
//! what hyper refuses before we see the request is listed in the README.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::convert::Infallible;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::error::{ApiError, Code};
use super::MAX_BODY_BYTES;
use crate::services::media::MAX_IMAGE_BYTES;

/// Longest request target (path and query) we answer; longer gets 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most header bytes (names, values and their separators) in one request;
/// more gets 431. Hyper's own buffer is larger
/// ([`super::server::MAX_HEAD_BUFFER_BYTES`]) so that this limit, not
/// hyper's bare answer, is what clients normally meet.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Routes whose bodies may exceed [`MAX_BODY_BYTES`]; each also sets axum's
/// `DefaultBodyLimit` to match, which catches chunked bodies as they come.
const LARGE_BODY_ROUTES: [(&str, usize); 1] = [("/items/{id}/images", MAX_IMAGE_BYTES)];

/// Refuses requests over the limits above at once, and gives the body a
/// read timeout: a body that sends nothing for `body_read_timeout_secs`
/// while a handler waits for it ends the request with 408. A plain tower
/// layer rather than `middleware::from_fn`: it sits on every request, and
/// `from_fn` boxes a future and clones the inner service per call.
#[derive(Debug, Clone, Copy)]
pub struct GuardLayer {
    idle: Duration,
}

impl GuardLayer {
    /// Bodies may pause for at most `idle`.
    pub fn new(idle: Duration) -> Self {
        GuardLayer { idle }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            idle: self.idle,
        }
    }
}

/// The service [`GuardLayer`] makes.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    idle: Duration,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Some(refusal) = head_over_limits(&request) {
            return GuardFuture::refused(refusal);
        }
        if let Some(limit) = declared_over_limit(&request) {
            // A client that waits for `100 Continue` sends nothing more; any
            // other is sending the body now, and would see its upload fail
            // with a reset instead of this answer if the connection closed
            // under it, so the body is read and thrown away meanwhile.
            let waits = request
                .headers()
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if !waits {
                tokio::spawn(discard(request.into_body(), self.idle));
            }
            let refusal = closing(ApiError::new(
                Code::PayloadTooLarge,
                format!("the body is over this route's limit of {limit} bytes"),
            ));
            return GuardFuture::refused(refusal);
        }
        // Most requests have no body: nothing to time, nothing allocated.
        if request.body().is_end_stream() {
            return GuardFuture::running(self.inner.call(request), None);
        }
        let expired = Arc::new(AtomicBool::new(false));
        let flag = expired.clone();
        let idle = self.idle;
        let request = request.map(|body| Body::new(TimedBody::new(body, idle, flag)));
        GuardFuture::running(self.inner.call(request), Some((expired, idle)))
    }
}

pin_project_lite::pin_project! {
    /// The response of a [`Guard`]ed request: a refusal made before the
    /// handler ran, or the handler's answer (replaced by 408 if the body
    /// timed out meanwhile).
    pub struct GuardFuture<F> {
        refusal: Option<Response>,
        #[pin]
        inner: Option<F>,
        // Set when the body timed out; and the timeout, for the text.
        expired: Option<(Arc<AtomicBool>, Duration)>,
    }
}

impl<F> GuardFuture<F> {
    fn refused(refusal: Response) -> Self {
        GuardFuture {
            refusal: Some(refusal),
            inner: None,
            expired: None,
        }
    }

    fn running(inner: F, expired: Option<(Arc<AtomicBool>, Duration)>) -> Self {
        GuardFuture {
            refusal: None,
            inner: Some(inner),
            expired,
        }
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(refusal) = this.refusal.take() {
            return Poll::Ready(Ok(refusal));
        }
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Ok(
                ApiError::internal("a refusal was polled twice").into_response()
            ));
        };
        let Poll::Ready(Ok(response)) = inner.poll(cx) else {
            return Poll::Pending;
        };
        match this.expired {
            // Whatever the handler made of the failed read (a 400 from the
            // JSON extractor, say), the cause is the client's silence.
            Some((flag, idle)) if flag.load(Ordering::Relaxed) => {
                Poll::Ready(Ok(closing(ApiError::new(
                    Code::RequestTimeout,
                    format!("the request body stopped arriving for {} s", idle.as_secs()),
                ))))
            }
            _ => Poll::Ready(Ok(response)),
        }
    }
}

/// The refusal for a request whose head is over a limit, if it is.
fn head_over_limits(request: &Request) -> Option<Response> {
    let uri = request.uri();
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(
            ApiError::new(
                Code::UriTooLong,
                format!("the request target is over {MAX_URI_BYTES} bytes"),
            )
            .into_response(),
        );
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Some(
            ApiError::new(
                Code::HeadersTooLarge,
                format!("the request headers are over {MAX_HEADER_BYTES} bytes"),
            )
            .into_response(),
        );
    }
    None
}

/// The route's body limit, if the declared `Content-Length` is over it.
fn declared_over_limit(request: &Request) -> Option<usize> {
    let declared = request.headers().get(header::CONTENT_LENGTH)?;
    // hyper has already refused a malformed or conflicting Content-Length.
    let declared: u64 = declared.to_str().ok()?.parse().ok()?;
    let route = request.extensions().get::<MatchedPath>();
    let limit = LARGE_BODY_ROUTES
        .iter()
        .find(|(path, _)| route.is_some_and(|r| r.as_str() == *path))
        .map_or(MAX_BODY_BYTES, |(_, limit)| *limit);
    (declared > limit as u64).then_some(limit)
}

/// Most bytes of a refused body read and thrown away: enough for any
/// honest upload that was merely too large, little for an abuser.
const MAX_DISCARDED_BYTES: usize = 16 * 1024 * 1024;

/// Reads and drops a refused body (at most [`MAX_DISCARDED_BYTES`], for at
/// most `within`), so the client finishes sending and reads the answer;
/// the connection closes after (the answer says `Connection: close`).
async fn discard(mut body: Body, within: Duration) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(within, async {
        let mut discarded = 0;
        while let Some(Ok(frame)) = body.frame().await {
            discarded += frame.data_ref().map_or(0, Bytes::len);
            if discarded > MAX_DISCARDED_BYTES {
                break;
            }
        }
    })
    .await;
}

/// An error response that also closes the connection: the rest of the
/// body is never read, so the connection cannot carry another request.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The error a body read fails with after the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body stopped arriving")]
struct BodyReadTimeout;

pin_project_lite::pin_project! {
    /// A request body that fails once no data has come for `idle`. The
    /// clock runs only while the handler waits for data that has not come
    /// (so neither a slow handler nor `Expect: 100-continue` counts against
    /// the client), and restarts after each frame.
    struct TimedBody {
        #[pin]
        inner: Body,
        #[pin]
        waiting: Option<Sleep>,
        idle: Duration,
        expired: Arc<AtomicBool>,
    }
}

impl TimedBody {
    fn new(inner: Body, idle: Duration, expired: Arc<AtomicBool>) -> Self {
        TimedBody {
            inner,
            waiting: None,
            idle,
            expired,
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            this.waiting.set(None);
            return Poll::Ready(frame);
        }
        if this.waiting.is_none() {
            this.waiting.set(Some(tokio::time::sleep(*this.idle)));
        }
        match this.waiting.as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => {
                this.expired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(axum::Error::new(BodyReadTimeout))))
            }
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

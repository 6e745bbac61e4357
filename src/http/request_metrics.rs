//! Request metrics: `agora_http_requests_total` and
//! `agora_http_request_duration_seconds` by method, matched route and
//! status.
//!
//! A plain tower layer rather than `middleware::from_fn` (which boxes a
//! future and clones the inner service per request), and each label set's
//! counter and histogram are looked up in the recorder once per thread and
//! kept: the labelled lookup (building the key, hashing it, a map read)
//! was the larger part of recording (measured in `benches/item_page.rs`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics::{Counter, Histogram};
use tower::{Layer, Service};

/// Records every request's count and latency.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics { inner }
    }
}

/// The service [`MetricsLayer`] makes.
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

impl<S> Service<Request> for Metrics<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The route template, never the raw path: ids would explode
        // cardinality. Cloning a MatchedPath is a reference count.
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = method_label(request.method());
        MetricsFuture {
            inner: self.inner.call(request),
            started: Instant::now(),
            method,
            route,
        }
    }
}

/// A fixed set: hyper accepts any method token, and each new label value
/// would be a new series (memory an anonymous client could grow at will).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pin_project_lite::pin_project! {
    /// A request's answer, recorded when it is ready.
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: &'static str,
        route: Option<MatchedPath>,
    }
}

impl<F> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Poll::Ready(Ok(response)) = this.inner.poll(cx) else {
            return Poll::Pending;
        };
        let route = this.route.as_ref().map_or("unmatched", |r| r.as_str());
        let seconds = this.started.elapsed().as_secs_f64();
        record(this.method, route, response.status().as_u16(), seconds);
        Poll::Ready(Ok(response))
    }
}

/// One label set's counter and histogram, by route.
type ByRoute = HashMap<Box<str>, (Counter, Histogram)>;

thread_local! {
    /// (method, status) → route → that label set's handles. Bounded by the
    /// routes, methods and statuses the server has: a few hundred entries
    /// per thread.
    static HANDLES: RefCell<HashMap<(&'static str, u16), ByRoute>> =
        RefCell::new(HashMap::new());
}

/// Counts one request and records its latency, through the handles of its
/// label set (looked up in the recorder once per thread).
fn record(method: &'static str, route: &str, status: u16, seconds: f64) {
    HANDLES.with(|cell| {
        let mut map = cell.borrow_mut();
        let by_route = map.entry((method, status)).or_default();
        if !by_route.contains_key(route) {
            let labels = [
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ];
            let handles = (
                metrics::counter!("agora_http_requests_total", &labels),
                metrics::histogram!("agora_http_request_duration_seconds", &labels),
            );
            by_route.insert(route.into(), handles);
        }
        if let Some((count, latency)) = by_route.get(route) {
            count.increment(1);
            latency.record(seconds);
        }
    });
}

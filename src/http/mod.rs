//! HTTP: one module per resource, each exposing `router()`, merged here with
//! the gateway layers. Handlers translate HTTP to service calls and back:
//! parse, authorize, call one service or read model, render. They hold no
//! locks, make no business decisions, and reach no sled tree or actor handle.
//!
//! - Resources: `users`, `sessions`, `items` (the catalog), `search`,
//!   `cart`, `checkout`, `orders` (the buyer's), `seller_orders` (shipping
//!   and `/seller/orders`), `notifications`, `wishlist`, `recommend`,
//!   `media`, `ops` (health, readiness, metrics, the document), `cluster`
//!   (this node's view of the cluster), `placement` (which node owns an
//!   entity), `ws`, and `storefront` (the pages, outside the document).
//! - Around them: [`error`] (the code table, problem+json, and the mapping
//!   of every lower layer's errors), [`cors`] (only for requests with an
//!   `Origin`), [`extract`], [`gateway`], [`limits`],
//!   [`request_metrics`], [`security`], [`server`], `strict` (strict JSON), `openapi`.

mod cart;
mod checkout;
mod cluster;
pub mod cors;
pub mod error;
pub mod extract;
pub mod gateway;
mod items;
pub mod limits;
mod media;
mod notifications;
mod openapi;
mod ops;
mod orders;
mod placement;
mod recommend;
pub mod request_metrics;
pub mod route;
mod search;
pub mod security;
mod seller_items;
mod seller_orders;
pub mod server;
mod sessions;
mod storefront;
mod strict;
pub mod trace;
mod users;
mod wishlist;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::response::IntoResponse;
use axum::{middleware, Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::config::Settings;
use crate::services::account::AccountService;
use crate::services::cart::CartService;
use crate::services::catalog::CatalogService;
use crate::services::checkout::CheckoutService;
use crate::services::order::OrderService;
use crate::services::status::NodeStatus;
use error::ApiError;
use gateway::{RateLimits, REQUEST_ID};

/// Largest JSON body, per the API conventions.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything a handler may use. One `Arc`, because every middleware and
/// handler clones the state per request: cloning a struct of a dozen `Arc`s
/// cost ~4% of a `GET /items/{id}` in atomic reference counting (profiled).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Services {
    /// The node's settings.
    pub settings: Arc<Settings>,
    /// What `/ready` reports of storage.
    pub status: NodeStatus,
    /// Accounts and sessions.
    pub accounts: AccountService,
    /// The seller catalog, with stock levels.
    pub catalog: CatalogService,
    /// Carts.
    pub carts: CartService,
    /// Checkout, with `Idempotency-Key` replays.
    pub checkout: CheckoutService,
    /// Orders: the read path and changes.
    pub orders: OrderService,
    /// Catalog search.
    pub search: crate::search::Search,
    /// Live updates: the websocket hub.
    pub hub: crate::services::live::Hub,
    /// The notifications inbox.
    pub notifications: crate::services::notifications::Inbox,
    /// Wishlists.
    pub wishlists: crate::services::wishlist::WishlistService,
    /// Recommendations.
    pub recommender: crate::services::recommend::Recommender,
    /// Item images.
    pub media: crate::services::media::MediaService,
    /// Forwarding to other nodes (`None` on a single node).
    pub forwarding: Option<route::Forwarding>,
    /// Rate limits (`None` when disabled).
    pub rate_limits: Option<Arc<RateLimits>>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// Assembles the state from the services (`rate_limits` is filled in
    /// here); must run inside the runtime (it starts the rate limiter's
    /// clean-up task).
    pub fn new(mut services: Services) -> Self {
        let settings = &services.settings;
        let rate_limits = RateLimits::new(settings.rate_limit_per_sec, settings.rate_limit_burst);
        if let Some(limits) = &rate_limits {
            let limits = Arc::downgrade(limits);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    match limits.upgrade() {
                        Some(limits) => limits.forget_idle(),
                        None => break,
                    }
                }
            });
        }
        services.rate_limits = rate_limits;
        AppState(Arc::new(services))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Agora", description = "An actor-based reactive marketplace server. See API.md for the prose contract."),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Users and sessions"),
        (name = "catalog", description = "Items and stock"),
        (name = "cart", description = "The shopper's cart (signed in, or a guest with X-Cart-Token)"),
        (name = "orders", description = "Checkout and orders"),
        (name = "wishlist", description = "The buyer's wishlist"),
        (name = "recommendations", description = "Popular, personalized and related items"),
        (name = "live", description = "Live updates over a websocket"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole application: every resource's routes behind the gateway layers.
/// `/metrics` is among them unless `admin_http` is set ([`admin_router`]).
pub fn router(state: AppState) -> Router {
    let (routes, openapi_json) = api_routes(&state.settings);
    let request_id = REQUEST_ID;
    let trace = trace::RequestSpanLayer::new(request_span);
    // Outermost first: ids exist before the span opens; the span covers
    // everything, including rejections by the inner layers.
    let gateway = ServiceBuilder::new()
        // An id a client sent is kept only if it is safe to log and echo.
        .map_request(gateway::drop_invalid_request_id)
        .layer(SetRequestIdLayer::new(
            request_id.clone(),
            gateway::MakeUlidRequestId,
        ))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(cors::layer(&state.settings))
        .layer(CompressionLayer::new().compress_when(gateway::compressible()))
        .map_response(gateway::problem_fallback)
        // A panic anywhere below becomes a 500 (rewritten to problem+json
        // above) instead of a reset connection.
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::internal("a handler panicked").into_response()
            },
        ))
        .layer(request_metrics::MetricsLayer)
        .layer(limits::GuardLayer::new(Duration::from_secs(
            state.settings.body_read_timeout_secs,
        )))
        // The timeout, the caller, the rate limit and forwarding: one
        // middleware (each `from_fn` boxes a future per request).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            gateway::admit,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(Extension(openapi_json));
    let routes = routes.merge(storefront::router());
    security::with_security_headers(routes.layer(gateway).with_state(state))
}

/// Every resource's routes, and the OpenAPI document they declare
/// (completed with the gateway's answers), rendered once.
fn api_routes(settings: &Settings) -> (Router<AppState>, Arc<String>) {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi());
    if settings.admin_http.is_none() {
        api = api.merge(ops::metrics_router());
    }
    let (routes, mut openapi) = api
        .merge(users::router())
        .merge(sessions::router())
        .merge(items::router())
        .merge(search::router())
        .merge(cart::router())
        .merge(checkout::router())
        .merge(orders::router())
        .merge(seller_orders::router())
        .merge(seller_items::router())
        .merge(ops::router())
        .merge(cluster::router())
        .merge(placement::router())
        .merge(ws::router())
        .merge(notifications::router())
        .merge(wishlist::router())
        .merge(recommend::router())
        .merge(media::router())
        .split_for_parts();
    openapi::complete(&mut openapi);
    let openapi_json = Arc::new(openapi.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    (routes, openapi_json)
}

/// The span each request is traced in: method, matched route, request id,
/// formatted only if something is logged in it ([`crate::telemetry::request_span`]).
fn request_span(request: &Request) -> tracing::Span {
    crate::telemetry::request_span(crate::telemetry::RequestFields {
        method: request.method().clone(),
        route: request.extensions().get::<MatchedPath>().cloned(),
        request_id: request.headers().get(REQUEST_ID).cloned(),
    })
}

/// The operators' listener (`admin_http`): `/metrics` alone, with request
/// ids, problem+json errors and the security headers.
pub fn admin_router(state: AppState) -> Router {
    let (routes, _) = OpenApiRouter::new()
        .merge(ops::metrics_router())
        .split_for_parts();
    let request_id = REQUEST_ID;
    let gateway = ServiceBuilder::new()
        .map_request(gateway::drop_invalid_request_id)
        .layer(SetRequestIdLayer::new(
            request_id.clone(),
            gateway::MakeUlidRequestId,
        ))
        .layer(PropagateRequestIdLayer::new(request_id))
        .map_response(gateway::problem_fallback);
    security::with_security_headers(routes.layer(gateway).with_state(state))
}

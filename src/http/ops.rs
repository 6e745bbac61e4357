//! Operations: liveness, readiness, metrics, and the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Code};
use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(openapi))
}

/// `/metrics`: on the public router, or on the admin listener when
/// `admin_http` is set.
pub fn metrics_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "alive")))]
async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Readiness: 200 once storage accepts writes (and, in a cluster, this
/// node reaches NATS), 503 otherwise.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready: storage closed, or (in a cluster) NATS out of reach")))]
async fn ready(State(state): State<AppState>) -> Response {
    // The search index is open before the listener binds, so a serving
    // node always has it; its lag is reported for operators.
    if !state.status.accepts_writes() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "storage": "closed"})),
        )
            .into_response();
    }
    let nats = state.status.reaches_nats();
    if nats == Some(false) {
        // The client reconnects by itself (backoff capped at 2 s); ask
        // again shortly.
        return ApiError::new(Code::Unavailable, "this node does not reach NATS")
            .with("nats", json!("unreachable"))
            .retry_after(1)
            .into_response();
    }
    let newest = state.status.newest_event();
    let recommended = state.recommender.position();
    let mut body = json!({
        "status": "ready",
        "storage": "ok",
        "search": {"documents": state.search.documents(), "indexedEvent": state.search.indexed()},
        "events": {"newest": newest},
        "recommender": {"appliedEvent": recommended, "lag": newest.saturating_sub(recommended)},
    });
    if nats == Some(true) {
        body["nats"] = json!("connected");
    }
    (StatusCode::OK, Json(body)).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// This contract as OpenAPI 3.1.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi(Extension(document): Extension<Arc<String>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.as_str().to_owned(),
    )
}

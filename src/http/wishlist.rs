//! `/wishlist`: the signed-in user's wishlist.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{Path, SignedIn};
use super::search::{summarize_live, ItemSummary};
use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_wishlist))
        .routes(routes!(add_item, remove_item))
}

/// The wishlist.
#[derive(Serialize, ToSchema)]
pub struct WishlistView {
    /// Item summaries, most recently added first (items no longer for sale
    /// are left out).
    items: Vec<ItemSummary>,
}

/// The caller's wishlist.
#[utoipa::path(get, path = "/wishlist", tag = "wishlist", security(("bearer" = [])),
    responses(
        (status = 200, body = WishlistView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_wishlist(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
) -> Result<axum::Json<WishlistView>, ApiError> {
    let ids = state.wishlists.ids(&who.user_id).await?;
    let items = summarize_live(&state, ids.into_iter().map(|id| (id, None)).collect()).await?;
    Ok(axum::Json(WishlistView { items }))
}

/// Adds an item (idempotent).
#[utoipa::path(put, path = "/wishlist/{itemId}", tag = "wishlist", security(("bearer" = [])),
    params(("itemId" = String, Path)),
    responses(
        (status = 204, description = "on the wishlist"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, description = "no such item for sale", content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "the wishlist is full (500)", content_type = "application/problem+json"),
    ))]
async fn add_item(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(item_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.wishlists.add(&who.user_id, &item_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes an item (idempotent).
#[utoipa::path(delete, path = "/wishlist/{itemId}", tag = "wishlist", security(("bearer" = [])),
    params(("itemId" = String, Path)),
    responses(
        (status = 204, description = "not on the wishlist"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, description = "no such item", content_type = "application/problem+json"),
    ))]
async fn remove_item(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(item_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.wishlists.remove(&who.user_id, &item_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `GET /seller/items`: the signed-in seller's own items with their stock,
//! active and withdrawn, newest first (the seller page's list).

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{page_size, SignedIn};
use super::items::ItemView;
use super::AppState;
use crate::domain::item::{ItemStatus, ItemStatusName};
use crate::domain::FieldErrors;

/// The seller's item list.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_seller_items))
}

/// `GET /seller/items` query.
#[derive(Deserialize, IntoParams)]
pub struct SellerItemsQuery {
    /// Only items in this status (`active` or `inactive`, case-insensitive).
    #[param(value_type = ItemStatusName, required = false, inline)]
    status: Option<String>,
    /// From the previous page's `nextCursor`.
    cursor: Option<String>,
    /// 1..=100, default 20.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 100)]
    size: Option<String>,
}

/// A page of the seller's items.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SellerItemPage {
    /// Newest first, each as `GET /items/{id}` shows it.
    items: Vec<ItemView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// The caller's own items (a seller), newest first, with their stock;
/// withdrawn items too unless `status` says otherwise.
#[utoipa::path(get, path = "/seller/items", tag = "items", security(("bearer" = [])), params(SellerItemsQuery),
    responses(
        (status = 200, body = SellerItemPage),
        (status = 400, body = Problem, description = "INVALID_CURSOR", content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, description = "not a seller", content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "unknown status, size out of range", content_type = "application/problem+json"),
    ))]
async fn list_seller_items(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Query(query): Query<SellerItemsQuery>,
) -> Result<axum::Json<SellerItemPage>, ApiError> {
    let mut errors = FieldErrors::new();
    let status = match query.status.as_deref().map(str::to_ascii_lowercase) {
        None => None,
        Some(raw) if raw == "active" => Some(ItemStatus::Active),
        Some(raw) if raw == "inactive" => Some(ItemStatus::Inactive),
        Some(_) => {
            errors.add("status", "must be one of active, inactive");
            None
        }
    };
    let size = page_size(query.size.as_deref(), 20, 100, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let page = state
        .catalog
        .list_for_seller(&who, status, query.cursor.as_deref(), size)
        .await?;
    Ok(axum::Json(SellerItemPage {
        items: page.items.into_iter().map(ItemView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

//! The sellers' side of orders: `POST /orders/{id}/ship` and `/deliver`
//! (their part of an order), and `/seller/orders` (the orders holding their
//! items, each showing only their part).

use axum::extract::{Query, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{Path, SignedIn};
use super::orders::{list_filters, FulfilmentView, ListQuery, OrderLineView};
use super::users::AddressBody;
use super::AppState;
use crate::domain::order::{FulfilmentStatus, Order, OrderStatus};
use crate::domain::Timestamp;

/// The sellers' order routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ship_order))
        .routes(routes!(deliver_order))
        .routes(routes!(list_seller_orders))
}

/// Marks the caller's part of the order shipped (a seller of an item in
/// it); the order is `SHIPPED` once every seller's part is.
#[utoipa::path(post, path = "/orders/{id}/ship", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses(
        (status = 200, body = SellerOrderView),
        (status = 403, body = Problem, description = "not a seller", content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, description = "INVALID_TRANSITION", content_type = "application/problem+json"),
    ))]
async fn ship_order(
    state: State<AppState>,
    who: SignedIn,
    id: Path<String>,
) -> Result<axum::Json<SellerOrderView>, ApiError> {
    fulfil(state, who, id, FulfilmentStatus::Shipped).await
}

/// Marks the caller's part of the order delivered (a seller of an item in
/// it); the order is `DELIVERED` once every seller's part is.
#[utoipa::path(post, path = "/orders/{id}/deliver", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses(
        (status = 200, body = SellerOrderView),
        (status = 403, body = Problem, description = "not a seller", content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, description = "INVALID_TRANSITION", content_type = "application/problem+json"),
    ))]
async fn deliver_order(
    state: State<AppState>,
    who: SignedIn,
    id: Path<String>,
) -> Result<axum::Json<SellerOrderView>, ApiError> {
    fulfil(state, who, id, FulfilmentStatus::Delivered).await
}

async fn fulfil(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(id): Path<String>,
    to: FulfilmentStatus,
) -> Result<axum::Json<SellerOrderView>, ApiError> {
    let order = state.orders.fulfil(&who.user_id, who.role, &id, to).await?;
    Ok(axum::Json(SellerOrderView::new(order, &who.user_id)))
}

/// A seller's view of an order: their own lines and part, where to ship,
/// and nothing of the payment or of other sellers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SellerOrderView {
    id: String,
    /// The whole order's status (`CONFIRMED` until every seller has
    /// shipped, and so on).
    status: String,
    /// Only this seller's lines.
    lines: Vec<OrderLineView>,
    /// The currency of the lines' prices.
    currency: String,
    /// Where to ship; only while the order is paid (`CONFIRMED`,
    /// `SHIPPED`, `DELIVERED`), `null` otherwise.
    shipping_address: Option<AddressBody>,
    /// This seller's part only.
    fulfilment: Vec<FulfilmentView>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl SellerOrderView {
    /// `seller_id`'s view of `order`.
    fn new(order: Order, seller_id: &str) -> Self {
        SellerOrderView {
            lines: order
                .lines
                .into_iter()
                .filter(|l| l.seller_id == seller_id)
                .map(OrderLineView::from)
                .collect(),
            fulfilment: order
                .fulfilment
                .into_iter()
                .filter(|f| f.seller_id == seller_id)
                .map(FulfilmentView::from)
                .collect(),
            id: order.id,
            status: order.status.as_str().to_owned(),
            currency: order.currency,
            // Where to ship only once there is something to ship: a seller
            // learns nothing of buyers whose orders were never paid (or were
            // cancelled), not even that they tried.
            shipping_address: matches!(
                order.status,
                OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered
            )
            .then(|| order.shipping_address.as_ref().map(AddressBody::from))
            .flatten(),
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

/// A page of a seller's orders.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SellerOrderPage {
    items: Vec<SellerOrderView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// The orders holding the caller's items, newest first, each showing only
/// the caller's part. `status` filters on the whole order's status.
#[utoipa::path(get, path = "/seller/orders", tag = "orders", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, body = SellerOrderPage),
        (status = 400, body = Problem, description = "INVALID_CURSOR", content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, description = "not a seller", content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "unknown status, size out of range", content_type = "application/problem+json"),
    ))]
async fn list_seller_orders(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<SellerOrderPage>, ApiError> {
    let (status, size) = list_filters(&query)?;
    let page = state
        .orders
        .list_for_seller(
            &who.user_id,
            who.role,
            status,
            query.cursor.as_deref(),
            size,
        )
        .await?;
    Ok(axum::Json(SellerOrderPage {
        items: page
            .orders
            .into_iter()
            .map(|o| SellerOrderView::new(o, &who.user_id))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

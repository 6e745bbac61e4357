//! `/orders`: the buyer's orders and cancellation (the sellers' side,
//! shipping and `/seller/orders`, is in `seller_orders.rs`).

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{page_size, Path, SignedIn};
use super::users::AddressBody;
use super::AppState;
use crate::domain::order::{Fulfilment, Order, OrderLine, OrderStatus};
use crate::domain::{FieldErrors, Timestamp};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
}

/// One line of an order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineView {
    item_id: String,
    variant_id: String,
    name: String,
    quantity: i64,
    /// Price charged per unit.
    unit_price: i64,
    line_total: i64,
}

/// One entry of an order's history.
#[derive(Serialize, ToSchema)]
pub struct HistoryView {
    status: String,
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
}

/// An order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    id: String,
    user_id: String,
    lines: Vec<OrderLineView>,
    amount: i64,
    currency: String,
    /// `CREATED`, `PAYMENT_PENDING`, `CONFIRMED`, `SHIPPED`, `DELIVERED`,
    /// `PAYMENT_FAILED`, `EXPIRED`, `CANCELLED`.
    status: String,
    /// `PENDING`, `SUCCEEDED`, `FAILED`, `REFUNDED`.
    payment_status: String,
    payment_txn_id: Option<String>,
    /// Last four digits of the card.
    card_last4: Option<String>,
    /// Why payment failed or the order ended early.
    failure_reason: Option<String>,
    shipping_address: Option<AddressBody>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
    /// When a `PAYMENT_PENDING` order expires.
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
    history: Vec<HistoryView>,
    /// Each seller's part: the order is `SHIPPED` once every part has
    /// shipped, `DELIVERED` once every part has been delivered.
    fulfilment: Vec<FulfilmentView>,
}

impl From<OrderLine> for OrderLineView {
    fn from(l: OrderLine) -> Self {
        OrderLineView {
            line_total: l.quantity.saturating_mul(l.unit_price),
            item_id: l.item_id,
            variant_id: l.variant_id,
            name: l.name,
            quantity: l.quantity,
            unit_price: l.unit_price,
        }
    }
}

/// One seller's part of an order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FulfilmentView {
    seller_id: String,
    /// `PENDING`, `SHIPPED`, `DELIVERED`.
    status: String,
    /// When the part got there (for `PENDING`, when the order was placed).
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
}

impl From<Fulfilment> for FulfilmentView {
    fn from(f: Fulfilment) -> Self {
        FulfilmentView {
            seller_id: f.seller_id,
            status: f.status.as_str().to_owned(),
            at: f.at,
        }
    }
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        OrderView {
            lines: o.lines.into_iter().map(OrderLineView::from).collect(),
            fulfilment: o.fulfilment.into_iter().map(FulfilmentView::from).collect(),
            history: o
                .history
                .into_iter()
                .map(|h| HistoryView {
                    status: h.status.as_str().to_owned(),
                    at: h.at,
                })
                .collect(),
            id: o.id,
            user_id: o.user_id,
            amount: o.amount,
            currency: o.currency,
            status: o.status.as_str().to_owned(),
            payment_status: o.payment_status.as_str().to_owned(),
            payment_txn_id: o.payment_txn_id,
            card_last4: o.card_last4,
            failure_reason: o.failure_reason,
            shipping_address: o.shipping_address.as_ref().map(AddressBody::from),
            created_at: o.created_at,
            updated_at: o.updated_at,
            expires_at: o.expires_at,
        }
    }
}

/// A page of orders.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    items: Vec<OrderView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// `GET /orders` query.
#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only orders in this status (case-insensitive).
    #[param(value_type = OrderStatusName, required = false, inline)]
    status: Option<String>,
    /// From the previous page's `nextCursor`.
    pub(super) cursor: Option<String>,
    /// 1..=100, default 20.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 100)]
    size: Option<String>,
}

/// An order's status (for the OpenAPI document).
#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub enum OrderStatusName {
    /// Stored, payment not yet asked for.
    Created,
    /// Waiting for the payment gateway.
    PaymentPending,
    /// Paid.
    Confirmed,
    /// On its way.
    Shipped,
    /// Arrived.
    Delivered,
    /// Payment declined.
    PaymentFailed,
    /// Payment never arrived within the window.
    Expired,
    /// Cancelled by the buyer.
    Cancelled,
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/orders", tag = "orders", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, body = OrderPage),
        (status = 400, body = Problem, description = "INVALID_CURSOR, or MALFORMED_REQUEST (a repeated query parameter)", content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "unknown status, size out of range", content_type = "application/problem+json"),
    ))]
async fn list_orders(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<OrderPage>, ApiError> {
    let (status, size) = list_filters(&query)?;
    let page = state
        .orders
        .list(&who.user_id, status, query.cursor.as_deref(), size)
        .await?;
    Ok(axum::Json(OrderPage {
        items: page.orders.into_iter().map(OrderView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The status filter and page size of a list query (422 for an unknown
/// status or a size out of range).
pub(super) fn list_filters(query: &ListQuery) -> Result<(Option<OrderStatus>, usize), ApiError> {
    let mut errors = FieldErrors::new();
    let status = match query.status.as_deref() {
        None => None,
        Some(raw) => {
            let parsed = OrderStatus::parse(&raw.to_ascii_uppercase());
            if parsed.is_none() {
                let known: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
                errors.add("status", format!("must be one of {}", known.join(", ")));
            }
            parsed
        }
    };
    let size = page_size(query.size.as_deref(), 20, 100, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok((status, size))
}

/// One of the caller's orders.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, body = OrderView), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_order(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let order = state.orders.get(&who.user_id, &id).await?;
    Ok(axum::Json(order.into()))
}

/// Cancels the caller's order: reserved stock is released, a payment refunded.
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses(
        (status = 200, body = OrderView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, description = "INVALID_TRANSITION: shipped or already final", content_type = "application/problem+json"),
    ))]
async fn cancel_order(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let order = state.orders.cancel(&who.user_id, &id).await?;
    Ok(axum::Json(order.into()))
}

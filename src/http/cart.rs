//! `/cart`: the shopper's cart, signed in or as a guest (`X-Cart-Token`).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{Caller, Json};
use super::AppState;
use crate::domain::item::DEFAULT_CURRENCY;
use crate::domain::Timestamp;
use crate::services::cart::{PricedCart, Shopper};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_cart, update_cart, clear_cart))
}

/// The header a guest sends their cart token in.
pub const CART_TOKEN_HEADER: &str = "x-cart-token";

/// The shopper behind a request: the signed-in user, else a guest with the
/// `X-Cart-Token` they were given. A bearer token that is not valid is a 401,
/// never a silent fall-back to a guest cart.
pub struct ShopperOf(pub Shopper);

impl<S: Send + Sync> FromRequestParts<S> for ShopperOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::SignedIn(who)) => Ok(ShopperOf(Shopper::User(who.user_id.clone()))),
            Some(Caller::InvalidToken) => Err(ApiError::unauthenticated()),
            _ => {
                let token = parts
                    .headers
                    .get(CART_TOKEN_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(ShopperOf(Shopper::Guest(token)))
            }
        }
    }
}

/// `PATCH /cart` body: the original design's `{itemId, quantity}`, plus `variantId`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartLineBody {
    /// The item (`GET /items/{id}` → `id`).
    #[schema(value_type = String, required = true)]
    item_id: Option<String>,
    /// Required for items with variants.
    variant_id: Option<String>,
    /// 0..=1000; 0 removes the line.
    #[schema(value_type = i64, required = true, minimum = 0, maximum = 1000)]
    quantity: Option<i64>,
}

// `LineView` in the OpenAPI document (its name there since the first
// release); `CartLineView` here, apart from the cart service's `LineView`.
/// One cart line.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LineView)]
pub struct CartLineView {
    item_id: String,
    variant_id: String,
    name: String,
    quantity: i64,
    /// Price when the line was added.
    unit_price: i64,
    /// Today's price.
    current_price: i64,
    /// quantity × currentPrice.
    line_total: i64,
}

/// A cart with totals at current prices.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartView {
    /// `null` until the shopper's first change.
    id: Option<String>,
    /// A guest's cart token: send it back as `X-Cart-Token`, and as
    /// `cartToken` to `POST /sessions` to keep the cart when signing in.
    #[serde(skip_serializing_if = "Option::is_none")]
    cart_token: Option<String>,
    lines: Vec<CartLineView>,
    subtotal: i64,
    tax: i64,
    shipping: i64,
    /// What checkout charges: subtotal + tax + shipping.
    total: i64,
    currency: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    updated_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
}

impl From<PricedCart> for CartView {
    fn from(priced: PricedCart) -> Self {
        let currency = priced
            .lines
            .first()
            .map_or(DEFAULT_CURRENCY.to_owned(), |l| l.line.currency.clone());
        CartView {
            id: priced.cart.as_ref().map(|c| c.id.clone()),
            cart_token: priced.token,
            lines: priced
                .lines
                .into_iter()
                .map(|l| CartLineView {
                    line_total: l.line.quantity.saturating_mul(l.current_price),
                    item_id: l.line.item_id,
                    variant_id: l.line.variant_id,
                    name: l.name,
                    quantity: l.line.quantity,
                    unit_price: l.line.unit_price,
                    current_price: l.current_price,
                })
                .collect(),
            subtotal: priced.totals.subtotal,
            tax: priced.totals.tax,
            shipping: priced.totals.shipping,
            total: priced.totals.total,
            currency,
            updated_at: priced.cart.as_ref().map(|c| c.updated_at),
            expires_at: priced.expires_at,
        }
    }
}

/// The shopper's cart (empty if they have none yet).
#[utoipa::path(get, path = "/cart", tag = "cart", security((), ("bearer" = [])),
    params(("X-Cart-Token" = Option<String>, Header, description = "a guest's cart token")),
    responses((status = 200, body = CartView), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn get_cart(
    State(state): State<AppState>,
    ShopperOf(shopper): ShopperOf,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(CartView::from(
        state.carts.view(&shopper).await?,
    )))
}

/// Sets a line's quantity (0 removes it). Checks stock softly: nothing is reserved.
#[utoipa::path(patch, path = "/cart", tag = "cart", security((), ("bearer" = [])), request_body = CartLineBody,
    params(("X-Cart-Token" = Option<String>, Header, description = "a guest's cart token")),
    responses(
        (status = 200, body = CartView),
        (status = 404, body = Problem, description = "unknown item", content_type = "application/problem+json"),
        (status = 409, body = Problem, description = "INSUFFICIENT_STOCK, ITEM_INACTIVE, CHECKOUT_IN_PROGRESS", content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_cart(
    State(state): State<AppState>,
    ShopperOf(shopper): ShopperOf,
    Json(body): Json<CartLineBody>,
) -> Result<impl IntoResponse, ApiError> {
    let cart = state
        .carts
        .set_line(&shopper, body.item_id, body.variant_id, body.quantity)
        .await?;
    Ok(axum::Json(CartView::from(cart)))
}

/// Empties the shopper's cart.
#[utoipa::path(delete, path = "/cart", tag = "cart", security((), ("bearer" = [])),
    params(("X-Cart-Token" = Option<String>, Header, description = "a guest's cart token")),
    responses((status = 204, description = "emptied"), (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn clear_cart(
    State(state): State<AppState>,
    ShopperOf(shopper): ShopperOf,
) -> Result<StatusCode, ApiError> {
    state.carts.clear(&shopper).await?;
    Ok(StatusCode::NO_CONTENT)
}

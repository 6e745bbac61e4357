//! `/items`: the seller catalog (search arrives with the search index).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{IfNoneMatch, Json, Path, SignedIn};
use super::AppState;
use crate::domain::item::{ItemInput, ItemPatch, Variant};
use crate::domain::{FieldErrors, Timestamp};
use crate::services::catalog::StockedItem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_item))
        .routes(routes!(get_item, update_item, delete_item))
        .routes(routes!(adjust_stock))
}

/// An item as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemView {
    id: String,
    seller_id: String,
    name: String,
    description: String,
    /// Minor units of `currency`.
    price: i64,
    currency: String,
    sku: Option<String>,
    brand: Option<String>,
    category: Option<String>,
    tags: Vec<String>,
    #[schema(value_type = Object)]
    attributes: Value,
    /// Stock on hand across variants: available plus reserved.
    quantity: i64,
    /// What buyers can still get across variants.
    available: i64,
    /// `active` or `inactive`.
    #[schema(value_type = crate::domain::item::ItemStatusName)]
    status: String,
    /// Empty for an item without declared variants.
    variants: Vec<VariantView>,
    /// Image URLs.
    images: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

/// One declared variant.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantView {
    variant_id: String,
    sku: Option<String>,
    #[schema(value_type = Object)]
    attributes: Value,
    price: i64,
    quantity: i64,
    available: i64,
}

fn attributes(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|_| Value::Object(Default::default()))
}

impl From<StockedItem> for ItemView {
    fn from(StockedItem { item, stock }: StockedItem) -> Self {
        let on_hand: i64 = stock.iter().map(|s| s.available + s.reserved).sum();
        let available: i64 = stock.iter().map(|s| s.available).sum();
        let variants = if item.has_variants {
            item.variants
                .iter()
                .zip(&stock)
                .map(|(v, s): (&Variant, _)| VariantView {
                    variant_id: v.id.clone(),
                    sku: v.sku.clone(),
                    attributes: attributes(&v.attributes_json),
                    price: v.price,
                    quantity: s.available + s.reserved,
                    available: s.available,
                })
                .collect()
        } else {
            Vec::new()
        };
        ItemView {
            id: item.id,
            seller_id: item.seller_id,
            name: item.name,
            description: item.description,
            price: item.price,
            currency: item.currency,
            sku: item.sku,
            brand: item.brand,
            category: item.category,
            tags: item.tags,
            attributes: attributes(&item.attributes_json),
            quantity: on_hand,
            available,
            status: item.status.as_str().to_owned(),
            variants,
            images: item
                .images
                .iter()
                .map(|key| format!("/media/{key}"))
                .collect(),
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

/// `POST /items/{id}/stock` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockBody {
    /// Change to available stock; negative removes.
    #[schema(value_type = i64, required = true, minimum = -1_000_000_000, maximum = 1_000_000_000)]
    delta: Option<i64>,
    /// Required for items with variants.
    variant_id: Option<String>,
}

/// Stock of one variant after a change.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockView {
    variant_id: String,
    available: i64,
    reserved: i64,
}

/// Lists a new item (sellers only).
#[utoipa::path(post, path = "/items", tag = "catalog", security(("bearer" = [])), request_body = ItemInput,
    responses(
        (status = 201, body = ItemView, headers(("Location" = String, description = "/items/{id}"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, description = "the caller is not a seller", content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_item(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Json(body): Json<ItemInput>,
) -> Result<impl IntoResponse, ApiError> {
    let created = state.catalog.create(&who, body).await?;
    let location = format!("/items/{}", created.item.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(ItemView::from(created)),
    ))
}

/// Reads an item, active or not. The page carries a strong `ETag`; a
/// request whose `If-None-Match` names it is answered `304` with no body.
/// `Cache-Control: no-cache`: a cache may keep the page but asks again
/// each time, so what it shows is never older than the last write.
#[utoipa::path(get, path = "/items/{id}", tag = "catalog",
    params(("id" = String, Path),
        ("If-None-Match" = Option<String>, Header, description = "an ETag of this item's page seen before")),
    responses(
        (status = 200, body = ItemView, headers(
            ("ETag" = String, description = "strong; changes whenever the page does"),
            ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "the page named by If-None-Match is current", headers(
            ("ETag" = String), ("Cache-Control" = String))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let page = state.catalog.page(&id, render_item).await?;
    let Ok(etag) = HeaderValue::from_str(&page.etag) else {
        return Err(ApiError::internal(
            "an item page's ETag is not a header value",
        ));
    };
    let cache_control = HeaderValue::from_static("no-cache");
    if if_none_match.matches(&page.etag) {
        let headers = [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)];
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (header::ETAG, etag),
        (header::CACHE_CONTROL, cache_control),
    ];
    Ok((headers, page.body.clone()).into_response())
}

/// An item's page as JSON: what `GET /items/{id}` sends and keeps.
fn render_item(item: StockedItem) -> Vec<u8> {
    // Strings, integers and a JSON value: serializing cannot fail.
    serde_json::to_vec(&ItemView::from(item)).unwrap_or_default()
}

/// Changes an item's fields (its seller only).
#[utoipa::path(patch, path = "/items/{id}", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = ItemPatch,
    responses(
        (status = 200, body = ItemView),
        (status = 404, body = Problem, description = "no such item, or not yours", content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_item(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<ItemPatch>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(ItemView::from(
        state.catalog.update(&who.user_id, &id, body).await?,
    )))
}

/// Withdraws an item: inactive, still readable by id.
#[utoipa::path(delete, path = "/items/{id}", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "now inactive"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn delete_item(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.catalog.deactivate(&who.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds to (or removes from) a variant's stock.
#[utoipa::path(post, path = "/items/{id}/stock", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path)),
    request_body = StockBody,
    responses(
        (status = 200, body = StockView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, description = "INSUFFICIENT_STOCK", content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn adjust_stock(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(id): Path<String>,
    Json(body): Json<StockBody>,
) -> Result<impl IntoResponse, ApiError> {
    let delta = body
        .delta
        .ok_or_else(|| ApiError::validation(FieldErrors::single("delta", "is required")))?;
    let changed = state
        .catalog
        .adjust_stock(&who.user_id, &id, body.variant_id, delta)
        .await?;
    Ok(axum::Json(StockView {
        variant_id: changed.variant_id,
        available: changed.level.available,
        reserved: changed.level.reserved,
    }))
}

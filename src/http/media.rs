//! `POST /items/{id}/images` and `GET /media/{key}`.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Code, Problem};
use super::extract::{Path, SignedIn};
use super::AppState;
use crate::domain::user::Role;
use crate::services::media::{ImageType, MAX_IMAGE_BYTES};

/// A year: media keys name their bytes, so they never change.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

/// Images are public and meant to be shown by storefronts on other origins
/// too (CORS allows any origin by default), so other sites may embed them;
/// `same-origin` would break every such storefront and protect nothing.
const RESOURCE_POLICY: &str = "cross-origin";

/// A stored file opened as a page (an upload that sniffs as an image but
/// is not one) runs nothing and lives in an opaque origin.
const MEDIA_POLICY: &str = "default-src 'none'; sandbox";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_image))
        // Images may be larger than other bodies (1 MiB).
        .layer(DefaultBodyLimit::max(MAX_IMAGE_BYTES))
        .routes(routes!(get_media))
}

/// Where the stored image is served.
#[derive(Serialize, ToSchema)]
pub struct ImageUrl {
    /// `/media/{key}`.
    url: String,
}

/// An image's bytes, as sent (for the OpenAPI document).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct ImageBytes(Vec<u8>);

/// Adds an image to the seller's own item.
#[utoipa::path(post, path = "/items/{id}/images", tag = "catalog", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(description = "the image's bytes, at most 5 MiB; the Content-Type must match them",
        content((ImageBytes = "image/png"), (ImageBytes = "image/jpeg"), (ImageBytes = "image/webp"))),
    responses(
        (status = 201, body = ImageUrl),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, description = "not a seller", content_type = "application/problem+json"),
        (status = 404, body = Problem, description = "no such item of yours", content_type = "application/problem+json"),
        (status = 413, body = Problem, description = "over 5 MiB", content_type = "application/problem+json"),
        (status = 415, body = Problem, description = "UNSUPPORTED_MEDIA_TYPE: not a complete PNG, JPEG or WebP image of the declared type, or over 8192 pixels a side", content_type = "application/problem+json"),
    ))]
async fn upload_image(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(item_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<ImageUrl>), ApiError> {
    if who.role != Role::Seller {
        return Err(ApiError::new(Code::Forbidden, "only sellers add images"));
    }
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(ImageType::from_content_type);
    let actual = ImageType::sniff(&body);
    let kind = match (declared, actual) {
        (Some(declared), Some(actual)) if declared == actual => declared,
        _ => {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "send a PNG, JPEG or WebP image with its own Content-Type",
            ))
        }
    };
    // The item must be the seller's before anything is stored.
    let item = state.catalog.item(&item_id).await?;
    if item.seller_id != who.user_id {
        return Err(ApiError::not_found("item"));
    }
    // Decoded after the ownership check: only the item's seller can make
    // the server spend a decode on an item.
    if let Err(rejected) = state.media.check_image(kind, body.clone()).await {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            rejected.to_string(),
        ));
    }
    let key = state.media.store(body).await?;
    state
        .catalog
        .add_image(&who.user_id, &item_id, key.clone())
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ImageUrl {
            url: format!("/media/{key}"),
        }),
    ))
}

/// A stored image, cacheable forever.
#[utoipa::path(get, path = "/media/{key}", tag = "catalog", params(("key" = String, Path)),
    responses(
        (status = 200, description = "the image, with Content-Type, ETag and Cache-Control"),
        (status = 304, description = "If-None-Match matched"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_media(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let etag = format!("\"{key}\"");
    let bytes = state
        .media
        .load(&key)
        .await?
        .ok_or_else(|| ApiError::not_found("media"))?;
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let etag = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    let cache = HeaderValue::from_static(CACHE_FOREVER);
    let policies = [
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static(RESOURCE_POLICY),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(MEDIA_POLICY),
        ),
    ];
    if matches {
        return Ok((
            StatusCode::NOT_MODIFIED,
            policies,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    let content_type =
        ImageType::sniff(&bytes).map_or("application/octet-stream", ImageType::content_type);
    Ok((
        policies,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response())
}

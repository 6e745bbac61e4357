//! `/recommendations` and `/items/{id}/related`: read from the
//! recommender's aggregates, every item checked live (active, in stock).

use axum::extract::{Query, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{page_size, Caller, Path};
use super::search::ItemSummary;
use super::AppState;
use crate::domain::FieldErrors;
use crate::services::recommend::Pick;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(recommendations))
        .routes(routes!(related))
}

/// Default and largest `size`.
const DEFAULT_SIZE: usize = 10;
const MAX_SIZE: usize = 50;

/// `?size=` of both lists.
#[derive(Deserialize, IntoParams)]
pub struct SizeQuery {
    /// 1..=50, default 10.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 50)]
    size: Option<String>,
}

impl SizeQuery {
    fn size(&self) -> Result<usize, ApiError> {
        let mut errors = FieldErrors::new();
        let size = page_size(self.size.as_deref(), DEFAULT_SIZE, MAX_SIZE, &mut errors);
        if errors.is_empty() {
            Ok(size)
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

/// A recommended item: its summary, and why.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recommended {
    #[serde(flatten)]
    item: ItemSummary,
    /// `bought_together`, `category`, `brand`, `popular` or `similar`.
    reason: &'static str,
    /// Confirmed orders that held both items (for `bought_together`).
    #[serde(skip_serializing_if = "Option::is_none")]
    bought_together: Option<u64>,
}

impl From<Pick> for Recommended {
    fn from(pick: Pick) -> Self {
        Recommended {
            reason: pick.reason.as_str(),
            bought_together: pick.bought_together,
            item: ItemSummary::new(pick.item, pick.available, None),
        }
    }
}

/// Recommendations for the caller.
#[derive(Serialize, ToSchema)]
pub struct Recommendations {
    /// Best first; only active items with stock.
    items: Vec<Recommended>,
    /// `personalized` (a signed-in buyer with a history) or `popular`.
    strategy: &'static str,
}

/// Items related to one item.
#[derive(Serialize, ToSchema)]
pub struct Related {
    /// Bought together (most often first), then similar; only active items
    /// with stock, never the item itself.
    items: Vec<Recommended>,
}

/// Who asks: a signed-in user, or anonymous. A token that is not valid is
/// a 401, never a silent fall-back to anonymous.
pub struct MaybeSignedIn(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for MaybeSignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::SignedIn(who)) => Ok(MaybeSignedIn(Some(who.user_id.clone()))),
            Some(Caller::InvalidToken) => Err(ApiError::unauthenticated()),
            _ => Ok(MaybeSignedIn(None)),
        }
    }
}

/// Picks for the caller: `personalized` from their purchases and wishlist
/// (never what they bought), else `popular`.
#[utoipa::path(get, path = "/recommendations", tag = "recommendations", params(SizeQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = Recommendations),
        (status = 400, body = Problem, description = "MALFORMED_REQUEST: a repeated query parameter", content_type = "application/problem+json"),
        (status = 401, body = Problem, description = "a token was sent but is not valid", content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "size out of range", content_type = "application/problem+json"),
    ))]
async fn recommendations(
    State(state): State<AppState>,
    MaybeSignedIn(user): MaybeSignedIn,
    Query(query): Query<SizeQuery>,
) -> Result<axum::Json<Recommendations>, ApiError> {
    let size = query.size()?;
    let (strategy, picks) = state.recommender.recommend(user.as_deref(), size).await?;
    Ok(axum::Json(Recommendations {
        items: picks.into_iter().map(Recommended::from).collect(),
        strategy: strategy.as_str(),
    }))
}

/// Items bought together with this one, then similar ones.
#[utoipa::path(get, path = "/items/{id}/related", tag = "recommendations",
    params(("id" = String, Path), SizeQuery),
    responses(
        (status = 200, body = Related),
        (status = 400, body = Problem, description = "MALFORMED_REQUEST: a repeated query parameter", content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "size out of range", content_type = "application/problem+json"),
    ))]
async fn related(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SizeQuery>,
) -> Result<axum::Json<Related>, ApiError> {
    let size = query.size()?;
    let item = state.catalog.get(&id).await?;
    let picks = state.recommender.related(&item.item, size).await?;
    Ok(axum::Json(Related {
        items: picks.into_iter().map(Recommended::from).collect(),
    }))
}

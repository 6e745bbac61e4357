//! `/cluster/placement/{kind}/{id}`: which shard and node own an entity.
//!
//! The answer depends only on the id and the cluster's settings, so every
//! node gives the same one; the entity need not exist (an id carries its
//! placement). Public: it reveals nothing an id does not already carry.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Code, Problem};
use super::extract::Path;
use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(placement))
}

/// The kinds of entity placed by their own id: a buyer's cart, orders and
/// checkouts carry the buyer's placement, an item's SKUs (variant ids) the
/// item's.
const KINDS: [&str; 6] = ["item", "user", "cart", "order", "checkout", "sku"];

/// Where an entity lives.
#[derive(Serialize, ToSchema)]
pub struct PlacementView {
    /// The kind asked about.
    #[schema(example = "order")]
    kind: String,
    /// The entity's id.
    id: String,
    /// Its shard, `0 ≤ shard < shards`.
    shard: u32,
    /// The node that owns the shard.
    #[schema(example = "node-2")]
    node: String,
}

/// Which node owns an entity (the same answer on every node).
#[utoipa::path(get, path = "/cluster/placement/{kind}/{id}", tag = "operations",
    params(
        ("kind" = String, Path, description = "item, user, cart, order, checkout or sku"),
        ("id" = String, Path, description = "the entity's id"),
    ),
    responses(
        (status = 200, body = PlacementView),
        (status = 404, body = Problem, description = "an unknown kind, or a string that is not an id",
            content_type = "application/problem+json"),
    ))]
async fn placement(
    State(state): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<PlacementView>, ApiError> {
    if !KINDS.contains(&kind.as_str()) {
        return Err(ApiError::new(
            Code::NotFound,
            format!("no kind {kind:?}: one of {}", KINDS.join(", ")),
        ));
    }
    let placement = state.settings.placement();
    let Some((shard, node)) = placement.place(&id) else {
        return Err(ApiError::not_found(kind.as_str()));
    };
    let node = node.to_owned();
    Ok(Json(PlacementView {
        kind,
        id,
        shard,
        node,
    }))
}

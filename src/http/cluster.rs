//! `GET /cluster`: this node's view of the cluster, every configured node
//! with its HTTP address and whether it is up. A single node lists itself.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::cluster::MemberStatus;
use crate::services::status::ClusterView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cluster))
}

/// The cluster as this node sees it.
#[derive(Serialize, ToSchema)]
pub struct ClusterBody {
    /// This node's id.
    node: String,
    /// The number of shards entities are placed in.
    shards: u32,
    /// Every configured node, in the configuration's order.
    nodes: Vec<NodeBody>,
}

/// One node of the cluster.
#[derive(Serialize, ToSchema)]
pub struct NodeBody {
    /// Node id.
    id: String,
    /// Its HTTP address: the one it announced it is bound to, else the
    /// configured one.
    http: String,
    /// `up` while its heartbeat is live (this node: while it reaches
    /// NATS), else `down`.
    #[schema(value_type = String, pattern = "^(up|down)$")]
    status: MemberStatus,
}

impl From<ClusterView> for ClusterBody {
    fn from(view: ClusterView) -> Self {
        ClusterBody {
            node: view.node,
            shards: view.shards,
            nodes: view
                .nodes
                .into_iter()
                .map(|member| NodeBody {
                    id: member.id,
                    http: member.http.to_string(),
                    status: member.status,
                })
                .collect(),
        }
    }
}

/// This node's view of the cluster: every node, `up` or `down` (a killed
/// node reads `down` within ~4 s).
#[utoipa::path(get, path = "/cluster", tag = "operations",
    responses((status = 200, description = "the nodes and their status", body = ClusterBody)))]
async fn cluster(State(state): State<AppState>) -> Json<ClusterBody> {
    Json(state.status.cluster().into())
}

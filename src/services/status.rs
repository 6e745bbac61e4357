//! The node's status for operators: whether storage takes writes and how
//! far the event log has grown (`/ready`), and, in a cluster, whether this
//! node reaches NATS and which nodes are up (`/ready`, `/cluster`), so the
//! handlers need no store and no NATS client.

use std::net::SocketAddr;

use crate::cluster::{Cluster, Member, MemberStatus};
use crate::config::Settings;
use crate::storage::Store;

/// Storage and cluster as `/ready` and `/cluster` report them. Cheap to
/// clone.
#[derive(Clone)]
pub struct NodeStatus {
    store: Store,
    node_id: String,
    shards: u32,
    http: SocketAddr,
    /// `None` on a single node.
    cluster: Option<Cluster>,
}

/// This node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's id.
    pub node: String,
    /// The shard count.
    pub shards: u32,
    /// Every configured node (a single node: itself), up or down.
    pub nodes: Vec<Member>,
}

impl NodeStatus {
    /// The status of `store`, and of `cluster` when this node is one of
    /// one (`settings.http` is the address it serves on).
    pub fn new(store: Store, settings: &Settings, cluster: Option<Cluster>) -> Self {
        NodeStatus {
            store,
            node_id: settings.node_id.clone(),
            shards: settings.cluster.shards,
            http: settings.http,
            cluster,
        }
    }

    /// Whether storage still accepts writes (false once it is shutting
    /// down or its writer failed).
    pub fn accepts_writes(&self) -> bool {
        self.store.is_writable()
    }

    /// The sequence number of the newest durable event.
    pub fn newest_event(&self) -> u64 {
        *self.store.event_watch().borrow()
    }

    /// Whether this node reaches NATS: `None` on a single node (it needs
    /// none).
    pub fn reaches_nats(&self) -> Option<bool> {
        self.cluster.as_ref().map(Cluster::is_connected)
    }

    /// Every node of the cluster and its status, as this node sees it; a
    /// single node lists itself, up.
    pub fn cluster(&self) -> ClusterView {
        let nodes = match &self.cluster {
            Some(cluster) => cluster.membership().members(),
            None => vec![Member {
                id: self.node_id.clone(),
                http: self.http,
                status: MemberStatus::Up,
                started: None,
            }],
        };
        ClusterView {
            node: self.node_id.clone(),
            shards: self.shards,
            nodes,
        }
    }
}

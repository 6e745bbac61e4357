//! Membership and liveness, kept in NATS: every node puts a heartbeat (its
//! id, its bound HTTP address, its start time) in the JetStream key-value
//! bucket `agora_nodes` every second, under its id; a node stopping
//! gracefully deletes its key. The list of nodes is static (the config's
//! `cluster.nodes`); what NATS adds is which of them are alive.
//!
//! Each node reads its peers' keys every [`LOOK`] and notes when each one
//! last changed, on its own clock: a peer is `up` while it changed within
//! `LIVENESS` (3 s, `liveness.rs`), so clocks need not agree. A killed
//! node's key stops changing and it reads `down` within `LIVENESS` + `LOOK`
//! (~3.5 s); a stopped one deletes its key and reads `down` at the next
//! look. The
//! bucket's TTL only clears keys nobody deletes. Reading (a direct get per
//! peer, every half second) rather than watching keeps no consumer that a
//! NATS restart could leave stale: every look is a fresh request, and a
//! heartbeat that finds the bucket gone (NATS restarted on an empty store)
//! creates it again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::connection::State;
use async_nats::jetstream::kv;
use async_nats::jetstream::{self, stream::StorageType};
use async_nats::Client;
use serde::Serialize;
use tokio::task::JoinHandle;

use super::liveness::{note, Heartbeat, Seen};
use super::ClusterError;
use crate::config::Settings;

/// The bucket heartbeats live in.
pub(super) const BUCKET: &str = "agora_nodes";
/// How often peers' keys are read; every second look also puts this
/// node's heartbeat.
const LOOK: Duration = Duration::from_millis(500);
/// A key nobody refreshes or deletes (its node killed) is gone after this.
const KEY_TTL: Duration = Duration::from_secs(5);
/// The longest one put or read may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a node is alive, as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Its heartbeat is live (this node: it reaches NATS).
    Up,
    /// No live heartbeat (this node: it does not reach NATS).
    Down,
}

/// One configured node and its liveness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node id.
    pub id: String,
    /// Its HTTP address: the bound one its last heartbeat announced, else
    /// the configured one.
    pub http: SocketAddr,
    /// Up or down.
    pub status: MemberStatus,
    /// When it started (ms since the Unix epoch), if a heartbeat said.
    pub started: Option<u64>,
}

/// The heartbeat task and what it has seen. Cheap to clone.
#[derive(Clone)]
pub struct Membership {
    node_id: String,
    /// Every configured node: id and configured address, in config order.
    nodes: Arc<Vec<(String, SocketAddr)>>,
    me: Heartbeat,
    client: Client,
    /// Replaced when a heartbeat finds the bucket gone.
    bucket: Arc<Mutex<kv::Store>>,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Membership {
    /// Creates the bucket if needed, puts the first heartbeat and starts
    /// beating and looking.
    pub(super) async fn start(
        settings: &Settings,
        jetstream: jetstream::Context,
        client: Client,
        http: SocketAddr,
        started: SystemTime,
    ) -> Result<Membership, ClusterError> {
        let bucket = open_bucket(&jetstream)
            .await
            .map_err(ClusterError::JetStream)?;
        let me = Heartbeat {
            id: settings.node_id.clone(),
            http,
            started: millis(started),
        };
        let membership = Membership {
            node_id: settings.node_id.clone(),
            nodes: Arc::new(
                settings
                    .cluster
                    .nodes
                    .iter()
                    .map(|node| (node.id.clone(), node.http))
                    .collect(),
            ),
            me,
            client,
            bucket: Arc::new(Mutex::new(bucket)),
            seen: Arc::default(),
            task: Arc::default(),
        };
        membership
            .beat()
            .await
            .map_err(|e| ClusterError::JetStream(format!("first heartbeat: {e}")))?;
        let task = tokio::spawn(membership.clone().run(jetstream));
        *membership.task.lock().unwrap() = Some(task);
        Ok(membership)
    }

    /// Every configured node, in config order, with its status now.
    pub fn members(&self) -> Vec<Member> {
        let connected = self.client.connection_state() == State::Connected;
        let seen = self.seen.lock().unwrap();
        self.nodes
            .iter()
            .map(|(id, configured)| {
                if *id == self.node_id {
                    return Member {
                        id: id.clone(),
                        http: self.me.http,
                        status: if connected {
                            MemberStatus::Up
                        } else {
                            MemberStatus::Down
                        },
                        started: Some(self.me.started),
                    };
                }
                let peer = seen.get(id);
                let live = peer.is_some_and(Seen::is_live);
                Member {
                    id: id.clone(),
                    http: peer.map_or(*configured, |p| p.heartbeat.http),
                    status: if live {
                        MemberStatus::Up
                    } else {
                        MemberStatus::Down
                    },
                    started: peer.map(|p| p.heartbeat.started),
                }
            })
            .collect()
    }

    /// Stops the heartbeat and deletes this node's key (bounded in time).
    pub(super) async fn leave(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            // Awaited, not only aborted: a beat running on another thread
            // when the abort lands would otherwise send its put after the
            // delete below and leave the key behind for its TTL.
            task.abort();
            let _ = task.await;
        }
        let bucket = self.bucket.lock().unwrap().clone();
        let deleted = tokio::time::timeout(CALL_TIMEOUT, bucket.delete(&self.node_id)).await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::warn!("could not delete this node's heartbeat; it expires by itself");
        }
    }

    /// Beats every second look and reads every peer's key at every look,
    /// until aborted. A failed beat creates the bucket again (a NATS
    /// restarted on an empty store has none; one restarted on its store
    /// keeps the bucket, empty, since memory streams keep their config).
    async fn run(self, jetstream: jetstream::Context) {
        let mut tick = tokio::time::interval(LOOK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut statuses: HashMap<String, MemberStatus> = HashMap::new();
        for round in 0u64.. {
            tick.tick().await;
            if round % 2 == 1 {
                let beat = self.beat().await;
                if let Err(e) = &beat {
                    if !failing {
                        tracing::warn!("heartbeat failed: {e}; retrying");
                    }
                    if let Ok(bucket) = open_bucket(&jetstream).await {
                        *self.bucket.lock().unwrap() = bucket;
                    }
                } else if failing {
                    tracing::info!("heartbeat restored");
                }
                failing = beat.is_err();
            }
            self.look().await;
            self.report(&mut statuses);
        }
    }

    /// Logs every node whose status changed since the last look, and sets
    /// the gauges `agora_cluster_nodes_up` and `agora_nats_connected`.
    fn report(&self, statuses: &mut HashMap<String, MemberStatus>) {
        let members = self.members();
        let up = members
            .iter()
            .filter(|m| m.status == MemberStatus::Up)
            .count();
        for member in members {
            if statuses.insert(member.id.clone(), member.status) != Some(member.status) {
                match member.status {
                    MemberStatus::Up => {
                        tracing::info!(node = %member.id, http = %member.http, "node up")
                    }
                    MemberStatus::Down => tracing::warn!(node = %member.id, "node down"),
                }
            }
        }
        metrics::gauge!("agora_cluster_nodes_up").set(up as f64);
        let connected = self.client.connection_state() == State::Connected;
        metrics::gauge!("agora_nats_connected").set(if connected { 1.0 } else { 0.0 });
    }

    /// Puts this node's heartbeat.
    async fn beat(&self) -> Result<(), String> {
        let body = serde_json::to_vec(&self.me).map_err(|e| e.to_string())?;
        let bucket = self.bucket.lock().unwrap().clone();
        match tokio::time::timeout(CALL_TIMEOUT, bucket.put(&self.node_id, body.into())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Reads every peer's key, at once, and notes what changed.
    async fn look(&self) {
        let bucket = self.bucket.lock().unwrap().clone();
        let peers = self.nodes.iter().filter(|(id, _)| *id != self.node_id);
        let reads = peers.map(|(id, _)| {
            let bucket = bucket.clone();
            async move {
                let entry = tokio::time::timeout(CALL_TIMEOUT, bucket.entry(id.clone())).await;
                (id, entry)
            }
        });
        let results = futures::future::join_all(reads).await;
        let mut seen = self.seen.lock().unwrap();
        for (id, read) in results {
            // A failed read says nothing: the peer keeps its last change
            // and goes down when that is older than the window.
            let Ok(Ok(entry)) = read else { continue };
            note(&mut seen, id, entry);
        }
    }
}

/// Creates the heartbeat bucket, or opens it if another node did: memory
/// storage (a heartbeat is worth nothing after a second), one value per key.
async fn open_bucket(jetstream: &jetstream::Context) -> Result<kv::Store, String> {
    let config = kv::Config {
        bucket: BUCKET.to_owned(),
        description: "Agora nodes' heartbeats (id, HTTP address, start time)".to_owned(),
        history: 1,
        num_replicas: super::task::replicas(),
        max_age: KEY_TTL,
        storage: StorageType::Memory,
        ..Default::default()
    };
    super::task::open_bucket(jetstream, config, CALL_TIMEOUT * 5).await
}

/// Milliseconds since the Unix epoch.
fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

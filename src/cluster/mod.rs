//! The cluster adapter: this node's connection to NATS (with JetStream) and
//! the membership it keeps there. Only a node with `[cluster] nats` builds a
//! [`Cluster`]; a single node never links a byte of this at run time.
//!
//! - `mod.rs`: [`Cluster`]: connect (client name = node id, reconnect
//!   forever with backoff, a short ping interval, a JetStream context),
//!   whether NATS is reachable now, and the stop;
//! - `membership.rs`: the heartbeat every node puts in the `agora_nodes`
//!   key-value bucket, and [`Membership::members`], every configured node
//!   `up` or `down` as this node sees it;
//! - `relay.rs`: [`Relay`], this node's event log, in order, into the
//!   `AGORA_EVENTS` stream (resumed after a crash, nothing twice);
//! - `rpc.rs`: [`Rpc`], calls to the node owning an entity (NATS
//!   request/reply on `agora.<node>.<kind>`) and this node's answers;
//! - `consumer.rs`: [`Consumer`], the other nodes' events from the stream
//!   into this node (a durable consumer per node, nothing twice, nothing
//!   skipped); `replica.rs`: what one such event does here, in one write
//!   (the item and foreign-stock replicas, a copy in this node's log);
//! - `liveness.rs`: what one read of a peer's key means (live while it
//!   changed within the last 3 s on this node's clock);
//! - `sessions.rs`: [`SharedSessions`], the `agora_sessions` bucket every
//!   node's sign-ins and sign-outs go to, watched into a map on every node
//!   (`session_copies.rs`: that map, newer news only);
//! - `media.rs`: [`SharedMedia`], the `agora_media` object store every
//!   upload goes to and every node fetches missing images from.
//!
//! NATS is the transport and the failure detector: nodes never talk to each
//! other directly. The client reconnects by itself after NATS restarts or a
//! network cut; what it cannot send meanwhile fails fast, so callers see an
//! error, never a hang.

mod consumer;
mod liveness;
mod media;
mod membership;
mod relay;
mod replica;
mod rpc;
mod session_copies;
mod sessions;
mod task;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use async_nats::connection::State;
use async_nats::jetstream;
use async_nats::{Client, ConnectOptions, Event};

use crate::config::Settings;

pub use consumer::Consumer;
pub use media::{SharedMedia, MEDIA_BUCKET};
pub use membership::{Member, MemberStatus, Membership};
pub use relay::{Relay, STREAM};
pub use rpc::{CallError, Handler, Responder, Rpc};
pub use sessions::{SharedSessions, SESSIONS_BUCKET};

/// The client pings the server this often; two unanswered pings and it
/// drops the connection and reconnects, so a dead server is noticed in
/// ~3 intervals even when nothing else is sent.
const PING_INTERVAL: Duration = Duration::from_secs(1);
/// How long the first connection may take before start-up fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// How long stopping may wait for NATS (deleting the heartbeat, flushing).
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// The oldest nats-server that drops a frozen client under traffic
/// (2.9.x postpones its pings to a busy client: nats-server issue 4014).
const MIN_SERVER: (u64, u64) = (2, 11);

/// Why this node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No NATS server answered at the configured URLs.
    #[error("cannot reach NATS at {urls}: {reason} (is nats-server running?)")]
    Unreachable {
        /// The configured URLs (without credentials).
        urls: String,
        /// What the client said (text: its error repeats its own cause).
        reason: String,
    },
    /// The server is older than this design needs.
    #[error("nats-server {0} is too old: the cluster needs 2.11 or newer")]
    ServerTooOld(String),
    /// JetStream refused to set up the membership bucket.
    #[error("JetStream: {0} (is JetStream enabled on the server? `-js`, or `jetstream {{}}` in its config)")]
    JetStream(String),
}

/// A call to a shared bucket failed: NATS did not answer in time or
/// refused it. The caller answers 503 rather than succeed half-way.
#[derive(Debug, thiserror::Error)]
#[error("the cluster's shared store did not answer: {0}")]
pub struct Unreachable(pub String);

/// This node's membership of the cluster: the NATS client, its JetStream
/// context and the heartbeat. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    jetstream: jetstream::Context,
    membership: Membership,
    rpc: Rpc,
}

impl Cluster {
    /// Connects to `settings.cluster.nats` as `settings.node_id`, sets up
    /// the membership bucket and starts the heartbeat, announcing `http` (the
    /// address this node's listener is actually bound to). Fails when no
    /// server answers within a few seconds, when the server is older than
    /// 2.11, or when JetStream is off; once connected, the client reconnects
    /// forever.
    pub async fn connect(settings: &Settings, http: SocketAddr) -> Result<Cluster, ClusterError> {
        // For logs and errors: a URL's user and password stay out of both.
        let urls = settings
            .cluster
            .nats
            .iter()
            .map(|url| without_credentials(url))
            .collect::<Vec<_>>()
            .join(", ");
        let client = options(&settings.node_id)
            .connect(settings.cluster.nats.as_slice())
            .await
            .map_err(|e| ClusterError::Unreachable {
                urls: urls.clone(),
                reason: e.to_string(),
            })?;
        let version = client.server_info().version;
        if !at_least(&version, MIN_SERVER) {
            return Err(ClusterError::ServerTooOld(version));
        }
        task::set_replicas(settings.cluster.replicas);
        let jetstream = jetstream::new(client.clone());
        let membership = Membership::start(
            settings,
            jetstream.clone(),
            client.clone(),
            http,
            SystemTime::now(),
        )
        .await?;
        tracing::info!(node = %settings.node_id, nats = %urls, server = %version, "joined the cluster");
        let timeout = Duration::from_millis(settings.cluster.call_timeout_ms);
        let rpc = Rpc::new(client.clone(), &settings.node_id, timeout);
        Ok(Cluster {
            client,
            jetstream,
            membership,
            rpc,
        })
    }

    /// Whether this node reaches NATS right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The NATS client (for requests and subscriptions).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The JetStream context (streams, consumers, buckets).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Every configured node, up or down.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Calls to other nodes and this node's answers.
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// Starts relaying `store`'s event log into the stream as `node_id`.
    pub fn start_relay(&self, store: crate::storage::Store, node_id: &str) -> Relay {
        Relay::start(self.jetstream.clone(), store, node_id)
    }

    /// Starts consuming `peers`' events from the stream into `store`;
    /// `None` when there are no peers (nothing to consume).
    pub fn start_consumer(
        &self,
        store: crate::storage::Store,
        node_id: &str,
        peers: &[String],
    ) -> Option<Consumer> {
        (!peers.is_empty()).then(|| Consumer::start(self.jetstream.clone(), store, node_id, peers))
    }

    /// Opens the shared sessions bucket (`max_age` = `ttl`) and starts
    /// watching it into this node's map.
    pub async fn share_sessions(&self, ttl: Duration) -> Result<SharedSessions, ClusterError> {
        SharedSessions::open(self.jetstream.clone(), ttl).await
    }

    /// Opens the shared media bucket.
    pub async fn share_media(&self) -> Result<SharedMedia, ClusterError> {
        SharedMedia::open(&self.jetstream).await
    }

    /// Leaves the cluster: stops the heartbeat, deletes this node's key (so
    /// peers see it `down` at their next look, not after the liveness
    /// window), then flushes and closes the connection. Bounded: a node
    /// whose NATS is gone still stops.
    pub async fn stop(self) {
        self.membership.leave().await;
        let drained = tokio::time::timeout(STOP_TIMEOUT, self.client.drain()).await;
        if !matches!(drained, Ok(Ok(()))) {
            tracing::warn!("NATS connection not drained cleanly at stop");
        }
    }
}

/// `Err` at once while the client is not connected: a call made now would
/// wait out its whole timeout in the client's reconnect buffer.
fn connected(jetstream: &jetstream::Context) -> Result<(), Unreachable> {
    match jetstream.client().connection_state() {
        State::Connected => Ok(()),
        _ => Err(Unreachable("not connected to NATS".into())),
    }
}

/// The client's options: named after the node, reconnecting forever with a
/// capped exponential backoff, pinging often, logging its state changes.
fn options(node_id: &str) -> ConnectOptions {
    ConnectOptions::new()
        .name(node_id)
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .ping_interval(PING_INTERVAL)
        .connection_timeout(CONNECT_TIMEOUT)
        .event_callback(|event| async move {
            match event {
                Event::Connected => tracing::info!("NATS connected"),
                Event::Disconnected => tracing::warn!("NATS disconnected; reconnecting"),
                other => tracing::info!("NATS: {other}"),
            }
        })
}

/// Wait before reconnection attempt `attempts` (1-based): at once, then
/// 100 ms doubling up to [`MAX_RECONNECT_DELAY`].
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(10);
    (Duration::from_millis(100) * 2u32.pow(doublings)).min(MAX_RECONNECT_DELAY)
}

/// `url` with any `user:password@` replaced by `***@`.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Whether `version` ("2.15.1", "2.11.0-beta") is at least `min`.
fn at_least(version: &str, min: (u64, u64)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|part| part.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_are_compared_by_major_and_minor() {
        assert!(at_least("2.15.1", MIN_SERVER));
        assert!(at_least("2.11.0-beta.1", MIN_SERVER));
        assert!(at_least("3.0.0", MIN_SERVER));
        assert!(!at_least("2.9.25", MIN_SERVER));
        assert!(!at_least("garbage", MIN_SERVER));
    }

    #[test]
    fn credentials_in_a_nats_url_never_reach_a_log() {
        assert_eq!(
            without_credentials("nats://agora:s3cret@10.0.0.1:4222"),
            "nats://***@10.0.0.1:4222"
        );
        assert_eq!(
            without_credentials("tls://token@h:4222"),
            "tls://***@h:4222"
        );
        assert_eq!(
            without_credentials("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
    }

    #[test]
    fn reconnecting_backs_off_from_at_once_to_two_seconds() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(100));
        assert_eq!(reconnect_delay(3), Duration::from_millis(200));
        assert_eq!(reconnect_delay(9), MAX_RECONNECT_DELAY);
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }
}

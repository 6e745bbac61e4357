//! Settings: one typed struct, layered and validated once at start-up.
//!
//! Layers, later wins: built-in defaults → the file (`--config`, else
//! `AGORA_CONFIG`, else `./cluster.toml` if present) → environment variables
//! `AGORA_<NAME>` → command-line flags. Nothing reads the environment after
//! [`Settings::load`] returns.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::domain::placement::{Ownership, Placement};

/// Every setting of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// This node's id (must appear in `cluster.nodes` when that is not empty).
    pub node_id: String,
    /// HTTP listen address; port 0 picks a free port.
    pub http: SocketAddr,
    /// Where sled (and later the search index and media) live.
    pub data_dir: PathBuf,
    /// Token-bucket refill per token (or per client IP when anonymous); 0 disables.
    pub rate_limit_per_sec: u32,
    /// Bucket size; 0 means "same as the rate".
    pub rate_limit_burst: u32,
    /// A request still running after this many milliseconds gets 503 `TIMEOUT`.
    pub request_timeout_ms: u64,
    /// A connection that has not sent a complete request head this many
    /// seconds after it opened (or after its previous response) is closed.
    pub header_read_timeout_secs: u64,
    /// A request body that sends nothing for this many seconds while the
    /// server waits for it gets 408 `REQUEST_TIMEOUT`.
    pub body_read_timeout_secs: u64,
    /// When set, `/metrics` is served on its own listener at this address
    /// and not on the public one.
    pub admin_http: Option<SocketAddr>,
    /// How long a session token lives.
    pub session_ttl_secs: u64,
    /// How long an order may wait in `PAYMENT_PENDING` before it expires.
    pub payment_ttl_secs: u64,
    /// Latency of the simulated payment gateway.
    pub payment_latency_ms: u64,
    /// How long `POST /checkout` waits for a final state before answering 202.
    pub checkout_wait_ms: u64,
    /// How long one call to the payment gateway may take before it counts
    /// as unanswered (the order then waits for its payment window).
    pub payment_timeout_ms: u64,
    /// Fraud and risk rules checked before payment (`[risk]` in the file).
    pub risk: RiskRules,
    /// Orders created longer ago than this move to the archive tree.
    pub archive_after_days: u64,
    /// Most time between a change reaching the search indexer and its
    /// commit (the freshness bound, less the commit itself).
    pub search_commit_ms: u64,
    /// Search result pages kept per node, keyed by index snapshot (a page
    /// of 20 hits with facets is ~2 KiB, of 100 hits ~3.5 KiB); 0 turns
    /// the cache off.
    pub search_cache_entries: u64,
    /// Matches a search counts at most: `total` is exact up to this many,
    /// past it a lower bound (`totalExact: false`), so a broad search costs
    /// what its first page costs.
    pub search_total_exact_limit: u64,
    /// Messages queued for one websocket before it counts as too slow and
    /// is closed (1013).
    pub ws_queue_messages: usize,
    /// How often an open websocket checks that its session is still live
    /// (a sign-out closes its sockets at once; this catches expiry, and a
    /// sign-out a node was not told of).
    pub ws_session_check_secs: u64,
    /// The recommender does not consume the log (its lag grows; reads
    /// serve what it has). For incidents, and to prove it cannot slow
    /// checkout.
    pub recommender_paused: bool,
    /// Origins allowed by CORS; `["*"]` allows any.
    pub cors_origins: Vec<String>,
    /// After SIGTERM, how long in-flight requests may take before the node
    /// stops anyway (storage is flushed either way).
    pub shutdown_grace_secs: u64,
    /// An entity actor idle this long passivates (stops; state stays stored).
    pub entity_idle_secs: u64,
    /// How long a caller waits for an entity actor's answer.
    pub actor_call_timeout_ms: u64,
    /// Calls in flight per entity kind before callers get 503 `OVERLOADED`.
    pub actor_max_in_flight: u64,
    /// An idle cart is emptied after this many days.
    pub cart_ttl_days: u64,
    /// Tax and shipping rules (`[pricing]` in the file).
    pub pricing: crate::domain::cart::Pricing,
    /// sled page cache, MiB.
    pub storage_cache_mb: u64,
    /// Read cache of hot records (items, stock, sessions, users), MiB.
    pub read_cache_mb: u64,
    /// Failed sign-ins for one email before its attempts wait; 0 turns
    /// sign-in throttling off.
    pub sign_in_free_failures: u32,
    /// The first wait, once `sign_in_free_failures` is reached; each
    /// further failure doubles it.
    pub sign_in_first_wait_ms: u64,
    /// The longest wait between sign-in attempts for one email.
    pub sign_in_longest_wait_secs: u64,
    /// The cluster this node belongs to.
    pub cluster: ClusterSettings,
    /// Seconds between sweeps that resume checkouts whose coordinator
    /// stopped mid-way (a participant kept failing, e.g. the node owning a
    /// SKU was down).
    pub checkout_sweep_secs: u64,
    /// Seconds between passes of the event log archiver (which moves
    /// events every consumer has handled out of sled into
    /// `<data_dir>/archive/events/`); 0 never archives.
    pub event_archive_secs: u64,
    /// The newest events always stay in sled, whatever the consumers'
    /// offsets (at least 1).
    pub event_log_keep: u64,
    /// The fewest events a pass writes as one segment; fewer wait for a
    /// later pass (fewer, larger files).
    pub event_archive_min_events: u64,
}

/// Risk rules checked before a checkout asks for payment; a checkout that
/// breaks one ends `PAYMENT_FAILED` with the rule as its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskRules {
    /// Largest amount one order may charge, minor units (0: no ceiling).
    pub max_order_amount: i64,
    /// Failed payments a buyer may have within the window before further
    /// checkouts are declined (0: no limit).
    pub max_failed_payments: u32,
    /// The window for `max_failed_payments`.
    pub failed_payment_window_secs: u64,
}

impl Default for RiskRules {
    fn default() -> Self {
        RiskRules {
            max_order_amount: 100_000_000,
            max_failed_payments: 5,
            failed_payment_window_secs: 3_600,
        }
    }
}

/// The static cluster membership (`[cluster]` in `cluster.toml`). With no
/// `nats`, the node runs alone: no NATS, no peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// The NATS server(s) the nodes meet on (JetStream enabled, ≥ 2.11):
    /// one URL, or a list of a NATS cluster's URLs. Empty: a single node.
    #[serde(deserialize_with = "one_or_many")]
    pub nats: Vec<String>,
    /// Shards entities are placed in (fixed for the cluster's life: an id
    /// carries its shard).
    pub shards: u32,
    /// Every node, this one included.
    pub nodes: Vec<NodeSettings>,
    /// How long a call to another node waits for its answer (a forwarded
    /// checkout waits `checkout_wait_ms` longer).
    pub call_timeout_ms: u64,
    /// Copies NATS keeps of the event stream and the buckets: 1 on one
    /// NATS server, 3 on a NATS cluster of three.
    pub replicas: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            nats: Vec::new(),
            shards: DEFAULT_SHARDS,
            nodes: Vec::new(),
            call_timeout_ms: 5_000,
            replicas: 1,
        }
    }
}

impl ClusterSettings {
    /// Whether this node is one of a cluster (it has NATS to meet on).
    pub fn is_clustered(&self) -> bool {
        !self.nats.is_empty()
    }
}

impl Settings {
    /// Where entities live: the cluster's shards over its nodes, or this
    /// node alone when no nodes are listed.
    pub fn placement(&self) -> Placement {
        let nodes: Vec<String> = self.cluster.nodes.iter().map(|n| n.id.clone()).collect();
        Placement::new(self.cluster.shards, &nodes, &self.node_id)
    }

    /// Which entities this node owns: all of them on a single node (no
    /// hashing), else what [`Self::placement`] gives it.
    pub fn ownership(&self) -> Ownership {
        if self.cluster.is_clustered() {
            Ownership::in_cluster(self.placement(), &self.node_id)
        } else {
            Ownership::alone()
        }
    }

    /// The other configured nodes' ids (whose events this node consumes).
    pub fn peers(&self) -> Vec<String> {
        self.cluster
            .nodes
            .iter()
            .map(|n| n.id.clone())
            .filter(|id| *id != self.node_id)
            .collect()
    }
}

/// Shards when `cluster.shards` is not set.
pub const DEFAULT_SHARDS: u32 = 1024;

/// Reads a string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    })
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// Node id: letters, digits, `-` and `_` (it names NATS subjects).
    pub id: String,
    /// The node's public HTTP address (for operators and redirects).
    pub http: SocketAddr,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            node_id: "node-1".into(),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            rate_limit_per_sec: 100,
            rate_limit_burst: 0,
            request_timeout_ms: 30_000,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
            admin_http: None,
            session_ttl_secs: 7 * 24 * 3600,
            payment_ttl_secs: 300,
            payment_latency_ms: 50,
            checkout_wait_ms: 5_000,
            payment_timeout_ms: 10_000,
            risk: RiskRules::default(),
            archive_after_days: 365,
            search_commit_ms: 250,
            search_cache_entries: 4096,
            search_total_exact_limit: 10_000,
            ws_queue_messages: 256,
            ws_session_check_secs: 5,
            recommender_paused: false,
            cors_origins: vec!["*".into()],
            shutdown_grace_secs: 30,
            entity_idle_secs: 60,
            actor_call_timeout_ms: 5_000,
            actor_max_in_flight: 50_000,
            cart_ttl_days: 30,
            pricing: crate::domain::cart::Pricing::default(),
            storage_cache_mb: 64,
            read_cache_mb: 64,
            sign_in_free_failures: 5,
            sign_in_first_wait_ms: 1_000,
            sign_in_longest_wait_secs: 300,
            cluster: ClusterSettings::default(),
            event_archive_secs: 60,
            checkout_sweep_secs: 60,
            event_log_keep: 10_000,
            event_archive_min_events: 10_000,
        }
    }
}

/// Setting names that may come from `AGORA_<NAME>`.
const ENV_KEYS: [&str; 32] = [
    "node_id",
    "http",
    "data_dir",
    "rate_limit_per_sec",
    "rate_limit_burst",
    "request_timeout_ms",
    "session_ttl_secs",
    "payment_ttl_secs",
    "payment_latency_ms",
    "checkout_wait_ms",
    "cors_origins",
    "shutdown_grace_secs",
    "storage_cache_mb",
    "read_cache_mb",
    "entity_idle_secs",
    "actor_call_timeout_ms",
    "actor_max_in_flight",
    "cart_ttl_days",
    "payment_timeout_ms",
    "archive_after_days",
    "search_commit_ms",
    "search_cache_entries",
    "search_total_exact_limit",
    "ws_queue_messages",
    "ws_session_check_secs",
    "recommender_paused",
    "sign_in_free_failures",
    "sign_in_first_wait_ms",
    "sign_in_longest_wait_secs",
    "header_read_timeout_secs",
    "body_read_timeout_secs",
    "admin_http",
];

/// The event log archive's settings that may come from `AGORA_<NAME>`
/// (kept apart from [`ENV_KEYS`] only to keep that list's edits short).
const ARCHIVE_ENV_KEYS: [&str; 4] = [
    "checkout_sweep_secs",
    "event_archive_secs",
    "event_log_keep",
    "event_archive_min_events",
];

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--node-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// `--rate-limit-per-sec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_sec: Option<u32>,
    /// `--payment-ttl-secs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_ttl_secs: Option<u64>,
    /// `--payment-latency-ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_latency_ms: Option<u64>,
    /// `--checkout-wait-ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_wait_ms: Option<u64>,
    /// `--admin-http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_http: Option<String>,
}

/// Settings whose values are text: taken verbatim, so `AGORA_NODE_ID=1`
/// stays the string "1" rather than becoming a number.
const TEXT_KEYS: [&str; 4] = ["node_id", "http", "data_dir", "admin_http"];

/// Interprets one environment value: verbatim for text settings, a
/// comma-separated list for `cors_origins` (or a TOML array), else a TOML
/// value (`100`, `true`, ...).
fn env_value(key: &str, raw: String) -> figment::value::Value {
    use figment::value::Value;
    if TEXT_KEYS.contains(&key) {
        return Value::from(raw);
    }
    if key == "cors_origins" && !raw.trim_start().starts_with('[') {
        let list: Vec<String> = raw
            .split(',')
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        return Value::from(list);
    }
    raw.parse::<Value>().unwrap_or_else(|_| Value::from(raw))
}

impl Settings {
    /// Loads the layers from the real environment and validates the result.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(config_file, &env, overrides)
    }

    /// Loads the layers with an explicit environment (what tests use).
    pub fn load_from(
        config_file: Option<&Path>,
        env: &[(String, String)],
        overrides: &Overrides,
    ) -> anyhow::Result<Settings> {
        let from_env = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let file = match (config_file, from_env("AGORA_CONFIG")) {
            (Some(path), _) => Some(path.to_path_buf()),
            (None, Some(path)) => Some(PathBuf::from(path)),
            (None, None) => Some(PathBuf::from("cluster.toml")).filter(|p| p.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = &file {
            if !file.exists() {
                anyhow::bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        for key in ENV_KEYS.into_iter().chain(ARCHIVE_ENV_KEYS) {
            if let Some(raw) = from_env(&format!("AGORA_{}", key.to_uppercase())) {
                figment = figment.merge(Serialized::global(key, env_value(key, raw)));
            }
        }
        let mut settings: Settings = figment
            .merge(Serialized::globals(overrides))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
        // One file serves every node of a cluster: a node given no `http`
        // of its own listens where its `cluster.nodes` entry says.
        let file_sets_http = file
            .as_ref()
            .is_some_and(|file| Figment::from(Toml::file(file)).find_value("http").is_ok());
        if overrides.http.is_none() && from_env("AGORA_HTTP").is_none() && !file_sets_http {
            if let Some(me) = settings
                .cluster
                .nodes
                .iter()
                .find(|n| n.id == settings.node_id)
            {
                settings.http = me.http;
            }
        }
        settings.validate()?;
        Ok(settings)
    }
}

mod validate;

#[cfg(test)]
mod tests;

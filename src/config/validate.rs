//! The rules settings must meet, checked once at start-up; every violation
//! is reported together, so an operator fixes a file in one go.

use super::Settings;
use crate::storage::archive::MAX_SEGMENT_EVENTS;

/// A setting's name, its value, and the lowest and highest it may be.
type Bound = (&'static str, u64, u64, u64);

/// Seconds in a day.
const DAY: u64 = 86_400;

impl Settings {
    /// Checks every rule at once and reports all violations together.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.node_id.trim().is_empty() {
            problems.push("node_id must not be empty".to_owned());
        }
        if self.data_dir.as_os_str().is_empty() {
            problems.push("data_dir must not be empty".to_owned());
        }
        self.range_problems(&mut problems);
        self.money_problems(&mut problems);
        self.address_problems(&mut problems);
        self.cluster_problems(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("invalid settings:\n  - {}", problems.join("\n  - "))
        }
    }

    /// Numbers outside the range where they make sense.
    fn range_problems(&self, problems: &mut Vec<String>) {
        let bounds = self
            .runtime_bounds()
            .into_iter()
            .chain(self.request_bounds())
            .chain(self.storage_bounds());
        for (name, value, low, high) in bounds {
            if !(low..=high).contains(&value) {
                problems.push(format!("{name} must be in {low}..={high}, got {value}"));
            }
        }
    }

    /// The ranges of the services' and actors' settings.
    fn runtime_bounds(&self) -> [Bound; 12] {
        [
            ("payment_timeout_ms", self.payment_timeout_ms, 1, 600_000),
            ("search_commit_ms", self.search_commit_ms, 10, 500),
            ("search_cache_entries", self.search_cache_entries, 0, 65_536),
            (
                "search_total_exact_limit",
                self.search_total_exact_limit,
                1,
                100_000_000,
            ),
            (
                "ws_queue_messages",
                self.ws_queue_messages as u64,
                1,
                1_000_000,
            ),
            (
                "ws_session_check_secs",
                self.ws_session_check_secs,
                1,
                86_400,
            ),
            ("archive_after_days", self.archive_after_days, 1, 36_500),
            (
                "risk.failed_payment_window_secs",
                self.risk.failed_payment_window_secs,
                1,
                30 * DAY,
            ),
            ("cart_ttl_days", self.cart_ttl_days, 1, 3_650),
            ("entity_idle_secs", self.entity_idle_secs, 1, DAY),
            (
                "actor_call_timeout_ms",
                self.actor_call_timeout_ms,
                1,
                600_000,
            ),
            (
                "actor_max_in_flight",
                self.actor_max_in_flight,
                1,
                10_000_000,
            ),
        ]
    }

    /// The ranges of the request path's settings: limits, timeouts, sessions,
    /// payments and sign-in throttling.
    fn request_bounds(&self) -> [Bound; 13] {
        [
            (
                "rate_limit_per_sec",
                self.rate_limit_per_sec.into(),
                0,
                1_000_000,
            ),
            (
                "rate_limit_burst",
                self.rate_limit_burst.into(),
                0,
                10_000_000,
            ),
            ("request_timeout_ms", self.request_timeout_ms, 1, 600_000),
            ("session_ttl_secs", self.session_ttl_secs, 1, 365 * DAY),
            ("payment_ttl_secs", self.payment_ttl_secs, 1, 7 * DAY),
            ("payment_latency_ms", self.payment_latency_ms, 0, 60_000),
            ("checkout_wait_ms", self.checkout_wait_ms, 0, 60_000),
            ("shutdown_grace_secs", self.shutdown_grace_secs, 0, 3_600),
            (
                "sign_in_free_failures",
                self.sign_in_free_failures.into(),
                0,
                1_000,
            ),
            (
                "sign_in_first_wait_ms",
                self.sign_in_first_wait_ms,
                1,
                3_600_000,
            ),
            (
                "sign_in_longest_wait_secs",
                self.sign_in_longest_wait_secs,
                1,
                DAY,
            ),
            (
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                1,
                3_600,
            ),
            (
                "body_read_timeout_secs",
                self.body_read_timeout_secs,
                1,
                3_600,
            ),
        ]
    }

    /// The ranges of the event log's and the caches' settings.
    fn storage_bounds(&self) -> [Bound; 6] {
        [
            ("checkout_sweep_secs", self.checkout_sweep_secs, 1, DAY),
            ("event_archive_secs", self.event_archive_secs, 0, DAY),
            ("event_log_keep", self.event_log_keep, 1, 1_000_000_000),
            (
                "event_archive_min_events",
                self.event_archive_min_events,
                1,
                MAX_SEGMENT_EVENTS,
            ),
            ("read_cache_mb", self.read_cache_mb, 1, 65_536),
            ("storage_cache_mb", self.storage_cache_mb, 8, 65_536),
        ]
    }

    /// Amounts, rates and fees that cannot be negative or over 100%.
    fn money_problems(&self, problems: &mut Vec<String>) {
        if self.risk.max_order_amount < 0 {
            problems.push("risk.max_order_amount must not be negative (0: no ceiling)".to_owned());
        }
        let pricing = &self.pricing;
        let rates = std::iter::once(pricing.default_tax_bps)
            .chain(pricing.tax_bps_by_category.values().copied());
        if rates.into_iter().any(|bps| bps > 10_000) {
            problems.push("pricing: tax rates are basis points, at most 10000 (100%)".to_owned());
        }
        if pricing.shipping_fee < 0 || pricing.free_shipping_from < 0 {
            problems.push(
                "pricing: shipping_fee and free_shipping_from must not be negative".to_owned(),
            );
        }
    }

    /// CORS origins that are not origins; an admin listener on the public address.
    fn address_problems(&self, problems: &mut Vec<String>) {
        for origin in &self.cors_origins {
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && http::HeaderValue::from_str(origin).is_ok());
            if !ok {
                problems.push(format!(
                    "cors_origins: {origin:?} is neither \"*\" nor an http(s) origin"
                ));
            }
        }
        if let Some(admin) = self.admin_http {
            if admin == self.http && admin.port() != 0 {
                problems.push(format!(
                    "admin_http must differ from http (both are {admin})"
                ));
            }
        }
    }

    /// Node ids that cannot name a NATS subject or are listed twice, this
    /// node missing from the list, a shard count ids cannot carry, and
    /// peers with no NATS to meet on.
    fn cluster_problems(&self, problems: &mut Vec<String>) {
        let cluster = &self.cluster;
        let nodes = &cluster.nodes;
        for (i, node) in nodes.iter().enumerate() {
            if !is_node_id(&node.id) {
                problems.push(format!(
                    "cluster.nodes: id {:?} must be 1 to 64 letters, digits, '-' or '_'",
                    node.id
                ));
            }
            if nodes[..i].iter().any(|other| other.id == node.id) {
                problems.push(format!("cluster.nodes: id {:?} appears twice", node.id));
            }
        }
        if !is_node_id(&self.node_id) {
            problems.push(format!(
                "node_id {:?} must be 1 to 64 letters, digits, '-' or '_'",
                self.node_id
            ));
        }
        if !nodes.is_empty() && !nodes.iter().any(|n| n.id == self.node_id) {
            problems.push(format!(
                "node_id {:?} is not one of cluster.nodes",
                self.node_id
            ));
        }
        if !(1..=MAX_SHARDS).contains(&cluster.shards) {
            problems.push(format!(
                "cluster.shards must be between 1 and {MAX_SHARDS} (got {})",
                cluster.shards
            ));
        }
        for url in &cluster.nats {
            let scheme = url.split("://").next().unwrap_or("");
            if !url.contains("://") || !["nats", "tls", "ws", "wss"].contains(&scheme) {
                problems.push(format!(
                    "cluster.nats: {url:?} is not a nats://, tls://, ws:// or wss:// URL"
                ));
            }
        }
        if nodes.len() > 1 && cluster.nats.is_empty() {
            problems.push(format!(
                "cluster.nodes lists {} nodes but cluster.nats is not set: nodes meet on NATS",
                nodes.len()
            ));
        }
        if !(10..=600_000).contains(&cluster.call_timeout_ms) {
            problems.push(format!(
                "cluster.call_timeout_ms must be between 10 and 600000 (got {})",
                cluster.call_timeout_ms
            ));
        }
        if !(1..=5).contains(&cluster.replicas) {
            problems.push(format!(
                "cluster.replicas must be between 1 and 5 (got {})",
                cluster.replicas
            ));
        }
        if !cluster.nats.is_empty() && nodes.is_empty() {
            problems.push("cluster.nats is set but cluster.nodes is empty".into());
        }
    }
}

/// Most shards: an id carries its shard in 16 bits.
const MAX_SHARDS: u32 = 65_536;

/// A node id names NATS subjects, so it holds no dots, spaces or wildcards.
fn is_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

//! The harness's HTTP side: one pooled client per target node, and a
//! caller per worker that sends a request, reads its answer and records it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::Value;

use crate::stats::{Live, Stats};

/// No single request waits longer than this (checkout's own wait is 5 s by
/// default), so a run always ends.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The nodes under load, each with its own connection pool.
#[derive(Clone)]
pub struct Targets {
    nodes: Arc<Vec<(Client, String)>>,
}

impl Targets {
    /// Clients for `bases` (`http://host:port`), pooling up to `pool`
    /// connections each.
    pub fn new(bases: &[String], pool: usize) -> anyhow::Result<Targets> {
        let mut nodes = Vec::with_capacity(bases.len());
        for base in bases {
            let client = Client::builder()
                .pool_max_idle_per_host(pool)
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .build()?;
            nodes.push((client, base.trim_end_matches('/').to_owned()));
        }
        anyhow::ensure!(!nodes.is_empty(), "no target given");
        Ok(Targets {
            nodes: Arc::new(nodes),
        })
    }

    /// The node for worker `n` (workers are spread round-robin).
    pub fn node(&self, n: usize) -> (Client, String) {
        self.nodes[n % self.nodes.len()].clone()
    }

    /// Every node's base URL.
    pub fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|(_, b)| b.clone()).collect()
    }
}

/// An answer as the harness sees it.
pub struct Reply {
    /// `None` when no answer came (connection refused, reset, timeout).
    pub status: Option<StatusCode>,
    /// The JSON body, or `Null`.
    pub body: Value,
}

impl Reply {
    /// The problem+json `code`, for refusals.
    pub fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    /// Whether the answer is this status.
    pub fn is(&self, status: StatusCode) -> bool {
        self.status == Some(status)
    }
}

/// A worker's view: its node, its buyer's token, and its records.
pub struct Caller {
    client: Client,
    base: String,
    /// The signed-in buyer this worker acts as, if any.
    pub token: Option<String>,
    /// What this worker recorded.
    pub stats: Stats,
    live: Arc<Live>,
}

impl Caller {
    /// A caller on worker `n`'s node.
    pub fn new(targets: &Targets, n: usize, live: Arc<Live>) -> Caller {
        let (client, base) = targets.node(n);
        Caller {
            client,
            base,
            token: None,
            stats: Stats::default(),
            live,
        }
    }

    /// A request to `path` on this worker's node, as its buyer.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` as operation `op` and records it, with latency
    /// counted from `since` (the intended start in an open loop, so time
    /// spent waiting behind a slow server counts).
    pub async fn send(
        &mut self,
        op: &'static str,
        since: Instant,
        request: RequestBuilder,
    ) -> Reply {
        let reply = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let body = match response.bytes().await {
                    Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                Reply {
                    status: Some(status),
                    body,
                }
            }
            Err(_) => Reply {
                status: None,
                body: Value::Null,
            },
        };
        let took = since.elapsed();
        let (outcome, error) = outcome(&reply);
        self.stats.record(op, took, outcome, error);
        self.live.count(error);
        reply
    }
}

impl Caller {
    /// Records `reply` once more, as operation `op` timed from `since`
    /// (an iteration of several requests), without counting a request.
    pub fn record_since(&mut self, op: &'static str, since: Instant, reply: &Reply) {
        let (outcome, error) = outcome(reply);
        self.stats.record(op, since.elapsed(), outcome, error);
    }
}

/// How a reply is counted: its status (with the problem code for
/// refusals), and whether it is an error (5xx or no answer).
fn outcome(reply: &Reply) -> (String, bool) {
    match reply.status {
        None => ("transport".to_owned(), true),
        Some(status) if status.is_client_error() || status.is_server_error() => {
            let text = match reply.code() {
                Some(code) => format!("{} {code}", status.as_u16()),
                None => status.as_u16().to_string(),
            };
            (text, status.is_server_error())
        }
        Some(status) => (status.as_u16().to_string(), false),
    }
}

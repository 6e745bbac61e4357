//! Entity calls between nodes: NATS request/reply on `agora.<node>.<kind>`.
//!
//! The owner of an entity answers requests on its own subjects, one per
//! kind of call (`http` for a forwarded request, `inventory` for a SKU's
//! stock, `cart` for a guest cart's lines). A caller sends the codec-encoded
//! body with a timeout. NATS answers "no responders" at once when no node
//! listens on the subject (the owner is down, or not yet serving), which
//! becomes [`CallError::Unavailable`]; a timeout is [`CallError::TimedOut`],
//! whose outcome is unknown, which is safe because every mutation sent this
//! way is idempotent by its request or checkout id.
//!
//! What a body means is the business of the layers above: this module moves
//! bytes and knows nothing of services or actors. A handler is a plain
//! function from request bytes to reply bytes that `node/` wires in.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, RequestErrorKind};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Why a call to another node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Nobody answers for the node ("no responders"): it is down, frozen and
    /// dropped, or still starting.
    #[error("node {0} is unavailable")]
    Unavailable(String),
    /// The node did not answer in time; the call may or may not have been
    /// applied.
    #[error("node {0} did not answer in time")]
    TimedOut(String),
    /// NATS itself failed (e.g. this node is disconnected).
    #[error("call to node {node} failed: {reason}")]
    Failed {
        /// The node called.
        node: String,
        /// What NATS said.
        reason: String,
    },
}

impl CallError {
    /// The node the failed call was for.
    pub fn node(&self) -> &str {
        match self {
            CallError::Unavailable(node) | CallError::TimedOut(node) => node,
            CallError::Failed { node, .. } => node,
        }
    }
}

/// What a node runs for a request of one kind: request bytes to reply bytes.
pub type Handler =
    Arc<dyn Fn(Bytes) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> + Send + Sync>;

/// Calls to other nodes, and this node's answers. Cheap to clone.
#[derive(Clone)]
pub struct Rpc {
    client: Client,
    node: String,
    timeout: Duration,
}

/// Requests one kind's responder works on at once; more wait in NATS's
/// subscription buffer.
const CONCURRENT_REQUESTS: usize = 1024;

impl Rpc {
    /// Calls as (and answers for) `node`, each call waiting at most
    /// `timeout` unless it says otherwise.
    pub fn new(client: Client, node: &str, timeout: Duration) -> Rpc {
        Rpc {
            client,
            node: node.to_owned(),
            timeout,
        }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The subject `node` answers `kind` calls on.
    pub fn subject(node: &str, kind: &str) -> String {
        format!("agora.{node}.{kind}")
    }

    /// Sends `body` to `node`'s `kind` responder and waits for its answer.
    pub async fn call(
        &self,
        node: &str,
        kind: &'static str,
        body: Vec<u8>,
    ) -> Result<Bytes, CallError> {
        self.call_within(node, kind, body, self.timeout).await
    }

    /// [`Self::call`] with its own timeout.
    pub async fn call_within(
        &self,
        node: &str,
        kind: &'static str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let started = Instant::now();
        let request = async_nats::Request::new()
            .payload(Bytes::from(body))
            .timeout(Some(timeout));
        let answer = self
            .client
            .send_request(Self::subject(node, kind), request)
            .await;
        let outcome = match &answer {
            Ok(_) => "ok",
            Err(e) => match e.kind() {
                RequestErrorKind::NoResponders => "unavailable",
                RequestErrorKind::TimedOut => "timeout",
                RequestErrorKind::Other => "failed",
            },
        };
        metrics::histogram!("agora_rpc_call_seconds", "kind" => kind, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        match answer {
            Ok(message) => Ok(message.payload),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::NoResponders => CallError::Unavailable(node.to_owned()),
                RequestErrorKind::TimedOut => CallError::TimedOut(node.to_owned()),
                RequestErrorKind::Other => CallError::Failed {
                    node: node.to_owned(),
                    reason: e.to_string(),
                },
            }),
        }
    }

    /// Answers `kind` calls to this node with `handler`, each in its own
    /// task, until the returned [`Responder`] is stopped.
    pub async fn serve(
        &self,
        kind: &'static str,
        handler: Handler,
    ) -> Result<Responder, async_nats::SubscribeError> {
        let mut requests = self
            .client
            .subscribe(Self::subject(&self.node, kind))
            .await?;
        // Once the server has the subscription, callers reach this node.
        if let Err(e) = self.client.flush().await {
            tracing::warn!(kind, error = %e, "could not confirm a subscription");
        }
        let client = self.client.clone();
        let slots = Arc::new(Semaphore::new(CONCURRENT_REQUESTS));
        let task = tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                let Some(reply) = message.reply else {
                    continue;
                };
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (client, handler) = (client.clone(), handler.clone());
                tokio::spawn(async move {
                    let answer = handler(message.payload).await;
                    if let Err(e) = client.publish(reply, answer.into()).await {
                        tracing::warn!(kind, error = %e, "could not send a reply");
                    }
                    drop(slot);
                });
            }
        });
        Ok(Responder { task })
    }
}

/// This node answering one kind of call; stopping it unsubscribes (calls
/// already taken finish).
pub struct Responder {
    task: JoinHandle<()>,
}

impl Responder {
    /// Stops taking calls: callers get "no responders" from now on.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

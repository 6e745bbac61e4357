//! The consumer: every other node's events, from the stream into this node.
//!
//! One durable pull consumer per node on [`STREAM`] (named `agora-<node
//! id>`), filtered to the other nodes' subjects: this node's own events
//! reached its read models through its own log already.
//!
//! Each delivered batch is applied in ONE write job (`replica.rs`): the
//! replicas (items, foreign stock), a copy of each event appended to this
//! node's own log, marked foreign so the relay never publishes it again
//! (every consumer of the log, search, the hub, the recommender, the
//! inbox, sees it with no change of theirs), and each origin's last
//! applied sequence. NATS is acked only after that write is durable.
//!
//! - Nothing twice: a message redelivered (killed between the write and
//!   the ack) is at or below its origin's recorded sequence and skipped.
//!   Origins' sequences rather than the stream's decide, so a stream
//!   rebuilt from scratch (NATS lost its store) is read again safely.
//! - Nothing skipped: a failed write is retried, same batch, until it
//!   passes or the node stops; the next batch waits. The durable consumer
//!   resumes after its ack floor. One set up again (lost with NATS's
//!   store, or deleted) reads the stream from its start, skipping what
//!   was applied: a stream sequence recorded here could not tell a stream
//!   rebuilt from scratch from the old one, and would skip new events.
//! - NATS away: the message stream errs, and the consumer is set up again
//!   after a backoff, forever.

use std::sync::Arc;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, Message};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::relay::{stream_config, STREAM};
use super::replica::{self, Foreign};
use super::task::StoppableTask;
use crate::domain::event::Event;
use crate::domain::Timestamp;
use crate::storage::{codec, Store};

/// Messages applied per write job, at most.
const BATCH: usize = 256;
/// How long NATS waits for an ack before redelivering.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// The server sends a heartbeat this often while idle; two missed and the
/// message stream errs (NATS away), and the consumer is set up again.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Each pull request lives this long.
const EXPIRES: Duration = Duration::from_secs(10);
/// The first and the longest wait before retrying after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The running consumer task.
pub struct Consumer {
    task: StoppableTask,
}

impl Consumer {
    /// Starts consuming `peers`' events into `store` as node `node_id`.
    /// Never fails: setting up is retried by the task until NATS answers.
    pub fn start(
        jetstream: jetstream::Context,
        store: Store,
        node_id: &str,
        peers: &[String],
    ) -> Consumer {
        let task = StoppableTask::spawn(|stopped| {
            let worker = Worker {
                jetstream,
                store,
                durable: durable_name(node_id),
                subjects: peers.iter().map(|p| format!("agora.events.{p}")).collect(),
                stop: stopped,
            };
            worker.run()
        });
        Consumer { task }
    }

    /// Stops the task (before the NATS connection closes). A batch written
    /// but not acked is redelivered at the next start, and skipped.
    pub async fn stop(self) {
        self.task.stop().await;
    }
}

/// `agora-<node id>`, with what a consumer name may not hold replaced.
fn durable_name(node_id: &str) -> String {
    let safe: String = node_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("agora-{safe}")
}

/// Why the message stream ended.
enum Flow {
    /// The node is stopping.
    Stop,
    /// NATS erred: set the consumer up again.
    Resubscribe,
}

struct Worker {
    jetstream: jetstream::Context,
    store: Store,
    durable: String,
    subjects: Vec<String>,
    stop: watch::Receiver<bool>,
}

impl Worker {
    async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.subscribe().await {
                Ok(messages) => {
                    backoff = FIRST_BACKOFF;
                    if let Flow::Stop = self.drain(messages).await {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "consumer: cannot set up; retrying"),
            }
            if !self.pause(&mut backoff).await {
                return;
            }
        }
    }

    /// Sets up the stream (the relays do too: whoever comes first) and this
    /// node's durable consumer, and opens its message stream.
    async fn subscribe(&self) -> Result<pull::Stream, String> {
        self.jetstream
            .create_or_update_stream(stream_config())
            .await
            .map_err(|e| e.to_string())?;
        let config = pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subjects: self.subjects.clone(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            deliver_policy: DeliverPolicy::All,
            max_ack_pending: (4 * BATCH) as i64,
            ..Default::default()
        };
        let stream = self
            .jetstream
            .get_stream_no_info(STREAM)
            .await
            .map_err(|e| e.to_string())?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(&self.durable, config)
            .await
            .map_err(|e| e.to_string())?;
        let pending = consumer.cached_info().num_pending;
        metrics::gauge!("agora_consumer_lag_events").set(pending as f64);
        tracing::info!(consumer = %self.durable, pending, "consumer started");
        consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .heartbeat(HEARTBEAT)
            .expires(EXPIRES)
            .messages()
            .await
            .map_err(|e| e.to_string())
    }

    /// Applies what arrives, a batch at a time (the first message, then
    /// whatever is already there), until stop or an error.
    async fn drain(&self, mut messages: pull::Stream) -> Flow {
        let mut stop = self.stop.clone();
        loop {
            let first = tokio::select! {
                next = messages.next() => next,
                _ = stop.wait_for(|s| *s) => return Flow::Stop,
            };
            let mut batch = match first {
                Some(Ok(message)) => vec![message],
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer: message stream failed; setting up again");
                    return Flow::Resubscribe;
                }
                None => return Flow::Resubscribe,
            };
            let mut failed = false;
            while batch.len() < BATCH {
                match messages.next().now_or_never() {
                    Some(Some(Ok(message))) => batch.push(message),
                    Some(Some(Err(_)) | None) => {
                        failed = true;
                        break;
                    }
                    None => break,
                }
            }
            if !self.apply(&batch).await {
                return Flow::Stop;
            }
            if failed {
                return Flow::Resubscribe;
            }
        }
    }

    /// Writes `batch` (retried until it passes; `false` once stopping),
    /// then acks it.
    async fn apply(&self, batch: &[Message]) -> bool {
        let foreign: Arc<Vec<Foreign>> = Arc::new(batch.iter().filter_map(decode).collect());
        let mut backoff = FIRST_BACKOFF;
        let applied = loop {
            let job = foreign.clone();
            match self
                .store
                .write(move |tx| replica::apply_batch(tx, &job))
                .await
            {
                Ok(applied) => break applied,
                Err(e) => {
                    tracing::warn!(error = %e, "consumer: cannot apply a batch; retrying");
                    if !self.pause(&mut backoff).await {
                        return false;
                    }
                }
            }
        };
        for message in batch {
            if let Err(e) = message.ack().await {
                // Redelivered later, and skipped then.
                tracing::debug!(error = %e, "consumer: ack not sent");
            }
        }
        let now = Timestamp::now().0;
        for at in &applied.at {
            let lag = (now - at.0).max(0) as f64 / 1000.0;
            metrics::histogram!("agora_consumer_lag_seconds").record(lag);
        }
        metrics::counter!("agora_consumer_applied_total").increment(applied.at.len() as u64);
        metrics::counter!("agora_consumer_skipped_total").increment(applied.skipped as u64);
        if let Some(info) = batch.last().and_then(|m| m.info().ok()) {
            metrics::gauge!("agora_consumer_lag_events").set(info.pending as f64);
            metrics::gauge!("agora_consumer_applied_seq").set(info.stream_sequence as f64);
        }
        true
    }

    /// Waits `backoff` (then doubles it, capped); `false` once stopping.
    async fn pause(&self, backoff: &mut Duration) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => !*self.stop.borrow(),
            _ = stop.wait_for(|s| *s) => false,
        }
    }
}

/// A message as one origin's event; one this node cannot read is logged,
/// counted and skipped (holding the whole stream for it would be worse).
fn decode(message: &Message) -> Option<Foreign> {
    let stream_seq = message.info().map_or(0, |info| info.stream_sequence);
    let origin = message
        .headers
        .as_ref()
        .and_then(|h| h.get(NATS_MESSAGE_ID))
        .and_then(|id| origin_of(id.as_str()));
    let event = codec::decode::<Event>(&message.payload);
    match (origin, event) {
        (Some((origin, origin_seq)), Ok(event)) => Some(Foreign {
            origin,
            origin_seq,
            event,
        }),
        (origin, event) => {
            let error = event.err().map(|e| e.to_string()).unwrap_or_default();
            tracing::error!(stream_seq, ?origin, %error, "consumer: skipped a message it cannot read");
            metrics::counter!("agora_consumer_unreadable_total").increment(1);
            None
        }
    }
}

/// `<node>:<seq>` as (node, seq).
fn origin_of(id: &str) -> Option<(String, u64)> {
    let (node, seq) = id.rsplit_once(':')?;
    Some((node.to_owned(), seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_names_its_origin_and_sequence() {
        assert_eq!(origin_of("node-1:42"), Some(("node-1".into(), 42)));
        assert_eq!(origin_of("a:b:7"), Some(("a:b".into(), 7)));
        assert_eq!(origin_of("node-1"), None);
        assert_eq!(origin_of("node-1:x"), None);
    }

    #[test]
    fn a_durable_name_is_the_node_id_made_safe() {
        assert_eq!(durable_name("node-1"), "agora-node-1");
        assert_eq!(durable_name("eu.west 1>"), "agora-eu_west_1_");
    }
}

//! The relay: this node's event log, in order, into one JetStream stream.
//!
//! The sled log stays the source of truth; the relay copies it to the
//! stream [`STREAM`] under `agora.events.<node id>`, one message per event:
//!
//! - payload: the event as the codec stores it (`[version][bincode]`), the
//!   very bytes of the sled log: no second format to keep in step, compact,
//!   and the version byte lets a reader on a newer node migrate old bytes;
//! - `Nats-Msg-Id: <node>:<seq>`: JetStream drops a repeat within the
//!   stream's duplicate window;
//! - `Agora-Kind` (`item.created`, ...) and `Agora-At` (commit time, ms)
//!   so an outside reader can filter and measure without the codec.
//!
//! Order and nothing lost: a batch is published pipelined on one
//! connection, its acks awaited in order; the durable offset (the
//! `relay` consumer, which also holds the archive pass) moves only past
//! acknowledged events. A failed ack is retried, from that event on, after
//! a backoff, forever: NATS down means the relay waits, never drops.
//!
//! Never another node's event: the consumer copies those into this log
//! marked foreign (`foreign_events`); the relay passes over them, and drops
//! the marks once its offset is past them.
//!
//! Nothing twice after a crash: at start the relay reads the last message
//! of its subject and skips what the stream already holds, so a relay
//! killed between an ack and its offset commit repeats nothing, even past
//! the duplicate window.

use std::time::Duration;

use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream::{self, stream};
use tokio::sync::watch;

use super::replica;
use super::task::StoppableTask;
use crate::domain::event::Event;
use crate::domain::Timestamp;
use crate::storage::event_log::EventConsumer;
use crate::storage::{codec, Store};

/// The one stream every node relays into.
pub const STREAM: &str = "AGORA_EVENTS";
/// The consumer name of the relay's offset in the offsets tree.
const CONSUMER: &str = "relay";
/// Events published per pipelined batch.
const BATCH: usize = 256;
/// JetStream drops a `Nats-Msg-Id` it saw within this window.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Events older than this leave the stream (a node further behind than
/// this rebuilds from a peer's snapshot, not from the stream).
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The first and the longest wait before retrying after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The running relay task.
pub struct Relay {
    task: StoppableTask,
}

impl Relay {
    /// Starts relaying `store`'s log as `node_id`. Never fails: setting up
    /// the stream is retried by the task until NATS answers.
    pub fn start(jetstream: jetstream::Context, store: Store, node_id: &str) -> Relay {
        let task = StoppableTask::spawn(|stopped| {
            let worker = Worker {
                jetstream,
                store,
                node: node_id.to_owned(),
                subject: format!("agora.events.{node_id}"),
                stop: stopped,
            };
            worker.run()
        });
        Relay { task }
    }

    /// Stops the task (before the NATS connection closes). What it had not
    /// committed is relayed again, and skipped by the stream, at the next
    /// start.
    pub async fn stop(self) {
        self.task.stop().await;
    }
}

/// The stream's settings: file storage, `cluster.replicas` copies (three
/// on a NATS cluster of three), limits retention by age.
pub(super) fn stream_config() -> stream::Config {
    stream::Config {
        name: STREAM.to_owned(),
        subjects: vec!["agora.events.>".to_owned()],
        storage: stream::StorageType::File,
        num_replicas: super::task::replicas(),
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age: MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// Why a relay step failed (logged, then retried).
type Failure = String;

struct Worker {
    jetstream: jetstream::Context,
    store: Store,
    node: String,
    subject: String,
    stop: watch::Receiver<bool>,
}

impl Worker {
    async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        let mut consumer = loop {
            match self.resume().await {
                Ok(consumer) => break consumer,
                Err(e) => {
                    tracing::warn!(error = %e, "relay: cannot set up the stream; retrying");
                    if !self.pause(&mut backoff).await {
                        return;
                    }
                }
            }
        };
        tracing::info!(stream = STREAM, subject = %self.subject, after = consumer.position(), "relay started");
        let mut pending: Vec<Event> = Vec::new();
        let mut relayed = consumer.position();
        let mut failed = false;
        loop {
            // After a failure the stream may be gone (NATS restarted on an
            // empty store): set it up again before retrying.
            if std::mem::take(&mut failed) {
                if let Err(e) = self
                    .jetstream
                    .create_or_update_stream(stream_config())
                    .await
                {
                    tracing::warn!(error = %e, "relay: cannot set up the stream; retrying");
                    failed = true;
                    if !self.pause(&mut backoff).await {
                        return;
                    }
                    continue;
                }
            }
            if pending.is_empty() {
                let mut stop = self.stop.clone();
                match consumer.next_or_stop(BATCH, &mut stop).await {
                    Some(batch) => pending = batch,
                    None => return,
                }
            }
            let acked = self.publish(&pending).await;
            if acked > 0 {
                let last = pending[acked - 1].seq;
                pending.drain(..acked);
                match consumer.commit(last).await {
                    Ok(()) => replica::forget_foreign(&self.store, last).await,
                    Err(e) => tracing::warn!(error = %e, "relay: cannot commit its offset"),
                }
                relayed = last;
                backoff = FIRST_BACKOFF;
            }
            self.record_lag(relayed);
            if !pending.is_empty() {
                failed = true;
                if !self.pause(&mut backoff).await {
                    return;
                }
            }
        }
    }

    /// Creates or updates the stream, and positions the relay after the
    /// later of its committed offset and the last event the stream holds.
    async fn resume(&self) -> Result<EventConsumer, Failure> {
        let stream = self
            .jetstream
            .create_or_update_stream(stream_config())
            .await
            .map_err(|e| e.to_string())?;
        let committed = EventConsumer::open(self.store.clone(), CONSUMER)
            .await
            .map_err(|e| e.to_string())?
            .position();
        let stream = self
            .jetstream
            .get_stream_no_info(&stream.config.name)
            .await
            .map_err(|e| e.to_string())?;
        let in_stream = match stream.get_last_raw_message_by_subject(&self.subject).await {
            Ok(message) => seq_of(&message.headers, &self.node),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => 0,
            Err(e) => return Err(e.to_string()),
        };
        let newest = *self.store.event_watch().borrow();
        if in_stream > newest {
            tracing::warn!(
                in_stream,
                newest,
                "relay: the stream holds events this node's log does not (data dir replaced?)"
            );
        }
        let position = resume_after(committed, in_stream, newest);
        let consumer = EventConsumer::at(self.store.clone(), CONSUMER, position);
        // Recorded at once, so the archive pass holds the log from here.
        consumer.commit(position).await.map_err(|e| e.to_string())?;
        self.record_lag(position);
        Ok(consumer)
    }

    /// Publishes `events` pipelined and awaits their acks in order; returns
    /// how many, from the first, the stream acknowledged. Events another
    /// node made (copied here by the consumer) are passed over, as if
    /// acknowledged: their origin published them.
    async fn publish(&self, events: &[Event]) -> usize {
        let foreign = match replica::foreign_among(&self.store, events).await {
            Ok(foreign) => foreign,
            Err(e) => {
                tracing::warn!(error = %e, "relay: cannot read the foreign events; retrying");
                return 0;
            }
        };
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            if foreign.contains(&event.seq) {
                acks.push(None);
                continue;
            }
            let Some(payload) = encode(event) else {
                break;
            };
            let sent = self
                .jetstream
                .publish_with_headers(self.subject.clone(), self.headers(event), payload.into())
                .await;
            match sent {
                Ok(ack) => acks.push(Some(ack)),
                Err(e) => {
                    tracing::warn!(seq = event.seq, error = %e, "relay: publish failed; retrying");
                    break;
                }
            }
        }
        let mut acked = 0;
        let mut published = 0;
        for (ack, event) in acks.into_iter().zip(events) {
            let Some(ack) = ack else {
                acked += 1;
                continue;
            };
            if let Err(e) = ack.await {
                tracing::warn!(seq = event.seq, error = %e, "relay: no ack; retrying");
                break;
            }
            acked += 1;
            published += 1;
            let lag = (Timestamp::now().0 - event.at.0).max(0) as f64 / 1000.0;
            metrics::histogram!("agora_relay_lag_seconds").record(lag);
        }
        metrics::counter!("agora_relay_published_total").increment(published);
        acked
    }

    fn headers(&self, event: &Event) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_MESSAGE_ID,
            format!("{}:{}", self.node, event.seq).as_str(),
        );
        headers.insert("Agora-Kind", event.body.kind());
        headers.insert("Agora-At", event.at.0.to_string().as_str());
        headers
    }

    /// `agora_relay_lag_events`: committed events not yet in the stream.
    fn record_lag(&self, relayed: u64) {
        let newest = *self.store.event_watch().borrow();
        metrics::gauge!("agora_relay_lag_events").set(newest.saturating_sub(relayed) as f64);
        metrics::gauge!("agora_relay_relayed_seq").set(relayed as f64);
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

/// Where the relay resumes: after its committed offset, or after the last
/// event the stream already holds when that is further (killed between an
/// ack and the commit), but never past this node's own log (a stream that
/// holds more than the log met a replaced data dir: relaying from the
/// offset then is the lesser harm).
fn resume_after(committed: u64, in_stream: u64, newest: u64) -> u64 {
    if in_stream > newest {
        committed
    } else {
        committed.max(in_stream)
    }
}

/// The event as the codec stores it; an event it cannot encode is a bug,
/// logged, and holds the relay (retried) rather than being skipped.
fn encode(event: &Event) -> Option<Vec<u8>> {
    match codec::encode(event) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::error!(seq = event.seq, error = %e, "relay: cannot encode an event");
            None
        }
    }
}

/// The log sequence in a message's `Nats-Msg-Id` (`<node>:<seq>`), 0 when
/// it is not one of this node's.
fn seq_of(headers: &HeaderMap, node: &str) -> u64 {
    headers
        .get(NATS_MESSAGE_ID)
        .and_then(|id| {
            id.as_str()
                .strip_prefix(node)?
                .strip_prefix(':')?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_gives_back_the_sequence_only_for_its_own_node() {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, "node-1:42");
        assert_eq!(seq_of(&headers, "node-1"), 42);
        assert_eq!(seq_of(&headers, "node-10"), 0);
        assert_eq!(seq_of(&HeaderMap::new(), "node-1"), 0);
    }

    #[test]
    fn the_relay_resumes_after_what_the_stream_holds_when_its_offset_lags() {
        assert_eq!(resume_after(10, 14, 20), 14, "acked, not committed");
        assert_eq!(resume_after(10, 0, 20), 10, "stream empty or lost");
        assert_eq!(resume_after(10, 8, 20), 10, "stream behind the offset");
        assert_eq!(resume_after(10, 99, 20), 10, "never past the log");
    }
}

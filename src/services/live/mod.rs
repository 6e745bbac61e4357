//! Live updates: the node's hub, which consumes the event log and fans each
//! event out to the open websockets that should hear it.
//!
//! Sockets are keyed by user (a buyer hears every update of their own
//! orders) and by topic (`item:{id}` for live stock). Each socket has a
//! bounded outbound queue; a socket whose queue is full is evicted (closed
//! with 1013) rather than buffered without bound, and nobody else waits for
//! it: publishing never blocks. The hub reads the log from its durable end,
//! so an update reaches sockets only once it can no longer be undone by a
//! crash; in a cluster the same fan-out takes events published elsewhere.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use serde_json::json;
use tokio::sync::{mpsc, watch, Notify};

use crate::domain::event::{Event, EventBody};
use crate::storage::event_log::EventConsumer;
use crate::storage::Store;

/// Most topics one socket may follow.
pub const MAX_TOPICS: usize = 100;

/// One open socket, as the hub sees it.
pub struct Connection {
    id: u64,
    user_id: String,
    /// The session the socket was opened with (SHA-256 of its token).
    session_key: [u8; 32],
    /// Set when that session is signed out on this node.
    session_ended: AtomicBool,
    end_session: Notify,
    outbound: mpsc::Sender<Arc<str>>,
    topics: Mutex<HashSet<String>>,
    evicted: AtomicBool,
    evict: Notify,
}

impl Connection {
    /// The socket's user.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Resolves once the hub has evicted this socket (its queue overflowed).
    pub async fn evicted(&self) {
        let notified = self.evict.notified();
        if self.evicted.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    /// Resolves once the socket's session has been signed out on this node
    /// ([`Hub::end_session`]).
    pub async fn session_ended(&self) {
        // Registered before the flag is read, so a sign-out between the
        // two still wakes it.
        let notified = self.end_session.notified();
        if self.session_ended.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    /// Queues `message`; on overflow the socket is evicted.
    fn offer(&self, message: &Arc<str>, metrics: &Metrics) {
        match self.outbound.try_send(message.clone()) {
            Ok(()) => metrics.pushed.increment(1),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.evicted.swap(true, Ordering::AcqRel) {
                    metrics.dropped.increment(1);
                    self.evict.notify_waiters();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

struct Metrics {
    pushed: metrics::Counter,
    dropped: metrics::Counter,
    open: metrics::Gauge,
    lag: metrics::Histogram,
}

impl HubInner {
    /// Offers `text` to every socket under `key` in `map`.
    fn publish(&self, map: &DashMap<String, Vec<Arc<Connection>>>, key: &str, text: String) {
        // Clone the list out of the map: offering never holds a shard lock.
        let Some(targets) = map.get(key).map(|e| e.value().clone()) else {
            return;
        };
        let text: Arc<str> = Arc::from(text);
        for connection in &targets {
            connection.offer(&text, &self.metrics);
        }
    }
}

struct HubInner {
    next_id: AtomicU64,
    queue: usize,
    by_user: DashMap<String, Vec<Arc<Connection>>>,
    by_topic: DashMap<String, Vec<Arc<Connection>>>,
    metrics: Metrics,
}

/// The node's hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
    stop: Arc<watch::Sender<bool>>,
}

impl Hub {
    /// Starts the hub reading the log from its durable end; `queue` is each
    /// socket's outbound bound, in messages.
    pub fn start(store: Store, queue: usize) -> Hub {
        let inner = Arc::new(HubInner {
            next_id: AtomicU64::new(1),
            queue: queue.max(1),
            by_user: DashMap::new(),
            by_topic: DashMap::new(),
            metrics: Metrics {
                pushed: metrics::counter!("agora_ws_messages_pushed_total"),
                dropped: metrics::counter!("agora_ws_slow_clients_dropped_total"),
                open: metrics::gauge!("agora_ws_open_sockets"),
                lag: metrics::histogram!("agora_ws_push_lag_seconds"),
            },
        });
        let (stop, stopping) = watch::channel(false);
        let from = *store.event_watch().borrow();
        let consumer = EventConsumer::at(store, "live", from);
        tokio::spawn(fan_out(inner.clone(), consumer, stopping));
        Hub {
            inner,
            stop: Arc::new(stop),
        }
    }

    /// Registers a socket of `user_id` opened with the session stored
    /// under `session_key`; returns it and its outbound queue.
    pub fn connect(
        &self,
        user_id: &str,
        session_key: [u8; 32],
    ) -> (Arc<Connection>, mpsc::Receiver<Arc<str>>) {
        let (outbound, queue) = mpsc::channel(self.inner.queue);
        let connection = Arc::new(Connection {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            user_id: user_id.to_owned(),
            session_key,
            session_ended: AtomicBool::new(false),
            end_session: Notify::new(),
            outbound,
            topics: Mutex::new(HashSet::new()),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        self.inner
            .by_user
            .entry(user_id.to_owned())
            .or_default()
            .push(connection.clone());
        self.inner.metrics.open.increment(1.0);
        (connection, queue)
    }

    /// Forgets a closed socket everywhere.
    pub fn disconnect(&self, connection: &Connection) {
        remove(&self.inner.by_user, &connection.user_id, connection.id);
        let topics: Vec<String> = lock(&connection.topics).drain().collect();
        for topic in topics {
            remove(&self.inner.by_topic, &topic, connection.id);
        }
        self.inner.metrics.open.decrement(1.0);
    }

    /// Tells this node's sockets of `user_id` opened with the session under
    /// `session_key` that it was signed out, so they close at once rather
    /// than at their next periodic session check. The user's sockets of
    /// other sessions stay open.
    pub fn end_session(&self, user_id: &str, session_key: &[u8; 32]) {
        let Some(sockets) = self.inner.by_user.get(user_id).map(|e| e.value().clone()) else {
            return;
        };
        for connection in sockets.iter().filter(|c| c.session_key == *session_key) {
            connection.session_ended.store(true, Ordering::Release);
            connection.end_session.notify_waiters();
        }
    }

    /// Follows `topic`; false if the socket already follows [`MAX_TOPICS`].
    pub fn subscribe(&self, connection: &Arc<Connection>, topic: &str) -> bool {
        {
            let mut topics = lock(&connection.topics);
            if topics.contains(topic) {
                return true;
            }
            if topics.len() >= MAX_TOPICS {
                return false;
            }
            topics.insert(topic.to_owned());
        }
        self.inner
            .by_topic
            .entry(topic.to_owned())
            .or_default()
            .push(connection.clone());
        true
    }

    /// Stops following `topic`.
    pub fn unsubscribe(&self, connection: &Connection, topic: &str) {
        if lock(&connection.topics).remove(topic) {
            remove(&self.inner.by_topic, topic, connection.id);
        }
    }

    /// Pushes `text` to every open socket of `user_id` (on this node).
    pub fn publish_to_user(&self, user_id: &str, text: String) {
        self.inner.publish(&self.inner.by_user, user_id, text);
    }

    /// Open sockets on this node.
    pub fn open_sockets(&self) -> usize {
        self.inner.by_user.iter().map(|e| e.value().len()).sum()
    }

    /// Stops reading the log; open sockets close (1001).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Resolves once the hub is stopping.
    pub async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn remove(map: &DashMap<String, Vec<Arc<Connection>>>, key: &str, id: u64) {
    if let dashmap::Entry::Occupied(mut entry) = map.entry(key.to_owned()) {
        entry.get_mut().retain(|c| c.id != id);
        if entry.get().is_empty() {
            entry.remove();
        }
    }
}

/// The frame for an event, and who hears it.
enum Audience {
    User(String),
    Topic(String),
}

fn frame(event: &Event) -> Option<(Audience, String)> {
    match &event.body {
        EventBody::OrderUpdated {
            order_id,
            user_id,
            status,
            payment_status,
        } => Some((
            Audience::User(user_id.clone()),
            json!({
                "type": "order.updated",
                "orderId": order_id,
                "status": status.as_str(),
                "paymentStatus": payment_status.as_str(),
                "at": event.at,
            })
            .to_string(),
        )),
        EventBody::StockChanged {
            item_id,
            variant_id,
            available,
            ..
        } => Some((
            Audience::Topic(format!("item:{item_id}")),
            json!({
                "type": "stock.changed",
                "itemId": item_id,
                "variantId": variant_id,
                "available": available,
            })
            .to_string(),
        )),
        _ => None,
    }
}

async fn fan_out(hub: Arc<HubInner>, mut consumer: EventConsumer, mut stop: watch::Receiver<bool>) {
    while let Some(events) = consumer.next_or_stop(1024, &mut stop).await {
        for event in &events {
            let Some((audience, text)) = frame(event) else {
                continue;
            };
            match &audience {
                Audience::User(user) => hub.publish(&hub.by_user, user, text),
                Audience::Topic(topic) => hub.publish(&hub.by_topic, topic, text),
            }
            let lag_ms = crate::domain::Timestamp::now().0 - event.at.0;
            hub.metrics.lag.record(lag_ms.max(0) as f64 / 1000.0);
        }
    }
}

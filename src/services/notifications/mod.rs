//! The notifications inbox: order updates written as notifications by a
//! consumer of the event log, never on the checkout path.
//!
//! The notifier reads the log after its durable offset and, for each batch,
//! writes the new notifications and its offset in one atomic write: every
//! update becomes exactly one notification, across crashes. A notification
//! is stored under its event's sequence number, so a replay finds it already
//! there (and never resets `read`); clients see that number only enciphered
//! and sealed (submodule `id`). Once written, it is also pushed to the
//! buyer's open sockets as a `notification` frame.
//!
//! Other channels (e-mail, SMS) plug in as an [`OutboundNotifier`], fed by
//! the same events through a consumer of its own (at least once); the
//! built-in one writes to the log ([`outbound`]).

mod outbound;
mod public_id;

pub use outbound::{start_outbound, LoggingNotifier, OutboundNotifier};

use serde_json::json;
use tokio::sync::watch;

use crate::domain::event::{Event, EventBody};
use crate::domain::order::{OrderStatus, PaymentStatus};
use crate::domain::placement::Ownership;
use crate::domain::Timestamp;
use crate::services::live::Hub;
use crate::storage::event_log::EventConsumer;
use crate::storage::{Record, StorageError, Store, TreeName};

/// The consumer's name (its offset's key).
const CONSUMER: &str = "notifications";
/// Most entries read for one page (others' entries never interleave: the
/// key starts with the user).
const MAX_PAGE: usize = 100;

/// One entry of a user's inbox.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Notification {
    /// The event's sequence number (the storage key; clients see it only
    /// as [`Notification::public_id`]).
    pub seq: u64,
    /// `order.updated`.
    pub kind: String,
    /// The order.
    pub order_id: String,
    /// Its new status.
    pub status: OrderStatus,
    /// For people.
    pub message: String,
    /// When the change happened.
    pub created_at: Timestamp,
    /// Marked read by its user.
    pub read: bool,
}

impl Record for Notification {
    const KIND: &'static str = "notification";
    const VERSION: u8 = 1;
}

impl Notification {
    /// The notification an event makes, with its user (order updates only).
    pub fn from_event(event: &Event) -> Option<(String, Notification)> {
        let EventBody::OrderUpdated {
            order_id,
            user_id,
            status,
            payment_status,
        } = &event.body
        else {
            return None;
        };
        Some((
            user_id.clone(),
            Notification {
                seq: event.seq,
                kind: "order.updated".into(),
                order_id: order_id.clone(),
                status: *status,
                message: message(order_id, *status, *payment_status),
                created_at: event.at,
                read: false,
            },
        ))
    }

    /// The id clients see: opaque, unguessable, and the same every time.
    pub fn public_id(&self, sealer: &crate::domain::sealed::Sealer) -> String {
        public_id::seal_id(sealer, self.seq)
    }

    /// The sequence number as 16 hex digits: for logs and for an outbound
    /// provider's deduplication, never sent to clients (it counts orders).
    pub fn internal_id(&self) -> String {
        format!("{:016x}", self.seq)
    }
}

fn key(user_id: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(user_id.len() + 9);
    key.extend_from_slice(user_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&(u64::MAX - seq).to_be_bytes());
    key
}

fn message(order_id: &str, status: OrderStatus, payment: PaymentStatus) -> String {
    let short: String = order_id
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let what = match status {
        OrderStatus::Created => "was placed".to_owned(),
        OrderStatus::PaymentPending => "is waiting for payment".to_owned(),
        OrderStatus::Confirmed => "is confirmed".to_owned(),
        OrderStatus::Shipped => "has shipped".to_owned(),
        OrderStatus::Delivered => "was delivered".to_owned(),
        OrderStatus::PaymentFailed => "could not be paid".to_owned(),
        OrderStatus::Expired => "expired before payment arrived".to_owned(),
        OrderStatus::Cancelled if payment == PaymentStatus::Refunded => {
            "was cancelled and refunded".to_owned()
        }
        OrderStatus::Cancelled => "was cancelled".to_owned(),
    };
    format!("Your order …{short} {what}.")
}

/// Why an inbox request failed.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// The cursor was not issued by this server.
    #[error("invalid cursor")]
    InvalidCursor,
    /// No such notification of this user.
    #[error("notification not found")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The inbox service. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    store: Store,
    stop: std::sync::Arc<watch::Sender<bool>>,
}

impl Inbox {
    /// Starts the notifier (from its durable offset) and returns the inbox.
    /// Only the buyers `ownership` gives this node get notifications here:
    /// in a cluster every node sees every order event, and each buyer's
    /// notification is written once, by the buyer's node.
    pub async fn start(
        store: Store,
        hub: Hub,
        ownership: Ownership,
    ) -> Result<Inbox, StorageError> {
        let consumer = EventConsumer::open(store.clone(), CONSUMER).await?;
        let (stop, stopping) = watch::channel(false);
        start_outbound(
            store.clone(),
            std::sync::Arc::new(LoggingNotifier),
            stopping.clone(),
        );
        tokio::spawn(notify(store.clone(), consumer, hub, ownership, stopping));
        Ok(Inbox {
            store,
            stop: std::sync::Arc::new(stop),
        })
    }

    /// The id clients see for `notification` (sealed with this node's key).
    pub fn public_id(&self, notification: &Notification) -> String {
        notification.public_id(self.store.sealer())
    }

    /// Stops the notifier (what it wrote is durable; the rest is re-read).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// A page of the user's inbox, newest first.
    pub async fn list(
        &self,
        user_id: &str,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<(Vec<Notification>, Option<String>), InboxError> {
        let sealer = self.store.sealer().clone();
        let after = match cursor {
            Some(cursor) => {
                Some(public_id::open_cursor(&sealer, cursor).ok_or(InboxError::InvalidCursor)?)
            }
            None => None,
        };
        let size = size.min(MAX_PAGE);
        let user = user_id.to_owned();
        let (items, more) = self
            .store
            .read(move |trees| {
                let mut prefix = user.as_bytes().to_vec();
                prefix.push(0);
                let start = match after {
                    // Strictly after (older than) the cursor's entry.
                    Some(seq) => key(&user, seq.saturating_sub(1)),
                    None => prefix.clone(),
                };
                let mut items = Vec::new();
                let mut more = false;
                for entry in trees.tree(TreeName::Notifications).range(start..) {
                    let (k, value) = entry?;
                    if !k.starts_with(&prefix) {
                        break;
                    }
                    if items.len() == size {
                        more = true;
                        break;
                    }
                    items.push(crate::storage::codec::decode::<Notification>(&value)?);
                }
                Ok((items, more))
            })
            .await?;
        let next = more
            .then(|| items.last().map(|n| public_id::seal_cursor(&sealer, n.seq)))
            .flatten();
        Ok((items, next))
    }

    /// Marks one of the user's notifications read (idempotent).
    pub async fn mark_read(&self, user_id: &str, id: &str) -> Result<(), InboxError> {
        // A forged, edited or pre-sealing (hex) id names nothing.
        let seq = public_id::open_id(self.store.sealer(), id).ok_or(InboxError::NotFound)?;
        let key = key(user_id, seq);
        self.store
            .write(move |tx| {
                let Some(mut notification) =
                    tx.get::<Notification>(TreeName::Notifications, &key)?
                else {
                    return Err(InboxError::NotFound);
                };
                if !notification.read {
                    notification.read = true;
                    tx.put(TreeName::Notifications, key.clone(), &notification)?;
                }
                Ok(())
            })
            .await
    }
}

async fn notify(
    store: Store,
    mut consumer: EventConsumer,
    hub: Hub,
    ownership: Ownership,
    mut stop: watch::Receiver<bool>,
) {
    while let Some(events) = consumer.next_or_stop(512, &mut stop).await {
        let last = events.last().map_or(0, |e| e.seq);
        let new: Vec<(String, Notification)> = events
            .iter()
            .filter_map(Notification::from_event)
            .filter(|(user, _)| ownership.owns(user))
            .collect();
        let written = new.clone();
        let saved = store
            .write(move |tx| {
                let mut fresh = Vec::new();
                for (user, notification) in &written {
                    let key = key(user, notification.seq);
                    if !tx.contains(TreeName::Notifications, &key)? {
                        tx.put(TreeName::Notifications, key, notification)?;
                        fresh.push(notification.seq);
                    }
                }
                tx.put_raw(
                    TreeName::Offsets,
                    CONSUMER.as_bytes().to_vec(),
                    last.to_be_bytes().to_vec(),
                );
                Ok::<_, StorageError>(fresh)
            })
            .await;
        match saved {
            Ok(fresh) => {
                for (user, notification) in new.iter().filter(|(_, n)| fresh.contains(&n.seq)) {
                    let frame = json!({
                        "type": "notification",
                        "id": notification.public_id(store.sealer()),
                        "message": notification.message,
                        "orderId": notification.order_id,
                    });
                    hub.publish_to_user(user, frame.to_string());
                }
            }
            Err(e) => {
                // The batch is read again from the durable offset.
                tracing::warn!(error = %e, "notifications not written; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                match EventConsumer::open(store.clone(), CONSUMER).await {
                    Ok(fresh) => consumer = fresh,
                    Err(e) => tracing::warn!(error = %e, "notifier cannot reopen its offset"),
                }
            }
        }
    }
}

//! Channels beyond the inbox and the sockets (e-mail, SMS, push): the
//! interface a provider implements, the logging one, and the consumer that
//! feeds them.

use tokio::sync::watch;

use super::Notification;
use crate::storage::event_log::EventConsumer;
use crate::storage::Store;

/// Where notifications go besides the inbox and the sockets: e-mail, SMS,
/// push. A provider implements this; the node feeds it from the event log.
pub trait OutboundNotifier: Send + Sync + 'static {
    /// For logs and metrics.
    fn name(&self) -> &'static str;
    /// Delivers one notification to its user. Called at least once per
    /// notification (again after a crash before the offset moved), so a
    /// provider deduplicates by `notification.internal_id()`.
    fn send<'a>(
        &'a self,
        user_id: &'a str,
        notification: &'a Notification,
    ) -> futures::future::BoxFuture<'a, Result<(), String>>;
}

/// The built-in channel: writes each notification to the log.
pub struct LoggingNotifier;

impl OutboundNotifier for LoggingNotifier {
    fn name(&self) -> &'static str {
        "log"
    }

    fn send<'a>(
        &'a self,
        user_id: &'a str,
        notification: &'a Notification,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            tracing::info!(
                channel = "log",
                user = user_id,
                id = %notification.internal_id(),
                order = %notification.order_id,
                message = %notification.message,
                "outbound notification"
            );
            Ok(())
        })
    }
}

/// Feeds `notifier` from the event log with its own durable offset: every
/// order update is sent at least once, after it is durable, and never on the
/// checkout path. A failed send is retried (with a pause) before the offset
/// moves past it.
pub fn start_outbound(
    store: Store,
    notifier: std::sync::Arc<dyn OutboundNotifier>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let consumer = format!("outbound-{}", notifier.name());
        let mut consumer = match EventConsumer::open(store, &consumer).await {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::error!(error = %e, "outbound notifier cannot open its offset");
                return;
            }
        };
        while let Some(events) = consumer.next_or_stop(256, &mut stop).await {
            for (user_id, notification) in events.iter().filter_map(Notification::from_event) {
                while let Err(e) = notifier.send(&user_id, &notification).await {
                    tracing::warn!(channel = notifier.name(), error = %e, "outbound notification failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
            if let Some(last) = events.last() {
                if let Err(e) = consumer.commit(last.seq).await {
                    tracing::warn!(error = %e, "outbound notifier offset not saved");
                }
            }
        }
    });
}

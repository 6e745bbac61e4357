//! The node's work outside requests: the recovery that must finish before
//! the first request, and the timers that run until the node stops
//! (stalled checkouts, idempotency keys, order archival, the event log's
//! archive, expired sessions).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{NodeActors, NodeServices, ReadModels};
use crate::actors::checkout::CheckoutCoordinators;
use crate::config::Settings;
use crate::domain::Timestamp;
use crate::search::Search;
use crate::services::account::AccountService;
use crate::services::catalog::index_items_by_seller;
use crate::services::checkout::CheckoutService;
use crate::services::order::OrderService;
use crate::services::recommend::Recommender;
use crate::storage::archiver::{archive_pass, ArchivePolicy};
use crate::storage::Store;

/// Interrupted checkouts are finished or undone before the first request,
/// so no buyer sees a half-made order or a held cart; orders stored by a
/// release without the sellers' indexes are indexed (once), so
/// `/seller/orders` and `/seller/items` list them from the start.
pub(super) async fn recover_before_first_request(store: &Store, actors: &NodeActors) {
    match actors.checkouts.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(checkouts = n, "interrupted checkouts resumed"),
        Err(e) => tracing::warn!(error = %e, "checkout recovery failed"),
    }
    match actors.orders.index_sellers().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(orders = n, "orders indexed by seller"),
        Err(e) => {
            tracing::warn!(error = %e, "indexing orders by seller failed; retried at the next start")
        }
    }
    match index_items_by_seller(store).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(items = n, "items indexed by seller"),
        Err(e) => {
            tracing::warn!(error = %e, "indexing items by seller failed; retried at the next start")
        }
    }
}

/// The node's background tasks, aborted together at stop.
pub(super) struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Spawns the deadline recovery and the timers.
    pub(super) fn start(
        settings: &Arc<Settings>,
        store: &Store,
        actors: &NodeActors,
        services: &NodeServices,
        read_models: &ReadModels,
    ) -> Background {
        let upkeep = Upkeep {
            settings: settings.clone(),
            checkouts: actors.checkouts.clone(),
            checkout: services.checkout.clone(),
            orders: services.orders.clone(),
        };
        let archive = LogArchive {
            settings: settings.clone(),
            store: store.clone(),
            search: read_models.search.clone(),
            recommender: read_models.recommender.clone(),
        };
        let tasks = vec![
            tokio::spawn(sweep_sessions(services.accounts.clone())),
            tokio::spawn(recover_deadlines(actors.clone())),
            tokio::spawn(upkeep.run()),
            tokio::spawn(archive.run()),
        ];
        Background { tasks }
    }

    /// Stops every task where it is (each resumes safely at the next start).
    pub(super) fn abort(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Deadlines fire even for orders and SKUs nobody touches after a restart.
async fn recover_deadlines(actors: NodeActors) {
    match actors.orders.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(orders = n, "resumed unfinished orders"),
        Err(e) => tracing::warn!(error = %e, "order recovery failed"),
    }
    match actors.inventory.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(skus = n, "re-armed reservation deadlines"),
        Err(e) => tracing::warn!(error = %e, "reservation recovery failed"),
    }
}

/// What the minute timer looks after.
struct Upkeep {
    settings: Arc<Settings>,
    checkouts: CheckoutCoordinators,
    checkout: CheckoutService,
    orders: OrderService,
}

impl Upkeep {
    /// Checkouts whose coordinator stopped mid-way (a participant kept
    /// failing) are resumed every `checkout_sweep_secs`; expired
    /// idempotency keys are pruned hourly; old final orders move to the
    /// archive daily.
    async fn run(self) {
        let mut minute = tokio::time::interval(Duration::from_secs(60));
        minute.tick().await;
        let mut sweep =
            tokio::time::interval(Duration::from_secs(self.settings.checkout_sweep_secs));
        sweep.tick().await;
        let mut minutes = 0u64;
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    self.sweep_checkouts().await;
                    continue;
                }
                _ = minute.tick() => minutes += 1,
            }
            if minutes % 60 == 0 {
                self.prune_keys().await;
            }
            if minutes % (24 * 60) == 1 {
                self.archive_orders().await;
            }
        }
    }

    async fn sweep_checkouts(&self) {
        match self.checkouts.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(checkouts = n, "stalled checkouts resumed"),
            Err(e) => tracing::warn!(error = %e, "stalled checkout sweep failed"),
        }
    }

    async fn prune_keys(&self) {
        match self.checkout.prune_expired_keys().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "expired idempotency keys pruned"),
            Err(e) => tracing::warn!(error = %e, "idempotency key sweep failed"),
        }
    }

    async fn archive_orders(&self) {
        let days = self.settings.archive_after_days;
        let cutoff =
            Timestamp(Timestamp::now().0 - i64::try_from(days * 86_400_000).unwrap_or(i64::MAX));
        match self.orders.archive_before(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "old orders archived"),
            Err(e) => tracing::warn!(error = %e, "order archival failed"),
        }
    }
}

/// What the event log's archive timer reads.
struct LogArchive {
    settings: Arc<Settings>,
    store: Store,
    search: Search,
    recommender: Recommender,
}

impl LogArchive {
    /// Moves the event log's handled events to the archive every
    /// `event_archive_secs` (never when 0). The search index and the
    /// recommender keep their offsets outside the offsets tree, so theirs
    /// are passed as holds; a paused recommender holds the archive where
    /// it stopped.
    async fn run(self) {
        let every = self.settings.event_archive_secs;
        if every == 0 {
            return;
        }
        let policy = ArchivePolicy {
            keep: self.settings.event_log_keep,
            min_events: self.settings.event_archive_min_events,
        };
        let mut tick = tokio::time::interval(Duration::from_secs(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.pass(policy).await;
        }
    }

    async fn pass(&self, policy: ArchivePolicy) {
        let holds = [
            ("search", self.search.indexed()),
            ("recommender", self.recommender.position()),
        ];
        // Past this many live events, a consumer is holding the log back.
        let usual = policy.keep.saturating_add(policy.min_events);
        match archive_pass(&self.store, &holds, policy).await {
            Ok(report) if report.archived > 0 => tracing::info!(
                archived = report.archived,
                through = report.archived_through,
                live = report.live,
                "event log archived"
            ),
            Ok(report) if report.live > usual.saturating_mul(2) => tracing::warn!(
                held_by = report.held_by.as_deref().unwrap_or("-"),
                at = report.floor,
                live = report.live,
                "event log not archived: a consumer holds it back"
            ),
            Ok(report) => tracing::debug!(
                floor = report.floor,
                live = report.live,
                "event log: nothing to archive"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "event log archival failed; retried at the next pass")
            }
        }
    }
}

/// Hourly removal of expired sessions.
async fn sweep_sessions(accounts: AccountService) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match accounts.remove_expired_sessions().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "session sweep failed"),
        }
    }
}

//! Building and running a node: storage, services, router, listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::actors::cart::CartActors;
use crate::actors::checkout::risk::Risk;
use crate::actors::checkout::{CheckoutCoordinators, CoordinatorDeps};
use crate::actors::inventory::InventoryActors;
use crate::actors::order::OrderActors;
use crate::actors::runtime::RegionSettings;
use crate::config::Settings;
use crate::domain::Timestamp;
use crate::http::{self, AppState, Services};
use crate::payments::{Payments, SimulatedGateway};
use crate::search::Search;
use crate::services::account::AccountService;
use crate::services::cart::CartService;
use crate::services::catalog::CatalogService;
use crate::services::checkout::idempotency::IdempotencyKeys;
use crate::services::checkout::CheckoutService;
use crate::services::live::Hub;
use crate::services::notifications::Notifications;
use crate::services::order::OrderService;
use crate::services::recommend::Recommender;
use crate::services::status::NodeStatus;
use crate::services::wishlist::WishlistService;
use crate::storage::{Store, StoreOptions};

/// Gateway attempts after the first, for transient errors.
const PAYMENT_RETRIES: u32 = 3;
/// Wait before the first retry (doubling after each).
const PAYMENT_BACKOFF: Duration = Duration::from_millis(50);

/// A node, built and bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    /// The operators' listener (`/metrics`), when `admin_http` is set.
    admin: Option<TcpListener>,
    state: AppState,
    /// Flushed at stop; the handlers reach it only through services.
    store: Store,
    /// Recovered at start, stopped at stop.
    inventory: InventoryActors,
}

impl Application {
    /// Opens storage under `settings.data_dir`, builds the services and binds
    /// the HTTP listener (port 0 picks a free port; see [`Self::local_addr`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // The recorder first: components resolve metric handles when they
        // start, and a handle taken before it exists records nowhere.
        let metrics = crate::telemetry::metrics_handle();
        let settings = Arc::new(settings);
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
        // Orders, addresses and keys live here: the node's user alone may
        // enter (a folder made before this rule existed is closed too).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&settings.data_dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", settings.data_dir.display()))?;
        }
        let options = StoreOptions {
            cache_bytes: settings.storage_cache_mb * 1024 * 1024,
            read_cache_bytes: settings.read_cache_mb * 1024 * 1024,
            ..Default::default()
        };
        let dir = settings.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&dir, options))
            .await?
            .with_context(|| {
                format!(
                    "opening storage in {} (is another node using it?)",
                    settings.data_dir.display()
                )
            })?;
        let accounts = AccountService::new(store.clone(), settings.session_ttl_secs)
            .await?
            .with_throttle(crate::services::account::ThrottleRules {
                free_failures: settings.sign_in_free_failures,
                first_wait: Duration::from_millis(settings.sign_in_first_wait_ms),
                longest_wait: Duration::from_secs(settings.sign_in_longest_wait_secs),
            });
        let regions = RegionSettings {
            idle: Duration::from_secs(settings.entity_idle_secs),
            call_timeout: Duration::from_millis(settings.actor_call_timeout_ms),
            max_in_flight: usize::try_from(settings.actor_max_in_flight).unwrap_or(usize::MAX),
        };
        let inventory = InventoryActors::start(store.clone(), regions.clone()).await?;
        let catalog = CatalogService::new(store.clone(), inventory.clone());
        let cart_ttl = Duration::from_secs(settings.cart_ttl_days * 24 * 3600);
        let cart_actors = CartActors::start(store.clone(), cart_ttl, regions.clone()).await?;
        let carts = CartService::new(
            store.clone(),
            cart_actors,
            catalog.clone(),
            settings.pricing.clone(),
            cart_ttl.as_secs(),
        );
        let gateway = Arc::new(SimulatedGateway::new(
            store.clone(),
            Duration::from_millis(settings.payment_latency_ms),
        ));
        let payments = Payments::new(
            gateway,
            Duration::from_millis(settings.payment_timeout_ms),
            PAYMENT_RETRIES,
            PAYMENT_BACKOFF,
        );
        let order_actors = OrderActors::start(
            store.clone(),
            inventory.clone(),
            carts.actors().clone(),
            payments.clone(),
            regions.clone(),
        )
        .await?;
        let checkouts = CheckoutCoordinators::start(
            CoordinatorDeps {
                store: store.clone(),
                carts: carts.clone(),
                inventory: inventory.clone(),
                orders: order_actors.clone(),
                payments,
                risk: Risk::new(settings.risk.clone(), store.clone()),
                payment_window: Duration::from_secs(settings.payment_ttl_secs),
            },
            regions.clone(),
        )
        .await?;
        let checkout = CheckoutService::new(
            checkouts,
            carts.clone(),
            order_actors.clone(),
            IdempotencyKeys::new(store.clone()),
            Duration::from_millis(settings.checkout_wait_ms),
        );
        let search = Search::start(
            &settings.data_dir,
            store.clone(),
            Duration::from_millis(settings.search_commit_ms),
            settings.search_cache_entries as usize,
        )
        .await
        .context("opening the search index")?;
        let hub = Hub::start(store.clone(), settings.ws_queue_messages);
        let notifications = Notifications::start(store.clone(), hub.clone()).await?;
        let recommender =
            Recommender::start(store.clone(), search.clone(), settings.recommender_paused).await?;
        let state = AppState::new(Services {
            settings: settings.clone(),
            status: NodeStatus::new(store.clone()),
            accounts,
            catalog,
            carts,
            checkout,
            orders: OrderService::new(store.clone(), order_actors),
            search,
            hub: hub.clone(),
            notifications,
            wishlists: WishlistService::new(store.clone()),
            recommender,
            media: crate::services::media::MediaService::new(&settings.data_dir),
            rate_limits: None,
            metrics,
        });
        let listener =
            bind(settings.http).with_context(|| format!("binding HTTP to {}", settings.http))?;
        let admin = match settings.admin_http {
            Some(address) => {
                Some(bind(address).with_context(|| format!("binding admin HTTP to {address}"))?)
            }
            None => None,
        };
        Ok(Application {
            listener,
            admin,
            state,
            store,
            inventory,
        })
    }

    /// The address the HTTP listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.settings.http)
    }

    /// The address the admin listener is bound to, when `admin_http` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        let admin = self.admin.as_ref()?;
        admin.local_addr().ok().or(self.state.settings.admin_http)
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish (up to `shutdown_grace_secs`), and flushes storage.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            admin,
            state,
            store,
            inventory,
        } = self;
        let sweeper = tokio::spawn(sweep_sessions(state.accounts.clone()));
        let carts = state.carts.clone();
        let checkouts = state.checkout.coordinators().clone();
        let orders = state.orders.actors().clone();
        let state_search = state.search.clone();
        let state_hub = state.hub.clone();
        let state_notifications = state.notifications.clone();
        let state_recommender = state.recommender.clone();
        // Interrupted checkouts are finished or undone before the first
        // request, so no buyer sees a half-made order or a held cart.
        match checkouts.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(checkouts = n, "interrupted checkouts resumed"),
            Err(e) => tracing::warn!(error = %e, "checkout recovery failed"),
        }
        // Orders stored by a release without the sellers' index are
        // indexed before the first request (once), so `/seller/orders`
        // lists them from the start.
        match orders.index_sellers().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "orders indexed by seller"),
            Err(e) => {
                tracing::warn!(error = %e, "indexing orders by seller failed; retried at the next start")
            }
        }
        // Deadlines fire even for orders and SKUs nobody touches after a
        // restart.
        let recovery = tokio::spawn({
            let (inventory, orders) = (inventory.clone(), orders.clone());
            async move {
                match orders.recover().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(orders = n, "resumed unfinished orders"),
                    Err(e) => tracing::warn!(error = %e, "order recovery failed"),
                }
                match inventory.recover().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(skus = n, "re-armed reservation deadlines"),
                    Err(e) => tracing::warn!(error = %e, "reservation recovery failed"),
                }
            }
        });
        let housekeeping = tokio::spawn(housekeeping(state.clone()));
        let log_archiver = tokio::spawn(archive_event_log(state.clone(), store.clone()));
        serve(listener, admin, state, shutdown).await;
        sweeper.abort();
        recovery.abort();
        state_hub.stop();
        state_notifications.stop();
        state_recommender.stop();
        housekeeping.abort();
        // A pass stopped half-way is finished by the next start's first.
        log_archiver.abort();
        // Actors answer only after their changes are durable, so stopping
        // them loses nothing acknowledged (a checkout stopped mid-way is
        // resumed from its log at the next start); then the writer drains
        // and flushes.
        checkouts.stop().await;
        orders.stop().await;
        state_search.stop().await;
        carts.actors().stop().await;
        inventory.stop().await;
        store.shutdown().await;
        tracing::info!("storage flushed; stopped");
        Ok(())
    }
}

/// Serves the public listener (and the admin one, if any) until `shutdown`
/// resolves; then stops accepting and lets open connections finish, for at
/// most `shutdown_grace_secs`.
async fn serve(
    listener: TcpListener,
    admin: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let grace = Duration::from_secs(state.settings.shutdown_grace_secs);
    let header_timeout = Duration::from_secs(state.settings.header_read_timeout_secs);
    let admin_router = admin.as_ref().map(|_| http::admin_router(state.clone()));
    let router = http::router(state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    let public = http::server::serve(listener, router, header_timeout, stop_rx.clone());
    let operators = {
        let stop_rx = stop_rx.clone();
        async move {
            if let (Some(listener), Some(router)) = (admin, admin_router) {
                http::server::serve(listener, router, header_timeout, stop_rx).await;
            }
        }
    };
    let mut stopping = stop_rx;
    let deadline = async move {
        if stopping.wait_for(|stop| *stop).await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(public, operators) } => {}
        () = deadline => tracing::warn!("in-flight requests still running after the grace period; stopping anyway"),
    }
}

/// Kernel send buffer of every accepted connection (they inherit it from
/// the listener). A fixed size instead of Linux's autotuning (up to 4 MiB a
/// socket): a websocket client that stops reading then backs up into its
/// bounded queue after ~this much, and is dropped, instead of parking
/// megabytes in the kernel; it also bounds kernel memory per idle socket.
const SEND_BUFFER_BYTES: u32 = 128 * 1024;

fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(SEND_BUFFER_BYTES)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Background upkeep: checkouts whose coordinator stopped mid-way (a
/// participant kept failing) are resumed every minute; expired idempotency
/// keys are pruned hourly; old final orders move to the archive daily.
async fn housekeeping(state: AppState) {
    let mut minute = tokio::time::interval(Duration::from_secs(60));
    minute.tick().await;
    let mut minutes = 0u64;
    loop {
        minute.tick().await;
        minutes += 1;
        match state.checkout.coordinators().recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(checkouts = n, "stalled checkouts resumed"),
            Err(e) => tracing::warn!(error = %e, "stalled checkout sweep failed"),
        }
        if minutes % 60 == 0 {
            match state.checkout.prune_expired_keys().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(keys = n, "expired idempotency keys pruned"),
                Err(e) => tracing::warn!(error = %e, "idempotency key sweep failed"),
            }
        }
        if minutes % (24 * 60) == 1 {
            let days = state.settings.archive_after_days;
            let cutoff = Timestamp(
                Timestamp::now().0 - i64::try_from(days * 86_400_000).unwrap_or(i64::MAX),
            );
            match state.orders.archive_before(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(orders = n, "old orders archived"),
                Err(e) => tracing::warn!(error = %e, "order archival failed"),
            }
        }
    }
}

/// Moves the event log's handled events to the archive every
/// `event_archive_secs` (never when 0). The search index and the
/// recommender keep their offsets outside the offsets tree, so theirs are
/// passed as holds; a paused recommender holds the archive where it
/// stopped.
async fn archive_event_log(state: AppState, store: Store) {
    let every = state.settings.event_archive_secs;
    if every == 0 {
        return;
    }
    let policy = crate::storage::archiver::ArchivePolicy {
        keep: state.settings.event_log_keep,
        min_events: state.settings.event_archive_min_events,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let holds = [
            ("search", state.search.indexed()),
            ("recommender", state.recommender.position()),
        ];
        // Past this many live events, a consumer is holding the log back.
        let usual = policy.keep.saturating_add(policy.min_events);
        match crate::storage::archiver::archive_pass(&store, &holds, policy).await {
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

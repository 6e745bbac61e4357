//! A node: the whole service graph, started in dependency order by
//! [`Node::start`] and stopped in the reverse order by [`Node::stop`].
//!
//! `main.rs`, the tests and the benches all build their node here, so the
//! graph is wired once. Files:
//!
//! - `mod.rs`: [`Node`], its parts and the start and stop sequences;
//! - `wiring.rs`: one function per start stage (storage, accounts, payments,
//!   the coordinators' dependencies, the services, the read models, the HTTP
//!   state);
//! - `background.rs`: the recovery that runs before the first request, and
//!   the timers (stalled checkouts, idempotency keys, archival, sessions);
//! - `serve.rs`: the listeners, serving a started node until shutdown, and
//!   the shutdown signal;
//! - `offline.rs`: the maintenance commands run on a stopped node's storage
//!   (reindex, rebuild the recommendations, export the event log, its size).

mod background;
pub mod offline;
mod serve;
mod wiring;

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::actors::cart::CartActors;
use crate::actors::checkout::CheckoutCoordinators;
use crate::actors::inventory::InventoryActors;
use crate::actors::order::OrderActors;
use crate::cluster::{Cluster, Consumer, Relay, Responder};
use crate::config::Settings;
use crate::http::AppState;
use crate::payments::Payments;
use crate::search::Search;
use crate::services::account::AccountService;
use crate::services::cart::CartService;
use crate::services::catalog::CatalogService;
use crate::services::checkout::CheckoutService;
use crate::services::live::Hub;
use crate::services::media::MediaService;
use crate::services::notifications::Inbox;
use crate::services::order::OrderService;
use crate::services::recommend::Recommender;
use crate::services::wishlist::WishlistService;
use crate::storage::Store;

pub use serve::{shutdown_signal, Listeners};

use background::Background;

/// The actor handles: owners of contested state.
#[derive(Clone)]
pub struct NodeActors {
    /// Stock, one actor per SKU.
    pub inventory: InventoryActors,
    /// Carts, one actor per cart.
    pub carts: CartActors,
    /// Orders, one actor per order.
    pub orders: OrderActors,
    /// Checkouts: one saga coordinator per checkout.
    pub checkouts: CheckoutCoordinators,
}

/// The use-cases the handlers call.
#[derive(Clone)]
pub struct NodeServices {
    /// Accounts and sessions.
    pub accounts: AccountService,
    /// The seller catalog.
    pub catalog: CatalogService,
    /// Carts: pricing and the buyer's changes.
    pub carts: CartService,
    /// Checkout: starts a coordinator and waits for its outcome; keeps
    /// `Idempotency-Key` results.
    pub checkout: CheckoutService,
    /// Orders: the read path and changes.
    pub orders: OrderService,
    /// Wishlists.
    pub wishlists: WishlistService,
    /// Item images.
    pub media: MediaService,
}

/// The read models fed by the event log.
#[derive(Clone)]
pub struct ReadModels {
    /// Catalog search.
    pub search: Search,
    /// Live updates: the websocket hub.
    pub hub: Hub,
    /// The notifications inbox and outbound channels.
    pub notifications: Inbox,
    /// Recommendations.
    pub recommender: Recommender,
}

/// A started node: storage open, every component running, recovery done.
pub struct Node {
    /// The node's settings.
    pub settings: Arc<Settings>,
    /// The node's storage.
    pub store: Store,
    /// Its NATS connection and heartbeat (`None` on a single node).
    pub cluster: Option<Cluster>,
    /// Its event log's relay into the cluster's stream (`None` on a single
    /// node).
    relay: Option<Relay>,
    /// This node answering other nodes' calls for its entities.
    responders: Vec<Responder>,
    /// The other nodes' events, from the stream into this node's replicas
    /// and log (`None` on a single node).
    consumer: Option<Consumer>,
    /// The payment gateway client (timeouts, retries).
    pub payments: Payments,
    /// The actor handles.
    pub actors: NodeActors,
    /// The services.
    pub services: NodeServices,
    /// The log-fed read models.
    pub read_models: ReadModels,
    /// Renders `/metrics`.
    metrics: PrometheusHandle,
    /// Timers and the deadline recovery, aborted at stop.
    background: Background,
}

impl Node {
    /// Opens storage under `settings.data_dir` and starts every component
    /// in dependency order: storage, the cluster (with `[cluster] nats`:
    /// the NATS connection and the heartbeat, announcing `settings.http`,
    /// the relay of the event log into the stream and the consumer of the
    /// other nodes' events),
    /// accounts (in a cluster: on the shared sessions bucket), media (and
    /// the shared media bucket), inventory, carts, payments,
    /// orders, coordinators, services, search, hub, notifications,
    /// recommender. Interrupted checkouts are then finished or undone (and
    /// old orders indexed by seller) before this returns, so the first
    /// request sees no half-made order; the background timers start last.
    pub async fn start(settings: Settings) -> anyhow::Result<Node> {
        // The recorder first: components resolve metric handles when they
        // start, and a handle taken before it exists records nowhere.
        let metrics = crate::telemetry::metrics_handle();
        let settings = Arc::new(settings);
        let store = wiring::open_storage(&settings).await?;
        let cluster = wiring::join_cluster(&settings).await?;
        let relay = cluster
            .as_ref()
            .map(|c| c.start_relay(store.clone(), &settings.node_id));
        let consumer = cluster
            .as_ref()
            .and_then(|c| c.start_consumer(store.clone(), &settings.node_id, &settings.peers()));
        let accounts = wiring::start_accounts(&settings, &store, cluster.as_ref()).await?;
        let media = wiring::media(&settings, cluster.as_ref()).await?;
        let regions = wiring::region_settings(&settings);
        let inventory = InventoryActors::start(store.clone(), regions.clone()).await?;
        let inventory = wiring::with_remote_inventory(inventory, &settings, cluster.as_ref());
        let cart_ttl = wiring::cart_ttl(&settings);
        let carts = CartActors::start(store.clone(), cart_ttl, regions.clone()).await?;
        let payments = wiring::payments(&settings, &store);
        let orders = OrderActors::start(
            store.clone(),
            inventory.clone(),
            carts.clone(),
            payments.clone(),
            regions.clone(),
        )
        .await?;
        let deps =
            wiring::coordinator_deps(&settings, &store, &carts, &inventory, &orders, &payments);
        let checkouts = CheckoutCoordinators::start(deps, regions).await?;
        let actors = NodeActors {
            inventory,
            carts,
            orders,
            checkouts,
        };
        let services = wiring::services(&settings, &store, &actors, accounts, media);
        let services = wiring::reaching_other_nodes(services, &settings, cluster.as_ref());
        let read_models = wiring::start_read_models(&settings, &store).await?;
        let responders = wiring::answer_calls(cluster.as_ref(), &actors, &services).await?;
        wiring::close_revoked_sockets(&services.accounts, &read_models.hub);
        background::recover_before_first_request(&store, &actors).await;
        let background = Background::start(&settings, &store, &actors, &services, &read_models);
        Ok(Node {
            settings,
            store,
            cluster,
            relay,
            responders,
            consumer,
            payments,
            actors,
            services,
            read_models,
            metrics,
            background,
        })
    }

    /// The state the HTTP handlers share, built from this node's parts
    /// (starts the rate limiter's clean-up task, so call it once per
    /// server).
    pub fn http_state(&self) -> AppState {
        wiring::http_state(self)
    }

    /// Stops every component in the reverse of the start order, then
    /// drains the storage writer and flushes. Actors answer only after
    /// their changes are durable, so stopping them loses nothing
    /// acknowledged (a checkout stopped mid-way is resumed from its log at
    /// the next start).
    pub async fn stop(self) {
        let Node {
            store,
            cluster,
            relay,
            responders,
            consumer,
            actors,
            services,
            read_models,
            background,
            ..
        } = self;
        // Other nodes' calls stop first: they get "no responders" now.
        for responder in responders {
            responder.stop().await;
        }
        // A pass stopped half-way is finished by the next start's first.
        background.abort();
        read_models.recommender.stop();
        read_models.notifications.stop();
        read_models.hub.stop();
        read_models.search.stop().await;
        actors.checkouts.stop().await;
        actors.orders.stop().await;
        actors.carts.stop().await;
        actors.inventory.stop().await;
        if let Some(consumer) = consumer {
            consumer.stop().await;
        }
        if let Some(relay) = relay {
            relay.stop().await;
        }
        if let Some(sessions) = services.accounts.shared_sessions() {
            sessions.stop();
        }
        if let Some(cluster) = cluster {
            cluster.stop().await;
        }
        store.shutdown().await;
        tracing::info!("storage flushed; stopped");
    }
}

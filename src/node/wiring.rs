//! The stages of [`Node::start`](super::Node::start), one function each:
//! what each component is built from, read off the settings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::{Node, NodeActors, NodeServices, ReadModels};
use crate::actors::cart::CartActors;
use crate::actors::checkout::risk::Risk;
use crate::actors::checkout::CoordinatorDeps;
use crate::actors::inventory::{InventoryActors, RemoteInventory, REMOTE_KIND};
use crate::actors::order::OrderActors;
use crate::actors::runtime::RegionSettings;
use crate::cluster::{Cluster, Handler, Responder};
use crate::config::Settings;
use crate::http::route::Forwarding;
use crate::http::{AppState, Services};
use crate::payments::{Payments, SimulatedGateway};
use crate::search::{Search, SearchOptions};
use crate::services::account::{AccountService, ThrottleRules};
use crate::services::cart::{self, CartService, GuestCarts};
use crate::services::catalog::CatalogService;
use crate::services::checkout::idempotency::IdempotencyKeys;
use crate::services::checkout::CheckoutService;
use crate::services::live::Hub;
use crate::services::media::MediaService;
use crate::services::notifications::Inbox;
use crate::services::order::{self, ClusterOrders, OrderService};
use crate::services::recommend::Recommender;
use crate::services::status::NodeStatus;
use crate::services::wishlist::WishlistService;
use crate::storage::{Store, StoreOptions};

/// Gateway attempts after the first, for transient errors.
const PAYMENT_RETRIES: u32 = 3;
/// Wait before the first retry (doubling after each).
const PAYMENT_BACKOFF: Duration = Duration::from_millis(50);

/// Creates the data dir (closed to other users) and opens storage in it.
pub(super) async fn open_storage(settings: &Arc<Settings>) -> anyhow::Result<Store> {
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
    // Opening replays sled's log: blocking work, off the reactor.
    let store = tokio::task::spawn_blocking(move || Store::open(&dir, options))
        .await?
        .with_context(|| {
            format!(
                "opening storage in {} (is another node using it?)",
                settings.data_dir.display()
            )
        })?;
    Ok(store)
}

/// With `[cluster] nats`, connects to NATS and starts this node's
/// heartbeat, announcing `settings.http` (the bound address when `serve`
/// starts the node); a single node: nothing, and no NATS.
pub(super) async fn join_cluster(settings: &Settings) -> anyhow::Result<Option<Cluster>> {
    if !settings.cluster.is_clustered() {
        return Ok(None);
    }
    let cluster = Cluster::connect(settings, settings.http)
        .await
        .context("joining the cluster")?;
    Ok(Some(cluster))
}

/// Accounts and sessions, with the sign-in throttle; in a cluster the
/// sessions live in the bucket every node shares.
pub(super) async fn start_accounts(
    settings: &Settings,
    store: &Store,
    cluster: Option<&Cluster>,
) -> anyhow::Result<AccountService> {
    let mut accounts = AccountService::new(store.clone(), settings.session_ttl_secs)
        .await?
        .with_throttle(ThrottleRules {
            free_failures: settings.sign_in_free_failures,
            first_wait: Duration::from_millis(settings.sign_in_first_wait_ms),
            longest_wait: Duration::from_secs(settings.sign_in_longest_wait_secs),
        });
    if let Some(cluster) = cluster {
        let ttl = Duration::from_secs(settings.session_ttl_secs);
        let shared = cluster
            .share_sessions(ttl)
            .await
            .context("opening the shared sessions")?;
        accounts = accounts.with_shared_sessions(shared);
    }
    Ok(accounts)
}

/// Item images: this node's files, and in a cluster the bucket every node
/// shares.
pub(super) async fn media(
    settings: &Settings,
    cluster: Option<&Cluster>,
) -> anyhow::Result<MediaService> {
    let media = MediaService::new(&settings.data_dir);
    let Some(cluster) = cluster else {
        return Ok(media);
    };
    let shared = cluster
        .share_media()
        .await
        .context("opening the shared media")?;
    Ok(media.with_shared(shared))
}

/// In a cluster: a session signed out on another node closes this node's
/// sockets of that session at once (a single node's sign-out does that
/// itself).
pub(super) fn close_revoked_sockets(accounts: &AccountService, hub: &Hub) {
    if let Some(shared) = accounts.shared_sessions() {
        let hub = hub.clone();
        shared.on_revoked(move |user_id, session_key| hub.end_session(user_id, session_key));
    }
}

/// How every actor region passivates, times out and bounds its calls.
pub(super) fn region_settings(settings: &Settings) -> RegionSettings {
    RegionSettings {
        idle: Duration::from_secs(settings.entity_idle_secs),
        call_timeout: Duration::from_millis(settings.actor_call_timeout_ms),
        max_in_flight: usize::try_from(settings.actor_max_in_flight).unwrap_or(usize::MAX),
    }
}

/// How long an untouched cart lives.
pub(super) fn cart_ttl(settings: &Settings) -> Duration {
    Duration::from_secs(settings.cart_ttl_days * 24 * 3600)
}

/// The gateway client: the simulated gateway behind timeouts and retries.
pub(super) fn payments(settings: &Settings, store: &Store) -> Payments {
    let gateway = Arc::new(SimulatedGateway::new(
        store.clone(),
        Duration::from_millis(settings.payment_latency_ms),
    ));
    Payments::new(
        gateway,
        Duration::from_millis(settings.payment_timeout_ms),
        PAYMENT_RETRIES,
        PAYMENT_BACKOFF,
    )
}

/// The cart service over the cart actors and the catalog.
pub(super) fn cart_service(
    settings: &Settings,
    store: &Store,
    carts: &CartActors,
    catalog: &CatalogService,
) -> CartService {
    CartService::new(
        store.clone(),
        carts.clone(),
        catalog.clone(),
        settings.pricing.clone(),
        cart_ttl(settings).as_secs(),
    )
}

/// What a checkout coordinator works with.
pub(super) fn coordinator_deps(
    settings: &Settings,
    store: &Store,
    carts: &CartActors,
    inventory: &InventoryActors,
    orders: &OrderActors,
    payments: &Payments,
) -> CoordinatorDeps {
    CoordinatorDeps {
        store: store.clone(),
        carts: carts.clone(),
        pricing: settings.pricing.clone(),
        inventory: inventory.clone(),
        orders: orders.clone(),
        payments: payments.clone(),
        risk: Risk::new(settings.risk.clone(), store.clone()),
        payment_window: Duration::from_secs(settings.payment_ttl_secs),
    }
}

/// The use-cases over the actors.
pub(super) fn services(
    settings: &Settings,
    store: &Store,
    actors: &NodeActors,
    accounts: AccountService,
    media: MediaService,
) -> NodeServices {
    let catalog = CatalogService::new(store.clone(), actors.inventory.clone())
        // Item pages take a quarter of the read cache's budget again.
        .with_page_cache(settings.read_cache_mb << 18)
        .with_ownership(settings.ownership());
    let carts = cart_service(settings, store, &actors.carts, &catalog);
    let checkout = CheckoutService::new(
        actors.checkouts.clone(),
        carts.clone(),
        actors.orders.clone(),
        IdempotencyKeys::new(store.clone()),
        Duration::from_millis(settings.checkout_wait_ms),
    );
    NodeServices {
        accounts,
        catalog,
        carts,
        checkout,
        orders: OrderService::new(store.clone(), actors.orders.clone()),
        wishlists: WishlistService::new(store.clone()),
        media,
    }
}

/// The read models, each resuming from its offset in the event log:
/// search, the websocket hub, notifications, the recommender.
pub(super) async fn start_read_models(
    settings: &Settings,
    store: &Store,
) -> anyhow::Result<ReadModels> {
    let search = Search::start(
        &settings.data_dir,
        store.clone(),
        SearchOptions {
            commit_every: Duration::from_millis(settings.search_commit_ms),
            cache_entries: settings.search_cache_entries as usize,
            total_exact_limit: settings.search_total_exact_limit,
        },
    )
    .await
    .context("opening the search index")?;
    let hub = Hub::start(store.clone(), settings.ws_queue_messages);
    let notifications = Inbox::start(store.clone(), hub.clone(), settings.ownership()).await?;
    let recommender =
        Recommender::start(store.clone(), search.clone(), settings.recommender_paused).await?;
    Ok(ReadModels {
        search,
        hub,
        notifications,
        recommender,
    })
}

/// The handlers' shared state, from the node's parts.
pub(super) fn http_state(node: &Node) -> AppState {
    let services = node.services.clone();
    let read_models = node.read_models.clone();
    AppState::new(Services {
        settings: node.settings.clone(),
        status: NodeStatus::new(node.store.clone(), &node.settings, node.cluster.clone()),
        accounts: services.accounts,
        catalog: services.catalog,
        carts: services.carts,
        checkout: services.checkout,
        orders: services.orders,
        search: read_models.search,
        hub: read_models.hub,
        notifications: read_models.notifications,
        wishlists: services.wishlists,
        recommender: read_models.recommender,
        media: services.media,
        forwarding: forwarding(node),
        rate_limits: None,
        metrics: node.metrics.clone(),
    })
}

/// In a cluster, how requests reach the owners of their entities.
fn forwarding(node: &Node) -> Option<Forwarding> {
    let cluster = node.cluster.as_ref()?;
    let settings = &node.settings;
    let timeout = Duration::from_millis(settings.cluster.call_timeout_ms);
    Some(Forwarding {
        rpc: cluster.rpc().clone(),
        placement: Arc::new(settings.placement()),
        timeout,
        // A forwarded checkout first waits for its payment, as it would here.
        checkout_timeout: timeout + Duration::from_millis(settings.checkout_wait_ms),
    })
}

/// In a cluster, SKUs owned by other nodes are called over NATS.
pub(super) fn with_remote_inventory(
    inventory: InventoryActors,
    settings: &Settings,
    cluster: Option<&Cluster>,
) -> InventoryActors {
    match cluster {
        Some(cluster) => inventory.with_remote(RemoteInventory {
            rpc: cluster.rpc().clone(),
            placement: Arc::new(settings.placement()),
        }),
        None => inventory,
    }
}

/// In a cluster, answers other nodes' calls for this node's SKUs.
pub(super) async fn answer_calls(
    cluster: Option<&Cluster>,
    actors: &NodeActors,
    services: &NodeServices,
) -> anyhow::Result<Vec<Responder>> {
    let Some(cluster) = cluster else {
        return Ok(Vec::new());
    };
    let inventory = actors.inventory.clone();
    let stock: Handler = Arc::new(move |bytes| {
        let inventory = inventory.clone();
        Box::pin(async move { inventory.answer(bytes).await })
    });
    let carts = services.carts.clone();
    let guest_carts: Handler = Arc::new(move |bytes| {
        let carts = carts.clone();
        Box::pin(async move { carts.answer(bytes).await })
    });
    let orders = services.orders.clone();
    let seller_orders: Handler = Arc::new(move |bytes| {
        let orders = orders.clone();
        Box::pin(async move { orders.answer(bytes).await })
    });
    let mut responders = Vec::new();
    let kinds = [
        (REMOTE_KIND, stock),
        (cart::REMOTE_KIND, guest_carts),
        (order::REMOTE_KIND, seller_orders),
    ];
    for (kind, handler) in kinds {
        let responder = cluster
            .rpc()
            .serve(kind, handler)
            .await
            .with_context(|| format!("answering {kind} calls"))?;
        responders.push(responder);
    }
    Ok(responders)
}

/// In a cluster: guest carts and sellers' order lists reach the other
/// nodes.
pub(super) fn reaching_other_nodes(
    mut services: NodeServices,
    settings: &Settings,
    cluster: Option<&Cluster>,
) -> NodeServices {
    if let Some(cluster) = cluster {
        let (rpc, placement) = (cluster.rpc().clone(), Arc::new(settings.placement()));
        services.carts = services.carts.with_guests(GuestCarts {
            rpc: rpc.clone(),
            placement: placement.clone(),
        });
        services.orders = services
            .orders
            .with_cluster(ClusterOrders { rpc, placement });
    }
    services
}

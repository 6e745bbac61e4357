//! Cart actors against real sled files: the checkout lock the saga will use,
//! idle expiry, and state surviving a restart.

use std::time::Duration;

use agora::actors::cart::{CartActors, CartError, Owner};
use agora::actors::runtime::RegionSettings;
use agora::domain::cart::{CartLine, CartRuleError};
use agora::storage::{Store, StoreOptions};

mod common;

fn line(variant: &str, quantity: i64) -> CartLine {
    CartLine {
        item_id: variant.into(),
        variant_id: variant.into(),
        quantity,
        unit_price: 999,
        currency: "INR".into(),
    }
}

async fn carts(store: &Store, ttl: Duration) -> CartActors {
    CartActors::start(store.clone(), ttl, RegionSettings::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_locks_the_cart_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let carts = carts(&store, Duration::from_secs(3600)).await;
    assert!(matches!(
        carts.begin_checkout("cart-1", "k1").await,
        Err(CartError::Empty)
    ));
    carts
        .set_line("cart-1", Owner::User("u".into()), line("a", 2))
        .await
        .unwrap();

    let locked = carts.begin_checkout("cart-1", "k1").await.unwrap();
    assert_eq!(locked.lines.len(), 1);
    assert_eq!(
        carts.begin_checkout("cart-1", "k1").await.unwrap(),
        locked,
        "idempotent for its checkout"
    );
    assert!(matches!(
        carts.begin_checkout("cart-1", "k2").await,
        Err(CartError::InProgress)
    ));
    assert!(matches!(
        carts
            .set_line("cart-1", Owner::User("u".into()), line("b", 1))
            .await,
        Err(CartError::Rule(CartRuleError::Locked))
    ));

    carts
        .end_checkout("cart-1", "k2", true, None)
        .await
        .unwrap();
    assert_eq!(
        carts.get("cart-1").await.unwrap().unwrap().lines.len(),
        1,
        "another checkout cannot end it"
    );
    carts
        .end_checkout("cart-1", "k1", false, None)
        .await
        .unwrap();
    carts
        .set_line("cart-1", Owner::User("u".into()), line("b", 1))
        .await
        .unwrap();

    carts.begin_checkout("cart-1", "k3").await.unwrap();
    carts
        .end_checkout("cart-1", "k3", true, None)
        .await
        .unwrap();
    let cart = carts.get("cart-1").await.unwrap().unwrap();
    assert!(
        cart.lines.is_empty() && cart.checkout.is_none(),
        "a confirmed order empties the cart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cart_expires_and_a_stored_one_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let short = carts(&store, Duration::from_millis(100)).await;
    short
        .set_line("old", Owner::Guest, line("a", 1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        short.get("old").await.unwrap().is_none(),
        "an idle guest cart past its time is gone"
    );

    let long = carts(&store, Duration::from_secs(3600)).await;
    long.set_line("kept", Owner::User("u".into()), line("a", 4))
        .await
        .unwrap();
    short.stop().await;
    long.stop().await;
    store.shutdown().await;
    drop((short, long, store));

    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let again = carts(&store, Duration::from_secs(3600)).await;
    assert_eq!(
        again.get("kept").await.unwrap().unwrap().lines[0].quantity,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_cart_during_checkout_is_409_checkout_in_progress() {
    use agora::domain::item::ItemInput;
    use agora::domain::user::Role;
    use agora::http::error::{ApiError, Code};
    use agora::services::account::Authenticated;
    use agora::services::cart::Shopper;

    // The cart service prices through the catalog, over the stock actors:
    // a whole node, from the one builder.
    let dir = tempfile::tempdir().unwrap();
    let node = common::start_node(common::test_settings(dir.path())).await;
    let catalog = &node.services.catalog;
    let seller = Authenticated {
        user_id: "seller".into(),
        role: Role::Seller,
        session_key: [1; 32],
    };
    let input = ItemInput {
        name: Some("Mouse".into()),
        description: Some("d".into()),
        price: Some(999),
        quantity: Some(10),
        ..Default::default()
    };
    let item = catalog.create(&seller, input).await.unwrap().item;
    let actors = &node.actors.carts;
    let service = &node.services.carts;
    let buyer = Shopper::User("buyer".into());
    let priced = service
        .set_line(&buyer, Some(item.id.clone()), None, Some(1))
        .await
        .unwrap();
    let cart_id = priced.cart.unwrap().id;
    actors.begin_checkout(&cart_id, "k1").await.unwrap();
    let refused = service
        .set_line(&buyer, Some(item.id.clone()), None, Some(2))
        .await
        .unwrap_err();
    assert_eq!(ApiError::from(refused).code(), Code::CheckoutInProgress);
    let cleared = service.clear(&buyer).await.unwrap_err();
    assert_eq!(ApiError::from(cleared).code(), Code::CheckoutInProgress);
    node.stop().await;
}

//! Black-box API tests: each boots the real `agora` binary on port 0 with a
//! fresh data directory and talks HTTP to it.

mod accounts;
mod archive;
mod browser;
mod cart;
mod catalog;
mod checkout;
mod cluster;
mod cluster_checkout;
mod contract;
mod durability;
mod edge;
mod forwarding;
mod fulfilment;
mod gateway;
mod helpers;
mod inbox;
mod live;
mod load;
mod media;
mod nats;
mod operations;
mod orders;
mod placement;
mod recommend;
mod relay;
mod replication;
mod replication_recovery;
mod saga;
mod search;
mod sessions_cluster;
mod shop;
mod sign_in;
mod storefront;
mod storefront_browser;
mod wishlist;

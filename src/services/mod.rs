//! Services: the use-cases handlers call, one module per concern, and the
//! read models the event log feeds. A service validates, authorizes and
//! composes actors and storage; it holds no contested state itself.
//!
//! - [`account`]: registration, sign-in (throttled), sessions.
//! - [`catalog`]: sellers' items and their stock.
//! - [`cart`]: carts priced against the catalog.
//! - [`checkout`]: starts a checkout's coordinator and waits for its answer;
//!   [`checkout::idempotency`] keeps `Idempotency-Key` results.
//! - [`order`]: order history and order actions.
//! - [`wishlist`], [`media`] (item images).
//! - [`status`]: what `/ready` reports of storage.
//! - Read models fed by the event log: [`live`] (the websocket hub),
//!   [`notifications`] (the inbox and outbound channels), [`recommend`].

pub mod account;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod live;
pub mod media;
pub mod notifications;
pub mod order;
pub mod recommend;
pub mod status;
pub mod wishlist;

//! Agora: an Amazon-style marketplace server, built as an actor-based
//! reactive server over embedded storage.
//!
//! # Layout
//!
//! The modules are layers, listed top to bottom. A module uses its own
//! layer and the layers below it, never one above (`tests/layers.rs`
//! checks every import).
//!
//! - [`node`]: the one builder of the service graph:
//!   [`node::Node::start`] starts every component in dependency order,
//!   [`node::Node::stop`] stops them in reverse; [`node::Listeners`] serves
//!   a started node until a shutdown signal. `main.rs`, the tests and the
//!   benches all go through it.
//! - [`http`]: handlers that translate (parse, authorize, call one service
//!   or read model, render), one module per resource; the gateway layers
//!   (auth, rate limit, request ids, tracing, limits, CORS, security
//!   headers); the one error type that renders problem+json; the accept
//!   loop (hyper HTTP/1.1 with a header-read timeout).
//! - [`services`]: the use-cases (account, catalog, cart, checkout with its
//!   idempotency keys, order, wishlist, media) and the read models the event
//!   log feeds (live: the websocket hub; notifications; recommend).
//! - [`actors`]: owners of contested state, on a virtual-actor runtime: one
//!   actor per SKU, cart, order and checkout (the saga's coordinator, with
//!   the risk step it runs).
//! - [`config`]: one typed `Settings`, layered file → environment → flags
//!   and validated once at start-up; [`payments`]: the payment gateway
//!   interface, the simulated gateway and the client with timeouts and
//!   retries; [`search`]: the tantivy index fed by the event log;
//!   [`telemetry`]: logging and the Prometheus recorder; [`cluster`]: the
//!   connection to NATS (JetStream), the membership kept there, the relay
//!   of the event log into the stream and the consumer of the other
//!   nodes' events, built only for a node with `[cluster] nats`.
//! - [`storage`]: sled, a tree per record kind; the versioned bincode codec;
//!   the single group-commit writer; the event log (transactional outbox),
//!   its consumers, its archive and its JSON form ([`export`]).
//! - [`domain`]: plain types and rules every layer shares (ids, money,
//!   items, carts and pricing, orders and their state machine, a SKU's
//!   stock, the events), and the validation of untrusted input. It imports
//!   nothing from the rest of the crate.
//!
//! The load harness (`agora load`) is not in this library: it is the
//! workspace crate `agora-load` (folder `load/`), a binary the `agora`
//! command runs, so the server does not compile an HTTP client.
#![warn(missing_docs)]

pub mod actors;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod http;
pub mod node;
pub mod payments;
pub mod search;
pub mod services;
pub mod storage;
pub mod telemetry;

/// The event log as JSON lines (lives in [`storage`]; re-exported by its old path).
pub use storage::export;

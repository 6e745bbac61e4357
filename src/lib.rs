//! Agora: an Amazon-style marketplace server, built as an actor-based
//! reactive server over embedded storage.
//!
//! # Layout
//!
//! - [`config`]: one typed `Settings`, layered file → environment → flags and
//!   validated once at start-up.
//! - [`node`]: the one builder of the service graph: [`node::Node::start`]
//!   starts every component in dependency order, [`node::Node::stop`] stops
//!   them in reverse; [`node::Listeners`] serves a started node until a
//!   shutdown signal. `main.rs`, the tests and the benches all go through it.
//! - [`domain`]: plain types every layer shares (ids, timestamps, users,
//!   items) and the validation of untrusted input.
//! - [`storage`]: sled, a tree per record kind; the versioned bincode codec;
//!   the single group-commit writer; the event log (transactional outbox) and
//!   its consumers.
//! - [`actors`]: owners of contested state, on a virtual-actor runtime: one
//!   actor per SKU, cart, order and checkout (the saga coordinator).
//! - [`accounts`], [`catalog`], [`carts`], [`checkout`], [`orders`]: the
//!   services handlers call; [`idempotency`] keeps `Idempotency-Key` results.
//! - [`payments`]: the payment gateway interface, the simulated gateway and
//!   the client with timeouts and retries (used by checkout); [`risk`]: the
//!   fraud rules checked before payment.
//! - [`search`]: the catalog search index.
//! - [`live`]: the websocket hub; [`notifications`]: the inbox and outbound
//!   channels; [`wishlist`], [`media`] (item images); [`recommend`]: the
//!   recommender (a log consumer) and its read side; [`export`]: the event
//!   log as JSON lines (`agora events export`); [`archiver`]: moves the
//!   log's handled events out of sled into compressed segment files.
//! - [`http`]: the axum router, one module per resource, the gateway layers
//!   (auth, rate limit, request ids, tracing, limits, CORS, security
//!   headers), the one error type that renders problem+json, and the accept
//!   loop (hyper HTTP/1.1 with a header-read timeout) that serves it.
//! - [`telemetry`]: logging and the Prometheus recorder.
//!
//! The load harness (`agora load`) is not in this library: it is the
//! workspace crate `agora-load` (folder `load/`), a binary the `agora`
//! command runs, so the server does not compile an HTTP client.
#![warn(missing_docs)]

pub mod actors;
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

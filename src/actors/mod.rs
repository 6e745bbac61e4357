//! Actor-owned state.
//!
//! Every piece of contested state has one owner that changes it by messages
//! (see ARCHITECTURE.md). [`runtime`] is the virtual-actor runtime on ractor
//! (activation on demand, passivation, supervision, bounded ingress); the
//! entity kinds built on it live beside it, one file each.

pub mod cart;
pub mod checkout;
pub mod inventory;
pub mod order;
pub mod runtime;

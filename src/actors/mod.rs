//! Actor-owned state.
//!
//! The design gives every piece of contested state one owner that changes it
//! by messages (see ARCHITECTURE.md). The entity runtime (activation,
//! passivation, supervision) arrives with the inventory and cart actors; until
//! then [`inventory`] is the one interface through which stock is read and
//! changed, so that swapping its inside for an actor per SKU touches no caller.

pub mod inventory;

//! Plain types every layer shares: ids, timestamps, users, items, and the
//! validation vocabulary (normalized text, per-field errors).
//!
//! Nothing here touches storage or HTTP; parsing a request body into one of
//! these types is where untrusted input becomes trusted.

pub mod cart;
pub mod event;
pub mod fulfilment;
mod ids;
pub mod item;
pub mod order;
pub mod placement;
pub mod sealed;
pub mod stock;
pub mod text;
mod time;
pub mod user;
mod validation;

pub use ids::{key_of_text, looks_like_id, new_id, new_id_beside, new_id_in, placement_key};
pub use time::Timestamp;
pub use validation::FieldErrors;

//! Which domain types are stored, and their format versions.

use super::Record;
use crate::domain::cart::Cart;
use crate::domain::item::Item;
use crate::domain::order::Order;
use crate::domain::user::{Session, User};

impl Record for User {
    const KIND: &'static str = "user";
    const VERSION: u8 = 1;
}

impl Record for Session {
    const KIND: &'static str = "session";
    const VERSION: u8 = 1;
}

impl Record for Item {
    const KIND: &'static str = "item";
    const VERSION: u8 = 1;
}

// `SkuStock` (the `stock` tree) is declared beside its owner,
// `actors::inventory`.

impl Record for Cart {
    const KIND: &'static str = "cart";
    const VERSION: u8 = 1;
}

impl Record for Order {
    const KIND: &'static str = "order";
    const VERSION: u8 = 1;
}

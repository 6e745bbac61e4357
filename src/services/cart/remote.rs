//! Guest carts in a cluster. A guest has no account to place by, so a guest
//! cart is placed by its token: the node that first serves the guest mints
//! a token whose placement key (a hash of the token) is its own, and keeps
//! the cart there; every later request with that token is forwarded there
//! (`http/route.rs`). Signing in on the buyer's node takes the lines from
//! the token's node over NATS (kind `cart`), in one step of the guest cart's
//! actor there, so none is merged twice.

use std::sync::Arc;

use bytes::Bytes;

use super::{CartService, CartServiceError};
use crate::cluster::Rpc;
use crate::domain::cart::CartLine;
use crate::domain::key_of_text;
use crate::domain::placement::Placement;
use crate::storage::codec::{self, Record};

/// The NATS call kind guest-cart calls travel as.
pub const KIND: &str = "cart";

/// Where guest carts live and how to reach them.
#[derive(Clone)]
pub struct GuestCarts {
    /// Calls to other nodes.
    pub rpc: Rpc,
    /// Where tokens are placed.
    pub placement: Arc<Placement>,
}

/// The lines a guest cart held, or why they could not be taken.
#[derive(bincode::Encode, bincode::Decode)]
enum Taken {
    Lines(Vec<CartLine>),
    Failed(String),
}

impl Record for Taken {
    const KIND: &'static str = "guest cart lines";
    const VERSION: u8 = 1;
}

/// A token to take (the call's body).
#[derive(bincode::Encode, bincode::Decode)]
struct Take(String);

impl Record for Take {
    const KIND: &'static str = "guest cart take";
    const VERSION: u8 = 1;
}

impl GuestCarts {
    /// A fresh token (from `mint`) placed on this node.
    pub(super) fn local_token(&self, mint: fn() -> String) -> String {
        loop {
            let token = mint();
            if self.placement.owner_of_key(key_of_text(&token)) == self.placement.this_node() {
                return token;
            }
        }
    }

    /// The node holding `token`'s cart when it is another one.
    pub(super) fn remote_owner(&self, token: &str) -> Option<(&GuestCarts, String)> {
        let owner = self.placement.owner_of_key(key_of_text(token));
        (owner != self.placement.this_node()).then(|| (self, owner.to_owned()))
    }

    /// Takes `token`'s lines from `node`.
    pub(super) async fn take(
        &self,
        node: &str,
        token: &str,
    ) -> Result<Vec<CartLine>, CartServiceError> {
        let body = codec::encode(&Take(token.to_owned()))?;
        let reply = self.rpc.call(node, KIND, body).await?;
        match codec::decode::<Taken>(&reply)? {
            Taken::Lines(lines) => Ok(lines),
            Taken::Failed(reason) => Err(CartServiceError::Remote(
                crate::cluster::CallError::Failed {
                    node: node.to_owned(),
                    reason,
                },
            )),
        }
    }
}

impl CartService {
    /// Answers another node taking a guest cart's lines from this one.
    pub async fn answer(&self, bytes: Bytes) -> Vec<u8> {
        let taken = match codec::decode::<Take>(&bytes) {
            Ok(Take(token)) => match self.take_guest(&token).await {
                Ok(lines) => Taken::Lines(lines),
                Err(e) => Taken::Failed(e.to_string()),
            },
            Err(e) => Taken::Failed(e.to_string()),
        };
        codec::encode(&taken).unwrap_or_default()
    }
}

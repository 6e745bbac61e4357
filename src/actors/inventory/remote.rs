//! SKUs owned by other nodes: their calls travel over NATS to the owner
//! (kind `inventory`), whose [`InventoryActors`] applies them to the SKU's
//! actor and answers. Every change is idempotent by its checkout id (a
//! reservation, commit, release or return repeated is a no-op), so a lost
//! answer is retried, never applied twice.

use std::sync::Arc;

use bytes::Bytes;

use super::{Command, InventoryActors, InventoryError};
use crate::actors::runtime::EntityError;
use crate::cluster::{CallError, Rpc};
use crate::domain::item::StockLevel;
use crate::domain::placement::Placement;
use crate::domain::stock::StockError;
use crate::storage::codec::{self, Record};

/// The NATS call kind inventory calls travel as.
pub const KIND: &str = "inventory";

/// How this node reaches SKUs owned elsewhere.
#[derive(Clone)]
pub struct RemoteInventory {
    /// Calls to other nodes.
    pub rpc: Rpc,
    /// Where SKUs live.
    pub placement: Arc<Placement>,
}

/// One call to the owner of a SKU.
#[derive(bincode::Encode, bincode::Decode)]
pub(super) enum Call {
    /// The SKU's current stock.
    Get(String),
    /// A change to the SKU.
    Change(String, Command),
}

impl Record for Call {
    const KIND: &'static str = "inventory call";
    const VERSION: u8 = 1;
}

/// The owner's answer.
#[derive(bincode::Encode, bincode::Decode)]
pub(super) enum Answer {
    /// Done: the SKU's stock now.
    Level(StockLevel),
    /// The stock rules refused; nothing changed.
    Refused(StockError),
    /// No such SKU.
    Unknown,
    /// The owner could not apply it (busy, slow, storage); retry.
    Unavailable(String),
}

impl Record for Answer {
    const KIND: &'static str = "inventory answer";
    const VERSION: u8 = 1;
}

impl RemoteInventory {
    /// The owner of `variant_id` when another node owns it.
    pub(super) fn owner_of(&self, variant_id: &str) -> Option<String> {
        self.placement.remote_owner(variant_id).map(str::to_owned)
    }

    /// Sends `call` to `node` and reads its answer.
    pub(super) async fn call(&self, node: &str, call: Call) -> Result<StockLevel, InventoryError> {
        let body = codec::encode(&call)?;
        let reply = self.rpc.call(node, KIND, body).await.map_err(|e| {
            InventoryError::Unavailable(match e {
                CallError::TimedOut(_) => EntityError::Timeout,
                CallError::Unavailable(node) => EntityError::NodeUnavailable(node),
                other => EntityError::Unavailable(other.to_string()),
            })
        })?;
        match codec::decode::<Answer>(&reply)? {
            Answer::Level(level) => Ok(level),
            Answer::Refused(refusal) => Err(InventoryError::Refused(refusal)),
            Answer::Unknown => Err(InventoryError::UnknownVariant),
            Answer::Unavailable(reason) => Err(InventoryError::Unavailable(
                EntityError::Unavailable(format!("on node {node}: {reason}")),
            )),
        }
    }
}

impl InventoryActors {
    /// Answers a call another node sent for one of this node's SKUs.
    pub async fn answer(&self, bytes: Bytes) -> Vec<u8> {
        let answer = match codec::decode::<Call>(&bytes) {
            Ok(Call::Get(variant_id)) => self.local_get(&variant_id).await,
            Ok(Call::Change(variant_id, command)) => {
                self.local_change(&variant_id, command, None).await
            }
            Err(e) => Err(InventoryError::from(e)),
        };
        let answer = match answer {
            Ok(level) => Answer::Level(level),
            Err(InventoryError::Refused(refusal)) => Answer::Refused(refusal),
            Err(InventoryError::UnknownVariant) => Answer::Unknown,
            Err(e) => Answer::Unavailable(e.to_string()),
        };
        codec::encode(&answer).unwrap_or_default()
    }
}

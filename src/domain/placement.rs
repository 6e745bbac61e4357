//! Placement: which shard an entity is in and which node owns that shard.
//!
//! A cluster has a fixed number of shards. An id carries its placement key
//! ([`super::ids`]), so its shard is `key mod shards`, computed from the id
//! alone. A shard's owner is chosen by rendezvous hashing over the static
//! node list: every node scores `xxh3_64(shard, seed = xxh3_64(node id))`
//! and the highest score wins (ties, vanishingly rare, to the greater id).
//! Every node computes the same owner without a directory, and removing a
//! node moves only the shards it owned.
//!
//! The hash is XXH3 (64-bit), a fixed published algorithm, so the answer is
//! the same on every platform and release; unit tests pin it.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::ids::placement_key;

/// The shards and their owners, built from the cluster's settings.
#[derive(Debug, Clone)]
pub struct Placement {
    shards: u32,
    /// Node ids in configuration order, each with its hash seed.
    nodes: Vec<(String, u64)>,
    /// The node this placement is seen from.
    this: String,
}

impl Placement {
    /// The placement of `shards` shards over `nodes` (node ids in
    /// configuration order; the order does not change any owner). With no
    /// nodes, `this_node` runs alone and owns every shard.
    ///
    /// # Panics
    /// If `shards` is 0 or above 65,536 (settings validation refuses both).
    pub fn new(shards: u32, nodes: &[String], this_node: &str) -> Placement {
        assert!(
            (1..=65_536).contains(&shards),
            "shards must be 1 to 65,536 (got {shards})"
        );
        let ids: Vec<&str> = if nodes.is_empty() {
            vec![this_node]
        } else {
            nodes.iter().map(String::as_str).collect()
        };
        let nodes = ids
            .into_iter()
            .map(|id| (id.to_owned(), xxh3_64(id.as_bytes())))
            .collect();
        Placement {
            shards,
            nodes,
            this: this_node.to_owned(),
        }
    }

    /// How many shards.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The node ids, in configuration order.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|(id, _)| id.as_str())
    }

    /// The shard of the entity `id`; `None` if `id` is not an id.
    pub fn shard_of_id(&self, id: &str) -> Option<u32> {
        placement_key(id).map(|key| u32::from(key) % self.shards)
    }

    /// The node owning `shard` (taken modulo the shard count).
    pub fn owner(&self, shard: u32) -> &str {
        let shard = shard % self.shards;
        let mut best: Option<(u64, &str)> = None;
        for (id, seed) in &self.nodes {
            let score = xxh3_64_with_seed(&shard.to_le_bytes(), *seed);
            if best.is_none_or(|top| (score, id.as_str()) > top) {
                best = Some((score, id));
            }
        }
        best.map_or("", |(_, id)| id)
    }

    /// The shard and owner of the entity `id`; `None` if `id` is not an id.
    pub fn place(&self, id: &str) -> Option<(u32, &str)> {
        self.shard_of_id(id).map(|shard| (shard, self.owner(shard)))
    }

    /// The node owning entities with placement key `key`.
    pub fn owner_of_key(&self, key: u16) -> &str {
        self.owner(u32::from(key))
    }

    /// The node this placement is seen from.
    pub fn this_node(&self) -> &str {
        &self.this
    }

    /// Whether this node owns the entity `id` (an id that is not an id
    /// belongs nowhere else, so it counts as this node's).
    pub fn is_local(&self, id: &str) -> bool {
        self.place(id).is_none_or(|(_, owner)| owner == self.this)
    }

    /// The owner of `id` when it is another node; `None` for this node's
    /// own entities and for strings that are not ids.
    pub fn remote_owner(&self, id: &str) -> Option<&str> {
        self.place(id)
            .map(|(_, owner)| owner)
            .filter(|owner| *owner != self.this)
    }

    /// A random placement key of a shard this node owns (so a new id minted
    /// with it is created here); `None` if this node owns no shard.
    pub fn local_key(&self) -> Option<u16> {
        let start = rand::random::<u32>() % self.shards;
        (0..self.shards)
            .map(|i| (start + i) % self.shards)
            .find(|shard| self.owner(*shard) == self.this)
            .map(|shard| self.key_of_shard(shard))
    }

    /// The placement key that puts a new id in `shard`, for
    /// [`super::new_id_in`] (taken modulo the shard count).
    pub fn key_of_shard(&self, shard: u32) -> u16 {
        // Fits: the shard count is at most 65,536.
        (shard % self.shards) as u16
    }
}

/// Which entities this node owns: every one on a single node, else those
/// whose shard the placement gives it.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// `None`: alone, owns everything (and hashes nothing).
    cluster: Option<(std::sync::Arc<Placement>, String)>,
}

impl Ownership {
    /// A single node: it owns every entity.
    pub fn alone() -> Ownership {
        Ownership { cluster: None }
    }

    /// Node `node` of a cluster placed by `placement`.
    pub fn in_cluster(placement: Placement, node: &str) -> Ownership {
        Ownership {
            cluster: Some((std::sync::Arc::new(placement), node.to_owned())),
        }
    }

    /// Whether this node runs alone (and so owns everything).
    pub fn is_alone(&self) -> bool {
        self.cluster.is_none()
    }

    /// Whether this node owns the entity `id` (a string that is not an id
    /// has no owner elsewhere: it is this node's).
    pub fn owns(&self, id: &str) -> bool {
        match &self.cluster {
            None => true,
            Some((placement, node)) => placement.place(id).is_none_or(|(_, owner)| owner == node),
        }
    }
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;

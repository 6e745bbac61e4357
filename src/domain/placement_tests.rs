//! Unit tests of [`Placement`]: pinned hash values, one owner per shard,
//! the same answer on every node, balance, minimal movement, and ids that
//! carry their shard.

use std::collections::HashMap;

use super::*;
use crate::domain::{new_id, new_id_in};

fn nodes(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

fn three() -> Vec<String> {
    nodes(&["node-1", "node-2", "node-3"])
}

#[test]
fn the_hash_is_pinned_so_an_accidental_change_is_caught() {
    // XXH3-64 reference values; a different hash would move every shard.
    assert_eq!(xxh3_64(b""), 0x2d06_8005_38d3_94c2);
    assert_eq!(xxh3_64(b"node-1"), 0x0db0_9edf_d945_8385);
    assert_eq!(
        xxh3_64_with_seed(&1023_u32.to_le_bytes(), xxh3_64(b"node-1")),
        0x97ce_0260_3bb5_b17a
    );
    let placement = Placement::new(1024, &three(), "node-1");
    let owners: Vec<&str> = (0..8).map(|shard| placement.owner(shard)).collect();
    assert_eq!(
        owners,
        ["node-2", "node-3", "node-3", "node-2", "node-3", "node-1", "node-3", "node-3"]
    );
}

#[test]
fn every_node_computes_the_same_owner_whatever_its_own_id_or_the_list_order() {
    let on_1 = Placement::new(1024, &three(), "node-1");
    let on_3 = Placement::new(1024, &three(), "node-3");
    let reordered = Placement::new(1024, &nodes(&["node-3", "node-1", "node-2"]), "node-2");
    for shard in 0..1024 {
        assert_eq!(on_1.owner(shard), on_3.owner(shard), "shard {shard}");
        assert_eq!(on_1.owner(shard), reordered.owner(shard), "shard {shard}");
    }
}

#[test]
fn every_shard_has_exactly_one_owner_among_the_nodes() {
    let placement = Placement::new(1024, &three(), "node-1");
    for shard in 0..1024 {
        let owner = placement.owner(shard);
        assert_eq!(
            placement.nodes().filter(|node| *node == owner).count(),
            1,
            "shard {shard} owned by {owner:?}"
        );
    }
}

#[test]
fn a_lone_node_owns_every_shard() {
    let placement = Placement::new(1024, &[], "solo");
    assert!((0..1024).all(|shard| placement.owner(shard) == "solo"));
    let id = new_id();
    assert_eq!(placement.place(&id).map(|(_, node)| node), Some("solo"));
}

/// Counts shards per owner.
fn load(placement: &Placement) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for shard in 0..placement.shards() {
        *counts.entry(placement.owner(shard).to_owned()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn three_nodes_share_1024_shards_within_15_percent_of_an_even_third() {
    // An even share is 341.3; rendezvous hashing's spread is binomial
    // (sd ≈ 15), so ±15% (±51) is over three standard deviations.
    let counts = load(&Placement::new(1024, &three(), "node-1"));
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (node, count) in &counts {
        assert!(
            (290..=393).contains(count),
            "{node} owns {count}: {counts:?}"
        );
    }
}

#[test]
fn removing_a_node_moves_only_the_shards_it_owned() {
    let before = Placement::new(1024, &three(), "node-1");
    let after = Placement::new(1024, &nodes(&["node-1", "node-3"]), "node-1");
    let mut moved = 0;
    for shard in 0..1024 {
        if before.owner(shard) == "node-2" {
            moved += 1;
        } else {
            assert_eq!(before.owner(shard), after.owner(shard), "shard {shard}");
        }
    }
    assert!(moved > 0);
}

#[test]
fn an_id_made_in_a_shard_round_trips_it_and_sorts_by_time() {
    let placement = Placement::new(1024, &three(), "node-1");
    for shard in [0, 1, 511, 1023] {
        let id = new_id_in(placement.key_of_shard(shard));
        assert_eq!(placement.shard_of_id(&id), Some(shard), "{id}");
    }
    let first = new_id_in(placement.key_of_shard(7));
    std::thread::sleep(std::time::Duration::from_millis(2));
    let second = new_id_in(placement.key_of_shard(7));
    assert!(first < second, "{first} then {second}");
}

#[test]
fn any_id_has_one_deterministic_shard_and_a_non_id_has_none() {
    let placement = Placement::new(1024, &three(), "node-1");
    let old = new_id();
    let shard = placement.shard_of_id(&old).unwrap();
    assert!(shard < 1024);
    assert_eq!(placement.shard_of_id(&old), Some(shard));
    assert_eq!(placement.shard_of_id("not-an-id"), None);
    assert_eq!(placement.place(""), None);
}

#[test]
fn the_largest_shard_count_keeps_every_key_distinct() {
    let placement = Placement::new(65_536, &three(), "node-1");
    let id = new_id_in(placement.key_of_shard(65_535));
    assert_eq!(placement.shard_of_id(&id), Some(65_535));
}

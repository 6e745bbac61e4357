//! The recommender's model, on real sled trees: rankings, pairs and
//! profiles; replays that change nothing; batches cut by their writes;
//! deactivation and moves; decay.

use super::candidates::Profile;
use super::keys::*;
use super::model::*;
use crate::domain::event::{Event, EventBody};
use crate::domain::item::Variant;
use crate::domain::item::{Item, ItemStatus};
use crate::domain::order::OrderStatus;
use crate::domain::order::PaymentStatus;
use crate::domain::Timestamp;
use crate::storage::StorageError;
use std::collections::{HashMap, HashSet};

impl Kv for sled::Tree {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(sled::Tree::get(self, key)?.map(|v| v.to_vec()))
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.insert(key, value).expect("insert");
    }
    fn remove(&mut self, key: Vec<u8>) {
        sled::Tree::remove(self, key).expect("remove");
    }
    fn staged(&self) -> usize {
        0
    }
    fn begin(&mut self) {}
    fn undo(&mut self) {}
    fn defer(&mut self, _: &str) {}
}

/// The items whose ranking keys lag their popularity.
fn lagging(tree: &sled::Tree) -> Vec<String> {
    tree.scan_prefix(item_key(""))
        .map(|e| e.expect("scan"))
        .filter(|(_, v)| lags(&crate::storage::codec::decode::<RecoItem>(v).expect("item")))
        .map(|(k, _)| String::from_utf8(k[1..].to_vec()).expect("id"))
        .collect()
}

/// Whether every key of the global ranking carries its item's popularity.
fn ranked_as_popular(tree: &sled::Tree) -> bool {
    tree.scan_prefix(popular_prefix()).all(|e| {
        let key = e.expect("scan").0;
        let id = ranked_item(&popular_prefix(), &key).expect("id");
        let bytes = tree.get(item_key(&id)).expect("get").expect("item");
        let item: RecoItem = crate::storage::codec::decode(&bytes).expect("item");
        key[1..9] == desc_score(item.popularity)
    })
}

/// Moves every lagging ranking key (what the consumer's re-rank does).
fn settle(tree: &mut sled::Tree) {
    let items = lagging(tree);
    let left = rerank(tree, items, usize::MAX).expect("rerank");
    assert!(left.is_empty());
    assert!(lagging(tree).is_empty());
}

fn item(id: &str, category: &str, brand: &str, at: i64) -> Item {
    Item {
        id: id.into(),
        seller_id: "seller".into(),
        name: format!("item {id}"),
        description: String::new(),
        price: 100,
        currency: "USD".into(),
        sku: None,
        brand: Some(brand.into()),
        category: Some(category.into()),
        tags: Vec::new(),
        attributes_json: "{}".into(),
        has_variants: false,
        variants: vec![Variant {
            id: id.into(),
            sku: None,
            attributes_json: "{}".into(),
            price: 100,
        }],
        status: ItemStatus::Active,
        images: Vec::new(),
        created_at: Timestamp(at),
        updated_at: Timestamp(at),
    }
}

fn event(seq: u64, at: i64, body: EventBody) -> Event {
    Event {
        seq,
        at: Timestamp(at),
        body,
    }
}

fn confirmed(seq: u64, at: i64, order: &str, user: &str) -> Event {
    event(
        seq,
        at,
        EventBody::OrderUpdated {
            order_id: order.into(),
            user_id: user.into(),
            status: OrderStatus::Confirmed,
            payment_status: PaymentStatus::Succeeded,
        },
    )
}

fn ranking(tree: &sled::Tree, prefix: &[u8]) -> Vec<String> {
    tree.scan_prefix(prefix)
        .map(|e| ranked_item(prefix, &e.expect("scan").0).expect("item"))
        .collect()
}

fn dump(tree: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
    tree.iter()
        .map(|e| e.expect("iter"))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// The bought-together count of `a` and `b`.
fn pair_count(tree: &sled::Tree, a: &str, b: &str) -> Result<u64, StorageError> {
    Ok(u64_value(tree.get(pair_key(a, b))?.map(|v| v.to_vec())))
}

const T0: i64 = EPOCH_MS + 300 * 86_400_000;

fn history() -> (Vec<Event>, HashMap<String, OrderFacts>) {
    let mut orders = HashMap::new();
    let facts = |user: &str, items: &[&str]| OrderFacts {
        user_id: user.into(),
        lines: items.iter().map(|i| ((*i).to_owned(), 1)).collect(),
    };
    orders.insert("o1".to_owned(), facts("u1", &["A", "B"]));
    orders.insert("o2".to_owned(), facts("u2", &["A", "B"]));
    orders.insert("o3".to_owned(), facts("u3", &["A", "C"]));
    orders.insert("o4".to_owned(), facts("u1", &["A"]));
    let events = vec![
        event(
            1,
            T0,
            EventBody::ItemCreated(item("A", "lamps", "Lumo", T0)),
        ),
        event(
            2,
            T0,
            EventBody::ItemCreated(item("B", "bulbs", "Lumo", T0)),
        ),
        event(
            3,
            T0,
            EventBody::ItemCreated(item("C", "lamps", "Other", T0)),
        ),
        event(4, T0, EventBody::ItemCreated(item("D", "desks", "Oak", T0))),
        confirmed(5, T0 + 1_000, "o1", "u1"),
        confirmed(6, T0 + 2_000, "o2", "u2"),
        confirmed(7, T0 + 3_000, "o3", "u3"),
        confirmed(8, T0 + 4_000, "o4", "u1"),
        event(
            9,
            T0 + 5_000,
            EventBody::WishlistAdded {
                user_id: "u4".into(),
                item_id: "D".into(),
            },
        ),
    ];
    (events, orders)
}

#[test]
fn orders_rank_popularity_pairs_and_affinity() {
    let db = sled::Config::new().temporary(true).open().expect("sled");
    let mut tree = db.open_tree("reco").expect("tree");
    let (events, orders) = history();
    apply_events(&mut tree, &events, &orders, usize::MAX).expect("apply");
    assert_eq!(applied(&tree).expect("offset"), 9);
    // Orders moved popularity at once; the rankings follow at the re-rank.
    let mut behind = lagging(&tree);
    behind.sort();
    assert_eq!(behind, ["A", "B", "C", "D"]);
    assert!(!ranked_as_popular(&tree));
    settle(&mut tree);
    assert!(ranked_as_popular(&tree));
    assert_eq!(ranking(&tree, &popular_prefix()), ["A", "B", "C", "D"]);
    assert_eq!(ranking(&tree, &category_prefix("lamps")), ["A", "C"]);
    assert_eq!(ranking(&tree, &brand_prefix("lumo")), ["A", "B"]);
    let partners = partners_prefix("A");
    assert_eq!(ranking(&tree, &partners), ["B", "C"]);
    let counts: Vec<u64> = tree
        .scan_prefix(&partners)
        .map(|e| ranked_count(&partners, &e.expect("scan").0).expect("count"))
        .collect();
    assert_eq!(counts, [2, 1]);
    assert_eq!(pair_count(&tree, "B", "A").expect("count"), 2);

    let profile = Profile::read(&tree, "u1").expect("profile");
    assert!(profile.has_history);
    assert_eq!(profile.bought(), HashSet::from(["A", "B"]));
    assert_eq!(profile.purchases[0].0, "A", "newest purchase first");
    assert_eq!(profile.categories[0].0, "lamps");
    assert_eq!(profile.brands[0].0, "lumo");
    assert!(Profile::read(&tree, "u4").expect("profile").has_history);
    assert!(!Profile::read(&tree, "nobody").expect("profile").has_history);
}

#[test]
fn replaying_events_changes_nothing() {
    let db = sled::Config::new().temporary(true).open().expect("sled");
    let mut tree = db.open_tree("reco").expect("tree");
    let (events, orders) = history();
    assert_eq!(
        apply_events(&mut tree, &events[..6], &orders, usize::MAX)
            .expect("apply")
            .1,
        6
    );
    // Redelivered: the whole log again, then in overlapping pieces.
    assert_eq!(
        apply_events(&mut tree, &events, &orders, usize::MAX)
            .expect("apply")
            .1,
        3
    );
    let once = dump(&tree);
    for piece in [&events[..], &events[2..5], &events[8..]] {
        assert_eq!(
            apply_events(&mut tree, piece, &orders, usize::MAX)
                .expect("apply")
                .1,
            0
        );
    }
    assert_eq!(dump(&tree), once);
    // The same wishlist add again (re-added after a remove: a new
    // event) counts once per user and item.
    let mut again = events[8].clone();
    again.seq = 10;
    assert_eq!(
        apply_events(&mut tree, &[again], &orders, usize::MAX)
            .expect("apply")
            .1,
        1
    );
    let without_offset = |mut entries: Vec<(Vec<u8>, Vec<u8>)>| {
        entries.retain(|(k, _)| k != &offset_key());
        entries
    };
    assert_eq!(without_offset(dump(&tree)), without_offset(once));
}

#[test]
fn a_batch_cut_by_its_writes_resumes_where_it_stopped() {
    let db = sled::Config::new().temporary(true).open().expect("sled");
    let mut whole = db.open_tree("whole").expect("tree");
    let pieces = db.open_tree("pieces").expect("tree");
    let (events, orders) = history();
    apply_events(&mut whole, &events, &orders, usize::MAX).expect("apply");
    let mut rest = &events[..];
    let mut rounds = 0;
    while !rest.is_empty() {
        let mut batch = Overlay::new(|key: &[u8]| Ok(pieces.get(key)?.map(|v| v.to_vec())));
        let (taken, _) = apply_events(&mut batch, rest, &orders, 5).expect("apply");
        assert!(taken > 0);
        for (key, value) in batch.into_writes().0 {
            match value {
                Some(value) => pieces.insert(key, value).expect("insert"),
                None => pieces.remove(key).expect("remove"),
            };
        }
        rest = &rest[taken..];
        rounds += 1;
    }
    assert!(rounds > 2, "cut into several batches");
    assert_eq!(dump(&pieces), dump(&whole));
}

#[test]
fn a_deactivated_item_leaves_every_ranking_and_a_moved_one_follows() {
    let db = sled::Config::new().temporary(true).open().expect("sled");
    let mut tree = db.open_tree("reco").expect("tree");
    let (events, orders) = history();
    apply_events(&mut tree, &events, &orders, usize::MAX).expect("apply");
    settle(&mut tree);
    let mut gone = item("A", "lamps", "Lumo", T0);
    gone.status = ItemStatus::Inactive;
    let deactivated = event(10, T0, EventBody::ItemDeactivated(gone));
    apply_events(&mut tree, &[deactivated], &orders, usize::MAX).expect("apply");
    assert_eq!(ranking(&tree, &popular_prefix()), ["B", "C", "D"]);
    assert_eq!(ranking(&tree, &category_prefix("lamps")), ["C"]);
    let moved = item("C", "desks", "Other", T0);
    let updated = event(11, T0, EventBody::ItemUpdated(moved));
    apply_events(&mut tree, &[updated], &orders, usize::MAX).expect("apply");
    assert!(ranking(&tree, &category_prefix("lamps")).is_empty());
    assert_eq!(ranking(&tree, &category_prefix("desks")), ["C", "D"]);
}

#[test]
fn popularity_decays_with_time() {
    // Two orders a month ago weigh less than one today.
    let old = decayed_add(
        decayed_add(f64::NEG_INFINITY, 1.0, Timestamp(T0)),
        1.0,
        Timestamp(T0),
    );
    let new = decayed_add(f64::NEG_INFINITY, 1.0, Timestamp(T0 + 30 * 86_400_000));
    assert!(new > old);
    let now = Timestamp(T0 + 7 * 86_400_000);
    let value = decayed_value(decayed_add(f64::NEG_INFINITY, 1.0, Timestamp(T0)), now);
    assert!((value - 0.5).abs() < 1e-9, "one half-life later: {value}");
    // The ordering bytes agree with the numbers, negative ones too.
    let mut scores = [3.5, -2.0, 0.0, 1e300, -1e300, f64::NEG_INFINITY];
    let mut by_key = scores;
    by_key.sort_by_key(|s| desc_score(*s));
    scores.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(by_key, scores);
}

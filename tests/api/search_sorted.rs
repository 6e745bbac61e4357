//! The index is sorted by price: a price range is a span of documents in
//! each segment, and a cheapest-first search stops a segment early once
//! its count is past the limit. Neither may change what a buyer finds:
//! the band's edges (equal prices at both ends), items whose price moved,
//! and equal prices paged across segments.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::search::{search, seed};
use crate::search_limits::spawn;

/// Items named `{name} {batch} {n}` at these prices, brands in turn.
fn priced(name: &str, batch: usize, prices: &[i64]) -> Vec<Value> {
    prices
        .iter()
        .enumerate()
        .map(|(n, price)| {
            let brand = ["Acme", "Globex"][n % 2];
            json!({"name": format!("{name} {batch} {n}"), "description": "A vase",
                "price": price, "quantity": 3, "brand": brand,
                "category": "home"})
        })
        .collect()
}

/// Every page of `query` (cursors followed), as (id, price) in order.
async fn pages(app: &TestApp, query: &str, size: usize) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let url = match &cursor {
            Some(c) => format!("{query}&size={size}&cursor={c}"),
            None => format!("{query}&size={size}"),
        };
        let page = search(app, &url).await;
        for item in page["items"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap().to_owned();
            out.push((id, item["price"].as_i64().unwrap()));
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
    panic!("{query}: still paging after 200 pages");
}

/// Seeds `batch` and waits until search holds `total` items of `term`:
/// each batch is its own commit, so its own segment.
async fn seed_segment(app: &TestApp, seller: &str, batch: &[Value], term: &str, total: usize) {
    let ids = seed(app, seller, batch).await;
    assert_eq!(ids.len(), batch.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    while pages(app, &format!("term={term}"), 100).await.len() < total {
        assert!(Instant::now() < deadline, "{term}: never reached {total}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_price_range_finds_exactly_the_items_priced_within_it_edges_and_moved_prices_included() {
    let app = spawn().await;
    let seller = app.user_token("seller").await;
    let prices = [999, 1_000, 1_000, 1_500, 2_000, 2_000, 2_001];
    seed_segment(&app, &seller, &priced("Vase", 0, &prices), "vase", 7).await;
    seed_segment(&app, &seller, &priced("Vase", 1, &prices), "vase", 14).await;
    // Two items move: one out of the band (1,500 → 2,001), one into it
    // (2,001 → 1,000); their documents are written again, later.
    let all = pages(&app, "term=vase&sort=price_asc", 100).await;
    let moved = [(all[6].0.clone(), 2_001), (all[13].0.clone(), 1_000)];
    for (id, price) in &moved {
        let patched = app
            .patch(
                &format!("/items/{id}"),
                Some(&seller),
                &json!({"price": price}),
            )
            .await;
        assert_eq!(patched.status(), StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let catalog = loop {
        let now = pages(&app, "term=vase&sort=price_asc", 100).await;
        // Settled once the index orders them by their new prices too.
        let moved_now = moved
            .iter()
            .all(|(id, price)| now.contains(&(id.clone(), *price)));
        let ordered = now.iter().map(|(_, p)| *p).is_sorted();
        if moved_now && ordered && now.len() == 14 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the price changes never reached search"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bands: [(Option<i64>, Option<i64>); 7] = [
        (Some(1_000), Some(2_000)),
        (Some(1_000), None),
        (None, Some(2_000)),
        (Some(2_000), Some(2_000)),
        (Some(1_001), Some(1_999)),
        (Some(2_002), None),
        (None, Some(998)),
    ];
    for (low, high) in bands {
        let expected: BTreeSet<&String> = catalog
            .iter()
            .filter(|(_, p)| low.is_none_or(|l| *p >= l) && high.is_none_or(|h| *p <= h))
            .map(|(id, _)| id)
            .collect();
        let mut range = String::new();
        if let Some(low) = low {
            range.push_str(&format!("&minPrice={low}"));
        }
        if let Some(high) = high {
            range.push_str(&format!("&maxPrice={high}"));
        }
        for sort in ["relevance", "price_asc", "price_desc", "newest"] {
            let query = format!("term=vase&sort={sort}{range}");
            let found = pages(&app, &query, 3).await;
            let ids: BTreeSet<&String> = found.iter().map(|(id, _)| id).collect();
            assert_eq!(ids, expected, "{query}");
            assert_eq!(found.len(), expected.len(), "{query}: repeated");
            let first = search(&app, &format!("{query}&size=1")).await;
            assert_eq!(first["total"], json!(expected.len()), "{query}");
            assert_eq!(first["totalExact"], json!(true), "{query}");
        }
    }
}

#[tokio::test]
async fn cheapest_first_pages_through_equal_prices_across_segments_past_the_count_limit() {
    let app = spawn().await;
    let seller = app.user_token("seller").await;
    // Three segments of 20, each with the same three prices: every page
    // boundary falls among equal prices, in more than one segment.
    let prices: Vec<i64> = (0..20).map(|n| [500, 700, 900][n % 3]).collect();
    for batch in 0..3 {
        let items = priced("Urn", batch, &prices);
        seed_segment(&app, &seller, &items, "urn", 20 * (batch + 1)).await;
    }
    let everything = pages(&app, "term=urn&sort=price_asc", 100).await;
    assert_eq!(everything.len(), 60);
    let priced_within = |low: i64, high: i64| {
        let within = everything.iter().filter(|(_, p)| (low..=high).contains(p));
        within.count()
    };
    for (query, wanted) in [
        ("term=urn&sort=price_asc", 60),
        (
            "term=urn&sort=price_asc&minPrice=700",
            priced_within(700, 900),
        ),
        (
            "term=urn&sort=price_asc&minPrice=500&maxPrice=700",
            priced_within(500, 700),
        ),
        ("sort=price_asc&brand=acme", 30),
    ] {
        let first = search(&app, &format!("{query}&size=7")).await;
        assert_eq!(first["totalExact"], json!(false), "{query}");
        for size in [1, 7] {
            let found = pages(&app, query, size).await;
            let unique: HashSet<&String> = found.iter().map(|(id, _)| id).collect();
            assert_eq!(unique.len(), found.len(), "{query}, {size}: repeated");
            assert_eq!(found.len(), wanted, "{query}, {size}: skipped: {found:?}");
            let prices: Vec<i64> = found.iter().map(|(_, p)| *p).collect();
            assert!(prices.is_sorted(), "{query}, {size}: {prices:?}");
        }
    }
}

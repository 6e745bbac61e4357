//! Search that costs what its first page costs: the total counted up to a
//! limit (`totalExact`), cursors that stay exact past it, and typo and
//! prefix words expanded to a capped set of terms.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{Options, TestApp};
use crate::search::{all_pages, ids, search, seed};

/// The count limit these tests run with (the default is 10,000).
pub(crate) const LIMIT: u64 = 20;
/// Terms a typo or prefix word expands to at most (`agora::search::MAX_EXPANSIONS`).
const MAX_EXPANSIONS: u64 = 50;

/// A node counting at most [`LIMIT`] matches, rate limits off.
pub(crate) async fn spawn() -> TestApp {
    TestApp::spawn_with(
        Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .env("AGORA_SEARCH_TOTAL_EXACT_LIMIT", &LIMIT.to_string()),
    )
    .await
}

/// Polls until every item of `browse` is searchable (the index trails
/// writes by a commit); fails after a generous limit, asserting no time.
async fn until_indexed(app: &TestApp, query: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = search(app, &format!("{query}&size=100")).await;
        if page["items"].as_array().unwrap().len() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{query} never reached {count}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `count` items named `{name} {n}`, brands and categories in turn.
fn items(name: &str, count: usize) -> Vec<Value> {
    (0..count)
        .map(|n| {
            let brand = ["Acme", "Globex", "Hooli"][n % 3];
            let category = ["home", "kitchen"][n % 2];
            json!({"name": format!("{name} {n}"), "description": format!("A {}", name.to_lowercase()),
                "price": 1_000 + (n as i64 * 37) % 500, "quantity": 5,
                "brand": brand, "category": category})
        })
        .collect()
}

fn facet_counts(page: &Value, facet: &str) -> BTreeMap<String, u64> {
    page["facets"][facet]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn the_total_is_exact_up_to_the_count_limit_and_a_lower_bound_past_it() {
    let app = spawn().await;
    let seller = app.user_token("seller").await;
    let mut catalog = items("Kettle", LIMIT as usize);
    catalog.extend(items("Teapot", 2 * LIMIT as usize + 5));
    seed(&app, &seller, &catalog).await;
    until_indexed(&app, "term=teapot", 2 * LIMIT as usize + 5).await;
    until_indexed(&app, "term=kettle", LIMIT as usize).await;

    // At the limit: exact, and the facets count every match.
    for sort in ["relevance", "price_asc", "newest"] {
        let kettles = search(&app, &format!("term=kettle&sort={sort}&size=5")).await;
        assert_eq!(kettles["total"], json!(LIMIT), "{sort}");
        assert_eq!(kettles["totalExact"], json!(true), "{sort}");
        let brands = facet_counts(&kettles, "brand");
        assert_eq!(
            brands,
            BTreeMap::from([
                ("Acme".into(), 7),
                ("Globex".into(), 7),
                ("Hooli".into(), 6)
            ]),
            "{sort}"
        );
        let categories = facet_counts(&kettles, "category");
        assert_eq!(
            categories,
            BTreeMap::from([("home".into(), 10), ("kitchen".into(), 10)]),
            "{sort}"
        );
    }
    // Past it: a lower bound, said so; the page itself is whole.
    for query in [
        "term=teapot&sort=relevance",
        "term=teapot&sort=price_desc",
        "sort=newest",
    ] {
        let teapots = search(&app, &format!("{query}&size=10")).await;
        assert_eq!(teapots["total"], json!(LIMIT), "{query}");
        assert_eq!(teapots["totalExact"], json!(false), "{query}");
        assert_eq!(teapots["items"].as_array().unwrap().len(), 10, "{query}");
        assert!(teapots["nextCursor"].is_string(), "{query}");
        // Its facets count the best-ranked matches: as many as the limit
        // here (1,000 at most).
        for facet in ["brand", "category"] {
            let counted: u64 = facet_counts(&teapots, facet).values().sum();
            assert_eq!(counted, LIMIT, "{query}: {facet}");
        }
    }
}

#[tokio::test]
async fn paging_past_the_count_limit_while_items_are_added_neither_repeats_nor_skips_in_any_sort() {
    let app = spawn().await;
    let seller = app.user_token("seller").await;
    // Names alike: every lamp has the same relevance score, so the order
    // among them is the tie-break's alone.
    let created = seed(&app, &seller, &items("Desk Lamp", 3 * LIMIT as usize)).await;
    // The older half changes price: the index holds them again, after the
    // newer half, so the index's order differs from the ids' order.
    let half = created.len() / 2;
    for (n, id) in created[..half].iter().enumerate() {
        let body = json!({"price": 2_000 + n as i64});
        let patched = app
            .patch(&format!("/items/{id}"), Some(&seller), &body)
            .await;
        assert_eq!(patched.status(), StatusCode::OK);
    }
    let dearest = json!(2_000 + half as i64 - 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while search(&app, "term=lamp&sort=price_desc&size=1").await["items"][0]["price"] != dearest {
        assert!(
            Instant::now() < deadline,
            "the price changes never reached search"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let originals: HashSet<String> = created.into_iter().collect();
    for sort in ["relevance", "newest", "price_asc", "price_desc"] {
        let mut seen = Vec::new();
        let first = search(&app, &format!("term=lamp&sort={sort}&size=7")).await;
        assert_eq!(first["totalExact"], json!(false), "{sort}");
        seen.extend(ids(&first));
        let mut cursor = first["nextCursor"].as_str().map(str::to_owned);
        let mut added = 0;
        while let Some(c) = cursor {
            if added < 4 {
                // New lamps, cheapest and newest of all, scored like the rest.
                let body = json!({"name": format!("Desk Lamp {sort} {added}"), "description": "A lamp",
                    "price": 1, "quantity": 1, "brand": "Acme", "category": "home"});
                app.create_item(&seller, &body).await;
                added += 1;
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
            let page = search(&app, &format!("term=lamp&sort={sort}&size=7&cursor={c}")).await;
            assert_eq!(page["totalExact"], json!(false), "{sort}");
            seen.extend(ids(&page));
            cursor = page["nextCursor"].as_str().map(str::to_owned);
        }
        let unique: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: an item was repeated");
        let skipped: Vec<_> = originals.difference(&unique).collect();
        assert!(skipped.is_empty(), "{sort}: skipped {skipped:?}");
    }
}

/// Every hit of `query` once there are at least `count` (the index trails
/// the writes), or after a generous wait, asserting no time.
async fn settled(app: &TestApp, query: &str, count: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hits = all_pages(app, &format!("{query}&size=100")).await;
        if hits.len() as u64 >= count || Instant::now() > deadline {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_two_letter_prefix_and_a_misspelt_common_word_expand_to_at_most_the_cap() {
    let app = spawn().await;
    let seller = app.user_token("seller").await;
    let item =
        |name: String| json!({"name": name, "description": "A thing", "price": 500, "quantity": 1});
    // 70 rare words starting with "zq", and one on four items.
    let mut catalog: Vec<Value> = (0..70).map(|n| item(format!("Gadget zq{n:02}x"))).collect();
    catalog.extend((0..4).map(|n| item(format!("Widget zqpopular {n}"))));
    // 75 words one letter from "lampp" (but not "lampp"), and the common
    // word of them, "lamp", on six items.
    for at in 2..5 {
        for letter in 'a'..='z' {
            let mut word: Vec<char> = "lampp".chars().collect();
            word[at] = letter;
            let word: String = word.into_iter().collect();
            if word != "lampp" {
                catalog.push(item(format!("Thing {word}")));
            }
        }
    }
    let lamps: HashSet<String> = seed(
        &app,
        &seller,
        &(0..6)
            .map(|n| item(format!("Lamp {n}")))
            .collect::<Vec<_>>(),
    )
    .await
    .into_iter()
    .collect();
    let popular: HashSet<String> = seed(&app, &seller, &catalog)
        .await
        .into_iter()
        .skip(70)
        .take(4)
        .collect();
    for (query, count) in [
        ("term=gadget", 70),
        ("term=widget", 4),
        ("term=thing", 75),
        ("term=lamp", 6),
    ] {
        until_indexed(&app, query, count).await;
    }
    // The prefix: the most frequent word and 49 of the rare ones, not 71.
    let prefixed = settled(&app, "term=zq", 4 + MAX_EXPANSIONS - 1).await;
    assert_eq!(
        prefixed.len() as u64,
        4 + MAX_EXPANSIONS - 1,
        "{prefixed:?}"
    );
    assert!(
        popular.iter().all(|id| prefixed.contains(id)),
        "the frequent word was left out"
    );
    // The typo: "lamp" (six items) and 49 of the rare words, not 75.
    let misspelt = settled(&app, "term=lampp", 6 + MAX_EXPANSIONS - 1).await;
    assert_eq!(
        misspelt.len() as u64,
        6 + MAX_EXPANSIONS - 1,
        "{misspelt:?}"
    );
    assert!(
        lamps.iter().all(|id| misspelt.contains(id)),
        "the common word was left out"
    );
}

//! Search over a generated catalog: relevance, typos, prefixes, synonyms,
//! filters, sorts, facets, cursors, freshness and hostile input.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{run_to_exit, TestApp};

const NOUNS: [&str; 8] = [
    "Mouse", "Keyboard", "Monitor", "Lamp", "Chair", "Backpack", "Speaker", "Blender",
];
const ADJECTIVES: [&str; 6] = [
    "Wireless",
    "Compact",
    "Ergonomic",
    "Vintage",
    "Smart",
    "Rugged",
];
const BRANDS: [&str; 5] = ["Logi", "Acme", "Northwind", "Contoso", "Globex"];
const CATEGORIES: [&str; 4] = ["electronics", "home", "office", "outdoor"];

/// The deterministic catalog: every adjective × noun × 5 brands (240
/// items), plus a television and a few oddities.
fn catalog() -> Vec<Value> {
    let mut items = Vec::new();
    let mut n = 0i64;
    for noun in NOUNS {
        for adjective in ADJECTIVES {
            for brand in BRANDS {
                n += 1;
                items.push(json!({
                    "name": format!("{adjective} {noun}"),
                    "description": format!("A {} {} by {brand}, model {n}", adjective.to_lowercase(), noun.to_lowercase()),
                    "price": 500 + (n * 7919) % 20_000,
                    "quantity": if n % 9 == 0 { 0 } else { 10 },
                    "brand": brand,
                    "category": CATEGORIES[(n as usize) % CATEGORIES.len()],
                    "tags": [noun.to_lowercase()],
                    "attributes": {"color": if n % 2 == 0 { "black" } else { "silver" }},
                }));
            }
        }
    }
    items.push(
        json!({"name": "Lumps of Coal", "description": "For the stove",
        "price": 300, "quantity": 3, "category": "home"}),
    );
    items.push(
        json!({"name": "Ultra HD Television 55", "description": "A large screen",
        "price": 45_000, "quantity": 3, "brand": "Globex", "category": "electronics"}),
    );
    items
}

/// Lists `items` for `seller`, 16 at a time, the last one alone (so it is
/// the newest); their ids.
pub async fn seed(app: &TestApp, seller: &str, items: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    // 16 at a time; the last one alone, so it is the newest.
    let (last, rest) = items.split_last().expect("items");
    for chunk in rest.chunks(16).chain([std::slice::from_ref(last)]) {
        let made = futures::future::join_all(
            chunk
                .iter()
                .map(|body| async move { app.create_item(seller, body).await }),
        )
        .await;
        ids.extend(made.iter().map(|v| v["id"].as_str().unwrap().to_owned()));
    }
    ids
}

/// `GET /items?{query}`, which must answer 200.
pub async fn search(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/items?{query}"), None).await;
    assert_eq!(response.status(), StatusCode::OK, "GET /items?{query}");
    response.json().await.unwrap()
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids of a page's items, in order.
pub(crate) fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `query` until `check` holds (the index trails writes by a commit
/// interval); fails after a generous limit, never asserting a time.
async fn until(app: &TestApp, query: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = search(app, query).await;
        if check(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "never true for {query}: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every hit of `query`, following cursors (at most 100 pages: a cursor
/// that led back to the same page would otherwise never end).
pub(crate) async fn all_pages(app: &TestApp, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_owned(),
        };
        let page = search(app, &url).await;
        out.extend(ids(&page));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
    panic!("{query}: still paging after 100 pages");
}

#[tokio::test]
async fn search_finds_by_words_typos_prefixes_and_synonyms_and_filters_sorts_and_counts() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let items = catalog();
    let created = seed(&app, &seller, &items).await;
    let everything = until(&app, "size=1", |p| p["total"] == json!(items.len())).await;
    assert_eq!(everything["total"], json!(created.len()));

    // The design's query: term, cursor, size.
    let page = search(&app, "term=wireless%20mouse&size=5").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert!(page["nextCursor"].is_string());
    for name in names(&page) {
        assert_eq!(
            name, "Wireless Mouse",
            "items matching every word come first"
        );
    }
    let summary = &page["items"][0];
    for field in [
        "id",
        "name",
        "price",
        "currency",
        "brand",
        "category",
        "available",
        "score",
    ] {
        assert!(
            summary.get(field).is_some(),
            "summary lacks {field}: {summary}"
        );
    }

    // Typos: one edit per word at 4+ letters.
    let typo = search(&app, "term=wirless%20mose").await;
    assert!(
        names(&typo).iter().take(3).any(|n| n == "Wireless Mouse"),
        "wirless mose: {:?}",
        names(&typo)
    );
    // Exact words rank above fuzzy ones: "lamps" is one edit from "lumps"
    // (a typo match) and stems to "lamp" (an exact one).
    let lamps = names(&search(&app, "term=lamps&size=40").await);
    let coal = lamps.iter().position(|n| n == "Lumps of Coal");
    assert_eq!(
        coal,
        Some(30),
        "30 lamps first, then the typo match: {lamps:?}"
    );
    // A plural finds the singular (stemming).
    let plural = search(&app, "term=keyboards&size=3").await;
    assert!(
        names(&plural).iter().all(|n| n.ends_with("Keyboard")),
        "{:?}",
        names(&plural)
    );
    assert_eq!(plural["total"], json!(30));
    // A prefix of the last word.
    let prefix = search(&app, "term=ergonomic%20backp&size=3").await;
    assert_eq!(names(&prefix)[0], "Ergonomic Backpack");
    // Synonyms: tv finds the television.
    let tv = search(&app, "term=tv").await;
    assert_eq!(names(&tv), ["Ultra HD Television 55"]);
    // Attribute values and brands are searchable.
    let brand = search(&app, "term=northwind&size=100").await;
    assert_eq!(brand["total"], json!(48));

    // Filters hold for every hit; price sorts are ordered; facets sum to total.
    let filtered = all_pages(
        &app,
        "category=office&brand=LOGI&minPrice=2000&maxPrice=15000&inStock=true&sort=price_asc&size=7",
    )
    .await;
    assert!(!filtered.is_empty());
    let mut last_price = i64::MIN;
    for id in &filtered {
        let item = app.get_json(&format!("/items/{id}")).await;
        assert_eq!(item["category"], "office");
        assert_eq!(item["brand"], "Logi");
        let price = item["price"].as_i64().unwrap();
        assert!((2000..=15000).contains(&price), "price {price}");
        assert!(item["available"].as_i64().unwrap() > 0, "out of stock hit");
        assert!(price >= last_price, "not sorted by price");
        last_price = price;
    }
    let dear = search(&app, "term=chair&sort=price_desc&size=100").await;
    let prices: Vec<i64> = dear["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["price"].as_i64().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");
    let facets = search(&app, "term=speaker").await;
    let total = facets["total"].as_u64().unwrap();
    assert_eq!(total, 30);
    for facet in ["category", "brand"] {
        let sum: u64 = facets["facets"][facet]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(sum, total, "{facet} counts");
    }
    // Browsing (no term) defaults to newest first and pages through everything once.
    let browsed = all_pages(&app, "size=50").await;
    assert_eq!(browsed.len(), created.len());
    assert_eq!(browsed.iter().collect::<HashSet<_>>().len(), created.len());
    assert_eq!(browsed[0], *created.last().unwrap(), "newest first");

    // Autocomplete.
    let suggest: Value = app.get_json("/items/suggest?q=ergonomic%20bl").await;
    assert_eq!(suggest["suggestions"][0], "ergonomic blender");
}

#[tokio::test]
async fn hostile_terms_and_bad_parameters_get_answers_never_a_5xx() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    seed(&app, &seller, &catalog()[..20]).await;
    until(&app, "size=1", |p| p["total"] == json!(20)).await;
    let long = "a".repeat(5_000);
    let words = "mouse ".repeat(1_000);
    let hostile = [
        "\"",
        "\"unclosed",
        "a:b",
        "name:mouse",
        "(((",
        "[1 TO 5]",
        "*",
        "?",
        "~2",
        "^3",
        "-",
        "+",
        "&&",
        "||",
        "\\",
        "🙂🙂",
        "мышь",
        "鼠标",
        "مؤشر",
        "\u{0}",
        "%",
        &long,
        &words,
    ];
    for term in hostile {
        let response = app
            .client
            .get(app.url("/items"))
            .query(&[("term", term)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "term {term:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["items"].is_array(), "term {term:?}: {body}");
    }
    for (query, field) in [
        ("size=0", "size"),
        ("size=101", "size"),
        ("size=abc", "size"),
        ("minPrice=-1", "minPrice"),
        ("minPrice=9&maxPrice=3", "maxPrice"),
        ("sort=cheapest", "sort"),
        ("inStock=yes", "inStock"),
    ] {
        let response = app.get(&format!("/items?{query}"), None).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "VALIDATION_FAILED");
        assert!(body["errors"][field].is_string(), "{query}: {body}");
    }
    // Cursors: garbled, forged, or from another search are refused.
    let page = search(&app, "size=3").await;
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let mut forged = cursor.clone().into_bytes();
    let at = forged.len() / 2;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    for bad in [
        "garbage".to_owned(),
        String::from_utf8(forged).unwrap(),
        format!("{cursor}x"),
    ] {
        let response = app.get(&format!("/items?size=3&cursor={bad}"), None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "cursor {bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "INVALID_CURSOR");
    }
    let other_search = app
        .get(
            &format!("/items?size=3&sort=price_asc&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(other_search.status(), StatusCode::BAD_REQUEST);
    let ok = app
        .get(&format!("/items?size=3&cursor={cursor}"), None)
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn paging_while_matching_items_are_added_neither_repeats_nor_skips() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let lamps: Vec<Value> = (0..30)
        .map(|i| json!({"name": format!("Desk Lamp {i}"), "description": "A lamp", "price": 1000 + i, "quantity": 5}))
        .collect();
    let originals: HashSet<String> = seed(&app, &seller, &lamps).await.into_iter().collect();
    until(&app, "term=lamp&size=1", |p| p["total"] == json!(30)).await;
    for sort in ["relevance", "newest", "price_asc"] {
        let mut seen = Vec::new();
        let first = search(&app, &format!("term=lamp&sort={sort}&size=7")).await;
        seen.extend(ids(&first));
        let mut cursor = first["nextCursor"].as_str().map(str::to_owned);
        let mut added = 0;
        if sort == "price_asc" {
            // An item not served yet becomes the cheapest: on a fresh
            // snapshot it would sort before the cursor and be skipped.
            let seen_ids: HashSet<&String> = seen.iter().collect();
            let later = originals.iter().find(|id| !seen_ids.contains(id)).unwrap();
            let patched = app
                .patch(
                    &format!("/items/{later}"),
                    Some(&seller),
                    &json!({"price": 1}),
                )
                .await;
            assert_eq!(patched.status(), StatusCode::OK);
        }
        while let Some(c) = cursor {
            if added < 5 {
                // New matching items, cheaper and newer than any: they would
                // shift every later page of an offset-based pager.
                let body = json!({"name": format!("Lamp extra {sort} {added}"), "description": "Another lamp", "price": 1, "quantity": 1});
                app.create_item(&seller, &body).await;
                added += 1;
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
            let page = search(&app, &format!("term=lamp&sort={sort}&size=7&cursor={c}")).await;
            seen.extend(ids(&page));
            cursor = page["nextCursor"].as_str().map(str::to_owned);
        }
        let unique: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: an item was repeated");
        assert!(
            originals.is_subset(&unique),
            "{sort}: an item that existed was skipped"
        );
    }
}

#[tokio::test]
async fn changes_reach_search_and_survive_kill_9_and_a_reindex() {
    let mut app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app
        .create_item(&seller, &json!({"name": "Copper Kettle", "description": "Boils water", "price": 2500, "quantity": 1, "category": "kitchen"}))
        .await;
    let id = item["id"].as_str().unwrap().to_owned();
    until(&app, "term=kettle", |p| ids(p) == [id.clone()]).await;

    // An update moves the item to its new words.
    let patched = app
        .patch(
            &format!("/items/{id}"),
            Some(&seller),
            &json!({"name": "Brass Teapot"}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    until(&app, "term=teapot", |p| ids(p) == [id.clone()]).await;
    until(&app, "term=kettle", |p| p["total"] == json!(0)).await;

    // Selling out flips the in-stock filter.
    until(&app, "term=teapot&inStock=true", |p| p["total"] == json!(1)).await;
    let sold = app
        .post(
            &format!("/items/{id}/stock"),
            Some(&seller),
            &json!({"delta": -1}),
        )
        .await;
    assert_eq!(sold.status(), StatusCode::OK);
    until(&app, "term=teapot&inStock=true", |p| p["total"] == json!(0)).await;
    assert_eq!(search(&app, "term=teapot").await["total"], json!(1));

    // Acknowledged just before kill -9: searchable after the restart.
    let late = app
        .create_item(&seller, &json!({"name": "Cast Iron Skillet", "description": "Heavy", "price": 4000, "quantity": 2}))
        .await;
    let late_id = late["id"].as_str().unwrap().to_owned();
    app.kill9();
    let mut app = app.restart();
    until(&app, "term=skillet", |p| ids(p) == [late_id.clone()]).await;
    assert!(
        !app.logs().contains("search index rebuilt"),
        "the index resumed from its own offset, without a rebuild"
    );

    // A delete removes it.
    let deleted = app
        .delete(&format!("/items/{late_id}"), Some(&seller))
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    until(&app, "term=skillet", |p| p["total"] == json!(0)).await;

    // `agora reindex` rebuilds the same index from the items.
    app.terminate();
    let dir = app.data_dir().to_owned();
    let node = dir.join("node");
    let (status, output) = run_to_exit(
        &dir,
        &["reindex", "--data-dir", node.to_str().unwrap()],
        &[],
    );
    assert!(status.success(), "reindex failed: {output}");
    assert!(output.contains("1 items"), "{output}");
    let app = app.restart();
    assert_eq!(ids(&search(&app, "term=teapot").await), [id]);
    assert_eq!(search(&app, "term=skillet").await["total"], json!(0));
}

/// The `agora_search_cache_total{result=…}` counter in `/metrics`.
async fn cache_count(app: &TestApp, result: &str) -> u64 {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let prefix = format!("agora_search_cache_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_repeated_search_is_answered_from_the_cache_until_the_index_changes() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let kettles: Vec<Value> = (0..5)
        .map(|i| json!({"name": format!("Steel Kettle {i}"), "description": "Boils water", "price": 2000 + i, "quantity": 3}))
        .collect();
    let originals = seed(&app, &seller, &kettles).await;
    until(&app, "term=kettle&size=2", |p| p["total"] == json!(5)).await;

    // Asked again on the same snapshot: the same page, from the cache, and
    // its cursor still leads through every page.
    let hits = cache_count(&app, "hit").await;
    let first = search(&app, "term=kettle&size=2").await;
    let again = search(&app, "term=kettle&size=2").await;
    assert_eq!(ids(&first), ids(&again));
    assert_eq!(again["total"], json!(5));
    assert_eq!(again["facets"], first["facets"]);
    assert!(
        cache_count(&app, "hit").await >= hits + 2,
        "served from the cache"
    );
    let mut paged = all_pages(&app, "term=kettle&size=2").await;
    paged.sort();
    let mut expected = originals.clone();
    expected.sort();
    assert_eq!(paged, expected, "every page, each item once");

    // The same new page asked by many at once is computed once.
    let misses = cache_count(&app, "miss").await;
    let pages =
        futures::future::join_all((0..8).map(|_| search(&app, "term=kettle&sort=newest&size=4")))
            .await;
    assert!(pages
        .iter()
        .all(|p| ids(p) == ids(&pages[0]) && p["total"] == json!(5)));
    assert_eq!(cache_count(&app, "miss").await, misses + 1, "computed once");

    // Requests that differ only in size, sort or a filter are answers of
    // their own on the same snapshot.
    assert_eq!(ids(&search(&app, "term=kettle&size=3").await).len(), 3);
    let dearest = search(&app, "term=kettle&sort=price_desc&size=1").await;
    assert_eq!(dearest["items"][0]["price"], json!(2004));
    let cheap = search(&app, "term=kettle&maxPrice=2001&size=2").await;
    assert_eq!(cheap["total"], json!(2));

    // Stock that does not flip the in-stock flag leaves the snapshot as it
    // is: the page comes from the cache, with today's `available`.
    let first_id = originals[0].clone();
    let sold = app
        .post(
            &format!("/items/{first_id}/stock"),
            Some(&seller),
            &json!({"delta": -1}),
        )
        .await;
    assert_eq!(sold.status(), StatusCode::OK);
    let query = "term=kettle&sort=price_asc&size=1";
    search(&app, query).await;
    let hits = cache_count(&app, "hit").await;
    let cheapest = search(&app, query).await;
    assert!(
        cache_count(&app, "hit").await > hits,
        "served from the cache"
    );
    assert_eq!(ids(&cheapest), [first_id]);
    assert_eq!(cheapest["items"][0]["available"], json!(2));

    // A new item starts a new snapshot: the same request sees it.
    let new = app
        .create_item(&seller, &json!({"name": "Copper Kettle", "description": "Boils water", "price": 1, "quantity": 1}))
        .await;
    let new_id = new["id"].as_str().unwrap().to_owned();
    until(&app, "term=kettle&size=2", |p| p["total"] == json!(6)).await;
    assert!(all_pages(&app, "term=kettle&size=2")
        .await
        .contains(&new_id));
    until(&app, query, |p| ids(p) == [new_id.clone()]).await;
}

#[tokio::test]
async fn a_result_page_shows_each_items_own_stock_and_leaves_out_a_withdrawn_one() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let lantern = |price: i64, stock: Value| {
        let mut body =
            json!({"name": "Brass Lantern", "description": "Lights the way", "price": price});
        match stock {
            Value::Array(quantities) => {
                body["variants"] = quantities
                    .iter()
                    .enumerate()
                    .map(|(i, q)| json!({"sku": format!("L{price}-{i}"), "quantity": q}))
                    .collect();
            }
            quantity => body["quantity"] = quantity,
        }
        body
    };
    let made = seed(
        &app,
        &seller,
        &[
            lantern(100, json!(5)),
            lantern(200, json!([3, 4])),
            lantern(300, json!(9)),
            lantern(400, json!([1, 0, 2])),
        ],
    )
    .await;
    let query = "term=lantern&sort=price_asc";
    let available = |page: &Value| -> Vec<i64> {
        let items = page["items"].as_array().unwrap();
        items
            .iter()
            .map(|i| i["available"].as_i64().unwrap())
            .collect()
    };
    let page = until(&app, query, |p| p["total"] == json!(4)).await;
    assert_eq!(ids(&page), made);
    assert_eq!(
        available(&page),
        [5, 7, 9, 3],
        "each item's variants summed"
    );

    let withdrawn = app
        .delete(&format!("/items/{}", made[2]), Some(&seller))
        .await;
    assert_eq!(withdrawn.status(), StatusCode::NO_CONTENT);
    // At once, whether or not the index has caught up.
    let page = search(&app, query).await;
    assert_eq!(
        ids(&page),
        [made[0].clone(), made[1].clone(), made[3].clone()]
    );
    assert_eq!(available(&page), [5, 7, 3]);
}

//! Recommendations: popular and bought-together from confirmed orders,
//! personalized picks without the buyer's own purchases, similar items from
//! search, a paused recommender that resumes from its offset, restarts and
//! rebuilds that count nothing twice, and the event log exported as JSON
//! lines.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{eventually, problem, run_output, run_to_exit, TestApp};
use crate::shop::{server, GOOD_CARD};

/// Lists an item; returns its id.
pub async fn list(
    app: &TestApp,
    seller: &str,
    name: &str,
    category: &str,
    brand: &str,
    quantity: i64,
) -> String {
    let body = json!({"name": name, "description": format!("{name} for the test"), "price": 1000,
                      "quantity": quantity, "category": category, "brand": brand});
    app.create_item(seller, &body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Buys one of each item as `buyer` (a confirmed order).
pub async fn buy(app: &TestApp, buyer: &str, items: &[&str]) {
    let mut total = 0;
    let mut cart_id = String::new();
    for item in items {
        let response = app
            .patch(
                "/cart",
                Some(buyer),
                &json!({"itemId": item, "quantity": 1}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "fill the cart");
        let cart: Value = response.json().await.unwrap();
        total = cart["total"].as_i64().unwrap();
        cart_id = cart["id"].as_str().unwrap().to_owned();
    }
    let body = json!({"cartId": cart_id, "amount": total,
                      "paymentInfo": {"paymentType": "CARD", "cardNo": GOOD_CARD}});
    let response = app.post("/checkout", Some(buyer), &body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "checkout");
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "CONFIRMED");
}

pub async fn recommendations(app: &TestApp, token: Option<&str>, size: usize) -> Value {
    let response = app
        .get(&format!("/recommendations?size={size}"), token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

pub async fn related(app: &TestApp, item: &str) -> Vec<Value> {
    let response = app
        .get(&format!("/items/{item}/related?size=5"), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

pub fn ids(items: &Value) -> Vec<String> {
    items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the recommender has applied every event.
pub async fn caught_up(app: &TestApp) {
    eventually("the recommender catches up", || async {
        let ready = app.get_json("/ready").await;
        ready["recommender"]["lag"] == 0
    })
    .await;
}

#[tokio::test]
async fn orders_make_items_popular_related_and_personal() {
    let app = server(&[("AGORA_PAYMENT_LATENCY_MS", "0")]).await;
    let seller = app.user_token("seller").await;
    let a = list(&app, &seller, "Arc Lamp", "lamps", "Lumo", 100).await;
    let b = list(&app, &seller, "Bright Bulb", "bulbs", "Lumo", 100).await;
    let c = list(&app, &seller, "Cone Lamp", "lamps", "Other", 100).await;
    let d = list(&app, &seller, "Oak Desk", "desks", "Oak", 100).await;
    let d2 = list(&app, &seller, "Oak Desk Large", "desks", "Oak", 100).await;
    let sold_out = list(&app, &seller, "Empty Lamp", "lamps", "Lumo", 0).await;
    let withdrawn = list(&app, &seller, "Old Lamp", "lamps", "Lumo", 100).await;

    let buyers: Vec<String> =
        futures::future::join_all((0..4).map(|_| app.user_token("buyer"))).await;
    buy(&app, &buyers[0], &[&a, &b]).await;
    buy(&app, &buyers[1], &[&a, &b]).await;
    buy(&app, &buyers[2], &[&a, &c]).await;
    buy(&app, &buyers[3], &[&a]).await;
    // A wished-for item gains a little; a withdrawn one never shows.
    let fan = app.user_token("buyer").await;
    assert_eq!(
        app.client
            .put(app.url(&format!("/wishlist/{withdrawn}")))
            .bearer_auth(&fan)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/items/{withdrawn}"), Some(&seller))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    caught_up(&app).await;

    // Popular, for anyone: the most ordered first; nothing sold out or withdrawn.
    let popular = recommendations(&app, None, 50).await;
    assert_eq!(popular["strategy"], "popular");
    let popular_ids = ids(&popular);
    assert_eq!(
        popular_ids[..3],
        [a.clone(), b.clone(), c.clone()],
        "{popular}"
    );
    assert!(!popular_ids.contains(&sold_out) && !popular_ids.contains(&withdrawn));
    assert_eq!(popular["items"][0]["reason"], "popular");
    assert_eq!(popular["items"][0]["available"], 96);
    // A buyer without history gets the same.
    let newcomer = app.user_token("buyer").await;
    let theirs = recommendations(&app, Some(&newcomer), 50).await;
    assert_eq!(theirs["strategy"], "popular");
    assert_eq!(ids(&theirs), popular_ids);

    // Related: bought together, most often first, with the counts.
    let with_a = related(&app, &a).await;
    assert_eq!(with_a[0]["id"], b.as_str(), "{with_a:?}");
    assert_eq!(with_a[0]["reason"], "bought_together");
    assert_eq!(with_a[0]["boughtTogether"], 2);
    assert_eq!(with_a[1]["id"], c.as_str());
    assert_eq!(with_a[1]["boughtTogether"], 1);
    assert!(
        with_a.iter().all(|i| i["id"] != a.as_str()),
        "never the item itself"
    );
    // Never bought with anything: similar items from search.
    eventually("similar items come from search", || async {
        related(&app, &d)
            .await
            .iter()
            .any(|i| i["id"] == d2.as_str() && i["reason"] == "similar")
    })
    .await;

    // Personalized: from the buyer's history, never what they bought.
    let mine = recommendations(&app, Some(&buyers[0]), 10).await;
    assert_eq!(mine["strategy"], "personalized");
    let mine_ids = ids(&mine);
    assert!(!mine_ids.contains(&a) && !mine_ids.contains(&b), "{mine}");
    assert_eq!(mine_ids[0], c, "bought with what they bought: {mine}");
    assert_eq!(mine["items"][0]["reason"], "bought_together");
    assert!(!mine_ids.contains(&sold_out) && !mine_ids.contains(&withdrawn));

    // A new item is recommendable within seconds: to a buyer of its
    // category and brand, right after what was bought with their purchases.
    let fresh = list(&app, &seller, "Fresh Lamp", "lamps", "Lumo", 5).await;
    eventually("a new item is recommended", || async {
        let mine = recommendations(&app, Some(&buyers[0]), 2).await;
        ids(&mine) == [c.clone(), fresh.clone()]
    })
    .await;

    // Bad input.
    for size in ["0", "51", "x"] {
        let response = app
            .get(&format!("/recommendations?size={size}"), None)
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = problem(response).await;
        assert_eq!(body["code"], "VALIDATION_FAILED");
        assert!(body["errors"]["size"].is_string(), "{body}");
    }
    let response = app.get("/items/nope/related", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app.get("/recommendations", Some("not-a-token")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// A → B count in `related(A)`.
pub async fn together(app: &TestApp, a: &str, b: &str) -> Option<u64> {
    related(app, a)
        .await
        .iter()
        .find(|i| i["id"] == b && i["reason"] == "bought_together")
        .and_then(|i| i["boughtTogether"].as_u64())
}

#[tokio::test]
async fn a_paused_recommender_resumes_and_nothing_is_counted_twice() {
    let mut app = server(&[
        ("AGORA_PAYMENT_LATENCY_MS", "0"),
        ("AGORA_RECOMMENDER_PAUSED", "true"),
    ])
    .await;
    let seller = app.user_token("seller").await;
    let a = list(&app, &seller, "Arc Lamp", "lamps", "Lumo", 100).await;
    let b = list(&app, &seller, "Bright Bulb", "bulbs", "Lumo", 100).await;
    for _ in 0..3 {
        let buyer = app.user_token("buyer").await;
        buy(&app, &buyer, &[&a, &b]).await;
    }
    // Paused: checkout works, the lag shows, nothing is learned.
    let ready = app.get_json("/ready").await;
    assert!(ready["recommender"]["lag"].as_u64().unwrap() > 0, "{ready}");
    assert_eq!(together(&app, &a, &b).await, None);
    assert!(ids(&recommendations(&app, None, 10).await).is_empty());

    // Resumed (same data, not paused): it catches up from its offset.
    app.kill9();
    let app = app.restart_with(&[("AGORA_RECOMMENDER_PAUSED", "false")]);
    caught_up(&app).await;
    assert_eq!(together(&app, &a, &b).await, Some(3));
    // Bought equally often: both popular, in either order.
    let mut popular = ids(&recommendations(&app, None, 10).await);
    popular.sort();
    let mut both = [a.clone(), b.clone()];
    both.sort();
    assert_eq!(popular, both);
    let buyer = app.user_token("buyer").await;
    buy(&app, &buyer, &[&a, &b]).await;
    caught_up(&app).await;
    assert_eq!(together(&app, &a, &b).await, Some(4));
    let newest = app.get_json("/ready").await["events"]["newest"]
        .as_u64()
        .unwrap();

    // After kill -9, a node that is not consuming shows the durable state:
    // everything applied, once.
    let mut app = app;
    app.kill9();
    let mut app = app.restart_with(&[("AGORA_RECOMMENDER_PAUSED", "true")]);
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["recommender"]["appliedEvent"], newest, "{ready}");
    assert_eq!(together(&app, &a, &b).await, Some(4));

    // A full rebuild from the log, then a node that does not consume: the
    // rebuild alone gives the same counts.
    app.terminate();
    let data = app.data_dir().join("node");
    let data_arg = data.to_str().unwrap();
    let (status, output) = run_to_exit(
        app.data_dir(),
        &["recommendations", "rebuild", "--data-dir", data_arg],
        &[],
    );
    assert!(status.success(), "{output}");
    assert!(
        output.contains(&format!("recommendations rebuilt: {newest} events")),
        "{output}"
    );
    let mut app = app.restart();
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["recommender"]["appliedEvent"], newest, "{ready}");
    assert_eq!(together(&app, &a, &b).await, Some(4), "after the rebuild");
    assert_eq!(together(&app, &b, &a).await, Some(4));
    app.terminate();

    // The log as JSON lines on stdout: every event, in order, orders joined
    // with their lines; the logs go to stderr.
    let (status, stdout, stderr) = run_output(
        app.data_dir(),
        &["events", "export", "--data-dir", data_arg],
    );
    assert!(status.success(), "{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len() as u64, newest);
    assert!(
        stderr.contains(&format!("exported {newest} events")),
        "{stderr}"
    );
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=newest).collect::<Vec<_>>(), "in order, no gaps");
    let created = lines
        .iter()
        .find(|l| l["type"] == "item.created" && l["data"]["id"] == a.as_str())
        .expect("item.created");
    assert_eq!(created["data"]["category"], "lamps");
    let confirmed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "order.updated" && l["data"]["status"] == "CONFIRMED")
        .collect();
    assert_eq!(confirmed.len(), 4);
    let bought: Vec<&str> = confirmed[0]["data"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["itemId"].as_str().unwrap())
        .collect();
    assert_eq!(bought, [a.as_str(), b.as_str()]);
    // To a file, from an offset, limited.
    let out = app.data_dir().join("events.jsonl");
    let (status, _, stderr) = run_output(
        app.data_dir(),
        &[
            "events",
            "export",
            "--data-dir",
            data_arg,
            "--after",
            "2",
            "--limit",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(status.success(), "{stderr}");
    let seqs: Vec<u64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [3, 4, 5]);

    // What a buyer just ordered is never recommended to them, even before
    // the recommender has seen the order (it is paused here).
    let app = app.restart();
    let buyer = app.user_token("buyer").await;
    buy(&app, &buyer, &[&a]).await;
    let theirs = ids(&recommendations(&app, Some(&buyer), 10).await);
    assert_eq!(theirs, std::slice::from_ref(&b));
    let mut others = ids(&recommendations(&app, None, 10).await);
    others.sort();
    assert_eq!(others, both);
}

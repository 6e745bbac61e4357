//! The seller catalog: items and stock.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{item_path, mouse, problem, TestApp};

#[tokio::test]
async fn the_original_design_body_lists_an_item() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let response = app.post("/items", Some(&seller), &mouse()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/items/{}", created["id"].as_str().unwrap())
    );

    let fetched: Value = app.get(&location, None).await.json().await.unwrap();
    assert_eq!(fetched["name"], "Wireless Mouse");
    assert_eq!(fetched["description"], "Ergonomic Bluetooth Mouse");
    assert_eq!(fetched["price"], 999);
    assert_eq!(fetched["currency"], "INR");
    assert_eq!(fetched["quantity"], 100);
    assert_eq!(fetched["available"], 100);
    assert_eq!(fetched["status"], "active");
    assert_eq!(fetched["variants"], json!([]));
    assert_eq!(fetched["sellerId"], created["sellerId"]);
}

#[tokio::test]
async fn the_full_body_with_variants_gives_each_variant_its_own_stock() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let body = json!({
        "name": "Wireless Mouse", "description": "Ergonomic Bluetooth Mouse", "price": 999, "quantity": 100,
        "currency": "inr", "sku": "MOUSE-001", "brand": "Logi", "category": "Electronics",
        "tags": ["mouse", "Bluetooth", "mouse"], "attributes": {"color": "black", "dpi": 1600},
        "variants": [
            {"sku": "MOUSE-001-BLK", "attributes": {"color": "black"}, "price": 999, "quantity": 60},
            {"sku": "MOUSE-001-WHT", "attributes": {"color": "white"}, "price": 1049, "quantity": 40}
        ]
    });
    let item = app.create_item(&seller, &body).await;
    assert_eq!(item["currency"], "INR");
    assert_eq!(item["category"], "electronics");
    assert_eq!(item["tags"], json!(["mouse", "bluetooth"]));
    assert_eq!(item["attributes"], json!({"color": "black", "dpi": 1600}));
    assert_eq!(
        item["available"], 100,
        "the sum of the variants; quantity is ignored"
    );
    let variants = item["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    assert_eq!(
        (
            variants[1]["price"].clone(),
            variants[1]["available"].clone()
        ),
        (json!(1049), json!(40))
    );
    assert_ne!(variants[0]["variantId"], variants[1]["variantId"]);
}

#[tokio::test]
async fn a_buyer_may_not_list_items() {
    let app = TestApp::spawn().await;
    let buyer = app.user_token("buyer").await;
    let response = app.post("/items", Some(&buyer), &mouse()).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(problem(response).await["code"], "FORBIDDEN");
}

#[tokio::test]
async fn listing_without_a_token_is_401() {
    let app = TestApp::spawn().await;
    let response = app.post("/items", None, &mouse()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let raw = app
        .client
        .post(app.url("/items"))
        .bearer_auth(&seller)
        .header("content-type", "application/json")
        .body("{\"name\": \"Mouse\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(raw).await["code"], "MALFORMED_REQUEST");
    for body in [
        json!({"name": "n", "description": "d", "price": "999", "quantity": 1}),
        json!({"name": "n", "description": "d", "price": 9.99, "quantity": 1}),
        json!([1, 2, 3]),
    ] {
        let response = app.post("/items", Some(&seller), &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(problem(response).await["code"], "MALFORMED_REQUEST");
    }
}

#[tokio::test]
async fn a_negative_price_and_an_empty_name_are_422_naming_both() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let response = app
        .post(
            "/items",
            Some(&seller),
            &json!({"name": "", "description": "d", "price": -1, "quantity": 1}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "VALIDATION_FAILED");
    assert!(
        problem["errors"]["name"].is_string() && problem["errors"]["price"].is_string(),
        "{problem}"
    );
}

#[tokio::test]
async fn a_negative_quantity_is_422_even_beside_variants_that_ignore_it() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let body = |quantity: i64| {
        json!({"name": "n", "description": "d", "price": 5, "quantity": quantity,
            "variants": [{"sku": "V", "quantity": 2}]})
    };
    let response = app.post("/items", Some(&seller), &body(-1)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(response).await;
    assert!(problem["errors"]["quantity"].is_string(), "{problem}");
    let item = app.create_item(&seller, &body(0)).await;
    assert_eq!(item["available"], 2, "a valid quantity is still ignored");
}

#[tokio::test]
async fn missing_required_fields_are_named() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let problem = problem(app.post("/items", Some(&seller), &json!({})).await).await;
    for field in ["name", "description", "price", "quantity"] {
        assert_eq!(problem["errors"][field], "is required", "{problem}");
    }
}

#[tokio::test]
async fn seller_text_is_normalized_before_it_is_stored() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let body = json!({"name": "  <b>Wireless</b>\t\tMouse\u{0007} ", "description": "<script>alert(1)</script>Nice\n\n\n\nmouse",
        "price": 1, "quantity": 1, "brand": " Logi\u{202E} ", "attributes": {"note": "<i>soft</i> grip"}});
    let item = app.create_item(&seller, &body).await;
    assert_eq!(item["name"], "Wireless Mouse");
    assert_eq!(item["description"], "alert(1) Nice\n\nmouse");
    assert_eq!(item["brand"], "Logi");
    assert_eq!(item["attributes"]["note"], "soft grip");
}

#[tokio::test]
async fn limits_are_enforced_with_the_field_named() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let deep = json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}});
    let cases = [
        ("name", json!({"name": "x".repeat(201)})),
        ("description", json!({"description": "x".repeat(10_001)})),
        (
            "tags",
            json!({"tags": (0..51).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
        ),
        (
            "variants",
            json!({"variants": (0..101).map(|i| json!({"sku": format!("V{i}")})).collect::<Vec<_>>()}),
        ),
        ("attributes", json!({"attributes": deep})),
        ("attributes", json!({"attributes": "not an object"})),
        ("sku", json!({"sku": "has spaces"})),
        ("currency", json!({"currency": "RUPEE"})),
        ("quantity", json!({"quantity": -3})),
    ];
    for (field, overrides) in cases {
        let mut body = mouse();
        for (key, value) in overrides.as_object().unwrap() {
            body[key] = value.clone();
        }
        let response = app.post("/items", Some(&seller), &body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}"
        );
        let problem = problem(response).await;
        assert!(
            problem["errors"][field].is_string(),
            "{field} not named: {problem}"
        );
    }
    let mut at_limit = mouse();
    at_limit["name"] = json!("x".repeat(200));
    at_limit["tags"] = json!((0..50).map(|i| format!("t{i}")).collect::<Vec<_>>());
    assert_eq!(
        app.post("/items", Some(&seller), &at_limit).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn sku_codes_are_unique_per_seller_only() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let other = app.user_token("seller").await;
    let mut body = mouse();
    body["sku"] = json!("MOUSE-001");
    app.create_item(&seller, &body).await;

    body["sku"] = json!("mouse-001");
    let response = app.post("/items", Some(&seller), &body).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem(response).await["errors"]["sku"].is_string());

    let with_variant =
        json!({"name": "n", "description": "d", "price": 5, "variants": [{"sku": "MOUSE-001"}]});
    let response = app.post("/items", Some(&seller), &with_variant).await;
    assert!(problem(response).await["errors"]["variants[0].sku"].is_string());

    assert_eq!(
        app.post("/items", Some(&other), &body).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn the_owner_can_patch_fields_and_clear_optional_ones() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let mut body = mouse();
    body["brand"] = json!("Logi");
    let item = app.create_item(&seller, &body).await;
    let path = item_path(&item);
    let patch = json!({"name": "Silent Mouse", "price": 1099, "brand": null, "tags": ["quiet"], "attributes": {"dpi": 800}});
    let response = app.patch(&path, Some(&seller), &patch).await;
    assert_eq!(response.status(), StatusCode::OK);
    let fetched = app.get_json(&path).await;
    assert_eq!(fetched["name"], "Silent Mouse");
    assert_eq!(fetched["price"], 1099);
    assert_eq!(fetched["brand"], Value::Null);
    assert_eq!(fetched["tags"], json!(["quiet"]));
    assert_eq!(
        fetched["description"], "Ergonomic Bluetooth Mouse",
        "untouched"
    );
    assert_ne!(fetched["updatedAt"], fetched["createdAt"]);
}

#[tokio::test]
async fn someone_elses_item_is_404_to_patch_delete_or_restock() {
    let app = TestApp::spawn().await;
    let owner = app.user_token("seller").await;
    let stranger = app.user_token("seller").await;
    let item = app.create_item(&owner, &mouse()).await;
    let path = item_path(&item);
    assert_eq!(
        app.patch(&path, Some(&stranger), &json!({"name": "Mine"}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, Some(&stranger)).await.status(),
        StatusCode::NOT_FOUND
    );
    let restock = app
        .post(
            &format!("{path}/stock"),
            Some(&stranger),
            &json!({"delta": 5}),
        )
        .await;
    assert_eq!(restock.status(), StatusCode::NOT_FOUND);
    let fetched = app.get_json(&path).await;
    assert_eq!(
        (fetched["name"].clone(), fetched["available"].clone()),
        (json!("Wireless Mouse"), json!(100))
    );
}

#[tokio::test]
async fn an_invalid_patch_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let path = item_path(&item);
    let response = app
        .patch(
            &path,
            Some(&seller),
            &json!({"name": "Fine", "price": -5, "status": "gone"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = problem(response).await;
    assert!(problem["errors"]["price"].is_string() && problem["errors"]["status"].is_string());
    let fetched = app.get_json(&path).await;
    assert_eq!(fetched["name"], "Wireless Mouse");
}

#[tokio::test]
async fn deleting_makes_an_item_inactive_but_still_readable() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let path = item_path(&item);
    assert_eq!(
        app.delete(&path, Some(&seller)).await.status(),
        StatusCode::NO_CONTENT
    );
    let fetched = app.get(&path, None).await;
    assert_eq!(fetched.status(), StatusCode::OK);
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(fetched["status"], "inactive");
    assert_eq!(
        app.delete(&path, Some(&seller)).await.status(),
        StatusCode::NO_CONTENT,
        "idempotent"
    );
    let revived = app
        .patch(&path, Some(&seller), &json!({"status": "active"}))
        .await;
    assert_eq!(revived.json::<Value>().await.unwrap()["status"], "active");
}

#[tokio::test]
async fn unknown_and_garbage_item_ids_are_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/items/01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "/items/not-an-id",
        "/items/%F0%9F%92%A5",
    ] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(problem(response).await["code"], "NOT_FOUND");
    }
}

#[tokio::test]
async fn stock_moves_by_delta_and_never_below_zero() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let path = format!("/items/{}/stock", item["id"].as_str().unwrap());
    let response = app.post(&path, Some(&seller), &json!({"delta": 25})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let level: Value = response.json().await.unwrap();
    assert_eq!(
        (level["available"].clone(), level["reserved"].clone()),
        (json!(125), json!(0))
    );

    let response = app
        .post(&path, Some(&seller), &json!({"delta": -126}))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "INSUFFICIENT_STOCK");
    assert_eq!(problem["available"], 125);

    app.post(&path, Some(&seller), &json!({"delta": -125}))
        .await;
    let fetched = app.get_json(&item_path(&item)).await;
    assert_eq!(fetched["available"], 0);
}

#[tokio::test]
async fn stock_of_an_item_with_variants_needs_a_variant_id() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let body = json!({"name": "Shirt", "description": "Cotton", "price": 500,
        "variants": [{"sku": "S", "quantity": 1}, {"sku": "M", "quantity": 2}]});
    let item = app.create_item(&seller, &body).await;
    let path = format!("/items/{}/stock", item["id"].as_str().unwrap());
    let missing = app.post(&path, Some(&seller), &json!({"delta": 1})).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem(missing).await["errors"]["variantId"].is_string());
    let foreign = app
        .post(
            &path,
            Some(&seller),
            &json!({"delta": 1, "variantId": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        )
        .await;
    assert_eq!(foreign.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let medium = item["variants"][1]["variantId"].clone();
    let level: Value = app
        .post(
            &path,
            Some(&seller),
            &json!({"delta": 3, "variantId": medium}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(level["available"], 5);
    let fetched = app.get_json(&item_path(&item)).await;
    assert_eq!(fetched["variants"][1]["available"], 5);
    assert_eq!(fetched["variants"][0]["available"], 1);
    assert_eq!(fetched["available"], 6);
}

#[tokio::test]
async fn a_delete_racing_patches_is_never_undone() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    for round in 0..3 {
        let item = app.create_item(&seller, &mouse()).await;
        let path = item_path(&item);
        let patches = (0..20).map(|i| {
            let (app, seller, path) = (&app, &seller, &path);
            async move {
                let body = json!({"name": format!("Renamed {round}-{i}")});
                app.patch(path, Some(seller), &body).await.status()
            }
        });
        let delete = async { app.delete(&path, Some(&seller)).await.status() };
        let (statuses, deleted) = tokio::join!(futures::future::join_all(patches), delete);
        assert_eq!(deleted, StatusCode::NO_CONTENT);
        assert!(statuses.iter().all(|s| *s == StatusCode::OK));
        let fetched = app.get_json(&path).await;
        assert_eq!(
            fetched["status"], "inactive",
            "an acknowledged DELETE was overwritten: {fetched}"
        );
    }
}

#[tokio::test]
async fn an_overloaded_inventory_answers_503_overloaded_and_loses_no_acknowledged_change() {
    let app = TestApp::spawn_with(
        crate::helpers::Options::default()
            .env("AGORA_RATE_LIMIT_PER_SEC", "0")
            .env("AGORA_ACTOR_MAX_IN_FLIGHT", "1"),
    )
    .await;
    let seller = app.user_token("seller").await;
    let item = app.create_item(&seller, &mouse()).await;
    let path = format!("{}/stock", item_path(&item));
    // Bursts of 50 concurrent calls against a limit of 1, until one
    // overflows (a loaded machine can serialize a burst; bounded).
    let mut accepted = 0i64;
    let mut refused = Vec::new();
    for _ in 0..20 {
        let restocks = (0..50).map(|_| {
            let (app, seller, path) = (&app, &seller, &path);
            async move {
                let response = app.post(path, Some(seller), &json!({"delta": 1})).await;
                let status = response.status();
                let code = if status == StatusCode::OK {
                    None
                } else {
                    Some(problem(response).await["code"].clone())
                };
                (status, code)
            }
        });
        let outcomes = futures::future::join_all(restocks).await;
        accepted += outcomes
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .count() as i64;
        refused.extend(outcomes.into_iter().filter(|(s, _)| *s != StatusCode::OK));
        if !refused.is_empty() {
            break;
        }
    }
    assert!(
        !refused.is_empty(),
        "bursts of 50 concurrent calls against a limit of 1 must overflow"
    );
    for (status, code) in &refused {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(code.as_ref().unwrap(), "OVERLOADED");
    }
    let fetched = app.get_json(&item_path(&item)).await;
    assert_eq!(
        fetched["available"],
        100 + accepted,
        "every acknowledged restock, and only those"
    );
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains(r#"agora_actor_overloaded_total{kind="inventory"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"agora_actor_activations_total{kind="inventory"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"agora_actors_live{kind="inventory"} 1"#));
    assert!(metrics.contains(r#"agora_actor_mailbox_wait_seconds_bucket{kind="inventory""#));
}

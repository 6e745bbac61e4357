//! The machine-readable contract: `/openapi.json` declares what the server
//! really answers, and the server reads bodies and queries the way the
//! document describes them (JSON Schema's `integer` admits `5.0`; an object
//! is an object, not an array; a typed query value is never empty).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{item_path, mouse, problem, TestApp};

#[tokio::test]
async fn whole_number_floats_are_accepted_where_integers_are_expected() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let buyer = app.user_token("buyer").await;
    let body = json!({"name": "Mouse", "description": "d", "price": 999.0, "quantity": 100.0});
    let item = app.create_item(&seller, &body).await;
    assert_eq!(item["price"], 999);
    assert_eq!(item["available"], 100);

    let line = json!({"itemId": item["id"], "quantity": 2.0});
    let cart = app.patch("/cart", Some(&buyer), &line).await;
    assert_eq!(cart.status(), StatusCode::OK);
    let cart: Value = cart.json().await.unwrap();
    assert_eq!(cart["lines"][0]["quantity"], 2);
    assert_eq!(cart["total"], 1998);

    let stock = app
        .post(
            &format!("{}/stock", item_path(&item)),
            Some(&seller),
            &json!({"delta": -1e1}),
        )
        .await;
    assert_eq!(stock.status(), StatusCode::OK);
    assert_eq!(stock.json::<Value>().await.unwrap()["available"], 90);
}

#[tokio::test]
async fn free_json_attributes_keep_their_floats_while_integers_take_whole_floats() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let body = json!({
        "name": "Scale", "description": "d", "price": 999.0, "quantity": 5.0,
        "attributes": {"weight": 1.0, "ratio": 0.5, "dims": {"depth": 2.0}, "sizes": [3.0, 4]}
    });
    let item = app.create_item(&seller, &body).await;
    assert_eq!(item["price"], 999);
    assert!(item["price"].is_u64(), "{}", item["price"]);
    assert_eq!(item["available"], 5);

    let fetched: Value = app.get(&item_path(&item), None).await.json().await.unwrap();
    for read in [&item, &fetched] {
        let attributes = &read["attributes"];
        assert!(attributes["weight"].is_f64(), "{attributes}");
        assert_eq!(attributes["weight"].as_f64(), Some(1.0));
        assert_eq!(attributes["ratio"].as_f64(), Some(0.5));
        assert!(attributes["dims"]["depth"].is_f64(), "{attributes}");
        assert!(attributes["sizes"][0].is_f64(), "{attributes}");
        assert!(attributes["sizes"][1].is_u64(), "{attributes}");
    }

    let body = json!({
        "name": "Scale", "description": "d", "price": 999.0,
        "variants": [{"sku": "SCALE-1", "attributes": {"weight": 2.0}, "price": 1049.0, "quantity": 3.0}]
    });
    let item = app.create_item(&seller, &body).await;
    let variant = &item["variants"][0];
    assert!(variant["attributes"]["weight"].is_f64(), "{variant}");
    assert_eq!(
        (variant["price"].clone(), variant["available"].clone()),
        (json!(1049), json!(3))
    );
}

#[tokio::test]
async fn fractional_numbers_where_integers_are_expected_are_malformed() {
    let app = TestApp::spawn().await;
    let seller = app.user_token("seller").await;
    let buyer = app.user_token("buyer").await;
    let body = json!({"name": "Mouse", "description": "d", "price": 999.5, "quantity": 1});
    let refused = app.post("/items", Some(&seller), &body).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(refused).await["code"], "MALFORMED_REQUEST");

    let item = app.create_item(&seller, &mouse()).await;
    for quantity in [json!(2.5), json!(1e30), json!(-0.5)] {
        let line = json!({"itemId": item["id"], "quantity": quantity});
        let refused = app.patch("/cart", Some(&buyer), &line).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{quantity}");
        assert_eq!(problem(refused).await["code"], "MALFORMED_REQUEST");
    }
}

#[tokio::test]
async fn an_array_where_an_object_belongs_is_malformed() {
    let app = TestApp::spawn().await;
    let buyer = app.user_token("buyer").await;
    // serde would read `[a, b]` as a struct's fields in order.
    let refused = app
        .patch("/users/me", Some(&buyer), &json!([null, null]))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(refused).await["code"], "MALFORMED_REQUEST");

    let checkout = json!({"cartId": "c", "amount": 1, "paymentInfo": ["CARD", "4242"]});
    let refused = app.post("/checkout", Some(&buyer), &checkout).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(refused).await["code"], "MALFORMED_REQUEST");
}

#[tokio::test]
async fn an_empty_value_for_a_typed_query_parameter_is_a_validation_failure() {
    let app = TestApp::spawn().await;
    let buyer = app.user_token("buyer").await;
    for (query, field) in [
        ("sort=", "sort"),
        ("minPrice=", "minPrice"),
        ("maxPrice=", "maxPrice"),
        ("inStock=", "inStock"),
        ("size=", "size"),
    ] {
        let refused = app.get(&format!("/items?{query}"), None).await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
        assert!(
            problem(refused).await["errors"][field].is_string(),
            "{query}"
        );
    }
    let refused = app.get("/orders?status=", Some(&buyer)).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem(refused).await["errors"]["status"].is_string());
}

/// Every operation of the document as `(label, operation)`.
fn operations(doc: &Value) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            found.push((format!("{} {path}", method.to_uppercase()), operation));
        }
    }
    found
}

/// The query parameter `name` of `operation`.
fn query<'a>(operation: &'a Value, name: &str) -> &'a Value {
    operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["in"] == "query" && p["name"] == name)
        .unwrap_or_else(|| panic!("no query parameter {name}"))
}

#[tokio::test]
async fn the_openapi_document_declares_every_status_the_gateway_can_answer() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/openapi.json").await;
    for (label, operation) in operations(&doc) {
        let responses = &operation["responses"];
        assert!(responses["429"].is_object(), "{label}: 429");
        assert!(responses["503"].is_object(), "{label}: 503");
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty());
        if secured {
            let problem = &responses["401"]["content"]["application/problem+json"];
            assert!(problem.is_object(), "{label}: 401 problem+json");
        }
        if operation["requestBody"]["content"]["application/json"].is_object() {
            for status in ["400", "413", "415"] {
                assert!(responses[status].is_object(), "{label}: {status}");
            }
        }
    }
}

#[tokio::test]
async fn the_openapi_document_gives_query_parameters_their_real_types() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/openapi.json").await;
    let search = &doc["paths"]["/items"]["get"];
    let size = &query(search, "size")["schema"];
    assert_eq!(size["type"], "integer", "{size}");
    assert_eq!(
        (size["minimum"].clone(), size["maximum"].clone()),
        (json!(1), json!(100))
    );
    for price in ["minPrice", "maxPrice"] {
        let schema = &query(search, price)["schema"];
        assert_eq!(
            (schema["type"].clone(), schema["minimum"].clone()),
            (json!("integer"), json!(0))
        );
    }
    assert_eq!(query(search, "inStock")["schema"]["type"], "boolean");
    let sorts = &query(search, "sort")["schema"]["enum"];
    assert_eq!(
        sorts,
        &json!(["relevance", "price_asc", "price_desc", "newest"])
    );
    let statuses = &query(&doc["paths"]["/orders"]["get"], "status")["schema"]["enum"];
    assert!(
        statuses
            .as_array()
            .unwrap()
            .contains(&json!("PAYMENT_PENDING")),
        "{statuses}"
    );
    let related = &query(&doc["paths"]["/items/{id}/related"]["get"], "size")["schema"];
    assert_eq!(
        (related["type"].clone(), related["maximum"].clone()),
        (json!("integer"), json!(50))
    );
}

#[tokio::test]
async fn the_openapi_document_marks_required_body_fields_and_binary_images() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    for (schema, fields) in [
        ("ItemInput", &["name", "description", "price"][..]),
        ("CartLineBody", &["itemId", "quantity"][..]),
        ("NewUserBody", &["email", "password", "name"][..]),
        ("SignInBody", &["email", "password"][..]),
        ("CheckoutBody", &["cartId", "amount", "paymentInfo"][..]),
        ("StockBody", &["delta"][..]),
    ] {
        let required = schemas[schema]["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for field in fields {
            assert!(
                required.contains(&json!(field)),
                "{schema}.{field} required"
            );
            let kind = &schemas[schema]["properties"][field]["type"];
            assert!(!kind.is_array(), "{schema}.{field} is not nullable: {kind}");
        }
    }
    let quantity = &schemas["CartLineBody"]["properties"]["quantity"];
    assert_eq!(
        (quantity["minimum"].clone(), quantity["maximum"].clone()),
        (json!(0), json!(1000))
    );

    let upload = &doc["paths"]["/items/{id}/images"]["post"]["requestBody"]["content"];
    for media in ["image/png", "image/jpeg", "image/webp"] {
        let schema = &upload[media]["schema"];
        let schema = match schema["$ref"].as_str() {
            Some(reference) => &schemas[reference.rsplit('/').next().unwrap()],
            None => schema,
        };
        assert_eq!(
            (schema["type"].clone(), schema["format"].clone()),
            (json!("string"), json!("binary")),
            "{media}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_declares_total_exact_on_a_search_page() {
    let app = TestApp::spawn().await;
    let doc = app.get_json("/openapi.json").await;
    let page = &doc["components"]["schemas"]["SearchPage"];
    assert_eq!(page["properties"]["totalExact"]["type"], json!("boolean"));
    let required = page["required"].as_array().cloned().unwrap_or_default();
    assert!(required.contains(&json!("totalExact")), "{page}");
}

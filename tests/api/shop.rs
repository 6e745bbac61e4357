//! Shared set-up for the checkout and order tests: a seller with an item,
//! buyers with carts, and checkout requests.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{Options, TestApp};

/// A server with rate limits off and these `AGORA_*` settings.
pub async fn server(settings: &[(&str, &str)]) -> TestApp {
    let mut options = Options::default().env("AGORA_RATE_LIMIT_PER_SEC", "0");
    for (key, value) in settings {
        options = options.env(key, value);
    }
    TestApp::spawn_with(options).await
}

/// A card the simulated gateway approves.
pub const GOOD_CARD: &str = "**** **** **** 1234";
/// A full card number, to prove it is never stored or logged.
pub const FULL_CARD: &str = "4111 1111 1111 4242";
/// Declined.
pub const DECLINED_CARD: &str = "4000 0000 0000 0002";
/// Fails transiently, every time.
pub const TRANSIENT_CARD: &str = "4000 0000 0000 0119";
/// Never answers.
pub const SILENT_CARD: &str = "4000 0000 0000 3155";

/// A seller and one item of theirs.
pub struct Shop {
    pub seller: String,
    pub item_id: String,
}

impl Shop {
    /// A seller listing `quantity` units at `price`.
    pub async fn open(app: &TestApp, price: i64, quantity: i64) -> Shop {
        let seller = app.user_token("seller").await;
        let item = app
            .create_item(
                &seller,
                &json!({"name": "Wireless Mouse", "description": "Ergonomic Bluetooth Mouse",
                        "price": price, "quantity": quantity, "category": "electronics"}),
            )
            .await;
        Shop {
            seller,
            item_id: item["id"].as_str().unwrap().to_owned(),
        }
    }

    /// The item's stock as `GET /items/{id}` shows it: (available, on hand).
    pub async fn stock(&self, app: &TestApp) -> (i64, i64) {
        let item = app.get_json(&format!("/items/{}", self.item_id)).await;
        (
            item["available"].as_i64().unwrap(),
            item["quantity"].as_i64().unwrap(),
        )
    }
}

/// A buyer with `quantity` of the shop's item in their cart.
pub struct Buyer {
    pub token: String,
    pub cart_id: String,
    pub total: i64,
}

impl Buyer {
    pub async fn with_cart(app: &TestApp, shop: &Shop, quantity: i64) -> Buyer {
        let token = app.user_token("buyer").await;
        Self::fill(app, token, shop, quantity).await
    }

    /// Puts `quantity` of the item in `token`'s cart.
    pub async fn fill(app: &TestApp, token: String, shop: &Shop, quantity: i64) -> Buyer {
        let response = app
            .patch(
                "/cart",
                Some(&token),
                &json!({"itemId": shop.item_id, "quantity": quantity}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "fill the cart");
        let cart: Value = response.json().await.unwrap();
        Buyer {
            token,
            cart_id: cart["id"].as_str().unwrap().to_owned(),
            total: cart["total"].as_i64().unwrap(),
        }
    }

    /// `POST /checkout` with the original design's body.
    pub async fn checkout(&self, app: &TestApp, card: &str) -> Response {
        app.post("/checkout", Some(&self.token), &self.body(card))
            .await
    }

    /// Checks out expecting `202 PAYMENT_PENDING`; returns the order id.
    pub async fn checkout_pending(&self, app: &TestApp, card: &str) -> String {
        let response = self.checkout(app, card).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "PAYMENT_PENDING");
        body["orderId"].as_str().unwrap().to_owned()
    }

    /// `POST /orders/{id}/cancel`.
    pub async fn cancel(&self, app: &TestApp, id: &str) -> Response {
        app.post(
            &format!("/orders/{id}/cancel"),
            Some(&self.token),
            &json!({}),
        )
        .await
    }

    pub fn body(&self, card: &str) -> Value {
        json!({"cartId": self.cart_id, "amount": self.total,
               "paymentInfo": {"paymentType": "CARD", "cardNo": card}})
    }

    /// The buyer's cart.
    pub async fn cart(&self, app: &TestApp) -> Value {
        let response = app.get("/cart", Some(&self.token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// One of the buyer's orders.
    pub async fn order(&self, app: &TestApp, id: &str) -> Value {
        let response = app.get(&format!("/orders/{id}"), Some(&self.token)).await;
        assert_eq!(response.status(), StatusCode::OK, "GET /orders/{id}");
        response.json().await.unwrap()
    }

    /// The buyer's orders (first page of 100).
    pub async fn orders(&self, app: &TestApp) -> Vec<Value> {
        let response = app.get("/orders?size=100", Some(&self.token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        page["items"].as_array().unwrap().clone()
    }
}

/// The statuses of an order's history.
pub fn history(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `GET /orders/{id}` until its status is `status` (at most ~10 s).
pub async fn await_status(app: &TestApp, buyer: &Buyer, id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let order = buyer.order(app, id).await;
        if order["status"] == status {
            return order;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "order {id} never became {status}: {}",
        buyer.order(app, id).await
    );
}

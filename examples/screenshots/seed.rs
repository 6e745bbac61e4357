//! A believable shop, made through the public HTTP API only: a seller with
//! twelve items over four categories (each with a picture), a buyer with
//! one order `CONFIRMED`, one `SHIPPED` by the seller, and a cart.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::art::product_png;
use crate::catalog::{Product, PRODUCTS};

/// Every account's password.
pub const PASSWORD: &str = "correct horse battery";
pub const SELLER_EMAIL: &str = "meera@kala-goods.example";
pub const BUYER_EMAIL: &str = "asha.rao@example.com";
/// A word in several items' descriptions, over several categories.
pub const SEARCH_TERM: &str = "gift";

/// What the screenshots open.
pub struct Shop {
    /// The item shown on the item page.
    pub item: String,
    /// The shipped order shown on the order page.
    pub order: String,
}

/// An HTTP client for one server.
pub struct Api {
    base: String,
    client: Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        Api {
            base: base.to_owned(),
            client,
        }
    }

    /// `method path` with a JSON body; the answer's JSON, or an error
    /// naming the status and body when it is not `expected`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        expected: StatusCode,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        ensure!(status == expected, "{method} {path}: {status} {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Registers `email` as `role` named `name`; signs in; the token.
    async fn account(&self, email: &str, name: &str, role: &str) -> anyhow::Result<String> {
        let user = json!({"email": email, "password": PASSWORD, "name": name, "role": role});
        self.call(
            Method::POST,
            "/users",
            None,
            Some(user),
            StatusCode::CREATED,
        )
        .await?;
        let credentials = json!({"email": email, "password": PASSWORD});
        let session = self
            .call(
                Method::POST,
                "/sessions",
                None,
                Some(credentials),
                StatusCode::CREATED,
            )
            .await?;
        Ok(session["token"]
            .as_str()
            .context("a session token")?
            .to_owned())
    }

    /// Creates one product with its picture; the item's JSON.
    async fn product(&self, seller: &str, product: &Product) -> anyhow::Result<Value> {
        let (name, description, price, quantity, brand, category, shape, colour, background) =
            *product;
        let mut body = json!({"name": name, "description": description, "price": price,
            "quantity": quantity, "currency": "INR", "brand": brand, "category": category,
            "tags": [category, brand.to_lowercase()]});
        if quantity == 0 {
            body["variants"] = json!(["S", "M", "L"]
                .iter()
                .enumerate()
                .map(|(i, size)| json!({
                "sku": format!("TEE-{size}"), "attributes": {"size": size},
                "price": price, "quantity": 40 + 20 * i}))
                .collect::<Vec<_>>());
        }
        let item = self
            .call(
                Method::POST,
                "/items",
                Some(seller),
                Some(body),
                StatusCode::CREATED,
            )
            .await?;
        let id = item["id"].as_str().context("an item id")?;
        let uploaded = self
            .client
            .post(format!("{}/items/{id}/images", self.base))
            .bearer_auth(seller)
            .header("content-type", "image/png")
            .body(product_png(shape, colour, background))
            .send()
            .await?;
        ensure!(
            uploaded.status() == StatusCode::CREATED,
            "upload {name}: {}",
            uploaded.status()
        );
        Ok(item)
    }

    /// Puts `lines` (item, variant, quantity) into the buyer's cart.
    async fn fill_cart(
        &self,
        buyer: &str,
        lines: &[(&Value, Option<usize>, u32)],
    ) -> anyhow::Result<Value> {
        let mut cart = Value::Null;
        for (item, variant, quantity) in lines {
            let mut line = json!({"itemId": item["id"], "quantity": quantity});
            if let Some(v) = variant {
                line["variantId"] = item["variants"][v]["variantId"].clone();
            }
            cart = self
                .call(
                    Method::PATCH,
                    "/cart",
                    Some(buyer),
                    Some(line),
                    StatusCode::OK,
                )
                .await?;
        }
        Ok(cart)
    }

    /// Checks the buyer's cart out with an approved test card; the order id.
    async fn checkout(&self, buyer: &str, cart: &Value) -> anyhow::Result<String> {
        let body = json!({"cartId": cart["id"], "amount": cart["total"], "currency": "INR",
            "paymentInfo": {"paymentType": "CARD", "cardNo": "4111 1111 1111 4242"},
            "shippingAddress": {"line1": "14 Residency Road", "city": "Bengaluru", "postalCode": "560025", "country": "IN"}});
        let order = self
            .call(
                Method::POST,
                "/checkout",
                Some(buyer),
                Some(body),
                StatusCode::CREATED,
            )
            .await?;
        ensure!(
            order["status"] == "CONFIRMED",
            "order not confirmed: {order}"
        );
        Ok(order["orderId"].as_str().context("an order id")?.to_owned())
    }

    /// Waits until a search with no term lists `count` items with pictures.
    async fn until_indexed(&self, count: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let page = self
                .call(Method::GET, "/items?size=50", None, None, StatusCode::OK)
                .await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if items.len() >= count && items.iter().all(|i| i["image"].is_string()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("the {count} items were not all searchable with pictures within 30 s")
    }
}

/// Seeds the shop; returns what the pages show.
pub async fn seed(api: &Api) -> anyhow::Result<Shop> {
    let seller = api.account(SELLER_EMAIL, "Meera Iyer", "seller").await?;
    let buyer = api.account(BUYER_EMAIL, "Asha Rao", "buyer").await?;
    let mut items = Vec::new();
    for product in &PRODUCTS {
        items.push(api.product(&seller, product).await?);
    }
    api.until_indexed(PRODUCTS.len()).await?;
    let cart = api
        .fill_cart(&buyer, &[(&items[2], None, 1), (&items[5], None, 2)])
        .await?;
    api.checkout(&buyer, &cart).await?;
    let cart = api
        .fill_cart(
            &buyer,
            &[
                (&items[4], None, 1),
                (&items[7], None, 1),
                (&items[6], None, 2),
            ],
        )
        .await?;
    let shipped = api.checkout(&buyer, &cart).await?;
    api.call(
        Method::POST,
        &format!("/orders/{shipped}/ship"),
        Some(&seller),
        Some(json!({})),
        StatusCode::OK,
    )
    .await?;
    api.fill_cart(
        &buyer,
        &[
            (&items[8], Some(1), 2),
            (&items[11], None, 1),
            (&items[0], None, 1),
        ],
    )
    .await?;
    Ok(Shop {
        item: items[2]["id"].as_str().context("an item id")?.to_owned(),
        order: shipped,
    })
}

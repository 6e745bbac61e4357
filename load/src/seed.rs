//! Seeding through the API: a seller, the run's items and its buyers, each
//! named with the run's tag so a run never touches another's data and its
//! invariants can be read back exactly.

use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use crate::client::Targets;

/// Words item names and search terms are made of.
pub const ADJECTIVES: &[&str] = &[
    "wireless",
    "ergonomic",
    "compact",
    "premium",
    "portable",
    "classic",
    "smart",
    "organic",
    "vintage",
    "waterproof",
];
/// Nouns of item names.
pub const NOUNS: &[&str] = &[
    "mouse",
    "keyboard",
    "lamp",
    "kettle",
    "backpack",
    "headphones",
    "camera",
    "chair",
    "bottle",
    "watch",
    "speaker",
    "blender",
];
/// Categories items are listed in.
pub const CATEGORIES: &[&str] = &[
    "electronics",
    "home",
    "kitchen",
    "outdoors",
    "fashion",
    "office",
];
/// Brands items carry.
pub const BRANDS: &[&str] = &["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark"];

/// Sign-ups at once: password hashing is bounded by the server's cores.
const SIGNUP_CONCURRENCY: usize = 4;
/// Item listings at once.
const LISTING_CONCURRENCY: usize = 16;

/// A seeded item.
#[derive(Debug, Clone)]
pub struct SeededItem {
    /// Its id.
    pub id: String,
    /// Units listed.
    pub stock: u64,
}

/// What a run seeded.
pub struct Seed {
    /// Names every account and item of the run (`load…`).
    pub tag: String,
    /// The run's items; for a flash sale, the one hot item.
    pub items: Vec<SeededItem>,
    /// The buyers' session tokens.
    pub buyers: Vec<String>,
    /// The seller's session token.
    pub seller: String,
    /// Seconds seeding took.
    pub seconds: f64,
}

/// How much to seed.
pub struct Plan {
    /// Items to list.
    pub items: usize,
    /// Units per item.
    pub stock: u64,
    /// Buyers to sign up.
    pub buyers: usize,
    /// Wait until search sees every item (for scenarios that search).
    pub searchable: bool,
}

/// Seeds `plan` on the first target, reporting each step on stderr.
pub async fn seed(targets: &Targets, plan: &Plan) -> anyhow::Result<Seed> {
    let (client, base) = targets.node(0);
    let tag = run_tag();
    let started = Instant::now();
    let seller = account(&client, &base, &format!("{tag}-seller"), "seller").await?;
    let items: Vec<SeededItem> = stream::iter(0..plan.items)
        .map(|i| {
            let (client, base, seller, tag) = (&client, &base, &seller, &tag);
            async move {
                let adjective = ADJECTIVES[i % ADJECTIVES.len()];
                let noun = NOUNS[(i / ADJECTIVES.len()) % NOUNS.len()];
                let brand = BRANDS[i % BRANDS.len()];
                let body = json!({
                    "name": format!("{adjective} {noun} {i}"),
                    "description": format!("A {adjective} {noun} by {brand}, listed by load run {tag}"),
                    "price": 100 + (i as u64 * 37) % 9_900,
                    "quantity": plan.stock,
                    "brand": brand,
                    "category": CATEGORIES[i % CATEGORIES.len()],
                    "tags": [tag],
                });
                let request = client
                    .post(format!("{base}/items"))
                    .bearer_auth(seller)
                    .json(&body);
                let item = expect(request, StatusCode::CREATED, "listing an item").await?;
                let id = item["id"].as_str().unwrap_or_default().to_owned();
                Ok::<_, anyhow::Error>(SeededItem {
                    id,
                    stock: plan.stock,
                })
            }
        })
        .buffered(LISTING_CONCURRENCY)
        .try_collect()
        .await?;
    let buyers: Vec<String> = stream::iter(0..plan.buyers)
        .map(|i| {
            let (client, base, tag) = (&client, &base, &tag);
            async move { account(client, base, &format!("{tag}-buyer{i}"), "buyer").await }
        })
        .buffered(SIGNUP_CONCURRENCY)
        .try_collect()
        .await?;
    if plan.searchable {
        let last: Vec<&str> = items.iter().rev().take(64).map(|i| i.id.as_str()).collect();
        wait_searchable(&client, &base, &tag, plan.items, &last).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "seeded run {tag}: {} items of {} units, {} buyers in {seconds:.1} s",
        items.len(),
        plan.stock,
        buyers.len(),
    );
    Ok(Seed {
        tag,
        items,
        buyers,
        seller,
        seconds,
    })
}

/// A tag no earlier run used: `load` and the time in base 36, plus noise.
fn run_tag() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let noise: u16 = rand::random();
    format!("load{}{:x}", base36(millis), noise)
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Signs up `name@load.agora.test` and returns a session token.
async fn account(client: &Client, base: &str, name: &str, role: &str) -> anyhow::Result<String> {
    let email = format!("{name}@load.agora.test");
    let password = "load-harness-password";
    let user = json!({"email": email, "password": password, "name": name, "role": role});
    expect(
        client.post(format!("{base}/users")).json(&user),
        StatusCode::CREATED,
        "signing up",
    )
    .await?;
    let session = expect(
        client
            .post(format!("{base}/sessions"))
            .json(&json!({"email": email, "password": password})),
        StatusCode::CREATED,
        "signing in",
    )
    .await?;
    session["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("signing in: no token in {session}"))
}

/// Waits (at most 30 s) until a search for the run's tag finds `count`
/// items. Past the server's count limit (`totalExact: false`) the total
/// only says "at least", so then it waits until the `last` items listed
/// are among the newest the search finds: the index follows the event log
/// in order, so everything listed before them is searchable too.
async fn wait_searchable(
    client: &Client,
    base: &str,
    tag: &str,
    count: usize,
    last: &[&str],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = expect(
            client.get(format!("{base}/items?term={tag}&size=1")),
            StatusCode::OK,
            "searching",
        )
        .await?;
        if page["total"].as_u64().unwrap_or(0) >= count as u64 {
            return Ok(());
        }
        if page["totalExact"] == json!(false) {
            let newest = expect(
                client.get(format!("{base}/items?term={tag}&sort=newest&size=100")),
                StatusCode::OK,
                "searching",
            )
            .await?;
            let found: Vec<&str> = newest["items"]
                .as_array()
                .map(|items| items.iter().filter_map(|i| i["id"].as_str()).collect())
                .unwrap_or_default();
            if last.iter().all(|id| found.contains(id)) {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "search did not show the {count} seeded items within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a seeding request until it is answered `want` (retrying after a
/// `429` as the server's `Retry-After` asks, and a few times after a lost
/// connection); its JSON body.
pub async fn expect(
    request: RequestBuilder,
    want: StatusCode,
    what: &str,
) -> anyhow::Result<Value> {
    let (mut lost, mut limited) = (0, 0);
    loop {
        let attempt = request
            .try_clone()
            .ok_or_else(|| anyhow::anyhow!("{what}: request cannot be retried"))?;
        match attempt.send().await {
            Ok(response) if response.status() == want => {
                return Ok(response.json().await.unwrap_or(Value::Null));
            }
            Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS && limited < 60 => {
                limited += 1;
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait.clamp(1, 10))).await;
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                anyhow::bail!("{what}: {status}: {body}");
            }
            Err(e) if lost < 3 => {
                lost += 1;
                tracing::debug!(error = %e, "retrying a seeding request");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => anyhow::bail!("{what}: {e}"),
        }
    }
}

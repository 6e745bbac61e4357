//! `GET /items/{id}` in process: the whole router (`agora::http::router`,
//! every gateway layer) driven with `tower::ServiceExt::oneshot`, no sockets
//! and no hyper, beside a bare axum router answering a ~1 KB JSON item from
//! a DashMap (what `benches/http.sh`'s `http_peer` serves), in the same run.
//! Rounds interleave the targets; each prints the median over rounds of the
//! CPU time per request of the one runtime thread that serves them (so the
//! other processes on a shared box do not count). It isolates what wrk
//! cannot: our code's cost per request, without the kernel's loopback path
//! and the client, which share the box in `http.sh`. Logging is set up as
//! `agora serve` sets it up (a request span per request).
//!
//! `cargo bench --bench item_page` (env `ROUNDS`, default 7; `ITERS`,
//! default 20000). Targets: `peer_item`, `agora_get_item` (a kept page),
//! `agora_304` (`If-None-Match` with the page's ETag), `agora_rendered` (a
//! page rendered afresh each time: a stock change between requests is not
//! timed, the render is).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agora::config::Settings;
use agora::node::Node;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use dashmap::DashMap;
use serde::Serialize;
use serde_json::{json, Value};
use tower::ServiceExt;

#[derive(Clone, Serialize)]
struct PeerItem {
    sku: String,
    name: String,
    description: String,
    brand: String,
    category: String,
    price_cents: u64,
    currency: &'static str,
    available: i64,
    reserved: i64,
    tags: Vec<String>,
    image_urls: Vec<String>,
}

/// The peer: `http_peer`'s item route, the item cloned out of the map and
/// serialized per request.
fn peer() -> Router {
    let items: Arc<DashMap<String, PeerItem>> = Arc::new(DashMap::new());
    for i in 0..10_000u64 {
        let item = PeerItem {
            sku: format!("sku-{i:06}"),
            name: format!("ergonomic wireless widget model {i}"),
            description: "durable portable compact smart ".repeat(21),
            brand: format!("brand-{}", i % 250),
            category: format!("category-{}", i % 40),
            price_cents: 199 + (i * 7919) % 100_000,
            currency: "EUR",
            available: 1000,
            reserved: 0,
            tags: ["smart", "compact", "durable", "organic", "vintage"]
                .map(String::from)
                .to_vec(),
            image_urls: (0..2)
                .map(|k| format!("https://cdn.example.invalid/img/sku-{i:06}/{k}.jpg"))
                .collect(),
        };
        items.insert(item.sku.clone(), item);
    }
    async fn item(
        State(items): State<Arc<DashMap<String, PeerItem>>>,
        Path(sku): Path<String>,
    ) -> Result<axum::Json<PeerItem>, StatusCode> {
        let item = items.get(&sku).map(|i| i.clone());
        item.map(axum::Json).ok_or(StatusCode::NOT_FOUND)
    }
    Router::new()
        .route("/item/{sku}", get(item))
        .with_state(items)
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, axum::body::Bytes) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (status, body)
}

fn json_request(method: &str, uri: &str, token: Option<&str>, body: &Value) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request
        .body(Body::from(body.to_string()))
        .expect("a request")
}

/// A seller, a session and the item `http.sh` lists; returns (token, item id).
async fn seed(router: &Router) -> (String, String) {
    let user =
        json!({"email":"bench@example.com","password":"benchmark","name":"Bench","role":"seller"});
    call(router, json_request("POST", "/users", None, &user)).await;
    let sign_in = json!({"email":"bench@example.com","password":"benchmark"});
    let (_, body) = call(router, json_request("POST", "/sessions", None, &sign_in)).await;
    let token = serde_json::from_slice::<Value>(&body).expect("json")["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let item = json!({"name":"Wireless Mouse","description":"Ergonomic Bluetooth Mouse with a long battery life, silent clicks and a comfortable shape for long working days. Pairs with three devices.","price":999,"quantity":100,"sku":"MOUSE-001","brand":"Logi","category":"electronics","tags":["mouse","bluetooth","wireless"],"attributes":{"color":"black","dpi":1600,"battery":"AA"}});
    let (status, body) = call(router, json_request("POST", "/items", Some(&token), &item)).await;
    assert_eq!(status, StatusCode::CREATED, "{body:?}");
    let id = serde_json::from_slice::<Value>(&body).expect("json")["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    (token, id)
}

fn get_request(uri: &str, if_none_match: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    request.body(Body::empty()).expect("a request")
}

/// CPU time this thread has run (`CLOCK_THREAD_CPUTIME_ID`): time on the
/// CPU, not on the clock, so other processes sharing the box (the builders,
/// this node's own writer) do not count. The GETs timed here run on this
/// thread alone (read-cache hits: no blocking-pool hop).
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Mean CPU time per request over `iters` GETs of `uri`.
async fn time_gets(router: &Router, uri: &str, tag: Option<&str>, iters: u32) -> Duration {
    let started = thread_cpu();
    for _ in 0..iters {
        let (status, body) = call(router, get_request(uri, tag)).await;
        assert!(status.is_success() || status == StatusCode::NOT_MODIFIED);
        std::hint::black_box(body);
    }
    (thread_cpu() - started) / iters
}

/// Mean time per render: each iteration moves the item's stock (not timed)
/// so that the next GET cannot use the kept page.
async fn time_renders(router: &Router, token: &str, id: &str, iters: u32) -> Duration {
    let uri = format!("/items/{id}");
    let mut total = Duration::ZERO;
    for i in 0..iters {
        let delta = if i % 2 == 0 { 1 } else { -1 };
        let change = json!({ "delta": delta });
        let stock_uri = format!("/items/{id}/stock");
        call(
            router,
            json_request("POST", &stock_uri, Some(token), &change),
        )
        .await;
        let started = thread_cpu();
        let (status, body) = call(router, get_request(&uri, None)).await;
        total += thread_cpu() - started;
        assert!(status.is_success());
        std::hint::black_box(body);
    }
    total / iters
}

fn env_or(key: &str, default: u32) -> u32 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rounds = env_or("ROUNDS", 7);
    let iters = env_or("ITERS", 20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    agora::telemetry::init_tracing(true);
    let dir = tempfile::tempdir().expect("a temp dir");
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        rate_limit_per_sec: 0,
        ..Settings::default()
    };
    let task = async move {
        let node = Node::start(settings).await.expect("a node");
        let router = agora::http::router(node.http_state());
        let peer = peer();
        let (token, id) = seed(&router).await;
        let uri = format!("/items/{id}");
        let (_, page) = call(&router, get_request(&uri, None)).await;
        let response = router
            .clone()
            .oneshot(get_request(&uri, None))
            .await
            .expect("infallible");
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        println!(
            "# agora item {} bytes, ETag {etag:?}; {rounds} rounds of {iters} requests",
            page.len()
        );
        let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        for _ in 0..rounds {
            let peer_item = time_gets(&peer, "/item/sku-004242", None, iters).await;
            times.entry("peer_item").or_default().push(peer_item);
            let kept = time_gets(&router, &uri, None, iters).await;
            times.entry("agora_get_item").or_default().push(kept);
            if let Some(tag) = &etag {
                let not_modified = time_gets(&router, &uri, Some(tag), iters).await;
                times.entry("agora_304").or_default().push(not_modified);
            }
            let rendered = time_renders(&router, &token, &id, iters / 10).await;
            times.entry("agora_rendered").or_default().push(rendered);
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let peer_median = median(times.get_mut("peer_item").expect("measured"));
        println!("target\tmedian_us\tvs_peer_item\trounds_us");
        for (name, values) in &mut times {
            let m = median(values);
            let rounds: Vec<String> = values
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64() * 1e6))
                .collect();
            println!(
                "{name}\t{:.2}\t{:.2}x\t{}",
                m.as_secs_f64() * 1e6,
                m.as_secs_f64() / peer_median.as_secs_f64(),
                rounds.join(" ")
            );
        }
        node.stop().await;
    };
    runtime.block_on(async move { tokio::spawn(task).await.expect("the bench") });
}

//! Search: indexing throughput, query latency (in-process and over HTTP),
//! freshness under writes, and relevance, beside raw tantivy on the same
//! data in the same run.
//!
//! ```text
//! cargo bench --bench search                 # 100,000 items
//! ITEMS=1000000 cargo bench --bench search   # 1,000,000 items
//! ```
//!
//! Env: `ITEMS` (100,000), `QUERIES` (2,000 per class in-process), `SECS`
//! (5: each HTTP load and the freshness run), `CLIENTS` (`4,16`: closed-loop HTTP clients,
//! one run per count).
//!
//! The catalog is `agora::search::sample` (deterministic). Items enter
//! through the real catalog service of a node built by `Node::start` (sled
//! write + event); the index is fed by the real indexer from the event log. The raw-tantivy peer indexes
//! the same items with tantivy's own `en_stem` analyzer and answers with
//! `QueryParser` + `TopDocs` + `Count`: no typos, synonyms, prefixes,
//! facets or cursors, which is the overhead our layer adds.

#[path = "search/http.rs"]
mod http;
#[path = "search/queries.rs"]
mod queries;
#[path = "search/raw.rs"]
mod raw;
#[path = "support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora::config::Settings;
use agora::domain::item::ItemInput;
use agora::domain::user::Role;
use agora::node::Node;
use agora::search::sample;
use agora::search::{Search, SearchRequest};
use agora::services::account::Authenticated;
use hdrhistogram::Histogram;
use tantivy::collector::{Count, TopDocs};
use tokio::runtime::Runtime;

use http::{http_load, print_http};
use queries::{judged, queries, relevant_counts, request, scores, CLASSES, Q};
use raw::Raw;
use support::{env_or, Server};

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// What a run measures, from the environment.
struct Options {
    items: u64,
    per_class: usize,
    secs: u64,
    client_counts: Vec<usize>,
}

impl Options {
    fn from_env() -> Options {
        Options {
            items: env_or("ITEMS", 100_000),
            per_class: env_or("QUERIES", 2_000),
            secs: env_or("SECS", 5),
            client_counts: env_or("CLIENTS", "4,16".to_owned())
                .split(',')
                .filter_map(|c| c.trim().parse().ok())
                .collect(),
        }
    }
}

fn main() {
    let options = Options::from_env();
    let items = options.items;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_data, dir) = data_dir();
    println!(
        "# search bench: {items} items, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Raw tantivy first (alone on the machine).
    let (raw, raw_secs) = Raw::build(items);
    println!("raw tantivy: indexed {items} in {raw_secs:.1} s = {:.0} items/s (one writer thread, one commit)", items as f64 / raw_secs);

    let node = runtime.block_on(start_node(&dir));
    let id_to_n = runtime.block_on(seed(&node, items));
    let search = &node.read_models.search;
    in_process_latency(&runtime, search, &raw, options.per_class);
    relevance(&runtime, search, &raw, &id_to_n, items);
    runtime.block_on(async {
        freshness(&node, items, options.secs).await;
        node.stop().await;
    });

    // Over HTTP: the real binary on the same data directory.
    let server = Server::start_in(&dir, &[]);
    for &clients in &options.client_counts {
        let (merged, errors) = runtime.block_on(http_load(&server.base, clients, options.secs));
        print_http(&merged, errors, clients, options.secs);
    }
    drop(server);
    let unique: HashSet<&String> = id_to_n.keys().collect();
    assert_eq!(unique.len() as u64, items);
}

/// The node's data directory (and the temp dir that holds it, removed when
/// dropped). `KEEP=1`: leave it for manual runs afterwards.
fn data_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    let data = tempfile::tempdir().unwrap();
    if std::env::var_os("KEEP").is_some() {
        let kept = data.keep();
        eprintln!("keeping {}", kept.display());
        let dir = kept.join("node");
        (None, dir)
    } else {
        let dir = data.path().join("node");
        (Some(data), dir)
    }
}

/// A node from the one builder. The search cache is off, so every query
/// is measured; the recommender is paused, so the indexer is the only
/// heavy reader of the log (as when these figures were first taken).
async fn start_node(dir: &Path) -> Node {
    let settings = Settings {
        data_dir: dir.to_path_buf(),
        search_cache_entries: 0,
        recommender_paused: true,
        ..Settings::default()
    };
    Node::start(settings).await.unwrap()
}

fn seller() -> Authenticated {
    Authenticated {
        user_id: "01SELLER000000000000000000".into(),
        role: Role::Seller,
        session_key: [0; 32],
    }
}

/// Adds `items` sample items through the catalog, 256 at a time, and waits
/// for the index to catch up; returns each item's id → its sample number.
async fn seed(node: &Node, items: u64) -> HashMap<String, u64> {
    let (catalog, search, store) = (
        &node.services.catalog,
        &node.read_models.search,
        &node.store,
    );
    let seller = seller();
    let started = Instant::now();
    let mut id_to_n = HashMap::new();
    let mut next = 0u64;
    let mut last_report = Instant::now();
    while next < items {
        let chunk: Vec<u64> = (next..(next + 256).min(items)).collect();
        next += chunk.len() as u64;
        let made = futures::future::join_all(chunk.iter().map(|n| {
            let (catalog, seller) = (catalog.clone(), &seller);
            async move {
                let input: ItemInput = serde_json::from_value(sample::item(*n)).unwrap();
                (catalog.create(seller, input).await.unwrap().item.id, *n)
            }
        }))
        .await;
        id_to_n.extend(made);
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("  seeded {next}");
            last_report = Instant::now();
        }
    }
    let seeded = started.elapsed().as_secs_f64();
    let last = *store.event_watch().borrow();
    while search.indexed() < last {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let caught_up = started.elapsed().as_secs_f64();
    println!(
        "agora: {items} items through the catalog (sled write + event) in {seeded:.1} s = {:.0} items/s; indexed from the event log {:.1} s after the first = {:.0} items/s end to end",
        items as f64 / seeded, caught_up, items as f64 / caught_up
    );
    id_to_n
}

/// In-process latency per query class, ours beside raw tantivy's.
fn in_process_latency(runtime: &Runtime, search: &Search, raw: &Raw, per_class: usize) {
    let all = queries(per_class);
    println!("\n| class | agora p50 ms | agora p99 ms | raw tantivy p50 ms | raw p99 ms |\n|---|---|---|---|---|");
    for class in CLASSES {
        let mut ours = Histogram::<u64>::new(3).unwrap();
        let mut theirs = Histogram::<u64>::new(3).unwrap();
        for q in all.iter().filter(|q| q.class == class) {
            let started = Instant::now();
            runtime.block_on(search.search(request(q))).unwrap();
            ours.record(started.elapsed().as_micros().max(1) as u64)
                .unwrap();
            let started = Instant::now();
            let searcher = raw.reader.searcher();
            searcher
                .search(
                    raw.query(q).as_ref(),
                    &(TopDocs::with_limit(20).order_by_score(), Count),
                )
                .unwrap();
            theirs
                .record(started.elapsed().as_micros().max(1) as u64)
                .unwrap();
        }
        println!(
            "| {class} | {:.2} | {:.2} | {:.2} | {:.2} |",
            ms(&ours, 0.5),
            ms(&ours, 0.99),
            ms(&theirs, 0.5),
            ms(&theirs, 0.99)
        );
    }
}

/// Relevance of both engines over the judged queries.
fn relevance(
    runtime: &Runtime,
    search: &Search,
    raw: &Raw,
    id_to_n: &HashMap<String, u64>,
    items: u64,
) {
    let judged = judged();
    let totals = relevant_counts(&judged, items);
    let (mut ours_p5, mut ours_ndcg, mut raw_p5, mut raw_ndcg) = (0.0, 0.0, 0.0, 0.0);
    let mut judged_count = 0usize;
    for (i, (query, rel)) in judged.iter().enumerate() {
        let total = totals.get(&i).copied().unwrap_or(0);
        if total == 0 {
            continue;
        }
        judged_count += 1;
        let page = runtime
            .block_on(search.search(SearchRequest {
                term: Some(query.clone()),
                size: 10,
                ..SearchRequest::default()
            }))
            .unwrap();
        let hits: Vec<u64> = page
            .hits
            .iter()
            .filter_map(|(id, _)| id_to_n.get(id).copied())
            .collect();
        let (p5, ndcg) = scores(&hits, rel.as_ref(), total);
        if std::env::var_os("VERBOSE").is_some() && p5 < 1.0 {
            eprintln!("  agora P@5 {p5:.1} for {query:?} ({total} relevant)");
        }
        ours_p5 += p5;
        ours_ndcg += ndcg;
        let q = Q {
            class: "two-word",
            term: query.clone(),
            ..Q::default()
        };
        let (p5, ndcg) = scores(&raw.top(&q, 10), rel.as_ref(), total);
        raw_p5 += p5;
        raw_ndcg += ndcg;
    }
    let k = judged_count.max(1) as f64;
    println!(
        "\nrelevance over {} judged queries with relevant items (exact, one typo per word, prefix of the last word, plural, synonym; P@5 out of min(5, relevant)): agora P@5 {:.3} NDCG@10 {:.3}; raw tantivy (QueryParser) P@5 {:.3} NDCG@10 {:.3}",
        judged_count, ours_p5 / k, ours_ndcg / k, raw_p5 / k, raw_ndcg / k
    );
}

/// Freshness: acknowledged → searchable while 500 items/s are added.
async fn freshness(node: &Node, items: u64, secs: u64) {
    let seller = seller();
    let lag = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    let mut n = items;
    let mut waiters = Vec::new();
    while Instant::now() < deadline {
        tick.tick().await;
        let input: ItemInput = serde_json::from_value(sample::item(n)).unwrap();
        n += 1;
        let (catalog, seller, search, store, lag) = (
            node.services.catalog.clone(),
            seller.clone(),
            node.read_models.search.clone(),
            node.store.clone(),
            lag.clone(),
        );
        waiters.push(tokio::spawn(async move {
            catalog.create(&seller, input).await.unwrap();
            let acked = Instant::now();
            let seq = *store.event_watch().borrow();
            while search.indexed() < seq {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lag.lock()
                .unwrap()
                .record(acked.elapsed().as_micros().max(1) as u64)
                .unwrap();
        }));
    }
    for w in waiters {
        w.await.unwrap();
    }
    let lag = lag.lock().unwrap().clone();
    println!(
        "\nfreshness while adding {:.0} items/s for {secs} s: acknowledged → searchable p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} items)",
        lag.len() as f64 / secs as f64, ms(&lag, 0.5), ms(&lag, 0.99), lag.max() as f64 / 1000.0, lag.len()
    );
}

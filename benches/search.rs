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
//! through the real catalog service (sled write + event); the index is fed
//! by the real indexer from the event log. The raw-tantivy peer indexes
//! the same items with tantivy's own `en_stem` analyzer and answers with
//! `QueryParser` + `TopDocs` + `Count`: no typos, synonyms, prefixes,
//! facets or cursors, which is the overhead our layer adds.

#[path = "support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora::actors::inventory::InventoryActors;
use agora::actors::runtime::RegionSettings;
use agora::domain::item::ItemInput;
use agora::domain::user::Role;
use agora::search::sample::{self, ADJECTIVES, NOUNS};
use agora::search::{Search, SearchRequest, Sort};
use agora::services::account::Authenticated;
use agora::services::catalog::CatalogService;
use agora::storage::{Store, StoreOptions};
use hdrhistogram::Histogram;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, FuzzyTermQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{IndexRecordOption, Schema, Value, FAST, STORED, STRING, TEXT};
use tantivy::{Index, TantivyDocument, Term};

use support::{env_or, Server};

/// A query of one class, for both engines.
#[derive(Clone)]
struct Q {
    class: &'static str,
    term: String,
    category: Option<&'static str>,
}

/// Deletes one letter in the middle of each word of 4+ letters.
fn typo(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            if w.len() >= 4 {
                let mid = w.len() / 2;
                format!("{}{}", &w[..mid], &w[mid + 1..])
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn queries(per_class: usize) -> Vec<Q> {
    let mut out = Vec::new();
    for i in 0..per_class {
        let adjective = ADJECTIVES[(i * 7) % ADJECTIVES.len()];
        let (noun, category) = NOUNS[(i * 13) % NOUNS.len()];
        let two = format!("{adjective} {noun}");
        out.push(Q {
            class: "one-word",
            term: noun.to_owned(),
            category: None,
        });
        out.push(Q {
            class: "two-word",
            term: two.clone(),
            category: None,
        });
        out.push(Q {
            class: "fuzzy",
            term: typo(&two),
            category: None,
        });
        out.push(Q {
            class: "filtered",
            term: noun.to_owned(),
            category: Some(category),
        });
    }
    out
}

const CLASSES: [&str; 4] = ["one-word", "two-word", "fuzzy", "filtered"];

fn request(q: &Q) -> SearchRequest {
    SearchRequest {
        term: Some(q.term.clone()),
        category: q.category.map(str::to_owned),
        min_price: q.category.map(|_| 1_000),
        max_price: q.category.map(|_| 60_000),
        sort: q.category.map(|_| Sort::PriceAsc),
        size: 20,
        ..SearchRequest::default()
    }
}

struct Raw {
    index: Index,
    reader: tantivy::IndexReader,
    name: tantivy::schema::Field,
    body: tantivy::schema::Field,
    category: tantivy::schema::Field,
    n: tantivy::schema::Field,
}

impl Raw {
    fn build(items: u64) -> (Raw, f64) {
        let mut builder = Schema::builder();
        let name = builder.add_text_field("name", TEXT);
        let body = builder.add_text_field("body", TEXT);
        let category = builder.add_text_field("category", STRING);
        let n = builder.add_u64_field("n", FAST | STORED);
        let dir = tempfile::tempdir().unwrap().keep();
        let index = Index::create_in_dir(&dir, builder.build()).unwrap();
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 64 << 20).unwrap();
        let started = Instant::now();
        for i in 0..items {
            let item = sample::item(i);
            let mut doc = TantivyDocument::default();
            doc.add_text(name, item["name"].as_str().unwrap());
            doc.add_text(
                body,
                format!(
                    "{} {} {} {}",
                    item["brand"].as_str().unwrap(),
                    item["category"].as_str().unwrap(),
                    item["tags"],
                    item["description"].as_str().unwrap()
                ),
            );
            doc.add_text(category, item["category"].as_str().unwrap());
            doc.add_u64(n, i);
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();
        let secs = started.elapsed().as_secs_f64();
        let reader = index.reader().unwrap();
        (
            Raw {
                index,
                reader,
                name,
                body,
                category,
                n,
            },
            secs,
        )
    }

    fn query(&self, q: &Q) -> Box<dyn Query> {
        let parser = QueryParser::for_index(&self.index, vec![self.name, self.body]);
        let text: Box<dyn Query> = if q.class == "fuzzy" {
            Box::new(BooleanQuery::new(
                q.term
                    .split(' ')
                    .map(|w| {
                        let term = Term::from_field_text(self.name, w);
                        (
                            Occur::Should,
                            Box::new(FuzzyTermQuery::new(term, 1, true)) as Box<dyn Query>,
                        )
                    })
                    .collect(),
            ))
        } else {
            parser.parse_query(&q.term).unwrap()
        };
        match q.category {
            Some(category) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, text),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.category, category),
                        IndexRecordOption::Basic,
                    )),
                ),
            ])),
            None => text,
        }
    }

    /// Top `k` item numbers.
    fn top(&self, q: &Q, k: usize) -> Vec<u64> {
        let searcher = self.reader.searcher();
        let (top, _) = searcher
            .search(
                self.query(q).as_ref(),
                &(TopDocs::with_limit(k).order_by_score(), Count),
            )
            .unwrap();
        top.into_iter()
            .map(|(_, address)| {
                let doc: TantivyDocument = searcher.doc(address).unwrap();
                doc.get_first(self.n).and_then(|v| v.as_u64()).unwrap()
            })
            .collect()
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Relevance: queries whose relevant items are known from the generator.
type Judge = Box<dyn Fn(&sample::Parts) -> bool>;

fn judged() -> Vec<(String, Judge)> {
    let mut out: Vec<(String, Judge)> = Vec::new();
    for i in 0..10usize {
        let a = (i * 5 + 1) % ADJECTIVES.len();
        let nn = (i * 11 + 3) % NOUNS.len();
        let two = format!("{} {}", ADJECTIVES[a], NOUNS[nn].0);
        let both = move |p: &sample::Parts| p.adjective == a && p.noun == nn;
        out.push((two.clone(), Box::new(both)));
        out.push((typo(&two), Box::new(both)));
        let prefix: String = two.chars().take(two.len() - 2).collect();
        out.push((prefix, Box::new(both)));
        out.push((
            format!("{}s", NOUNS[nn].0),
            Box::new(move |p: &sample::Parts| p.noun == nn),
        ));
    }
    let noun = |word: &str| NOUNS.iter().position(|(n, _)| *n == word).unwrap();
    for (query, target) in [
        ("tv", "television"),
        ("couch", "sofa"),
        ("bike", "bicycle"),
        ("trainers", "sneakers"),
    ] {
        let nn = noun(target);
        out.push((
            query.to_owned(),
            Box::new(move |p: &sample::Parts| p.noun == nn),
        ));
    }
    out
}

fn scores(
    hits: &[u64],
    relevant: &dyn Fn(&sample::Parts) -> bool,
    total_relevant: usize,
) -> (f64, f64) {
    let rel: Vec<bool> = hits.iter().map(|n| relevant(&sample::parts(*n))).collect();
    // Out of what can be found: a query with 3 relevant items scores 1.0
    // when all 3 are in the top 5.
    let p5 = rel.iter().take(5).filter(|r| **r).count() as f64 / total_relevant.clamp(1, 5) as f64;
    let dcg: f64 = rel
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, r)| **r)
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..total_relevant.min(10))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    (p5, if ideal > 0.0 { dcg / ideal } else { 0.0 })
}

fn main() {
    let items: u64 = env_or("ITEMS", 100_000);
    let per_class: usize = env_or("QUERIES", 2_000);
    let secs: u64 = env_or("SECS", 5);
    let client_counts: Vec<usize> = env_or("CLIENTS", "4,16".to_owned())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    // `KEEP=1`: leave the data directory for manual runs afterwards.
    let data_path = if std::env::var_os("KEEP").is_some() {
        let kept = data.path().to_owned();
        std::mem::forget(data);
        eprintln!("keeping {}", kept.display());
        kept
    } else {
        data.path().to_owned()
    };
    let dir = data_path.join("node");
    println!(
        "# search bench: {items} items, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Raw tantivy first (alone on the machine).
    let (raw, raw_secs) = Raw::build(items);
    println!("raw tantivy: indexed {items} in {raw_secs:.1} s = {:.0} items/s (one writer thread, one commit)", items as f64 / raw_secs);

    let (id_to_n, search, store) = runtime.block_on(async {
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        let inventory = InventoryActors::start(store.clone(), RegionSettings::default()).await.unwrap();
        let catalog = CatalogService::new(store.clone(), inventory.clone());
        let search = Search::start(&dir, store.clone(), Duration::from_millis(250), 0).await.unwrap();
        let seller = Authenticated { user_id: "01SELLER000000000000000000".into(), role: Role::Seller, session_key: [0; 32] };
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
        inventory.stop().await;
        (id_to_n, search, store)
    });

    // In-process latency per class.
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

    // Relevance.
    let judged = judged();
    let mut totals = HashMap::new();
    for n in 0..items {
        let p = sample::parts(n);
        for (i, (_, rel)) in judged.iter().enumerate() {
            if rel(&p) {
                *totals.entry(i).or_insert(0usize) += 1;
            }
        }
    }
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
            category: None,
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

    // Freshness while 500 items/s are added.
    runtime.block_on(async {
        let inventory = InventoryActors::start(store.clone(), RegionSettings::default()).await.unwrap();
        let catalog = CatalogService::new(store.clone(), inventory.clone());
        let seller = Authenticated { user_id: "01SELLER000000000000000000".into(), role: Role::Seller, session_key: [0; 32] };
        let lag = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3).unwrap()));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        let mut n = items;
        let mut waiters = Vec::new();
        while Instant::now() < deadline {
            tick.tick().await;
            let input: ItemInput = serde_json::from_value(sample::item(n)).unwrap();
            n += 1;
            let (catalog, seller, search, store, lag) = (catalog.clone(), seller.clone(), search.clone(), store.clone(), lag.clone());
            waiters.push(tokio::spawn(async move {
                catalog.create(&seller, input).await.unwrap();
                let acked = Instant::now();
                let seq = *store.event_watch().borrow();
                while search.indexed() < seq {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                lag.lock().unwrap().record(acked.elapsed().as_micros().max(1) as u64).unwrap();
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
        inventory.stop().await;
        search.stop().await;
        store.shutdown().await;
    });
    drop(search);
    drop(store);

    // Over HTTP: the real binary on the same data directory.
    let server = Server::start_in(&dir, &[]);
    let base = server.base.clone();
    for clients in client_counts {
        let results = runtime.block_on(async {
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(secs);
            let all = Arc::new(queries(500));
            let tasks: Vec<_> = (0..clients)
                .map(|c| {
                    let (client, base, all) = (client.clone(), base.clone(), all.clone());
                    tokio::spawn(async move {
                        let mut hist: HashMap<&'static str, Histogram<u64>> = HashMap::new();
                        let mut i = c * 37;
                        let mut errors = 0u64;
                        while Instant::now() < deadline {
                            i += 1;
                            let q = &all[i % all.len()];
                            let mut url =
                                format!("{base}/items?size=20&term={}", q.term.replace(' ', "%20"));
                            if let Some(category) = q.category {
                                url.push_str(&format!(
                                    "&category={category}&minPrice=1000&maxPrice=60000&sort=price_asc"
                                ));
                            }
                            let started = Instant::now();
                            match client.get(&url).send().await {
                                Ok(r) if r.status().is_success() => {
                                    let _ = r.bytes().await;
                                    hist.entry(q.class)
                                        .or_insert_with(|| Histogram::new(3).unwrap())
                                        .record(started.elapsed().as_micros().max(1) as u64)
                                        .unwrap();
                                }
                                _ => errors += 1,
                            }
                        }
                        (hist, errors)
                    })
                })
                .collect();
            let mut merged: HashMap<&'static str, Histogram<u64>> = HashMap::new();
            let mut errors = 0;
            for t in tasks {
                let (hist, e) = t.await.unwrap();
                errors += e;
                for (class, h) in hist {
                    merged
                        .entry(class)
                        .or_insert_with(|| Histogram::new(3).unwrap())
                        .add(h)
                        .unwrap();
                }
            }
            (merged, errors)
        });
        let (merged, errors) = results;
        let total: u64 = merged.values().map(|h| h.len()).sum();
        println!("\nover HTTP, {clients} clients, {secs} s: {:.0} searches/s, {errors} errors\n\n| class | p50 ms | p99 ms |\n|---|---|---|", total as f64 / secs as f64);
        for class in CLASSES {
            if let Some(h) = merged.get(class) {
                println!("| {class} | {:.2} | {:.2} |", ms(h, 0.5), ms(h, 0.99));
            }
        }
    }
    drop(server);
    let unique: HashSet<&String> = id_to_n.keys().collect();
    assert_eq!(unique.len() as u64, items);
}

//! The query classes both engines answer, and the judged queries whose
//! relevant items are known from the sample generator.

use std::collections::HashMap;

use agora::search::sample::{self, ADJECTIVES, BRANDS, NOUNS};
use agora::search::{SearchRequest, Sort};

/// A query of one class, for both engines.
#[derive(Clone, Default)]
pub struct Q {
    pub class: &'static str,
    pub term: String,
    pub category: Option<&'static str>,
    /// Brand filter (as written).
    pub brand: Option<&'static str>,
    /// Price range, inclusive.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// Cheapest first (else relevance).
    pub price_asc: bool,
}

impl Q {
    /// The URL query string (without `size`).
    pub fn url_query(&self) -> String {
        let mut url = format!("term={}", self.term.replace(' ', "%20"));
        if let Some(category) = self.category {
            url.push_str(&format!("&category={category}"));
        }
        if let Some(brand) = self.brand {
            url.push_str(&format!("&brand={brand}"));
        }
        if let Some(low) = self.min_price {
            url.push_str(&format!("&minPrice={low}"));
        }
        if let Some(high) = self.max_price {
            url.push_str(&format!("&maxPrice={high}"));
        }
        if self.price_asc {
            url.push_str("&sort=price_asc");
        }
        url
    }
}

/// Deletes one letter in the middle of each word of 4+ letters.
pub fn typo(text: &str) -> String {
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

/// `per_class` queries of each class, from the sample vocabulary.
pub fn queries(per_class: usize) -> Vec<Q> {
    let mut out = Vec::new();
    for i in 0..per_class {
        let adjective = ADJECTIVES[(i * 7) % ADJECTIVES.len()];
        let (noun, category) = NOUNS[(i * 13) % NOUNS.len()];
        let two = format!("{adjective} {noun}");
        out.push(Q {
            class: "one-word",
            term: noun.to_owned(),
            category: None,
            ..Q::default()
        });
        out.push(Q {
            class: "two-word",
            term: two.clone(),
            category: None,
            ..Q::default()
        });
        out.push(Q {
            class: "fuzzy",
            term: typo(&two),
            category: None,
            ..Q::default()
        });
        out.push(Q {
            class: "filtered",
            term: noun.to_owned(),
            category: Some(category),
            min_price: Some(1_000),
            max_price: Some(60_000),
            price_asc: true,
            ..Q::default()
        });
        // Every sample description says "by {brand}": every item matches.
        out.push(Q {
            class: "broad",
            term: "by".to_owned(),
            category: None,
            ..Q::default()
        });
        // The load's long tail (`load/src/scenarios.rs`), scaled to the
        // sample: (A) two words, a brand and a band of 10% of the prices,
        // by relevance; (B) a word, a category and a lowest price (10% to
        // 100% of the prices), cheapest first.
        let low = 100 + (i as i64 * 7_919) % 90_000;
        out.push(Q {
            class: "tail-a",
            term: format!("{adjective} {noun}"),
            brand: Some(BRANDS[(i * 5) % BRANDS.len()]),
            min_price: Some(low),
            max_price: Some(low + 10_000),
            ..Q::default()
        });
        out.push(Q {
            class: "tail-b",
            term: noun.to_owned(),
            category: Some(category),
            min_price: Some(low),
            price_asc: true,
            ..Q::default()
        });
    }
    out
}

/// The query classes, in report order.
pub const CLASSES: [&str; 7] = [
    "one-word", "two-word", "fuzzy", "filtered", "broad", "tail-a", "tail-b",
];

/// `q` as our search request.
pub fn request(q: &Q) -> SearchRequest {
    SearchRequest {
        term: Some(q.term.clone()),
        category: q.category.map(str::to_owned),
        brand: q.brand.map(str::to_owned),
        min_price: q.min_price,
        max_price: q.max_price,
        sort: q.price_asc.then_some(Sort::PriceAsc),
        size: 20,
        ..SearchRequest::default()
    }
}

/// Relevance: queries whose relevant items are known from the generator.
pub type Judge = Box<dyn Fn(&sample::Parts) -> bool>;

/// The judged queries: exact, one typo per word, a prefix, a plural, synonyms.
pub fn judged() -> Vec<(String, Judge)> {
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

/// P@5 and NDCG@10 of `hits` against what is relevant.
pub fn scores(
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

/// How many of the `items` sample items each judged query should find.
pub fn relevant_counts(judged: &[(String, Judge)], items: u64) -> HashMap<usize, usize> {
    let mut totals = HashMap::new();
    for n in 0..items {
        let p = sample::parts(n);
        for (i, (_, rel)) in judged.iter().enumerate() {
            if rel(&p) {
                *totals.entry(i).or_insert(0usize) += 1;
            }
        }
    }
    totals
}

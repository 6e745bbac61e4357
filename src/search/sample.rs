//! A deterministic sample catalog, for benchmarks, the relevance check and
//! load tests: item `n` is always the same, so runs compare.

use serde_json::{json, Value};

/// Adjectives (the first word of every name).
pub const ADJECTIVES: [&str; 24] = [
    "wireless",
    "compact",
    "ergonomic",
    "vintage",
    "smart",
    "rugged",
    "portable",
    "premium",
    "classic",
    "modern",
    "foldable",
    "waterproof",
    "lightweight",
    "heavy-duty",
    "silent",
    "digital",
    "organic",
    "handmade",
    "adjustable",
    "rechargeable",
    "bluetooth",
    "stainless",
    "ceramic",
    "wooden",
];

/// Nouns with their category.
pub const NOUNS: [(&str, &str); 40] = [
    ("mouse", "electronics"),
    ("keyboard", "electronics"),
    ("monitor", "electronics"),
    ("speaker", "electronics"),
    ("headphones", "electronics"),
    ("television", "electronics"),
    ("laptop", "electronics"),
    ("charger", "electronics"),
    ("camera", "electronics"),
    ("router", "electronics"),
    ("lamp", "home"),
    ("chair", "home"),
    ("table", "home"),
    ("sofa", "home"),
    ("blender", "kitchen"),
    ("kettle", "kitchen"),
    ("toaster", "kitchen"),
    ("skillet", "kitchen"),
    ("teapot", "kitchen"),
    ("knife", "kitchen"),
    ("backpack", "outdoor"),
    ("tent", "outdoor"),
    ("flashlight", "outdoor"),
    ("bottle", "outdoor"),
    ("jacket", "clothing"),
    ("sneakers", "clothing"),
    ("hoodie", "clothing"),
    ("scarf", "clothing"),
    ("notebook", "office"),
    ("stapler", "office"),
    ("pen", "office"),
    ("desk", "office"),
    ("bicycle", "sports"),
    ("helmet", "sports"),
    ("dumbbell", "sports"),
    ("racket", "sports"),
    ("puzzle", "toys"),
    ("drone", "toys"),
    ("robot", "toys"),
    ("guitar", "music"),
];

/// Brands.
pub const BRANDS: [&str; 16] = [
    "Logi",
    "Acme",
    "Northwind",
    "Contoso",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Soylent",
    "Cyberdyne",
    "Tyrell",
    "Wonka",
    "Vandelay",
    "Gringotts",
];

const COLORS: [&str; 8] = [
    "black", "white", "silver", "red", "blue", "green", "graphite", "gold",
];
const FILLER: [&str; 12] = [
    "designed", "for", "everyday", "use", "with", "a", "two-year", "warranty", "and", "free",
    "returns", "included",
];

/// splitmix64: a tiny, well-mixed generator; enough for sample data.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// What item `n` is made of (for judging results).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// Index into [`ADJECTIVES`].
    pub adjective: usize,
    /// Index into [`NOUNS`].
    pub noun: usize,
    /// Index into [`BRANDS`].
    pub brand: usize,
}

/// The parts of item `n`.
pub fn parts(n: u64) -> Parts {
    let r = mix(n);
    Parts {
        adjective: (r % ADJECTIVES.len() as u64) as usize,
        noun: ((r >> 16) % NOUNS.len() as u64) as usize,
        brand: ((r >> 32) % BRANDS.len() as u64) as usize,
    }
}

fn title(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Item `n` as a `POST /items` body.
pub fn item(n: u64) -> Value {
    let r = mix(n ^ 0xA5A5);
    let p = parts(n);
    let (noun, category) = NOUNS[p.noun];
    let adjective = ADJECTIVES[p.adjective];
    let brand = BRANDS[p.brand];
    let color = COLORS[(r % COLORS.len() as u64) as usize];
    let filler: Vec<&str> = (0..6)
        .map(|i| FILLER[((r >> (8 + i * 4)) % FILLER.len() as u64) as usize])
        .collect();
    json!({
        "name": format!("{} {} {}", title(adjective), title(noun), n),
        "description": format!("A {adjective} {color} {noun} by {brand}, {}.", filler.join(" ")),
        "price": 100 + (r >> 20) % 100_000,
        "quantity": if r % 10 == 0 { 0 } else { 1 + (r >> 40) % 50 },
        "brand": brand,
        "category": category,
        "tags": [noun, adjective],
        "attributes": {"color": color},
    })
}

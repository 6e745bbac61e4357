//! The index's fields, its analyzers, and how an item becomes a document.

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer, TokenStream,
};
use tantivy::{Index, IndexSettings, IndexSortByField, Order, TantivyDocument};

use crate::domain::item::Item;

/// Bumped whenever the fields, analyzers or index settings change: an
/// index written with another version is rebuilt from the items at
/// start-up. 2: documents sorted by price ([`settings`]).
pub const SCHEMA_VERSION: u32 = 2;

/// The field the documents of every segment are sorted by, ascending.
pub const SORTED_BY: &str = "price";

/// Stemmed analyzer: words, lower-cased, ASCII-folded, English stems.
pub const STEMMED: &str = "agora_en";
/// Plain analyzer: the same words without stemming (typos and prefixes
/// are matched against the words as written).
pub const PLAIN: &str = "agora_plain";

/// Tokens longer than this (bytes) are dropped: nobody types them, and a
/// 5,000-character "word" must not become a fuzzy automaton.
const LONGEST_TOKEN: usize = 40;

/// The index's fields.
#[derive(Clone)]
pub struct Fields {
    /// The schema itself.
    pub schema: Schema,
    /// Item id (raw): deletes and updates by term.
    pub id: Field,
    /// The id's 128 bits as two fast fields: the final tie-breaker of every
    /// sort, and how a hit is turned back into an id without stored fields.
    pub id_hi: Field,
    /// Low 64 bits of the id.
    pub id_lo: Field,
    /// Name, stemmed (boosted in queries).
    pub name: Field,
    /// Brand, category, tags, description and attribute values, stemmed.
    pub body: Field,
    /// Name, brand, category, tags and attribute values unstemmed: typo
    /// tolerance and prefixes.
    pub words: Field,
    /// The name alone, unstemmed: autocomplete.
    pub name_words: Field,
    /// Category as stored (lower-case): filter and facet.
    pub category: Field,
    /// Brand as written: facet.
    pub brand: Field,
    /// Brand lower-cased: filter.
    pub brand_key: Field,
    /// Display price, minor units.
    pub price: Field,
    /// Creation time, ms.
    pub created: Field,
    /// 1 when any variant has stock.
    pub in_stock: Field,
}

impl Fields {
    /// The schema of [`SCHEMA_VERSION`].
    pub fn new() -> Fields {
        let mut builder = Schema::builder();
        let text = |analyzer: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analyzer)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
        };
        let keyword = STRING | FAST;
        let number = NumericOptions::default().set_indexed().set_fast();
        let id = builder.add_text_field("id", STRING);
        let id_hi = builder.add_u64_field("id_hi", FAST);
        let id_lo = builder.add_u64_field("id_lo", FAST);
        let name = builder.add_text_field("name", text(STEMMED));
        let body = builder.add_text_field("body", text(STEMMED));
        let words = builder.add_text_field("words", text(PLAIN));
        let name_words = builder.add_text_field("name_words", text(PLAIN));
        let category = builder.add_text_field("category", keyword.clone());
        let brand = builder.add_text_field("brand", keyword);
        let brand_key = builder.add_text_field("brand_key", STRING);
        let price = builder.add_i64_field("price", number.clone());
        let created = builder.add_i64_field("created", number);
        let in_stock = builder.add_u64_field("in_stock", INDEXED | FAST);
        Fields {
            schema: builder.build(),
            id,
            id_hi,
            id_lo,
            name,
            body,
            words,
            name_words,
            category,
            brand,
            brand_key,
            price,
            created,
            in_stock,
        }
    }

    /// The document for an active item.
    pub fn document(&self, item: &Item, in_stock: bool) -> TantivyDocument {
        let (hi, lo) = id_halves(&item.id);
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, &item.id);
        doc.add_u64(self.id_hi, hi);
        doc.add_u64(self.id_lo, lo);
        doc.add_text(self.name, &item.name);
        doc.add_text(self.words, &item.name);
        doc.add_text(self.name_words, &item.name);
        let mut body = Vec::new();
        if let Some(brand) = &item.brand {
            doc.add_text(self.brand, brand);
            doc.add_text(self.brand_key, brand.to_lowercase());
            doc.add_text(self.words, brand);
            body.push(brand.clone());
        }
        if let Some(category) = &item.category {
            doc.add_text(self.category, category);
            doc.add_text(self.words, category);
            body.push(category.clone());
        }
        for tag in &item.tags {
            doc.add_text(self.words, tag);
            body.push(tag.clone());
        }
        let mut values = Vec::new();
        attribute_values(&item.attributes_json, &mut values);
        for variant in &item.variants {
            attribute_values(&variant.attributes_json, &mut values);
        }
        values.sort_unstable();
        values.dedup();
        for value in values {
            doc.add_text(self.words, &value);
            body.push(value);
        }
        body.push(item.description.clone());
        doc.add_text(self.body, body.join("\n"));
        doc.add_i64(self.price, item.price);
        doc.add_i64(self.created, item.created_at.0);
        doc.add_u64(self.in_stock, u64::from(in_stock));
        doc
    }
}

impl Default for Fields {
    fn default() -> Self {
        Fields::new()
    }
}

/// The index's settings: documents sorted by price ascending in every
/// segment, so a price range is one span of documents
/// ([`super::band`]) and a cheapest-first search can stop early.
pub fn settings() -> IndexSettings {
    IndexSettings {
        sort_by_field: Some(IndexSortByField {
            field: SORTED_BY.to_owned(),
            order: Order::Asc,
        }),
        ..IndexSettings::default()
    }
}

/// Whether `index` has [`settings`]' sort (an index created before it has
/// none: it is recreated at start-up; searches on it take the unsorted
/// path meanwhile).
pub fn sorted_by_price(index: &Index) -> bool {
    index.settings().sort_by_field == settings().sort_by_field
}

/// Registers the analyzers on `index` (they are not stored with it).
pub fn register_analyzers(index: &Index) {
    index.tokenizers().register(STEMMED, stemmed());
    index.tokenizers().register(PLAIN, plain());
}

fn stemmed() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(LONGEST_TOKEN))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

fn plain() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(LONGEST_TOKEN))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The words of `text` as the plain analyzer sees them.
pub fn plain_words(text: &str) -> Vec<String> {
    tokens(&mut plain(), text)
}

/// The stem of one plain word (`None` if the analyzer drops it).
pub fn stem(word: &str) -> Option<String> {
    tokens(&mut stemmed(), word).into_iter().next()
}

fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// The id's 128 bits (ids are ULIDs; anything else is hashed into the
/// space so it still sorts and round-trips through [`id_from_halves`] only
/// for ULIDs, which are all the catalog issues).
pub fn id_halves(id: &str) -> (u64, u64) {
    let bits = match ulid::Ulid::from_string(id) {
        Ok(ulid) => u128::from(ulid),
        Err(_) => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut hasher);
            u128::from(hasher.finish())
        }
    };
    ((bits >> 64) as u64, bits as u64)
}

/// The id back from its halves.
pub fn id_from_halves(hi: u64, lo: u64) -> String {
    ulid::Ulid::from((u128::from(hi) << 64) | u128::from(lo)).to_string()
}

/// String and number leaves of a JSON object (attribute values).
fn attribute_values(json: &str, out: &mut Vec<String>) {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Number(n) => out.push(n.to_string()),
            serde_json::Value::Bool(_) | serde_json::Value::Null => {}
            serde_json::Value::Array(values) => values.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| walk(v, out)),
        }
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(json) {
        walk(&value, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyzers_fold_lower_and_stem() {
        assert_eq!(
            plain_words("Wireless MÖUSE, tv!"),
            ["wireless", "mouse", "tv"]
        );
        assert_eq!(stem("mice").as_deref(), Some("mice"));
        assert_eq!(stem("mouses").as_deref(), Some("mous"));
        assert_eq!(stem("mouse").as_deref(), Some("mous"));
        assert!(plain_words(&"x".repeat(5_000)).is_empty());
    }

    #[test]
    fn ids_round_trip_through_their_halves() {
        let id = ulid::Ulid::new().to_string();
        let (hi, lo) = id_halves(&id);
        assert_eq!(id_from_halves(hi, lo), id);
    }
}

//! The peer: raw tantivy over the same items, with its own `en_stem`
//! analyzer, `QueryParser`, `TopDocs` and `Count`.

use std::ops::Bound;
use std::time::Instant;

use agora::search::sample;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, FuzzyTermQuery, Occur, Query, QueryParser, RangeQuery, TermQuery,
};
use tantivy::schema::{IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT};
use tantivy::{Index, TantivyDocument, Term};

use super::queries::Q;

/// The peer's index, its reader and its fields.
pub struct Raw {
    pub index: Index,
    pub reader: tantivy::IndexReader,
    pub name: tantivy::schema::Field,
    pub body: tantivy::schema::Field,
    pub category: tantivy::schema::Field,
    pub n: tantivy::schema::Field,
    pub brand: tantivy::schema::Field,
    pub price: tantivy::schema::Field,
}

impl Raw {
    /// Indexes `items` sample items in one commit; the index and the
    /// seconds it took.
    pub fn build(items: u64) -> (Raw, f64) {
        let mut builder = Schema::builder();
        let name = builder.add_text_field("name", TEXT);
        let body = builder.add_text_field("body", TEXT);
        let category = builder.add_text_field("category", STRING);
        let n = builder.add_u64_field("n", FAST | STORED);
        let brand = builder.add_text_field("brand", STRING);
        let price = builder.add_i64_field("price", INDEXED | FAST);
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
            doc.add_text(brand, item["brand"].as_str().unwrap().to_lowercase());
            doc.add_i64(price, item["price"].as_i64().unwrap());
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
                brand,
                price,
            },
            secs,
        )
    }

    /// `q` as a tantivy query (fuzzy terms for the fuzzy class).
    pub fn query(&self, q: &Q) -> Box<dyn Query> {
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
        let mut clauses = vec![(Occur::Must, text)];
        let term = |field, text: &str| -> (Occur, Box<dyn Query>) {
            let term = Term::from_field_text(field, text);
            let query = TermQuery::new(term, IndexRecordOption::Basic);
            (Occur::Must, Box::new(query))
        };
        if let Some(category) = q.category {
            clauses.push(term(self.category, category));
        }
        if let Some(brand) = q.brand {
            clauses.push(term(self.brand, &brand.to_lowercase()));
        }
        if q.min_price.is_some() || q.max_price.is_some() {
            let bound = |price: Option<i64>| match price {
                Some(p) => Bound::Included(Term::from_field_i64(self.price, p)),
                None => Bound::Unbounded,
            };
            let range = RangeQuery::new(bound(q.min_price), bound(q.max_price));
            clauses.push((Occur::Must, Box::new(range)));
        }
        if clauses.len() == 1 {
            return clauses.pop().unwrap().1;
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// Top `k` item numbers.
    pub fn top(&self, q: &Q, k: usize) -> Vec<u64> {
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

//! The peer: raw tantivy over the same items, with its own `en_stem`
//! analyzer, `QueryParser`, `TopDocs` and `Count`.

use std::time::Instant;

use agora::search::sample;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, FuzzyTermQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{IndexRecordOption, Schema, Value, FAST, STORED, STRING, TEXT};
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

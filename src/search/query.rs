//! What a buyer asked for, and the tantivy query that answers it.
//!
//! The term is never parsed as query syntax: it is cut into words by the
//! same analyzer the index uses, and each word becomes a small group of
//! term queries, so quotes, colons, brackets or emoji are only text.

use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::Term;

use super::band::PriceBand;
use super::expand::Lexicon;
use super::schema::{self, plain_words, stem, Fields};
use super::synonyms::Synonyms;
use super::words::{bm25_bound, AnyWords};

/// Words of a term that are searched; the rest is ignored.
pub const MAX_WORDS: usize = 12;

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sort {
    /// Best match first (ties: id).
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// Newest listing first.
    Newest,
}

impl Sort {
    /// Parses the API spelling.
    pub fn parse(text: &str) -> Option<Sort> {
        match text {
            "relevance" => Some(Sort::Relevance),
            "price_asc" => Some(Sort::PriceAsc),
            "price_desc" => Some(Sort::PriceDesc),
            "newest" => Some(Sort::Newest),
            _ => None,
        }
    }

    pub(super) fn code(self) -> u8 {
        match self {
            Sort::Relevance => 0,
            Sort::PriceAsc => 1,
            Sort::PriceDesc => 2,
            Sort::Newest => 3,
        }
    }
}

/// A validated search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Free text (`None`: browse).
    pub term: Option<String>,
    /// Only this category (case-insensitive).
    pub category: Option<String>,
    /// Only this brand (case-insensitive).
    pub brand: Option<String>,
    /// Lowest price, minor units, inclusive.
    pub min_price: Option<i64>,
    /// Highest price, minor units, inclusive.
    pub max_price: Option<i64>,
    /// Only items with stock.
    pub in_stock: bool,
    /// Order (`None`: relevance with a term, newest without).
    pub sort: Option<Sort>,
    /// Page size, 1..=100.
    pub size: usize,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
}

impl SearchRequest {
    /// The order actually used.
    pub fn effective_sort(&self) -> Sort {
        match (self.sort, &self.term) {
            (Some(sort), _) => sort,
            (None, Some(_)) => Sort::Relevance,
            (None, None) => Sort::Newest,
        }
    }

    /// What the cursor is bound to: everything but the cursor and the size.
    pub(super) fn fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}",
            self.term.as_deref().map(plain_words),
            self.category.as_deref().map(str::to_lowercase),
            self.brand.as_deref().map(str::to_lowercase),
            self.min_price,
            self.max_price,
            self.in_stock,
            self.effective_sort().code()
        )
    }
}

/// Boosts: a name match counts most; a typo or a prefix counts far less than
/// any exact word, so exact matches rank above fuzzy ones.
const NAME_BOOST: f32 = 3.0;
const BODY_BOOST: f32 = 1.0;
const SYNONYM_FACTOR: f32 = 0.8;
const FUZZY_SCORE: f32 = 0.3;
const PREFIX_SCORE: f32 = 0.5;
/// Added when every word matches: those items come first.
const ALL_WORDS_BOOST: f32 = 10.0;

/// The query for `request`; `None` when its term has no searchable word
/// (nothing can match). A word the index holds as written needs no typo
/// tolerance (`lexicon.known`): its fuzzy expansion walks the term
/// dictionary and was the largest cost of a correctly spelled query.
///
/// A one-word search without filters is a flat union of term queries,
/// which tantivy runs as block-max WAND (it skips blocks of postings
/// that cannot reach the page); anything else is a tree, whose top k is
/// still pruned on the score, without skipping.
pub(super) fn build(
    fields: &Fields,
    synonyms: &Synonyms,
    request: &SearchRequest,
    lexicon: &Lexicon,
) -> Option<Box<dyn Query>> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    match &request.term {
        Some(term) => {
            let words: Vec<String> = plain_words(term).into_iter().take(MAX_WORDS).collect();
            if words.is_empty() {
                return None;
            }
            clauses.push((Occur::Must, text_query(fields, synonyms, &words, lexicon)));
        }
        None => clauses.push((Occur::Must, Box::new(AllQuery))),
    }
    let sorted = schema::sorted_by_price(lexicon.searcher.index());
    filters(fields, request, sorted, &mut clauses);
    if clauses.len() == 1 {
        return clauses.pop().map(|(_, query)| query);
    }
    Some(Box::new(BooleanQuery::new(clauses)))
}

/// The request's filters, as clauses that match without scoring. On an
/// index `sorted` by price, a price range is a span of documents
/// ([`PriceBand`]); on another (until it is rebuilt), a range query.
fn filters(
    fields: &Fields,
    request: &SearchRequest,
    sorted: bool,
    clauses: &mut Vec<(Occur, Box<dyn Query>)>,
) {
    let filter = |query: Box<dyn Query>| -> (Occur, Box<dyn Query>) {
        (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
    };
    if let Some(category) = &request.category {
        let term = Term::from_field_text(fields.category, &category.to_lowercase());
        clauses.push(filter(Box::new(TermQuery::new(
            term,
            IndexRecordOption::Basic,
        ))));
    }
    if let Some(brand) = &request.brand {
        let term = Term::from_field_text(fields.brand_key, &brand.to_lowercase());
        clauses.push(filter(Box::new(TermQuery::new(
            term,
            IndexRecordOption::Basic,
        ))));
    }
    if sorted && (request.min_price.is_some() || request.max_price.is_some()) {
        clauses.push(filter(Box::new(PriceBand {
            field: fields.schema.get_field_name(fields.price).to_owned(),
            low: request.min_price.unwrap_or(i64::MIN),
            high: request.max_price.unwrap_or(i64::MAX),
        })));
    } else if request.min_price.is_some() || request.max_price.is_some() {
        let bound = |price: Option<i64>| match price {
            Some(p) => Bound::Included(Term::from_field_i64(fields.price, p)),
            None => Bound::Unbounded,
        };
        clauses.push(filter(Box::new(RangeQuery::new(
            bound(request.min_price),
            bound(request.max_price),
        ))));
    }
    if request.in_stock {
        let term = Term::from_field_u64(fields.in_stock, 1);
        clauses.push(filter(Box::new(TermQuery::new(
            term,
            IndexRecordOption::Basic,
        ))));
    }
}

/// A boolean query's clauses.
type Clauses = Vec<(Occur, Box<dyn Query>)>;

/// Any word matching; items matching every word boosted above the rest.
fn text_query(
    fields: &Fields,
    synonyms: &Synonyms,
    words: &[String],
    lexicon: &Lexicon,
) -> Box<dyn Query> {
    let last = words.len() - 1;
    let (per_word, bounds): (Vec<Box<dyn Query>>, Vec<f32>) = words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let (clauses, bound) =
                word_query(fields, synonyms, word, i == last, words.len() > 1, lexicon);
            (
                Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>,
                bound,
            )
        })
        .unzip();
    if per_word.len() == 1 {
        return per_word.into_iter().next().expect("one word");
    }
    Box::new(AnyWords {
        words: per_word,
        all_boost: ALL_WORDS_BOOST,
        bounds,
    })
}

/// A term query scored as BM25 times `boost` (a term query under a boost
/// is still a term scorer, so a union of them can use block-max WAND).
fn scored(term: Term, boost: f32) -> (Occur, Box<dyn Query>) {
    let query = TermQuery::new(term, IndexRecordOption::WithFreqs);
    (
        Occur::Should,
        Box::new(BoostQuery::new(Box::new(query), boost)),
    )
}

/// One word, as alternatives of one union: its stem in the name and the
/// body, its synonyms, typos of it (1 edit at 4+ letters, 2 at 8+; unless
/// the word itself is known) and, for the last word, its longer forms.
/// Typos and longer forms are the most frequent few terms
/// ([`super::expand::MAX_EXPANSIONS`]), each weighted to score about
/// `FUZZY_SCORE` / `PREFIX_SCORE` (BM25 over its idf), far below any
/// exact word. With it, when `bounded` (a word among several), an upper
/// bound of what the word scores ([`AnyWords::bounds`]); else 0.
fn word_query(
    fields: &Fields,
    synonyms: &Synonyms,
    word: &str,
    last: bool,
    bounded: bool,
    lexicon: &Lexicon,
) -> (Clauses, f32) {
    let total_docs: u64 = lexicon
        .searcher
        .segment_readers()
        .iter()
        .map(|r| u64::from(r.max_doc()))
        .sum();
    // What the word can score at most: every one of its terms at its bound.
    let mut bound = 0.0;
    let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let mut exact = |word: &str, factor: f32, out: &mut Vec<(Occur, Box<dyn Query>)>| {
        if let Some(stemmed) = stem(word) {
            for (field, boost) in [(fields.name, NAME_BOOST), (fields.body, BODY_BOOST)] {
                let term = Term::from_field_text(field, &stemmed);
                if bounded {
                    let doc_freq = lexicon.searcher.doc_freq(&term).unwrap_or(0);
                    bound += bm25_bound(boost * factor, doc_freq, total_docs);
                }
                out.push(scored(term, boost * factor));
            }
        }
    };
    exact(word, 1.0, &mut alternatives);
    for phrase in synonyms.of(word) {
        // A one-word synonym stays flat: its two term queries.
        if let [single] = phrase.as_slice() {
            exact(single, SYNONYM_FACTOR, &mut alternatives);
            continue;
        }
        let mut parts = Vec::new();
        for part in phrase {
            let mut one = Vec::new();
            exact(part, SYNONYM_FACTOR, &mut one);
            if !one.is_empty() {
                parts.push(Box::new(BooleanQuery::new(one)) as Box<dyn Query>);
            }
        }
        match parts.len() {
            0 => {}
            1 => alternatives.push((Occur::Should, parts.pop().expect("one part"))),
            _ => alternatives.push((Occur::Should, Box::new(BooleanQuery::intersection(parts)))),
        }
    }
    let letters = word.chars().count();
    let mut expanded = Vec::new();
    if letters >= 4 && !lexicon.known(&Term::from_field_text(fields.words, word)) {
        let distance = if letters >= 8 { 2 } else { 1 };
        for (term, n) in lexicon.fuzzy(fields.words, word, distance) {
            expanded.push((term, n, FUZZY_SCORE));
        }
    }
    if last && letters >= 2 {
        for (term, n) in lexicon.prefix(fields.words, word) {
            expanded.push((term, n, PREFIX_SCORE));
        }
    }
    for (term, n, score) in expanded {
        let boost = score / lexicon.idf(n).max(0.1);
        // `n` may miss segments whose scan stopped short: a lower count,
        // so a higher bound (never a lower one).
        bound += bm25_bound(boost, n, total_docs);
        alternatives.push(scored(term, boost));
    }
    (alternatives, bound)
}

/// Autocomplete: every typed word in the name (a typo allowed as in search),
/// the last one as a prefix; `None` without a word. Expansions are capped
/// as in search; every match scores the same (ties: index order).
pub(super) fn suggest(fields: &Fields, lexicon: &Lexicon, text: &str) -> Option<Box<dyn Query>> {
    let words: Vec<String> = plain_words(text).into_iter().take(MAX_WORDS).collect();
    let last = words.len().checked_sub(1)?;
    let clauses = words
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let itself = Term::from_field_text(fields.name_words, word);
            let letters = word.chars().count();
            let mut terms = vec![itself];
            if i == last {
                terms.extend(
                    lexicon
                        .prefix(fields.name_words, word)
                        .into_iter()
                        .map(|t| t.0),
                );
            } else if letters >= 4 {
                let distance = if letters >= 8 { 2 } else { 1 };
                let typos = lexicon.fuzzy(fields.name_words, word, distance);
                terms.extend(typos.into_iter().map(|t| t.0));
            }
            let any: Vec<(Occur, Box<dyn Query>)> = terms
                .into_iter()
                .map(|term| {
                    let query = TermQuery::new(term, IndexRecordOption::Basic);
                    (Occur::Should, Box::new(query) as Box<dyn Query>)
                })
                .collect();
            let word: Box<dyn Query> =
                Box::new(ConstScoreQuery::new(Box::new(BooleanQuery::new(any)), 1.0));
            (Occur::Must, word)
        })
        .collect();
    Some(Box::new(BooleanQuery::new(clauses)))
}

//! Bounded expansion of typo and prefix words: the terms of the index a
//! fuzzy or prefix word stands for, capped to the most frequent, so a
//! two-letter prefix or a misspelling of a common word cannot fan out to
//! thousands of terms (each would be a posting list to read and score).

use std::collections::HashMap;

use tantivy::query::FuzzyTermQuery;
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocSet, Searcher, Term, TERMINATED};

/// Most terms one fuzzy or prefix word expands to (Elasticsearch's
/// `max_expansions` default for fuzzy queries is the same 50).
pub const MAX_EXPANSIONS: usize = 50;

/// Most dictionary terms walked per segment for one word: bounds the walk
/// itself (a two-letter prefix of a catalogue with item numbers in its
/// names spans a hundred thousand terms), at the price of choosing the
/// most frequent among the first ones in dictionary order past it.
pub const MAX_SCANNED: usize = 4_096;

/// What a query is built against: the snapshot it will run on.
pub(super) struct Lexicon<'a> {
    /// The snapshot.
    pub searcher: &'a Searcher,
}

impl Lexicon<'_> {
    /// Whether any live document holds `term` (stops at the first; a
    /// term's `doc_freq` also counts deleted documents, and every update
    /// deletes the old one).
    pub fn known(&self, term: &Term) -> bool {
        for reader in self.searcher.segment_readers() {
            let Ok(index) = reader.inverted_index(term.field()) else {
                continue;
            };
            let Ok(Some(mut postings)) = index.read_postings(term, IndexRecordOption::Basic) else {
                continue;
            };
            let alive = reader.alive_bitset();
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    return true;
                }
                doc = postings.advance();
            }
        }
        false
    }

    /// [`prefix`] on this snapshot.
    pub fn prefix(&self, field: Field, word: &str) -> Vec<(Term, u64)> {
        prefix(self.searcher, field, word)
    }

    /// [`fuzzy`] on this snapshot.
    pub fn fuzzy(&self, field: Field, word: &str, distance: u8) -> Vec<(Term, u64)> {
        fuzzy(self.searcher, field, word, distance)
    }

    /// BM25's inverse document frequency for a term in `doc_freq`
    /// documents, as tantivy computes it: a one-off occurrence of a term of
    /// that frequency in a document of average length scores about this.
    pub fn idf(&self, doc_freq: u64) -> f32 {
        let docs = self.searcher.num_docs() as f32;
        let n = doc_freq as f32;
        (1.0 + (docs - n + 0.5) / (n + 0.5)).ln()
    }
}

/// Adds a term stream's terms (up to [`MAX_SCANNED`], while `within`
/// holds) and their document frequencies to `counts`, leaving out
/// `itself`. A macro: the stream's type depends on the automaton.
macro_rules! add {
    ($stream:expr, $itself:expr, $within:expr, $counts:expr) => {{
        let mut stream = $stream;
        let mut scanned = 0;
        while scanned < MAX_SCANNED && stream.advance() {
            scanned += 1;
            let key = stream.key();
            if !$within(key) {
                break;
            }
            if key != $itself {
                *$counts.entry(key.to_vec()).or_default() += u64::from(stream.value().doc_freq);
            }
        }
    }};
}

/// Terms starting with `prefix` (the word itself left out: its exact
/// match is its own clause), most frequent first, at most
/// [`MAX_EXPANSIONS`].
pub(super) fn prefix(searcher: &Searcher, field: Field, prefix: &str) -> Vec<(Term, u64)> {
    let mut counts = HashMap::new();
    for reader in searcher.segment_readers() {
        let Ok(index) = reader.inverted_index(field) else {
            continue;
        };
        let terms = index.terms();
        let stream = terms.range().ge(prefix.as_bytes()).into_stream();
        if let Ok(stream) = stream {
            add!(
                stream,
                prefix.as_bytes(),
                |key: &[u8]| key.starts_with(prefix.as_bytes()),
                counts
            );
        }
    }
    most_frequent(field, counts)
}

/// Terms within `distance` edits of `word` (the word itself left out), most
/// frequent first, at most [`MAX_EXPANSIONS`].
pub(super) fn fuzzy(
    searcher: &Searcher,
    field: Field,
    word: &str,
    distance: u8,
) -> Vec<(Term, u64)> {
    let query = FuzzyTermQuery::new(Term::from_field_text(field, word), distance, true);
    let mut counts = HashMap::new();
    for reader in searcher.segment_readers() {
        let (Ok(index), Ok(automaton)) = (reader.inverted_index(field), query.automaton()) else {
            continue;
        };
        let terms = index.terms();
        if let Ok(stream) = terms.search(automaton).into_stream() {
            add!(stream, word.as_bytes(), |_: &[u8]| true, counts);
        }
    }
    most_frequent(field, counts)
}

/// The [`MAX_EXPANSIONS`] most frequent terms (ties: dictionary order).
fn most_frequent(field: Field, counts: HashMap<Vec<u8>, u64>) -> Vec<(Term, u64)> {
    let mut terms: Vec<(Vec<u8>, u64)> = counts.into_iter().collect();
    terms.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    terms.truncate(MAX_EXPANSIONS);
    terms
        .into_iter()
        .filter_map(|(bytes, n)| {
            let text = String::from_utf8(bytes).ok()?;
            Some((Term::from_field_text(field, &text), n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tantivy::schema::{Schema, TEXT};
    use tantivy::{doc, Index};

    use super::*;

    /// An index of one document per word in `words`.
    fn index_of(words: &[String]) -> (Searcher, Field) {
        let mut schema = Schema::builder();
        let field = schema.add_text_field("words", TEXT);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for word in words {
            writer.add_document(doc!(field => word.as_str())).unwrap();
        }
        writer.commit().unwrap();
        (index.reader().unwrap().searcher(), field)
    }

    fn texts(terms: &[(Term, u64)]) -> Vec<String> {
        terms
            .iter()
            .map(|(t, _)| t.value().as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_two_letter_prefix_expands_to_the_most_frequent_terms_only() {
        // 500 rare words and 3 common ones, all starting with "zq".
        let mut words: Vec<String> = (0..500).map(|n| format!("zq{n:03}")).collect();
        for common in ["zqcommon", "zqfrequent", "zqpopular"] {
            words.extend(std::iter::repeat_n(common.to_owned(), 5));
        }
        let (searcher, field) = index_of(&words);
        let expanded = texts(&prefix(&searcher, field, "zq"));
        assert_eq!(expanded.len(), MAX_EXPANSIONS);
        for common in ["zqcommon", "zqfrequent", "zqpopular"] {
            assert!(expanded.contains(&common.to_owned()), "{common} left out");
        }
    }

    #[test]
    fn a_misspelling_of_a_common_word_expands_to_a_capped_set_led_by_the_word() {
        // Every one-letter change of "lampp" but itself, and "lamp" often.
        let mut words = Vec::new();
        for at in 0..5 {
            for letter in 'a'..='z' {
                let mut word: Vec<char> = "lampp".chars().collect();
                word[at] = letter;
                let word: String = word.into_iter().collect();
                if word != "lampp" {
                    words.push(word);
                }
            }
        }
        words.extend(std::iter::repeat_n("lamp".to_owned(), 10));
        let (searcher, field) = index_of(&words);
        let expanded = texts(&fuzzy(&searcher, field, "lampp", 1));
        assert_eq!(expanded.len(), MAX_EXPANSIONS);
        assert_eq!(expanded[0], "lamp");
        assert!(!expanded.contains(&"lampp".to_owned()));
    }
}

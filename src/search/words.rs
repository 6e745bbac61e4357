//! A multi-word search: items matching any word, those matching every word
//! boosted above the rest, with each word's postings read once.
//!
//! As tantivy queries this would be `any word OR boost(every word)`: each
//! word's union (its stems, synonyms, typos and longer forms) then runs
//! twice, once under each branch, inside two more buffered unions per
//! segment. [`AnyWords`] merges the words' scorers itself: a document's
//! score is the sum of the words it matches, times `1 + boost` when it
//! matches them all, which is what the two-branch query scores.
//!
//! Its pruned pass (past the count limit, for the rest of the top k) is
//! tiered: each word carries an upper bound of what it can score, so once
//! the k-th best score is above what a document missing a word could
//! reach, only documents matching every word are visited (a leapfrog
//! over the words' postings), not the whole union.

use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED};

/// Documents matching any of `words`; those matching all of them score
/// `1 + all_boost` times their sum.
#[derive(Debug)]
pub struct AnyWords {
    /// One query per word.
    pub words: Vec<Box<dyn Query>>,
    /// Extra weight of a document matching every word.
    pub all_boost: Score,
    /// For each word, at least the most it scores on any document
    /// ([`bm25_bound`] summed over its terms).
    pub bounds: Vec<Score>,
}

impl Clone for AnyWords {
    fn clone(&self) -> Self {
        AnyWords {
            words: self.words.iter().map(|w| w.box_clone()).collect(),
            all_boost: self.all_boost,
            bounds: self.bounds.clone(),
        }
    }
}

/// BM25's `k1`, as tantivy scores.
const K1: Score = 1.2;

/// More than a term query under `boost` scores on any document: tantivy's
/// BM25 is `idf × (1 + k1) × tf / (tf + norm)`, and the last factor is
/// below 1. The idf is tantivy's, from `doc_freq` among `total_docs`
/// (deleted documents included, as tantivy counts them).
pub fn bm25_bound(boost: Score, doc_freq: u64, total_docs: u64) -> Score {
    let x = (total_docs.saturating_sub(doc_freq) as Score + 0.5) / (doc_freq as Score + 0.5);
    boost.abs() * (1.0 + x).ln() * (1.0 + K1)
}

impl Query for AnyWords {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let words = self
            .words
            .iter()
            .map(|w| w.weight(scoring))
            .collect::<tantivy::Result<Vec<_>>>()?;
        // A document missing a word scores at most the other words'
        // bounds; 1% spare for the order the scores are summed in.
        let partial = if self.bounds.len() == self.words.len() {
            let total: Score = self.bounds.iter().sum();
            let least = self.bounds.iter().copied().fold(Score::MAX, Score::min);
            (total - least) * 1.01
        } else {
            Score::MAX
        };
        Ok(Box::new(AnyWordsWeight {
            words,
            all_boost: self.all_boost,
            partial,
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a tantivy::Term, bool)) {
        for word in &self.words {
            word.query_terms(visitor);
        }
    }
}

struct AnyWordsWeight {
    words: Vec<Box<dyn Weight>>,
    all_boost: Score,
    /// Above the score of any document that misses a word.
    partial: Score,
}

impl Weight for AnyWordsWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let scorers = self
            .words
            .iter()
            .map(|w| w.scorer(reader, boost))
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(Box::new(AnyWordsScorer::new(scorers, self.all_boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) != doc {
            return Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} matches no word"
            )));
        }
        Ok(Explanation::new("AnyWords", scorer.score()))
    }

    fn for_each_pruning(
        &self,
        mut threshold: Score,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score) -> Score,
    ) -> tantivy::Result<()> {
        let scorers = self
            .words
            .iter()
            .map(|w| w.scorer(reader, 1.0))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let mut scorer = AnyWordsScorer::new(scorers, self.all_boost);
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if threshold >= self.partial {
                // Only a document with every word can still enter.
                doc = scorer.seek_every_word(doc);
                if doc == TERMINATED {
                    break;
                }
            }
            let score = scorer.score();
            if score > threshold {
                threshold = callback(doc, score);
            }
            doc = scorer.advance();
        }
        Ok(())
    }
}

/// The union of a few word scorers (a search has at most a handful of
/// words, so a linear scan beats a heap).
struct AnyWordsScorer {
    /// The words' scorers; a finished one stays, at `TERMINATED`.
    words: Vec<Box<dyn Scorer>>,
    /// How many words there are (`words.len()`).
    all: usize,
    all_boost: Score,
    doc: DocId,
}

impl AnyWordsScorer {
    fn new(words: Vec<Box<dyn Scorer>>, all_boost: Score) -> Self {
        let mut scorer = AnyWordsScorer {
            all: words.len(),
            words,
            all_boost,
            doc: TERMINATED,
        };
        scorer.doc = scorer.least();
        scorer
    }

    fn least(&self) -> DocId {
        self.words
            .iter()
            .map(|w| w.doc())
            .min()
            .unwrap_or(TERMINATED)
    }

    /// Moves to the first document at or after `target` that matches every
    /// word (a leapfrog: each word seeks the furthest any other reached).
    fn seek_every_word(&mut self, mut target: DocId) -> DocId {
        loop {
            let mut furthest = target;
            for word in &mut self.words {
                let doc = if word.doc() < furthest {
                    word.seek(furthest)
                } else {
                    word.doc()
                };
                furthest = furthest.max(doc);
            }
            if furthest == TERMINATED || self.words.iter().all(|w| w.doc() == furthest) {
                self.doc = furthest;
                return self.doc;
            }
            target = furthest;
        }
    }
}

impl DocSet for AnyWordsScorer {
    fn advance(&mut self) -> DocId {
        if self.doc == TERMINATED {
            return TERMINATED;
        }
        let current = self.doc;
        for word in &mut self.words {
            if word.doc() == current {
                word.advance();
            }
        }
        self.doc = self.least();
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc >= target {
            return self.doc;
        }
        for word in &mut self.words {
            if word.doc() < target {
                word.seek(target);
            }
        }
        self.doc = self.least();
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.words.iter().map(|w| w.size_hint()).max().unwrap_or(0)
    }

    fn cost(&self) -> u64 {
        self.words.iter().map(|w| w.cost()).sum()
    }
}

impl Scorer for AnyWordsScorer {
    fn score(&mut self) -> Score {
        let (mut sum, mut matched) = (0.0, 0);
        for word in &mut self.words {
            if word.doc() == self.doc {
                sum += word.score();
                matched += 1;
            }
        }
        if matched == self.all {
            sum * (1.0 + self.all_boost)
        } else {
            sum
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::query::{BooleanQuery, BoostQuery, Occur, TermQuery};
    use tantivy::schema::Field;
    use tantivy::schema::{IndexRecordOption, Schema, TEXT};
    use tantivy::{doc, Index, Searcher, Term};

    /// A one-segment index of `texts` in one text field, and its snapshot.
    fn index_of(texts: impl IntoIterator<Item = String>) -> (Searcher, Field) {
        let mut builder = Schema::builder();
        let body = builder.add_text_field("body", TEXT);
        let index = Index::create_in_ram(builder.build());
        let mut writer: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        for text in texts {
            writer.add_document(doc!(body => text)).unwrap();
        }
        writer.commit().unwrap();
        (index.reader().unwrap().searcher(), body)
    }

    /// The merged scorer finds and scores what the two-branch boolean
    /// query does, document for document.
    #[test]
    fn scores_as_any_word_or_boosted_every_word() {
        let texts = [
            "red kettle",
            "red",
            "kettle kettle",
            "blue pot",
            "red red kettle",
            "pot",
        ];
        let (searcher, body) = index_of(texts.map(str::to_owned));
        let word = |w: &str| -> Box<dyn Query> {
            let term = TermQuery::new(Term::from_field_text(body, w), IndexRecordOption::WithFreqs);
            Box::new(BooleanQuery::new(vec![(
                Occur::Should,
                Box::new(term) as Box<dyn Query>,
            )]))
        };
        let words = vec![word("red"), word("kettle")];
        let boost = 4.0;
        let mut branches: Vec<(Occur, Box<dyn Query>)> = words
            .iter()
            .map(|w| (Occur::Should, w.box_clone()))
            .collect();
        let all = BooleanQuery::intersection(words.iter().map(|w| w.box_clone()).collect());
        branches.push((
            Occur::Should,
            Box::new(BoostQuery::new(Box::new(all), boost)),
        ));
        let expected = BooleanQuery::new(branches);
        let merged = AnyWords {
            words,
            all_boost: boost,
            bounds: Vec::new(),
        };
        let hits = |query: &dyn Query| {
            let weight = query
                .weight(EnableScoring::enabled_from_searcher(&searcher))
                .unwrap();
            let mut out = Vec::new();
            let mut scorer = weight.scorer(searcher.segment_reader(0), 1.0).unwrap();
            while scorer.doc() != TERMINATED {
                out.push((scorer.doc(), scorer.score()));
                scorer.advance();
            }
            out
        };
        let (want, got) = (hits(&expected), hits(&merged));
        assert_eq!(want.iter().map(|h| h.0).collect::<Vec<_>>(), [0, 1, 2, 4]);
        assert_eq!(want.len(), got.len());
        for ((d1, s1), (d2, s2)) in want.iter().zip(&got) {
            assert_eq!(d1, d2);
            assert!(
                (s1 - s2).abs() < 1e-5 * s1.abs().max(1.0),
                "{d1}: {s1} vs {s2}"
            );
        }
        // Seeking lands on the next match.
        let weight = merged
            .weight(EnableScoring::enabled_from_searcher(&searcher))
            .unwrap();
        let mut scorer = weight.scorer(searcher.segment_reader(0), 1.0).unwrap();
        assert_eq!(scorer.seek(3), 4);
        assert_eq!(scorer.advance(), TERMINATED);
    }

    /// The tiered pruned pass finds the same top k as a full visit, also
    /// when fewer documents than k match every word.
    #[test]
    fn the_pruned_pass_keeps_the_top_k_of_a_full_visit() {
        let (searcher, body) = index_of((0..400).map(|i| match i % 50 {
            0 => "red kettle".to_owned(),
            n if n % 2 == 0 => format!("red {}", "pad ".repeat(n % 7)),
            n => format!("kettle {}", "pad ".repeat(n % 5)),
        }));
        let total = searcher.segment_reader(0).max_doc() as u64;
        let term = |w: &str| Term::from_field_text(body, w);
        let word = |w: &str| -> Box<dyn Query> {
            let query = TermQuery::new(term(w), IndexRecordOption::WithFreqs);
            Box::new(BooleanQuery::new(vec![(
                Occur::Should,
                Box::new(query) as Box<dyn Query>,
            )]))
        };
        let bound = |w: &str| bm25_bound(1.0, searcher.doc_freq(&term(w)).unwrap(), total);
        let query = AnyWords {
            words: vec![word("red"), word("kettle")],
            all_boost: 10.0,
            bounds: vec![bound("red"), bound("kettle")],
        };
        let weight = query
            .weight(EnableScoring::enabled_from_searcher(&searcher))
            .unwrap();
        let reader = searcher.segment_reader(0);
        for k in [3, 8, 30] {
            let mut all = Vec::new();
            let mut scorer = weight.scorer(reader, 1.0).unwrap();
            while scorer.doc() != TERMINATED {
                all.push((scorer.doc(), scorer.score()));
                scorer.advance();
            }
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(k);
            let mut best: Vec<(DocId, Score)> = Vec::new();
            weight
                .for_each_pruning(Score::MIN, reader, &mut |doc, score| {
                    best.push((doc, score));
                    best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    best.truncate(k);
                    if best.len() == k {
                        best[k - 1].1
                    } else {
                        Score::MIN
                    }
                })
                .unwrap();
            assert_eq!(best, all, "top {k}");
        }
    }
}

//! A price range as a span of documents.
//!
//! The index is sorted by price ([`super::schema::settings`]), so in every
//! segment the documents of a price range are one contiguous span
//! `[a, b)`, found by two binary searches on the price column. A scorer
//! over that span costs exactly its length and seeks in O(1), so tantivy's
//! intersection (led by its cheapest clause) visits only what lies in the
//! range: the other clauses' postings skip straight to `a` and stop at `b`.
//! A fast-field range query would instead claim most of the segment as its
//! cost and check each candidate against the column.

use std::ops::Range;

use tantivy::columnar::Column;
use tantivy::query::{EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED};

/// Documents whose price lies in `[low, high]` (inclusive), on an index
/// sorted by price ascending. Scores 0 (a filter).
#[derive(Debug, Clone)]
pub struct PriceBand {
    /// The price column's name.
    pub field: String,
    /// Lowest price, inclusive.
    pub low: i64,
    /// Highest price, inclusive.
    pub high: i64,
}

impl Query for PriceBand {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for PriceBand {
    fn scorer(&self, reader: &SegmentReader, _boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let column = reader.fast_fields().i64(&self.field)?;
        let span = span(&column, reader.max_doc(), self.low, self.high);
        if span.is_empty() {
            return Ok(Box::new(EmptyScorer));
        }
        Ok(Box::new(Span {
            doc: span.start,
            end: span.end,
        }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let column = reader.fast_fields().i64(&self.field)?;
        if !span(&column, reader.max_doc(), self.low, self.high).contains(&doc) {
            return Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} is not in the price band"
            )));
        }
        Ok(Explanation::new("PriceBand", 0.0))
    }
}

/// The documents `[a, b)` of a segment sorted by `column` ascending whose
/// value lies in `[low, high]`.
pub fn span(column: &Column<i64>, max_doc: DocId, low: i64, high: i64) -> Range<DocId> {
    if low > high {
        return 0..0;
    }
    let value = |doc: DocId| column.first(doc).unwrap_or(i64::MIN);
    let a = first_doc_where(max_doc, |doc| value(doc) >= low);
    let b = first_doc_where(max_doc, |doc| value(doc) > high);
    a..b.max(a)
}

/// The first document of `0..max_doc` for which `past` holds (`max_doc`
/// if none); `past` must be false then true along the documents.
fn first_doc_where(max_doc: DocId, past: impl Fn(DocId) -> bool) -> DocId {
    let (mut low, mut high) = (0, max_doc);
    while low < high {
        let mid = low + (high - low) / 2;
        if past(mid) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    low
}

/// Every document of `[doc, end)`.
struct Span {
    doc: DocId,
    end: DocId,
}

impl DocSet for Span {
    fn advance(&mut self) -> DocId {
        self.seek(self.doc + 1)
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.doc = if target >= self.end {
            TERMINATED
        } else {
            target.max(self.doc)
        };
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.end.saturating_sub(self.doc)
    }
}

impl Scorer for Span {
    fn score(&mut self) -> Score {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_seeks_within_its_bounds_and_ends_at_its_end() {
        let mut span = Span { doc: 3, end: 6 };
        assert_eq!(span.advance(), 4);
        assert_eq!(span.seek(5), 5);
        assert_eq!(span.seek(5), 5);
        assert_eq!(span.advance(), TERMINATED);
        assert_eq!(span.advance(), TERMINATED);
        assert_eq!(span.seek(TERMINATED), TERMINATED);
    }

    #[test]
    fn the_first_doc_where_a_condition_starts_to_hold_is_found() {
        let values = [1, 3, 3, 3, 7, 9];
        let at = |limit: i64| first_doc_where(6, |d| values[d as usize] >= limit);
        assert_eq!(at(0), 0);
        assert_eq!(at(3), 1);
        assert_eq!(at(4), 4);
        assert_eq!(at(10), 6);
    }
}

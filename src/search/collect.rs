//! What a search finds: the page after the cursor (search-after, top k),
//! the total counted up to a limit, and the facet counts.
//!
//! Every hit gets a [`SortKey`] that orders it totally and ascending for the
//! requested sort; a page is the `limit` smallest keys greater than the
//! cursor's key. Keys never tie, so paging neither repeats nor skips.
//!
//! - Relevance: the key is (score, then the hit's address in the snapshot:
//!   segment, document), the order tantivy visits documents in, so the top
//!   k can be pruned on the score alone (`Weight::for_each_pruning`:
//!   block-max WAND for a union of terms): a later document that only ties
//!   the k-th score ranks after it. Like Elasticsearch's `_shard_doc`,
//!   the address is only meaningful in the snapshot a cursor pins.
//!   One scored pass counts and keeps the best up to the limit; past it,
//!   the rest is only pruned top k.
//! - Price and newest: the key is (the field's value, the item id); one pass
//!   counts (up to the limit) and keeps the top k, settling most documents
//!   on one column read and one comparison with the k-th value.
//!
//! Facets count every match while the count is exact; past the limit they
//! count the best-ranked [`FACET_SAMPLE`] matches (or as many as the count
//! limit, if lower).

use std::collections::{BinaryHeap, HashMap};

use tantivy::query::{EnableScoring, Query};
use tantivy::{DocId, DocSet, Score, Searcher, TERMINATED};

use super::facets::{Columns, Facets};
use super::query::Sort;
use super::schema::sorted_by_price;

/// Matches whose facets are counted once the total is past its limit: the
/// best-ranked ones, in the requested order.
pub const FACET_SAMPLE: usize = 1_000;

/// A hit's position in the requested order (smaller first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    /// The sort's own value, mapped so that ascending is the wanted order.
    pub primary: u64,
    /// Relevance: the segment's ordinal; other sorts: id, high bits.
    pub hi: u64,
    /// Relevance: the document in its segment; other sorts: id, low bits.
    pub lo: u64,
}

/// One hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// Its position.
    pub key: SortKey,
    /// The item id's halves.
    pub id: (u64, u64),
    /// Where it is: (segment ordinal, document).
    pub address: (u32, DocId),
    /// Relevance score bits (0 when not scored).
    pub score_bits: u32,
}

impl Hit {
    /// Relevance score (0 when not scored).
    pub fn score(&self) -> Score {
        Score::from_bits(self.score_bits)
    }
}

/// What the search found.
#[derive(Debug)]
pub struct Found {
    /// The page, in order.
    pub hits: Vec<Hit>,
    /// Every match, regardless of the cursor, up to the limit; past it,
    /// the limit (a lower bound).
    pub total: u64,
    /// Whether `total` is every match.
    pub exact: bool,
    /// Matches per category.
    pub categories: HashMap<String, u64>,
    /// Matches per brand.
    pub brands: HashMap<String, u64>,
}

impl Default for Found {
    /// Nothing found (exactly).
    fn default() -> Self {
        Found {
            hits: Vec::new(),
            total: 0,
            exact: true,
            categories: HashMap::new(),
            brands: HashMap::new(),
        }
    }
}

/// What to find.
pub struct Plan {
    /// Order.
    pub sort: Sort,
    /// Only keys greater than this.
    pub after: Option<SortKey>,
    /// Page size.
    pub limit: usize,
    /// Matches counted at most; past it the total is a lower bound.
    pub count_limit: u64,
    /// Best-ranked matches the facets count past `count_limit`.
    pub facet_sample: usize,
}

/// Ascending `u64` for an `i64`.
pub(super) fn ordered_i64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

/// Low mantissa bits a score is cut to before it is compared: block-max
/// WAND and the plain union may add a document's term scores in another
/// order, and a last-bit difference must not move a hit across a cursor.
const SCORE_LOW_BITS: u32 = (1 << 8) - 1;

/// Ascending `u64` for a score, best first (cut to [`SCORE_LOW_BITS`]).
fn best_score_first(score: Score) -> u64 {
    let bits = score.to_bits();
    let bits = if bits >> 31 == 0 {
        bits & !SCORE_LOW_BITS
    } else {
        bits
    };
    let ascending = if bits >> 31 == 1 {
        !bits
    } else {
        bits | (1 << 31)
    };
    u64::from(!ascending)
}

/// The highest score whose key is `primary`: a document must score above
/// it to rank before a hit of that key.
fn score_ceiling(primary: u64) -> Score {
    let ascending = !(primary as u32);
    let bits = if ascending >> 31 == 1 {
        (ascending & !(1 << 31)) | SCORE_LOW_BITS
    } else {
        !ascending
    };
    Score::from_bits(bits)
}

/// The `size` smallest keys above `after` offered so far.
struct Best {
    size: usize,
    after: Option<SortKey>,
    heap: BinaryHeap<Hit>,
}

impl Best {
    fn new(size: usize, after: Option<SortKey>) -> Best {
        Best {
            size,
            after,
            heap: BinaryHeap::with_capacity(size.min(4_096) + 1),
        }
    }

    fn full(&self) -> bool {
        self.heap.len() >= self.size
    }

    /// Whether a key with this primary part could enter.
    fn wants(&self, primary: u64) -> bool {
        self.size > 0
            && self.after.is_none_or(|after| primary >= after.primary)
            && !(self.full() && self.heap.peek().is_some_and(|w| primary > w.key.primary))
    }

    /// Whether no key with this primary part, or a greater one, can enter.
    fn past(&self, primary: u64) -> bool {
        self.size == 0 || (self.full() && self.heap.peek().is_some_and(|w| primary > w.key.primary))
    }

    fn offer(&mut self, hit: Hit) {
        if self.size == 0 || self.after.is_some_and(|after| hit.key <= after) {
            return;
        }
        if !self.full() {
            self.heap.push(hit);
        } else if self.heap.peek().is_some_and(|worst| hit < *worst) {
            self.heap.pop();
            self.heap.push(hit);
        }
    }

    /// Relevance: the score a document must beat to enter.
    fn threshold(&self) -> Score {
        match self.heap.peek() {
            Some(worst) if self.full() => score_ceiling(worst.key.primary),
            _ => Score::MIN,
        }
    }
}

/// Runs `query` on `searcher` as `plan` says.
pub fn collect(searcher: &Searcher, query: &dyn Query, plan: &Plan) -> tantivy::Result<Found> {
    let columns = searcher
        .segment_readers()
        .iter()
        .map(Columns::of)
        .collect::<tantivy::Result<Vec<_>>>()?;
    let mut facets = Facets::new(&columns);
    let mut page = Best::new(plan.limit, plan.after);
    let (total, exact, sample) = if plan.sort == Sort::Relevance {
        by_score(searcher, query, plan, &columns, &mut page, &mut facets)?
    } else {
        top_by_field(searcher, query, plan, &columns, &mut page, &mut facets)?
    };
    let (categories, brands) = if exact {
        facets.names(&columns)
    } else {
        let mut best = Facets::new(&columns);
        for hit in sample.heap {
            best.add(hit.address.0 as usize, hit.address.1, &columns);
        }
        best.names(&columns)
    };
    Ok(Found {
        hits: page.heap.into_sorted_vec(),
        total,
        exact,
        categories,
        brands,
    })
}

/// Offers a scored document to the page and the sample.
fn offer_scored(
    (segment, doc, score): (usize, DocId, Score),
    columns: &[Columns],
    page: &mut Best,
    sample: &mut Best,
) {
    let primary = best_score_first(score);
    if !page.wants(primary) && !sample.wants(primary) {
        return;
    }
    let hit = Hit {
        key: SortKey {
            primary,
            hi: segment as u64,
            lo: u64::from(doc),
        },
        id: columns[segment].id(doc),
        address: (segment as u32, doc),
        score_bits: score.to_bits(),
    };
    page.offer(hit);
    sample.offer(hit);
}

/// Relevance: one scored pass counts the matches (and their facets) and
/// keeps the best while the count is under the limit; past it, a pass
/// pruned on the score (block-max WAND where the query allows) finds the
/// rest of the page and the best-ranked sample. Returns (total, exact,
/// the sample).
fn by_score(
    searcher: &Searcher,
    query: &dyn Query,
    plan: &Plan,
    columns: &[Columns],
    page: &mut Best,
    facets: &mut Facets,
) -> tantivy::Result<(u64, bool, Best)> {
    let weight = query.weight(EnableScoring::enabled_from_searcher(searcher))?;
    // Only needed past the limit (an exact count keeps exact facets).
    let mut sample = Best::new(0, None);
    let mut total = 0;
    let mut stop = None;
    'segments: for (segment, reader) in searcher.segment_readers().iter().enumerate() {
        let mut scorer = weight.scorer(reader, 1.0)?;
        let alive = reader.alive_bitset();
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                if total == plan.count_limit {
                    stop = Some((segment, doc));
                    break 'segments;
                }
                total += 1;
                facets.add(segment, doc, columns);
                offer_scored((segment, doc, scorer.score()), columns, page, &mut sample);
            }
            doc = scorer.advance();
        }
    }
    let Some(stop) = stop else {
        return Ok((total, true, sample));
    };
    // Past the limit: every match again for the sample, pruned on the
    // score; the page takes only what the counting pass had not offered.
    let mut sample = Best::new(plan.facet_sample, None);
    let mut skipped = Best::new(0, None);
    let threshold = |page: &Best, sample: &Best| page.threshold().min(sample.threshold());
    for (segment, reader) in searcher.segment_readers().iter().enumerate() {
        let alive = reader.alive_bitset();
        let start = threshold(page, &sample);
        weight.for_each_pruning(start, reader, &mut |doc, score| {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                offer_scored((segment, doc, score), columns, &mut skipped, &mut sample);
                if (segment, doc) >= stop {
                    offer_scored((segment, doc, score), columns, page, &mut skipped);
                }
            }
            threshold(page, &sample)
        })?;
    }
    Ok((total, false, sample))
}

/// One pass for the price and newest sorts: the count (up to the limit)
/// and its facets, the page, and the best-ranked sample for the facets.
///
/// Cheapest first on an index sorted by price: a segment's documents come
/// in the page's order, so once the count is past its limit and a document
/// is too dear for the page and the sample, so is the rest of the segment.
fn top_by_field(
    searcher: &Searcher,
    query: &dyn Query,
    plan: &Plan,
    columns: &[Columns],
    page: &mut Best,
    facets: &mut Facets,
) -> tantivy::Result<(u64, bool, Best)> {
    let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
    let in_order = plan.sort == Sort::PriceAsc && sorted_by_price(searcher.index());
    let mut sample = Best::new(plan.facet_sample, None);
    let (mut total, mut exact) = (0, true);
    for (segment, reader) in searcher.segment_readers().iter().enumerate() {
        let alive = reader.alive_bitset();
        let segment_columns = &columns[segment];
        let mut scorer = weight.scorer(reader, 1.0)?;
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if alive.is_some_and(|a| a.is_deleted(doc)) {
                doc = scorer.advance();
                continue;
            }
            if exact {
                if total == plan.count_limit {
                    exact = false;
                } else {
                    total += 1;
                    facets.add(segment, doc, columns);
                }
            }
            let primary = segment_columns.primary(plan.sort, doc);
            if in_order && !exact && page.past(primary) && sample.past(primary) {
                break;
            }
            if page.wants(primary) || sample.wants(primary) {
                let id = segment_columns.id(doc);
                let hit = Hit {
                    key: SortKey {
                        primary,
                        hi: id.0,
                        lo: id.1,
                    },
                    id,
                    address: (segment as u32, doc),
                    score_bits: 0,
                };
                page.offer(hit);
                sample.offer(hit);
            }
            doc = scorer.advance();
        }
    }
    Ok((total, exact, sample))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_as_the_sort_asks() {
        assert!(best_score_first(9.5) < best_score_first(2.0));
        assert!(best_score_first(0.0) < best_score_first(-1.0));
        assert!(ordered_i64(-5) < ordered_i64(3));
        assert!(!ordered_i64(10) < !ordered_i64(3));
    }

    #[test]
    fn a_score_ceiling_is_the_highest_score_of_its_key() {
        for score in [0.0f32, 0.3, 1.0, 2.5, 17.25, 1e6] {
            let key = best_score_first(score);
            let ceiling = score_ceiling(key);
            assert!(ceiling >= score, "{score}: {ceiling}");
            assert_eq!(best_score_first(ceiling), key, "{score}");
            let above = Score::from_bits(ceiling.to_bits() + 1);
            assert!(best_score_first(above) < key, "{score}");
        }
    }
}

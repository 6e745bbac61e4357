//! One pass over the matches: the page after the cursor (search-after), the
//! total and the facet counts.
//!
//! Every hit gets a [`SortKey`] that orders it totally and ascending for the
//! requested sort, ending with the item id's 128 bits; a page is the `limit`
//! smallest keys greater than the cursor's key. Keys never tie (ids are
//! unique), so paging neither repeats nor skips.

use std::collections::{BinaryHeap, HashMap};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::query::Sort;

/// A hit's position in the requested order (smaller first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    /// The sort's own value, mapped so that ascending is the wanted order.
    pub primary: u64,
    /// Id, high bits.
    pub hi: u64,
    /// Id, low bits.
    pub lo: u64,
}

/// One hit.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    /// Its position.
    pub key: SortKey,
    /// Relevance score (0 when not scored).
    pub score: Score,
}

/// What the pass found.
#[derive(Debug, Default)]
pub struct Found {
    /// The page, in order.
    pub hits: Vec<Hit>,
    /// Every match, regardless of the cursor.
    pub total: u64,
    /// Matches per category.
    pub categories: HashMap<String, u64>,
    /// Matches per brand.
    pub brands: HashMap<String, u64>,
}

/// The collector.
pub struct PageCollector {
    /// Order.
    pub sort: Sort,
    /// Only keys greater than this.
    pub after: Option<SortKey>,
    /// Page size.
    pub limit: usize,
}

/// Ascending `u64` for an `i64`.
fn ordered_i64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

/// Ascending `u64` for a score, best first.
fn best_score_first(score: Score) -> u64 {
    let bits = score.to_bits();
    let ascending = if bits >> 31 == 1 {
        !bits
    } else {
        bits | (1 << 31)
    };
    u64::from(!ascending)
}

impl Collector for PageCollector {
    type Fruit = Found;
    type Child = PageSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<PageSegment> {
        let fast = reader.fast_fields();
        let category = fast.str("category")?;
        let brand = fast.str("brand")?;
        let counts = |column: &Option<StrColumn>| {
            vec![0u64; column.as_ref().map_or(0, |c| c.dictionary().num_terms())]
        };
        Ok(PageSegment {
            sort: self.sort,
            after: self.after,
            limit: self.limit,
            hi: fast.u64("id_hi")?,
            lo: fast.u64("id_lo")?,
            price: fast.i64("price")?,
            created: fast.i64("created")?,
            category_counts: counts(&category),
            brand_counts: counts(&brand),
            category,
            brand,
            total: 0,
            best: BinaryHeap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.sort == Sort::Relevance
    }

    fn merge_fruits(&self, segments: Vec<Found>) -> tantivy::Result<Found> {
        let mut merged = Found::default();
        let mut hits = Vec::new();
        for found in segments {
            merged.total += found.total;
            hits.extend(found.hits);
            for (name, n) in found.categories {
                *merged.categories.entry(name).or_default() += n;
            }
            for (name, n) in found.brands {
                *merged.brands.entry(name).or_default() += n;
            }
        }
        hits.sort_unstable_by_key(|hit| hit.key);
        hits.truncate(self.limit);
        merged.hits = hits;
        Ok(merged)
    }
}

/// Per-segment state.
pub struct PageSegment {
    sort: Sort,
    after: Option<SortKey>,
    limit: usize,
    hi: Column<u64>,
    lo: Column<u64>,
    price: Column<i64>,
    created: Column<i64>,
    category: Option<StrColumn>,
    brand: Option<StrColumn>,
    category_counts: Vec<u64>,
    brand_counts: Vec<u64>,
    total: u64,
    /// Max-heap of the smallest keys so far (by key; score rides along).
    best: BinaryHeap<(SortKey, u32)>,
}

impl SegmentCollector for PageSegment {
    type Fruit = Found;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.total += 1;
        for (column, counts) in [
            (&self.category, &mut self.category_counts),
            (&self.brand, &mut self.brand_counts),
        ] {
            if let Some(ord) = column.as_ref().and_then(|c| c.ords().first(doc)) {
                if let Some(n) = counts.get_mut(ord as usize) {
                    *n += 1;
                }
            }
        }
        let primary = match self.sort {
            Sort::Relevance => best_score_first(score),
            Sort::PriceAsc => ordered_i64(self.price.first(doc).unwrap_or(0)),
            Sort::PriceDesc => !ordered_i64(self.price.first(doc).unwrap_or(0)),
            Sort::Newest => !ordered_i64(self.created.first(doc).unwrap_or(0)),
        };
        // Most matches lose on the sort value alone: settle those before
        // reading the id's two columns.
        if self.after.is_some_and(|after| primary < after.primary) {
            return;
        }
        if self.best.len() >= self.limit
            && self
                .best
                .peek()
                .is_some_and(|(worst, _)| primary > worst.primary)
        {
            return;
        }
        let key = SortKey {
            primary,
            hi: self.hi.first(doc).unwrap_or(0),
            lo: self.lo.first(doc).unwrap_or(0),
        };
        if self.after.is_some_and(|after| key <= after) {
            return;
        }
        if self.best.len() < self.limit {
            self.best.push((key, score.to_bits()));
        } else if self.best.peek().is_some_and(|(worst, _)| key < *worst) {
            self.best.pop();
            self.best.push((key, score.to_bits()));
        }
    }

    fn harvest(self) -> Found {
        let names = |column: &Option<StrColumn>, counts: Vec<u64>| {
            let mut out = HashMap::new();
            let Some(column) = column else { return out };
            let mut name = String::new();
            for (ord, n) in counts.into_iter().enumerate() {
                if n > 0 && column.ord_to_str(ord as u64, &mut name).unwrap_or(false) {
                    out.insert(name.clone(), n);
                }
            }
            out
        };
        Found {
            hits: self
                .best
                .into_iter()
                .map(|(key, score)| Hit {
                    key,
                    score: Score::from_bits(score),
                })
                .collect(),
            total: self.total,
            categories: names(&self.category, self.category_counts),
            brands: names(&self.brand, self.brand_counts),
        }
    }
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
}

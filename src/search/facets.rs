//! A segment's fast columns (sort values, id, facet values) and the facet
//! counts of a search.

use std::collections::HashMap;

use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, SegmentReader};

use super::collect::ordered_i64;
use super::query::Sort;

/// The columns a search reads, of one segment.
pub struct Columns {
    hi: Column<u64>,
    lo: Column<u64>,
    price: Column<i64>,
    created: Column<i64>,
    category: Option<StrColumn>,
    brand: Option<StrColumn>,
}

impl Columns {
    /// The columns of `reader`.
    pub fn of(reader: &SegmentReader) -> tantivy::Result<Columns> {
        let fast = reader.fast_fields();
        Ok(Columns {
            hi: fast.u64("id_hi")?,
            lo: fast.u64("id_lo")?,
            price: fast.i64("price")?,
            created: fast.i64("created")?,
            category: fast.str("category")?,
            brand: fast.str("brand")?,
        })
    }

    /// The item id's halves of `doc`.
    pub fn id(&self, doc: DocId) -> (u64, u64) {
        (
            self.hi.first(doc).unwrap_or(0),
            self.lo.first(doc).unwrap_or(0),
        )
    }

    /// `doc`'s sort value for a field sort, ascending in the wanted order.
    pub fn primary(&self, sort: Sort, doc: DocId) -> u64 {
        match sort {
            Sort::PriceAsc => ordered_i64(self.price.first(doc).unwrap_or(0)),
            Sort::PriceDesc => !ordered_i64(self.price.first(doc).unwrap_or(0)),
            Sort::Newest | Sort::Relevance => !ordered_i64(self.created.first(doc).unwrap_or(0)),
        }
    }
}

/// Matches per facet value, by segment and value ordinal.
pub struct Facets {
    /// Per segment: (category counts, brand counts).
    counts: Vec<(Vec<u64>, Vec<u64>)>,
}

impl Facets {
    /// No matches yet, for these segments.
    pub fn new(columns: &[Columns]) -> Facets {
        let size = |column: &Option<StrColumn>| {
            vec![0u64; column.as_ref().map_or(0, |c| c.dictionary().num_terms())]
        };
        Facets {
            counts: columns
                .iter()
                .map(|c| (size(&c.category), size(&c.brand)))
                .collect(),
        }
    }

    /// Counts `doc` of `segment`.
    pub fn add(&mut self, segment: usize, doc: DocId, columns: &[Columns]) {
        let (categories, brands) = &mut self.counts[segment];
        let column = &columns[segment];
        for (values, counts) in [(&column.category, categories), (&column.brand, brands)] {
            if let Some(ord) = values.as_ref().and_then(|c| c.ords().first(doc)) {
                if let Some(n) = counts.get_mut(ord as usize) {
                    *n += 1;
                }
            }
        }
    }

    /// (per category, per brand), by name.
    pub fn names(self, columns: &[Columns]) -> (HashMap<String, u64>, HashMap<String, u64>) {
        let mut categories = HashMap::new();
        let mut brands = HashMap::new();
        for ((category, brand), column) in self.counts.into_iter().zip(columns) {
            add_names(&column.category, category, &mut categories);
            add_names(&column.brand, brand, &mut brands);
        }
        (categories, brands)
    }
}

fn add_names(column: &Option<StrColumn>, counts: Vec<u64>, out: &mut HashMap<String, u64>) {
    let Some(column) = column else { return };
    let mut name = String::new();
    for (ord, n) in counts.into_iter().enumerate() {
        if n > 0 && column.ord_to_str(ord as u64, &mut name).unwrap_or(false) {
            *out.entry(name.clone()).or_default() += n;
        }
    }
}

//! Item pages: an item's rendered view, kept with the stored records it was
//! rendered from, and served again while those records are unchanged.
//!
//! Why: rendering a page (decoding the item and its stock, building the view,
//! serializing it) was the largest cost of `GET /items/{id}` behind the
//! gateway itself. A kept page is checked, not trusted: each view reads the
//! item's record and each variant's stock record through the read cache (no
//! decoding; a reference count and a comparison of bytes) and serves the
//! kept bytes only if every record is byte-for-byte the one it was rendered
//! from. So a page is right to the last committed write whichever path made
//! it (a seller's change, a checkout's reservation, a replica of another
//! node's stock), with no list of writers to keep in step, and eviction from
//! either cache only costs a re-render.

use std::sync::Arc;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use sha2::{Digest, Sha256};
use sled::IVec;

use super::{CatalogError, CatalogService, StockedItem};
use crate::domain::item::{Item, StockLevel};
use crate::domain::looks_like_id;
use crate::domain::stock::{SkuStock, StockReplica};
use crate::storage::{codec, StorageError, TreeName};

/// An item page ready to send: its bytes and their strong entity tag.
#[derive(Debug)]
pub struct RenderedItem {
    /// The rendered view.
    pub body: Bytes,
    /// `"<32 hex digits>"`: the first 128 bits of the body's SHA-256, so
    /// every node (and every restart) gives the same bytes the same tag.
    pub etag: String,
}

impl RenderedItem {
    fn new(body: Vec<u8>) -> Self {
        let digest = Sha256::digest(&body);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        RenderedItem {
            body: Bytes::from(body),
            etag: format!("\"{hex}\""),
        }
    }
}

/// The stored records one variant's stock level is read from: the
/// inventory's own record and, in a cluster, the replica of the owner's.
#[derive(PartialEq, Eq)]
struct StockSources {
    stock: Option<IVec>,
    replica: Option<IVec>,
}

/// A kept page and the records it was rendered from.
struct Kept {
    page: Arc<RenderedItem>,
    item: IVec,
    variants: Vec<(String, StockSources)>,
}

#[derive(Clone)]
struct KeptWeight;

impl Weighter<String, Arc<Kept>> for KeptWeight {
    fn weight(&self, key: &String, kept: &Arc<Kept>) -> u64 {
        // The records are shared with the read cache while both hold them;
        // charged here too, so the bound holds when they are not.
        let sources: usize = kept
            .variants
            .iter()
            .map(|(id, s)| {
                id.len()
                    + s.stock.as_ref().map_or(0, |v| v.len())
                    + s.replica.as_ref().map_or(0, |v| v.len())
            })
            .sum();
        (key.len() + kept.page.body.len() + kept.item.len() + sources + 128) as u64
    }
}

/// Rendered item pages, bounded in bytes (S3-FIFO eviction).
pub(super) struct ItemPages {
    kept: Cache<String, Arc<Kept>, KeptWeight>,
}

impl ItemPages {
    /// Pages holding about `bytes` in all.
    pub(super) fn new(bytes: u64) -> Self {
        let estimated_items = (bytes / 2048).max(16) as usize;
        ItemPages {
            kept: Cache::with_weighter(estimated_items, bytes.max(1), KeptWeight),
        }
    }
}

impl CatalogService {
    /// The page of an item (active or not): the kept one if the records it
    /// shows are unchanged, else `render`ed afresh from them and kept.
    pub async fn page(
        &self,
        item_id: &str,
        render: impl FnOnce(StockedItem) -> Vec<u8>,
    ) -> Result<Arc<RenderedItem>, CatalogError> {
        if !looks_like_id(item_id) {
            return Err(CatalogError::NotFound);
        }
        let item_bytes = self
            .store
            .get_bytes(TreeName::Items, item_id.as_bytes())
            .await?
            .ok_or(CatalogError::NotFound)?;
        if let Some(kept) = self.pages.kept.get(item_id) {
            if kept.item == item_bytes && self.unchanged(&kept.variants).await? {
                return Ok(kept.page.clone());
            }
        }
        let item: Item = codec::decode(&item_bytes)?;
        let mut variants = Vec::with_capacity(item.variants.len());
        let mut stock = Vec::with_capacity(item.variants.len());
        for variant in &item.variants {
            let sources = self.stock_sources(&variant.id).await?;
            stock.push(self.level_of(&variant.id, &sources)?);
            variants.push((variant.id.clone(), sources));
        }
        let page = Arc::new(RenderedItem::new(render(StockedItem { item, stock })));
        let kept = Kept {
            page: page.clone(),
            item: item_bytes,
            variants,
        };
        self.pages.kept.insert(item_id.to_owned(), Arc::new(kept));
        Ok(page)
    }

    /// Whether every variant's stock records are the ones a page shows.
    async fn unchanged(&self, variants: &[(String, StockSources)]) -> Result<bool, StorageError> {
        for (variant_id, kept) in variants {
            if self.stock_sources(variant_id).await? != *kept {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The records a variant's level is read from (one read-cache lookup
    /// each; the replica only in a cluster).
    async fn stock_sources(&self, variant_id: &str) -> Result<StockSources, StorageError> {
        let key = variant_id.as_bytes();
        let stock = self.store.get_bytes(TreeName::Stock, key).await?;
        let replica = if self.ownership.is_alone() {
            None
        } else {
            self.store.get_bytes(TreeName::StockReplicas, key).await?
        };
        Ok(StockSources { stock, replica })
    }

    /// A variant's level from its records: the source its placement names
    /// (this node's inventory for its own SKUs, else the replica), or the
    /// other one when that has no record (an item made on a node other than
    /// its owner's, before requests were forwarded to owners, has its stock
    /// there).
    fn level_of(
        &self,
        variant_id: &str,
        sources: &StockSources,
    ) -> Result<StockLevel, StorageError> {
        let stock = || -> Result<Option<StockLevel>, StorageError> {
            Ok(match &sources.stock {
                Some(bytes) => Some(codec::decode::<SkuStock>(bytes)?.level()),
                None => None,
            })
        };
        let replica = || -> Result<Option<StockLevel>, StorageError> {
            Ok(match &sources.replica {
                Some(bytes) => Some(codec::decode::<StockReplica>(bytes)?.level()),
                None => None,
            })
        };
        let found = if self.ownership.is_alone() || self.ownership.owns(variant_id) {
            match stock()? {
                Some(level) => Some(level),
                None => replica()?,
            }
        } else {
            match replica()? {
                Some(level) => Some(level),
                None => stock()?,
            }
        };
        Ok(found.unwrap_or_default())
    }

    /// One SKU's level, read as an item page reads it.
    pub(super) async fn level(&self, variant_id: &str) -> Result<StockLevel, CatalogError> {
        let sources = self.stock_sources(variant_id).await?;
        Ok(self.level_of(variant_id, &sources)?)
    }
}

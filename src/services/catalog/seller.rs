//! A seller's own items (`GET /seller/items`): the `seller_items` index
//! (`seller ‖ 0 ‖ item id`, written with each new item; built once, at
//! start-up, for items stored before it existed), read newest first.
//!
//! In a cluster an item is minted beside its seller, so every item of a
//! seller, and its stock, lives on the seller's node, which answers the
//! whole list.

use std::sync::Arc;

use super::{CatalogError, CatalogService, StockedItem};
use crate::domain::item::{Item, ItemStatus};
use crate::domain::user::Role;
use crate::services::account::Authenticated;
use crate::storage::backfill::backfill;
use crate::storage::{codec, StorageError, Store, TreeName};

/// Purpose label of the cursors of `GET /seller/items`.
const CURSOR: &str = "seller-items";

/// Most index entries one page request reads when filtering by status,
/// so a rare status cannot make one request scan a whole catalogue: the
/// page may come back short, with a cursor to go on.
const SCAN_BUDGET: usize = 1_000;

/// `seller ‖ 0 ‖ item`: a seller's items in creation order (ULIDs).
pub fn seller_item_key(seller_id: &str, item_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(seller_id.len() + 1 + item_id.len());
    key.extend_from_slice(seller_id.as_bytes());
    key.push(0);
    key.extend_from_slice(item_id.as_bytes());
    key
}

/// A page of a seller's items.
#[derive(Debug)]
pub struct ItemPage {
    /// Newest first, each with its stock.
    pub items: Vec<StockedItem>,
    /// Where the next page starts, if there may be one.
    pub next_cursor: Option<String>,
}

impl CatalogService {
    /// The signed-in seller's items, newest first, optionally only those
    /// in `status`.
    pub async fn list_for_seller(
        &self,
        seller: &Authenticated,
        status: Option<ItemStatus>,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<ItemPage, CatalogError> {
        if seller.role != Role::Seller {
            return Err(CatalogError::NotASeller);
        }
        let seller_id = seller.user_id.as_str();
        let sealed_for = format!("{CURSOR}\0{seller_id}");
        let sealer = self.store.sealer().clone();
        let before = match cursor {
            None => None,
            Some(cursor) => Some(
                sealer
                    .open(&sealed_for, cursor)
                    .and_then(|id| String::from_utf8(id).ok())
                    .ok_or(CatalogError::InvalidCursor)?,
            ),
        };
        let (items, more) = self.scan(seller_id, status, before, size).await?;
        let mut page = Vec::with_capacity(items.len());
        for item in items {
            let stock = self
                .levels(item.variants.iter().map(|v| v.id.clone()).collect())
                .await?;
            page.push(StockedItem { item, stock });
        }
        Ok(ItemPage {
            items: page,
            next_cursor: more.map(|last| sealer.seal(&sealed_for, last.as_bytes())),
        })
    }

    /// Up to `size` of the seller's items before the item id `before`,
    /// newest first, and the last id read if there may be more.
    async fn scan(
        &self,
        seller_id: &str,
        status: Option<ItemStatus>,
        before: Option<String>,
        size: usize,
    ) -> Result<(Vec<Item>, Option<String>), CatalogError> {
        let prefix = seller_item_key(seller_id, "");
        let end = match &before {
            Some(id) => seller_item_key(seller_id, id),
            None => {
                let mut end = prefix.clone();
                *end.last_mut().expect("the prefix ends with 0") = 1;
                end
            }
        };
        let scanned = self
            .store
            .read(move |trees| {
                let index = trees.tree(TreeName::SellerItems);
                let mut items = Vec::new();
                let mut last = None;
                let mut more = false;
                for (scanned, entry) in index.range(prefix.clone()..end).rev().enumerate() {
                    let (key, _) = entry?;
                    if items.len() == size || scanned == SCAN_BUDGET {
                        more = true;
                        break;
                    }
                    let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                    let item: Option<Item> = trees.get(TreeName::Items, id.as_bytes())?;
                    last = Some(id);
                    if let Some(item) = item.filter(|i| status.is_none_or(|s| i.status == s)) {
                        items.push(item);
                    }
                }
                Ok::<_, StorageError>((items, last.filter(|_| more)))
            })
            .await?;
        Ok(scanned)
    }
}

/// Indexes every stored item by its seller, unless the index says it is
/// complete; returns how many items it read. Items stored by a release
/// without the index are found here; new items index themselves in the
/// write that stores them.
pub async fn index_items_by_seller(store: &Store) -> Result<usize, StorageError> {
    let keys_of = |key: &[u8], bytes: &[u8]| -> Vec<Vec<u8>> {
        match codec::decode::<Item>(bytes) {
            Ok(item) => vec![seller_item_key(&item.seller_id, &item.id)],
            Err(e) => {
                tracing::warn!(item = %String::from_utf8_lossy(key), error = %e, "item not indexed by seller");
                Vec::new()
            }
        }
    };
    backfill(
        store,
        TreeName::SellerItems,
        &[TreeName::Items],
        Arc::new(keys_of),
    )
    .await
}

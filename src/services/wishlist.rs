//! Wishlists: per user, in sled; adding emits `wishlist.added` for the
//! recommender.

use crate::domain::event::EventBody;
use crate::domain::item::{Item, ItemStatus};
use crate::domain::{looks_like_id, Timestamp};
use crate::storage::{StorageError, Store, TreeName};

/// Most items on one wishlist.
pub const MAX_ITEMS: usize = 500;

/// Why a wishlist change failed.
#[derive(Debug, thiserror::Error)]
pub enum WishlistError {
    /// No such item for sale.
    #[error("item not found")]
    ItemNotFound,
    /// The wishlist holds [`MAX_ITEMS`] already.
    #[error("a wishlist holds at most {MAX_ITEMS} items")]
    Full,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn prefix(user_id: &str) -> Vec<u8> {
    let mut key = user_id.as_bytes().to_vec();
    key.push(0);
    key
}

fn key(user_id: &str, item_id: &str) -> Vec<u8> {
    let mut key = prefix(user_id);
    key.extend_from_slice(item_id.as_bytes());
    key
}

/// The wishlist service. Cheap to clone.
#[derive(Clone)]
pub struct WishlistService {
    store: Store,
}

impl WishlistService {
    /// Wishlists over `store`.
    pub fn new(store: Store) -> Self {
        WishlistService { store }
    }

    async fn known_item(&self, item_id: &str) -> Result<Option<Item>, WishlistError> {
        if !looks_like_id(item_id) {
            return Ok(None);
        }
        Ok(self
            .store
            .get::<Item>(TreeName::Items, item_id.as_bytes())
            .await?)
    }

    /// Adds an item for sale (idempotent: adding it again keeps its place).
    pub async fn add(&self, user_id: &str, item_id: &str) -> Result<(), WishlistError> {
        let item = self.known_item(item_id).await?;
        if !item.is_some_and(|i| i.status == ItemStatus::Active) {
            return Err(WishlistError::ItemNotFound);
        }
        let (user, item) = (user_id.to_owned(), item_id.to_owned());
        self.store
            .write(move |tx| {
                let key = key(&user, &item);
                if tx.contains(TreeName::Wishlists, &key)? {
                    return Ok::<_, StorageError>(());
                }
                tx.put_raw(
                    TreeName::Wishlists,
                    key,
                    Timestamp::now().0.to_be_bytes().to_vec(),
                );
                tx.emit(EventBody::WishlistAdded {
                    user_id: user.clone(),
                    item_id: item.clone(),
                });
                Ok(())
            })
            .await?;
        // The size check after the write: a concurrent add may pass it once;
        // what matters is that the list stays bounded, so trim the extra.
        if self.ids(user_id).await?.len() > MAX_ITEMS {
            self.remove(user_id, item_id).await?;
            return Err(WishlistError::Full);
        }
        Ok(())
    }

    /// Removes an item (idempotent); `ItemNotFound` only for an id that
    /// names no item at all.
    pub async fn remove(&self, user_id: &str, item_id: &str) -> Result<(), WishlistError> {
        if self.known_item(item_id).await?.is_none() {
            return Err(WishlistError::ItemNotFound);
        }
        let key = key(user_id, item_id);
        self.store
            .write(move |tx| {
                tx.remove(TreeName::Wishlists, key.clone());
                Ok::<_, StorageError>(())
            })
            .await?;
        Ok(())
    }

    /// The user's wished item ids, most recently added first.
    pub async fn ids(&self, user_id: &str) -> Result<Vec<String>, WishlistError> {
        let prefix = prefix(user_id);
        let mut entries = self
            .store
            .read(move |trees| {
                let mut out = Vec::new();
                for entry in trees.tree(TreeName::Wishlists).scan_prefix(&prefix) {
                    let (key, value) = entry?;
                    let item = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                    let at = <[u8; 8]>::try_from(value.as_ref()).map_or(0, i64::from_be_bytes);
                    out.push((at, item));
                }
                Ok(out)
            })
            .await?;
        entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(entries.into_iter().map(|(_, id)| id).collect())
    }
}

//! SKU codes are unique per seller: an item's codes are claimed in the
//! write that stores it (`seller_skus`).

use super::CatalogError;
use crate::domain::item::{self, Item};
use crate::domain::FieldErrors;
use crate::storage::{TreeName, Tx};

/// Reserves the item's SKU codes for its seller, refusing codes the seller
/// already uses on another item.
pub(super) fn claim_skus(tx: &mut Tx<'_>, item: &Item) -> Result<(), CatalogError> {
    let mut errors = FieldErrors::new();
    let mut fields: Vec<(String, &str)> = item
        .sku
        .iter()
        .map(|s| ("sku".to_owned(), s.as_str()))
        .collect();
    if item.has_variants {
        for (i, variant) in item.variants.iter().enumerate() {
            if let Some(sku) = &variant.sku {
                fields.push((format!("variants[{i}].sku"), sku));
            }
        }
    }
    let keys: Vec<Vec<u8>> = fields
        .iter()
        .map(|(_, sku)| item::seller_sku_key(&item.seller_id, sku))
        .collect();
    for ((field, _), key) in fields.iter().zip(&keys) {
        if tx.contains(TreeName::SellerSkus, key)? {
            errors.add(field.clone(), "is already used by another of your items");
        }
    }
    if !errors.is_empty() {
        return Err(CatalogError::Invalid(errors));
    }
    for key in keys {
        tx.put_raw(TreeName::SellerSkus, key, item.id.as_bytes().to_vec());
    }
    Ok(())
}

//! Catalog items: the stored record, and (in `input` and `patch`, with the
//! field checks in `fields` and `attributes`) the rules that turn a seller's
//! untrusted body into one.

mod attributes;
mod fields;
mod input;
mod patch;

pub use fields::{check_quantity, seller_sku_key, sku_key};
pub use input::{validate_new_item, ItemInput, NewItem, VariantInput};
pub use patch::{deactivation, validate_patch, ItemPatch, ItemStatusName, PatchEffect, ValidPatch};

use super::Timestamp;

/// Longest item name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Most tags on one item.
pub const MAX_TAGS: usize = 50;
/// Most images on one item.
pub const MAX_IMAGES: usize = 20;
/// Most variants on one item.
pub const MAX_VARIANTS: usize = 100;
/// Deepest nesting of `attributes` (the object itself is level 1).
pub const MAX_ATTRIBUTE_DEPTH: usize = 5;
/// Largest `attributes` object, as compact JSON.
pub const MAX_ATTRIBUTE_BYTES: usize = 16 * 1024;
/// Highest price in minor units (10 billion in major units).
pub const MAX_PRICE: i64 = 1_000_000_000_000;
/// Highest stock count for one variant.
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// Currency when the seller names none.
pub const DEFAULT_CURRENCY: &str = "INR";

/// Whether buyers can find and buy an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum ItemStatus {
    /// Listed: searchable and purchasable.
    Active,
    /// Withdrawn by its seller: readable by id (order history), not sold.
    Inactive,
}

impl ItemStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Active => "active",
            ItemStatus::Inactive => "inactive",
        }
    }
}

/// One purchasable variant of an item; an item without declared variants has
/// exactly one implicit variant whose id is the item's id.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Variant {
    /// Variant id (`variantId` in the API).
    pub id: String,
    /// The seller's SKU code, unique per seller.
    pub sku: Option<String>,
    /// Free JSON object, stored as compact JSON text.
    pub attributes_json: String,
    /// Price in minor units.
    pub price: i64,
}

/// A stored catalog item. Stock is not here: it belongs to inventory.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub struct Item {
    /// Server-chosen id.
    pub id: String,
    /// The listing seller's user id.
    pub seller_id: String,
    /// Normalized name.
    pub name: String,
    /// Normalized description.
    pub description: String,
    /// Price in minor units (for items with variants: the display price).
    pub price: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The seller's item-level SKU code.
    pub sku: Option<String>,
    /// Brand name.
    pub brand: Option<String>,
    /// Category, lower-case.
    pub category: Option<String>,
    /// Tags, lower-case, unique.
    pub tags: Vec<String>,
    /// Free JSON object, stored as compact JSON text (bincode cannot carry
    /// self-describing values).
    pub attributes_json: String,
    /// Whether the seller declared variants (else `variants` holds the one implicit variant).
    pub has_variants: bool,
    /// At least one variant.
    pub variants: Vec<Variant>,
    /// Active or inactive.
    pub status: ItemStatus,
    /// Media keys of the item's images.
    pub images: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Item {
    /// Every SKU code on the item, item-level and per variant.
    pub fn sku_codes(&self) -> Vec<&str> {
        let mut codes: Vec<&str> = self.sku.iter().map(String::as_str).collect();
        if self.has_variants {
            codes.extend(self.variants.iter().filter_map(|v| v.sku.as_deref()));
        }
        codes
    }

    /// The variant with this id, if the item has it.
    pub fn variant(&self, variant_id: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.id == variant_id)
    }
}

/// Stock of one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, bincode::Encode, bincode::Decode)]
pub struct StockLevel {
    /// What a buyer can still get.
    pub available: i64,
    /// Held by live reservations.
    pub reserved: i64,
    /// Sold (committed reservations).
    pub sold: i64,
}

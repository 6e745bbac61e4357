//! `PATCH /items/{id}`: the body, its validation, and applying it to an item.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::attributes::check_attributes;
use super::fields::{check_description, check_name, check_price, check_tags, optional_label};
use super::{Item, ItemStatus};
use crate::domain::{FieldErrors, Timestamp};

/// `PATCH /items/{id}` body. `brand` and `category` may be `null` to clear them.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New price (for items with variants: the display price).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price: Option<i64>,
    /// New brand, or `null` to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub brand: Option<Option<String>>,
    /// New category, or `null` to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    /// Replaces the tags (up to 50).
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
    /// Replaces the attributes.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
    /// `active` or `inactive`.
    #[schema(value_type = Option<ItemStatusName>)]
    pub status: Option<String>,
}

/// An item's status as the API spells it (for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ItemStatusName {
    /// For sale: searchable, can be added to carts.
    Active,
    /// Withdrawn: readable by id only.
    Inactive,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What applying a patch changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchEffect {
    /// Nothing differs from before.
    Unchanged,
    /// Fields changed; the item is active (or stays inactive).
    Updated,
    /// The item went from active to inactive.
    Deactivated,
}

/// A `PATCH /items/{id}` body, validated and normalized: applying it to an
/// item is cheap and cannot fail, so it can run inside a write job against
/// the current record (no lost update between two patches or a delete).
#[derive(Debug, Clone, Default)]
pub struct ValidPatch {
    name: Option<String>,
    description: Option<String>,
    price: Option<i64>,
    brand: Option<Option<String>>,
    category: Option<Option<String>>,
    tags: Option<Vec<String>>,
    attributes_json: Option<String>,
    status: Option<ItemStatus>,
}

/// Validates and normalizes a `PATCH /items/{id}` body.
pub fn validate_patch(patch: ItemPatch) -> Result<ValidPatch, FieldErrors> {
    let mut errors = FieldErrors::new();
    let valid = ValidPatch {
        name: patch
            .name
            .map(|n| check_name(&mut errors, &n).unwrap_or_default()),
        description: patch
            .description
            .map(|d| check_description(&mut errors, &d).unwrap_or_default()),
        price: patch
            .price
            .and_then(|p| check_price(&mut errors, "price", p)),
        brand: patch
            .brand
            .map(|b| b.and_then(|b| optional_label(&mut errors, "brand", &b, false))),
        category: patch
            .category
            .map(|c| c.and_then(|c| optional_label(&mut errors, "category", &c, true))),
        tags: patch.tags.map(|t| check_tags(&mut errors, t)),
        attributes_json: patch
            .attributes
            .is_some()
            .then(|| check_attributes(&mut errors, "attributes", patch.attributes)),
        status: patch.status.and_then(|s| match s.as_str() {
            "active" => Some(ItemStatus::Active),
            "inactive" => Some(ItemStatus::Inactive),
            _ => {
                errors.add("status", "must be \"active\" or \"inactive\"");
                None
            }
        }),
    };
    errors.into_result(valid)
}

/// A patch that only withdraws the item (`DELETE /items/{id}`).
pub fn deactivation() -> ValidPatch {
    ValidPatch {
        status: Some(ItemStatus::Inactive),
        ..Default::default()
    }
}

impl ValidPatch {
    /// Applies the patch to `item`, reporting what changed.
    pub fn apply(&self, item: &mut Item, now: Timestamp) -> PatchEffect {
        let mut next = item.clone();
        if let Some(name) = &self.name {
            next.name = name.clone();
        }
        if let Some(description) = &self.description {
            next.description = description.clone();
        }
        if let Some(price) = self.price {
            next.price = price;
            if !next.has_variants {
                next.variants[0].price = price;
            }
        }
        if let Some(brand) = &self.brand {
            next.brand = brand.clone();
        }
        if let Some(category) = &self.category {
            next.category = category.clone();
        }
        if let Some(tags) = &self.tags {
            next.tags = tags.clone();
        }
        if let Some(attributes_json) = &self.attributes_json {
            next.attributes_json = attributes_json.clone();
        }
        if let Some(status) = self.status {
            next.status = status;
        }
        if next == *item {
            return PatchEffect::Unchanged;
        }
        let effect = if item.status == ItemStatus::Active && next.status == ItemStatus::Inactive {
            PatchEffect::Deactivated
        } else {
            PatchEffect::Updated
        };
        next.updated_at = now;
        *item = next;
        effect
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::item::{validate_new_item, ItemInput};
    use serde_json::json;

    fn input(body: Value) -> ItemInput {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn patch_reports_deactivation_and_no_op() {
        let body = json!({"name": "n", "description": "d", "price": 1, "quantity": 1});
        let mut item = validate_new_item(input(body), "s", Timestamp(0))
            .unwrap()
            .item;
        let same = validate_patch(ItemPatch {
            name: Some(" n ".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(same.apply(&mut item, Timestamp(1)), PatchEffect::Unchanged);
        assert_eq!(
            deactivation().apply(&mut item, Timestamp(2)),
            PatchEffect::Deactivated
        );
        assert_eq!(item.updated_at, Timestamp(2));
    }
}

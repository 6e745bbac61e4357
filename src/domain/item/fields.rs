//! Checks of single item fields, shared by the new-item and patch bodies:
//! each normalizes the value, or names the field in the errors and returns
//! `None`.

use super::{Variant, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_PRICE, MAX_QUANTITY, MAX_TAGS};
use crate::domain::text::{char_len, multi_line, single_line};
use crate::domain::FieldErrors;

pub(super) fn required<T>(errors: &mut FieldErrors, field: &str, value: Option<T>) -> Option<T> {
    if value.is_none() {
        errors.add(field, "is required");
    }
    value
}

pub(super) fn check_name(errors: &mut FieldErrors, raw: &str) -> Option<String> {
    let name = single_line(raw);
    if name.is_empty() {
        errors.add("name", "must not be empty");
        None
    } else if char_len(&name) > MAX_NAME_CHARS {
        errors.add(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        );
        None
    } else {
        Some(name)
    }
}

pub(super) fn check_description(errors: &mut FieldErrors, raw: &str) -> Option<String> {
    let description = multi_line(raw);
    if char_len(&description) > MAX_DESCRIPTION_CHARS {
        errors.add(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        );
        None
    } else {
        Some(description)
    }
}

pub(super) fn check_price(errors: &mut FieldErrors, field: &str, price: i64) -> Option<i64> {
    if price < 0 {
        errors.add(field, "must be at least 0");
        None
    } else if price > MAX_PRICE {
        errors.add(field, format!("must be at most {MAX_PRICE}"));
        None
    } else {
        Some(price)
    }
}

/// Validates a stock count (also used for stock deltas' results).
pub fn check_quantity(errors: &mut FieldErrors, field: &str, quantity: i64) -> Option<i64> {
    if quantity < 0 {
        errors.add(field, "must be at least 0");
        None
    } else if quantity > MAX_QUANTITY {
        errors.add(field, format!("must be at most {MAX_QUANTITY}"));
        None
    } else {
        Some(quantity)
    }
}

pub(super) fn check_currency(errors: &mut FieldErrors, raw: &str) -> Option<String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Some(code)
    } else {
        errors.add("currency", "must be a 3-letter ISO 4217 code");
        None
    }
}

pub(super) fn check_sku(errors: &mut FieldErrors, field: &str, raw: &str) -> Option<String> {
    let sku = raw.trim();
    let valid_chars = sku
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if sku.is_empty() || sku.len() > 64 || !valid_chars {
        errors.add(
            field,
            "must be 1..=64 characters of A-Z, a-z, 0-9, '-', '_' or '.'",
        );
        None
    } else {
        Some(sku.to_owned())
    }
}

/// SKU codes compare case-insensitively: `mouse-1` and `MOUSE-1` are one code.
pub fn sku_key(sku: &str) -> String {
    sku.to_ascii_uppercase()
}

/// The key of a seller's SKU code in the catalog's uniqueness index:
/// seller id ‖ 0 ‖ [`sku_key`].
pub fn seller_sku_key(seller_id: &str, sku: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(seller_id.len() + 1 + sku.len());
    key.extend_from_slice(seller_id.as_bytes());
    key.push(0);
    key.extend_from_slice(sku_key(sku).as_bytes());
    key
}

/// Refuses a variant SKU used twice in one item (or equal to the item's).
pub(super) fn check_unique_skus(
    errors: &mut FieldErrors,
    item_sku: Option<&str>,
    variants: Option<&Vec<Variant>>,
) {
    let mut seen: Vec<String> = item_sku.map(sku_key).into_iter().collect();
    for (i, variant) in variants.into_iter().flatten().enumerate() {
        if let Some(sku) = &variant.sku {
            let key = sku_key(sku);
            if seen.contains(&key) {
                errors.add(format!("variants[{i}].sku"), "is used twice in this item");
            }
            seen.push(key);
        }
    }
}

pub(super) fn optional_label(
    errors: &mut FieldErrors,
    field: &str,
    raw: &str,
    lowercase: bool,
) -> Option<String> {
    let label = single_line(raw);
    let label = if lowercase {
        label.to_lowercase()
    } else {
        label
    };
    if char_len(&label) > 100 {
        errors.add(field, "must be at most 100 characters");
        None
    } else {
        Some(label).filter(|l| !l.is_empty())
    }
}

pub(super) fn check_tags(errors: &mut FieldErrors, raw: Vec<String>) -> Vec<String> {
    if raw.len() > MAX_TAGS {
        errors.add("tags", format!("at most {MAX_TAGS} tags"));
        return Vec::new();
    }
    let mut tags: Vec<String> = Vec::with_capacity(raw.len());
    for (i, tag) in raw.iter().enumerate() {
        let tag = single_line(tag).to_lowercase();
        if tag.is_empty() || char_len(&tag) > 50 {
            errors.add(format!("tags[{i}]"), "must be 1..=50 characters");
        } else if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

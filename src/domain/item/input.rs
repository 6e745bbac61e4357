//! The seller's item bodies (`POST /items`, `PATCH /items/{id}`) and the
//! validation and normalization that turn them into records.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    Item, ItemStatus, Variant, DEFAULT_CURRENCY, MAX_ATTRIBUTE_BYTES, MAX_ATTRIBUTE_DEPTH,
    MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_PRICE, MAX_QUANTITY, MAX_TAGS, MAX_VARIANTS,
};
use crate::domain::text::{char_len, multi_line, single_line};
use crate::domain::{new_id, FieldErrors, Timestamp};

/// `POST /items` body as received. Every field is optional here so that a
/// missing field is reported as a named 422, not a parse failure.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemInput {
    /// Required, 1..=200 characters once trimmed and stripped of markup.
    #[schema(value_type = String, required = true)]
    pub name: Option<String>,
    /// Required, up to 10,000 characters once normalized.
    #[schema(value_type = String, required = true)]
    pub description: Option<String>,
    /// Required, minor units.
    #[schema(value_type = i64, required = true, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price: Option<i64>,
    /// Required without variants; ignored with variants.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub quantity: Option<i64>,
    /// ISO 4217 code, default `INR`.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: Option<String>,
    /// Seller's SKU code, unique per seller.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: Option<String>,
    /// Brand.
    pub brand: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Up to 50 tags, each 1..=50 characters once normalized.
    #[schema(max_items = 50)]
    pub tags: Option<Vec<String>>,
    /// Free JSON object, nesting depth <= 5.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
    /// Up to 100 variants, each with its own price and stock.
    #[schema(max_items = 100)]
    pub variants: Option<Vec<VariantInput>>,
}

/// One variant in an [`ItemInput`].
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantInput {
    /// Seller's SKU code, unique per seller.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: Option<String>,
    /// Free JSON object (e.g. `{"color": "black"}`).
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
    /// Minor units; defaults to the item's price.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price: Option<i64>,
    /// Initial stock, default 0.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub quantity: Option<i64>,
}

/// A validated new item and the starting stock of each of its variants.
#[derive(Debug)]
pub struct NewItem {
    /// The record to store.
    pub item: Item,
    /// `(variant id, quantity)` for every variant.
    pub stock: Vec<(String, i64)>,
}

/// Validates and normalizes a `POST /items` body.
pub fn validate_new_item(
    input: ItemInput,
    seller_id: &str,
    now: Timestamp,
) -> Result<NewItem, FieldErrors> {
    let mut errors = FieldErrors::new();
    let id = new_id();
    let name = required(&mut errors, "name", input.name).and_then(|n| check_name(&mut errors, &n));
    let description = required(&mut errors, "description", input.description)
        .and_then(|d| check_description(&mut errors, &d));
    let price = required(&mut errors, "price", input.price)
        .and_then(|p| check_price(&mut errors, "price", p));
    let currency = match input.currency {
        None => Some(DEFAULT_CURRENCY.to_owned()),
        Some(code) => check_currency(&mut errors, &code),
    };
    let sku = input.sku.and_then(|s| check_sku(&mut errors, "sku", &s));
    let brand = input
        .brand
        .and_then(|b| optional_label(&mut errors, "brand", &b, false));
    let category = input
        .category
        .and_then(|c| optional_label(&mut errors, "category", &c, true));
    let tags = check_tags(&mut errors, input.tags.unwrap_or_default());
    let attributes_json = check_attributes(&mut errors, "attributes", input.attributes);

    let declared = input.variants.unwrap_or_default();
    let has_variants = !declared.is_empty();
    let mut variants = Vec::new();
    let mut stock = Vec::new();
    if declared.len() > MAX_VARIANTS {
        errors.add("variants", format!("at most {MAX_VARIANTS} variants"));
    } else if has_variants {
        for (i, v) in declared.into_iter().enumerate() {
            let field = |name: &str| format!("variants[{i}].{name}");
            let sku = v
                .sku
                .and_then(|s| check_sku(&mut errors, &field("sku"), &s));
            let attributes_json = check_attributes(&mut errors, &field("attributes"), v.attributes);
            let price = match v.price {
                Some(p) => check_price(&mut errors, &field("price"), p),
                None => price,
            };
            let quantity = check_quantity(&mut errors, &field("quantity"), v.quantity.unwrap_or(0));
            let variant_id = new_id();
            if let (Some(price), Some(quantity)) = (price, quantity) {
                stock.push((variant_id.clone(), quantity));
                variants.push(Variant {
                    id: variant_id,
                    sku,
                    attributes_json,
                    price,
                });
            }
        }
    } else {
        let quantity = required(&mut errors, "quantity", input.quantity)
            .and_then(|q| check_quantity(&mut errors, "quantity", q));
        if let (Some(price), Some(quantity)) = (price, quantity) {
            stock.push((id.clone(), quantity));
            variants.push(Variant {
                id: id.clone(),
                sku: sku.clone(),
                attributes_json: "{}".into(),
                price,
            });
        }
    }
    check_unique_skus(
        &mut errors,
        sku.as_deref(),
        has_variants.then_some(&variants),
    );

    let (Some(name), Some(description), Some(price), Some(currency)) =
        (name, description, price, currency)
    else {
        return Err(errors);
    };
    let item = Item {
        id,
        seller_id: seller_id.to_owned(),
        name,
        description,
        price,
        currency,
        sku,
        brand,
        category,
        tags,
        attributes_json,
        has_variants,
        variants,
        status: ItemStatus::Active,
        images: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    errors.into_result(NewItem { item, stock })
}

fn required<T>(errors: &mut FieldErrors, field: &str, value: Option<T>) -> Option<T> {
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

fn check_currency(errors: &mut FieldErrors, raw: &str) -> Option<String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Some(code)
    } else {
        errors.add("currency", "must be a 3-letter ISO 4217 code");
        None
    }
}

fn check_sku(errors: &mut FieldErrors, field: &str, raw: &str) -> Option<String> {
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

fn check_unique_skus(
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

/// Normalizes an attributes object; returns its compact JSON (`{}` when absent).
pub(super) fn check_attributes(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<Value>,
) -> String {
    let object = match value {
        None | Some(Value::Null) => return "{}".into(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.add(field, "must be a JSON object");
            return "{}".into();
        }
    };
    let mut problem = None;
    let normalized = normalize_object(object, 1, &mut problem);
    if let Some(message) = problem {
        errors.add(field, message);
        return "{}".into();
    }
    let json = Value::Object(normalized).to_string();
    if json.len() > MAX_ATTRIBUTE_BYTES {
        errors.add(
            field,
            format!("must be at most {MAX_ATTRIBUTE_BYTES} bytes as JSON"),
        );
        return "{}".into();
    }
    json
}

fn normalize_object(
    object: Map<String, Value>,
    depth: usize,
    problem: &mut Option<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in object {
        let key = single_line(&key);
        if key.is_empty() || char_len(&key) > 100 {
            *problem = Some("keys must be 1..=100 characters".into());
            continue;
        }
        out.insert(key, normalize_value(value, depth, problem));
    }
    out
}

fn normalize_value(value: Value, depth: usize, problem: &mut Option<String>) -> Value {
    let nested = |problem: &mut Option<String>| {
        if depth + 1 > MAX_ATTRIBUTE_DEPTH {
            *problem = Some(format!(
                "must nest at most {MAX_ATTRIBUTE_DEPTH} levels deep"
            ));
            false
        } else {
            true
        }
    };
    match value {
        Value::String(s) => Value::String(single_line(&s)),
        Value::Object(map) if nested(problem) => {
            Value::Object(normalize_object(map, depth + 1, problem))
        }
        Value::Array(items) if nested(problem) => Value::Array(
            items
                .into_iter()
                .map(|v| normalize_value(v, depth + 1, problem))
                .collect(),
        ),
        Value::Object(_) | Value::Array(_) => Value::Null,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(body: Value) -> ItemInput {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn the_original_design_body_is_accepted_as_is() {
        let body = json!({"name": "Wireless Mouse", "description": "Ergonomic Bluetooth Mouse", "price": 999, "quantity": 100});
        let new = validate_new_item(input(body), "seller", Timestamp(0)).unwrap();
        assert_eq!(new.item.currency, "INR");
        assert_eq!(new.stock, vec![(new.item.id.clone(), 100)]);
        assert!(!new.item.has_variants);
    }

    #[test]
    fn every_bad_field_is_named() {
        let body = json!({"name": "  ", "description": "d", "price": -1, "quantity": -5, "currency": "rupees"});
        let errors = validate_new_item(input(body), "s", Timestamp(0)).unwrap_err();
        let fields: Vec<_> = errors.as_map().keys().cloned().collect();
        assert_eq!(fields, ["currency", "name", "price", "quantity"]);
    }

    #[test]
    fn attribute_nesting_is_limited() {
        let ok = json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
        let deep = json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}});
        let base = || json!({"name": "n", "description": "d", "price": 1, "quantity": 1});
        let mut with_ok = base();
        with_ok["attributes"] = ok;
        assert!(validate_new_item(input(with_ok), "s", Timestamp(0)).is_ok());
        let mut with_deep = base();
        with_deep["attributes"] = deep;
        let errors = validate_new_item(input(with_deep), "s", Timestamp(0)).unwrap_err();
        assert!(errors.as_map().contains_key("attributes"));
    }

    #[test]
    fn duplicate_variant_skus_in_one_item_are_refused() {
        let body = json!({"name": "n", "description": "d", "price": 1, "quantity": 1, "sku": "A",
            "variants": [{"sku": "a"}, {"sku": "B"}, {"sku": "b"}]});
        let errors = validate_new_item(input(body), "s", Timestamp(0)).unwrap_err();
        assert!(errors.as_map().contains_key("variants[0].sku"));
        assert!(errors.as_map().contains_key("variants[2].sku"));
    }
}

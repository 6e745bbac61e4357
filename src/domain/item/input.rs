//! The seller's new-item body (`POST /items`) and its validation into a
//! record and the opening stock of each variant. The checks of single fields
//! are in `fields.rs` and `attributes.rs`, shared with `patch.rs`.

use serde::Deserialize;
use serde_json::Value;

use super::attributes::check_attributes;
use super::fields::{
    check_currency, check_description, check_name, check_price, check_quantity, check_sku,
    check_tags, check_unique_skus, optional_label, required,
};
use super::{Item, ItemStatus, Variant, DEFAULT_CURRENCY, MAX_VARIANTS};
use crate::domain::{new_id_beside, FieldErrors, Timestamp};

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
    mut input: ItemInput,
    seller_id: &str,
    now: Timestamp,
) -> Result<NewItem, FieldErrors> {
    let mut errors = FieldErrors::new();
    // Beside its seller: a seller's items, their SKU codes and their stock
    // live on one node, which keeps the codes unique per seller.
    let id = new_id_beside(seller_id);
    let declared = input.variants.take().unwrap_or_default();
    let quantity = input.quantity.take();
    let fields = ItemFields::check(&mut errors, input);
    let has_variants = !declared.is_empty();
    let (variants, stock) = if declared.len() > MAX_VARIANTS {
        errors.add("variants", format!("at most {MAX_VARIANTS} variants"));
        (Vec::new(), Vec::new())
    } else if has_variants {
        // `quantity` is ignored beside variants (API.md), but a value the
        // schema forbids is still refused rather than silently dropped.
        if let Some(q) = quantity {
            check_quantity(&mut errors, "quantity", q);
        }
        check_variants(&mut errors, &id, declared, fields.price)
    } else {
        sole_variant(&mut errors, &id, &fields, quantity)
    };
    check_unique_skus(
        &mut errors,
        fields.sku.as_deref(),
        has_variants.then_some(&variants),
    );

    let (Some(name), Some(description), Some(price), Some(currency)) = (
        fields.name,
        fields.description,
        fields.price,
        fields.currency,
    ) else {
        return Err(errors);
    };
    let item = Item {
        id,
        seller_id: seller_id.to_owned(),
        name,
        description,
        price,
        currency,
        sku: fields.sku,
        brand: fields.brand,
        category: fields.category,
        tags: fields.tags,
        attributes_json: fields.attributes_json,
        has_variants,
        variants,
        status: ItemStatus::Active,
        images: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    errors.into_result(NewItem { item, stock })
}

/// The item's own fields, each checked (`None`: refused or missing, and
/// named in the errors).
struct ItemFields {
    name: Option<String>,
    description: Option<String>,
    price: Option<i64>,
    currency: Option<String>,
    sku: Option<String>,
    brand: Option<String>,
    category: Option<String>,
    tags: Vec<String>,
    attributes_json: String,
}

impl ItemFields {
    /// Checks every field but the variants and the quantity, in the order
    /// the errors name them.
    fn check(errors: &mut FieldErrors, input: ItemInput) -> ItemFields {
        let name = required(errors, "name", input.name).and_then(|n| check_name(errors, &n));
        let description = required(errors, "description", input.description)
            .and_then(|d| check_description(errors, &d));
        let price =
            required(errors, "price", input.price).and_then(|p| check_price(errors, "price", p));
        let currency = match input.currency {
            None => Some(DEFAULT_CURRENCY.to_owned()),
            Some(code) => check_currency(errors, &code),
        };
        let sku = input.sku.and_then(|s| check_sku(errors, "sku", &s));
        let brand = input
            .brand
            .and_then(|b| optional_label(errors, "brand", &b, false));
        let category = input
            .category
            .and_then(|c| optional_label(errors, "category", &c, true));
        let tags = check_tags(errors, input.tags.unwrap_or_default());
        let attributes_json = check_attributes(errors, "attributes", input.attributes);
        ItemFields {
            name,
            description,
            price,
            currency,
            sku,
            brand,
            category,
            tags,
            attributes_json,
        }
    }
}

/// The declared variants, each with a new id placed with the item's
/// (`item_id`), and their opening stock; a variant without a price takes
/// the item's.
fn check_variants(
    errors: &mut FieldErrors,
    item_id: &str,
    declared: Vec<VariantInput>,
    item_price: Option<i64>,
) -> (Vec<Variant>, Vec<(String, i64)>) {
    let mut variants = Vec::new();
    let mut stock = Vec::new();
    for (i, v) in declared.into_iter().enumerate() {
        let field = |name: &str| format!("variants[{i}].{name}");
        let sku = v.sku.and_then(|s| check_sku(errors, &field("sku"), &s));
        let attributes_json = check_attributes(errors, &field("attributes"), v.attributes);
        let price = match v.price {
            Some(p) => check_price(errors, &field("price"), p),
            None => item_price,
        };
        let quantity = check_quantity(errors, &field("quantity"), v.quantity.unwrap_or(0));
        let variant_id = new_id_beside(item_id);
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
    (variants, stock)
}

/// An item without variants is its own single variant (same id and SKU),
/// holding the item's required quantity.
fn sole_variant(
    errors: &mut FieldErrors,
    id: &str,
    fields: &ItemFields,
    quantity: Option<i64>,
) -> (Vec<Variant>, Vec<(String, i64)>) {
    let quantity =
        required(errors, "quantity", quantity).and_then(|q| check_quantity(errors, "quantity", q));
    let (Some(price), Some(quantity)) = (fields.price, quantity) else {
        return (Vec::new(), Vec::new());
    };
    let variant = Variant {
        id: id.to_owned(),
        sku: fields.sku.clone(),
        attributes_json: "{}".into(),
        price,
    };
    (vec![variant], vec![(id.to_owned(), quantity)])
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
    fn an_ignored_quantity_beside_variants_must_still_be_valid() {
        let body = |q: i64| {
            json!({"name": "n", "description": "d", "price": 1, "quantity": q,
            "variants": [{"quantity": 3}]})
        };
        let new = validate_new_item(input(body(7)), "s", Timestamp(0)).unwrap();
        assert_eq!(new.stock.len(), 1);
        assert_eq!(new.stock[0].1, 3);
        let errors = validate_new_item(input(body(-1)), "s", Timestamp(0)).unwrap_err();
        assert_eq!(errors.as_map().keys().collect::<Vec<_>>(), ["quantity"]);
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

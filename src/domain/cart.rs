//! Carts: lines with price snapshots, and the pricing a buyer is shown and
//! checkout charges ([`Pricing::price`], shared by the cart service and the
//! checkout coordinator so the two can never disagree).

use std::collections::BTreeMap;

use super::item::{Item, ItemStatus};
use super::Timestamp;

/// Most units of one line.
pub const MAX_LINE_QUANTITY: i64 = 1_000;
/// Most lines in one cart.
pub const MAX_LINES: usize = 100;

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CartLine {
    /// The item.
    pub item_id: String,
    /// The variant (the item id for an item without variants).
    pub variant_id: String,
    /// Units, 1..=1000.
    pub quantity: i64,
    /// Price snapshot taken when the line was added, minor units.
    pub unit_price: i64,
    /// The item's currency.
    pub currency: String,
}

/// A stored cart: a signed-in buyer's (one per user) or a guest's.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Cart {
    /// Cart id (`cartId` at checkout).
    pub id: String,
    /// The owner, or `None` for a guest cart.
    pub user_id: Option<String>,
    /// Lines in the order they were added.
    pub lines: Vec<CartLine>,
    /// The checkout holding the cart's lock, if any.
    pub checkout: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change; the cart expires `cart_ttl_days` after it.
    pub updated_at: Timestamp,
}

/// Why a cart change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartRuleError {
    /// A checkout holds the cart.
    #[error("a checkout of this cart is in progress")]
    Locked,
    /// Too many lines.
    #[error("a cart holds at most {MAX_LINES} lines")]
    TooManyLines,
    /// Lines must share one currency.
    #[error("the cart is in {0}")]
    CurrencyMismatch(String),
}

impl Cart {
    /// An empty cart.
    pub fn new(id: String, user_id: Option<String>, now: Timestamp) -> Self {
        Cart {
            id,
            user_id,
            lines: Vec::new(),
            checkout: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Sets a line's quantity (0 removes it). A new line takes `line`'s price
    /// snapshot; an existing line keeps the one it was added with.
    pub fn set_line(&mut self, line: CartLine, now: Timestamp) -> Result<(), CartRuleError> {
        if self.checkout.is_some() {
            return Err(CartRuleError::Locked);
        }
        if let Some(currency) = self
            .lines
            .iter()
            .map(|l| &l.currency)
            .find(|c| **c != line.currency)
        {
            return Err(CartRuleError::CurrencyMismatch(currency.clone()));
        }
        match self
            .lines
            .iter()
            .position(|l| l.variant_id == line.variant_id)
        {
            Some(i) if line.quantity == 0 => {
                self.lines.remove(i);
            }
            Some(i) => self.lines[i].quantity = line.quantity,
            None if line.quantity == 0 => {}
            None if self.lines.len() >= MAX_LINES => return Err(CartRuleError::TooManyLines),
            None => self.lines.push(line),
        }
        self.updated_at = now;
        Ok(())
    }

    /// Adds `lines` (a guest cart) into this one: quantities are summed and
    /// capped by `cap(variant)` (stock) and the line maximum.
    pub fn merge(&mut self, lines: Vec<CartLine>, cap: &BTreeMap<String, i64>, now: Timestamp) {
        for line in lines {
            let limit = cap
                .get(&line.variant_id)
                .copied()
                .unwrap_or(0)
                .min(MAX_LINE_QUANTITY);
            let current = self
                .lines
                .iter()
                .find(|l| l.variant_id == line.variant_id)
                .map_or(0, |l| l.quantity);
            let quantity = (current + line.quantity).min(limit.max(current));
            if quantity > current {
                let _ = self.set_line(CartLine { quantity, ..line }, now);
            }
        }
    }

    /// Empties the cart and drops its lock.
    pub fn clear(&mut self, now: Timestamp) {
        self.lines.clear();
        self.checkout = None;
        self.updated_at = now;
    }
}

/// Tax and shipping rules (settings; both default to zero).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pricing {
    /// Tax rate in basis points (1/100 of a percent) for categories not listed.
    pub default_tax_bps: u32,
    /// Tax rate in basis points per category.
    pub tax_bps_by_category: BTreeMap<String, u32>,
    /// Flat shipping fee in minor units, charged when the subtotal is below
    /// `free_shipping_from` (0 = never free).
    pub shipping_fee: i64,
    /// Subtotal from which shipping is free.
    pub free_shipping_from: i64,
}

/// A priced line: quantity × current price, and the category taxed.
pub struct TaxableLine<'a> {
    /// Units.
    pub quantity: i64,
    /// Today's unit price.
    pub current_price: i64,
    /// The item's category, for its tax rate.
    pub category: Option<&'a str>,
}

/// The amounts a buyer pays, all in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Σ quantity × current price.
    pub subtotal: i64,
    /// Tax, rounded half up per line.
    pub tax: i64,
    /// Shipping.
    pub shipping: i64,
    /// subtotal + tax + shipping: what checkout charges.
    pub total: i64,
}

impl Pricing {
    /// Totals for `lines` (the same numbers `GET /cart` shows and checkout charges).
    pub fn totals<'a>(&self, lines: impl IntoIterator<Item = TaxableLine<'a>>) -> Totals {
        let (mut subtotal, mut tax, mut any) = (0i64, 0i64, false);
        for line in lines {
            any = true;
            let amount = line.quantity.saturating_mul(line.current_price);
            subtotal = subtotal.saturating_add(amount);
            let bps = line
                .category
                .and_then(|c| self.tax_bps_by_category.get(c))
                .copied()
                .unwrap_or(self.default_tax_bps);
            tax = tax.saturating_add(
                (i128::from(amount) * i128::from(bps) + 5_000).div_euclid(10_000) as i64,
            );
        }
        let free = self.free_shipping_from > 0 && subtotal >= self.free_shipping_from;
        let shipping = if any && !free { self.shipping_fee } else { 0 };
        Totals {
            subtotal,
            tax,
            shipping,
            total: subtotal.saturating_add(tax).saturating_add(shipping),
        }
    }
}

/// A cart line at today's price, with what an order needs of its item.
#[derive(Debug, Clone)]
pub struct PricedCartLine {
    /// The stored line (with its price snapshot).
    pub line: CartLine,
    /// The item's current name (empty if the item is gone).
    pub name: String,
    /// Today's price of the variant (the snapshot if the item is gone).
    pub current_price: i64,
    /// The item's seller (empty if the item is gone).
    pub seller_id: String,
    /// Whether the item is still for sale.
    pub for_sale: bool,
}

/// A cart's lines at today's prices, and what they add up to.
#[derive(Debug, Clone)]
pub struct PricedLines {
    /// The lines, in the cart's order.
    pub lines: Vec<PricedCartLine>,
    /// The amounts.
    pub totals: Totals,
}

impl Pricing {
    /// Prices `lines` at today's prices: `items` holds each line's item, in
    /// the same order, or `None` for an item that vanished (its line keeps
    /// the snapshot price and is no longer for sale). What `GET /cart` shows
    /// and what checkout charges.
    pub fn price(&self, lines: &[CartLine], items: Vec<Option<Item>>) -> PricedLines {
        debug_assert_eq!(lines.len(), items.len(), "one item per line");
        let mut priced = Vec::with_capacity(lines.len());
        let mut categories = Vec::with_capacity(lines.len());
        for (line, item) in lines.iter().zip(items) {
            let view = match item {
                Some(item) => {
                    let price = item
                        .variant(&line.variant_id)
                        .map_or(item.price, |v| v.price);
                    categories.push(item.category);
                    PricedCartLine {
                        line: line.clone(),
                        name: item.name,
                        current_price: price,
                        seller_id: item.seller_id,
                        for_sale: item.status == ItemStatus::Active,
                    }
                }
                None => {
                    categories.push(None);
                    PricedCartLine {
                        line: line.clone(),
                        name: String::new(),
                        current_price: line.unit_price,
                        seller_id: String::new(),
                        for_sale: false,
                    }
                }
            };
            priced.push(view);
        }
        let totals = self.totals(priced.iter().zip(&categories).map(|(l, c)| TaxableLine {
            quantity: l.line.quantity,
            current_price: l.current_price,
            category: c.as_deref(),
        }));
        PricedLines {
            lines: priced,
            totals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(variant: &str, quantity: i64) -> CartLine {
        CartLine {
            item_id: variant.into(),
            variant_id: variant.into(),
            quantity,
            unit_price: 999,
            currency: "INR".into(),
        }
    }

    #[test]
    fn the_original_design_total_holds_with_default_pricing() {
        let totals = Pricing::default().totals([TaxableLine {
            quantity: 2,
            current_price: 999,
            category: None,
        }]);
        assert_eq!(
            totals,
            Totals {
                subtotal: 1998,
                tax: 0,
                shipping: 0,
                total: 1998
            }
        );
    }

    #[test]
    fn tax_by_category_and_free_shipping_threshold() {
        let pricing = Pricing {
            default_tax_bps: 500,
            tax_bps_by_category: [("books".to_owned(), 0)].into(),
            shipping_fee: 4_000,
            free_shipping_from: 50_000,
        };
        let small = pricing.totals([
            TaxableLine {
                quantity: 1,
                current_price: 10_000,
                category: Some("electronics"),
            },
            TaxableLine {
                quantity: 1,
                current_price: 10_000,
                category: Some("books"),
            },
        ]);
        assert_eq!(
            small,
            Totals {
                subtotal: 20_000,
                tax: 500,
                shipping: 4_000,
                total: 24_500
            }
        );
        let large = pricing.totals([TaxableLine {
            quantity: 5,
            current_price: 10_000,
            category: None,
        }]);
        assert_eq!((large.shipping, large.total), (0, 52_500));
        assert_eq!(pricing.totals([]).total, 0, "an empty cart ships nothing");
    }

    #[test]
    fn pricing_takes_todays_price_and_a_vanished_item_keeps_its_snapshot() {
        let item = Item {
            id: "a".into(),
            seller_id: "s".into(),
            name: "Mug".into(),
            description: String::new(),
            price: 1_500,
            currency: "INR".into(),
            sku: None,
            brand: None,
            category: Some("books".into()),
            tags: Vec::new(),
            attributes_json: "{}".into(),
            has_variants: false,
            variants: Vec::new(),
            status: ItemStatus::Active,
            images: Vec::new(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let pricing = Pricing {
            default_tax_bps: 1_000,
            tax_bps_by_category: [("books".to_owned(), 0)].into(),
            ..Pricing::default()
        };
        let priced = pricing.price(&[line("a", 2), line("b", 1)], vec![Some(item), None]);
        let seen: Vec<_> = priced
            .lines
            .iter()
            .map(|l| (l.name.as_str(), l.current_price, l.for_sale))
            .collect();
        assert_eq!(seen, [("Mug", 1_500, true), ("", 999, false)]);
        assert_eq!((priced.totals.subtotal, priced.totals.tax), (3_999, 100));
    }

    #[test]
    fn lines_keep_their_snapshot_and_merge_caps_by_stock() {
        let mut cart = Cart::new("c".into(), None, Timestamp(0));
        cart.set_line(line("a", 2), Timestamp(1)).unwrap();
        cart.set_line(
            CartLine {
                unit_price: 5,
                ..line("a", 3)
            },
            Timestamp(2),
        )
        .unwrap();
        assert_eq!((cart.lines[0].quantity, cart.lines[0].unit_price), (3, 999));
        cart.merge(
            vec![line("a", 4), line("b", 9)],
            &[("a".into(), 5), ("b".into(), 2)].into(),
            Timestamp(3),
        );
        assert_eq!(
            cart.lines.iter().map(|l| l.quantity).collect::<Vec<_>>(),
            [5, 2]
        );
        cart.set_line(line("a", 0), Timestamp(4)).unwrap();
        assert_eq!(cart.lines.len(), 1);
        cart.checkout = Some("k".into());
        assert_eq!(
            cart.set_line(line("b", 1), Timestamp(5)),
            Err(CartRuleError::Locked)
        );
    }
}

//! How a checkout begins: the live path (lock the cart, price it, check
//! what the buyer expects to pay, plan the log, then the steps in order) and
//! the resume from a log left by an interrupted one.

use std::collections::BTreeMap;

use super::retry::retrying;
use super::saga::{Saga, Step};
use super::{CheckoutEntity, CheckoutError, CheckoutRequest, CheckoutState, ShortLine};
use crate::domain::cart::{Cart, PricedLines};
use crate::domain::item::Item;
use crate::domain::order::{card_last4, Order, OrderLine};
use crate::domain::{looks_like_id, Timestamp};
use crate::storage::TreeName;

impl CheckoutEntity {
    /// The live path: every step of the saga, in order.
    pub(super) async fn start(
        &self,
        request: CheckoutRequest,
        state: &mut CheckoutState,
    ) -> Result<Order, CheckoutError> {
        let cart = self
            .carts
            .begin_checkout(&request.cart_id, &request.checkout_id)
            .await?;
        let priced = match self.price(&cart).await {
            Ok(priced) => priced,
            Err(e) => {
                self.unlock_unlogged(&request).await;
                return Err(e);
            }
        };
        if let Some(refusal) = refusal(&request, &priced) {
            self.unlock_unlogged(&request).await;
            return Err(refusal);
        }
        state.saga = Some(self.plan(&request, &priced));
        self.reserve(state).await?;
        let declined = self.assess_risk(state).await?;
        self.create_order(state, &request, declined).await?;
        self.drive(state, Some(request.card_no)).await
    }

    /// Recovery: load the log and finish or undo it.
    pub(super) async fn resume(&self, state: &mut CheckoutState) -> Result<Order, CheckoutError> {
        let key = state.id.clone().into_bytes();
        let saga = self
            .store
            .write(move |tx| tx.get::<Saga>(TreeName::Sagas, key.clone()))
            .await?;
        let Some(saga) = saga else {
            return Err(CheckoutError::Unavailable("no such checkout".into()));
        };
        tracing::info!(checkout = %saga.checkout_id, step = ?saga.step, "resuming an interrupted checkout");
        if saga.step != Step::Reserving {
            state.order = retrying(|| self.orders.get(&saga.order_id)).await?;
        }
        // The cart's lock did not survive the restart: take it again, so the
        // buyer cannot change (or check out again) what this checkout is
        // finishing. Best effort: an emptied cart has nothing to protect.
        let _ = self
            .carts
            .begin_checkout(&saga.cart_id, &saga.checkout_id)
            .await;
        state.saga = Some(saga);
        self.drive(state, None).await
    }

    /// The locked cart at today's prices, by the same rules `GET /cart`
    /// shows ([`crate::domain::cart::Pricing::price`]).
    async fn price(&self, cart: &Cart) -> Result<PricedLines, CheckoutError> {
        let mut items = Vec::with_capacity(cart.lines.len());
        for line in &cart.lines {
            items.push(self.item(&line.item_id).await?);
        }
        Ok(self.pricing.price(&cart.lines, items))
    }

    /// An item as the catalog reads it (the same id check and the same
    /// cached store read as `CatalogService::item`); `None` if it is gone.
    async fn item(&self, item_id: &str) -> Result<Option<Item>, CheckoutError> {
        if !looks_like_id(item_id) {
            return Ok(None);
        }
        self.store
            .get::<Item>(TreeName::Items, item_id.as_bytes())
            .await
            // A failed read was always reported as a participant's failure
            // (it came through the cart service), not as a storage error.
            .map_err(|e| CheckoutError::Unavailable(e.to_string()))
    }

    /// Gives the cart back before anything is logged, so the unlock is
    /// retried here; a lock that still cannot be dropped lapses after the
    /// cart's lock lease.
    async fn unlock_unlogged(&self, request: &CheckoutRequest) {
        let unlocked = retrying(|| {
            self.carts
                .end_checkout(&request.cart_id, &request.checkout_id, false, None)
        })
        .await;
        if let Err(e) = unlocked {
            tracing::warn!(checkout = %request.checkout_id, error = %e, "unlocking the cart failed");
        }
    }

    /// The log this checkout will follow, at its first step.
    fn plan(&self, request: &CheckoutRequest, priced: &PricedLines) -> Saga {
        let now = Timestamp::now();
        let window = i64::try_from(self.payment_window.as_millis()).unwrap_or(i64::MAX);
        Saga {
            checkout_id: request.checkout_id.clone(),
            order_id: request.order_id.clone(),
            user_id: request.user_id.clone(),
            cart_id: request.cart_id.clone(),
            lines: order_lines(priced),
            amount: priced.totals.total,
            currency: currency(priced),
            card_last4: card_last4(&request.card_no),
            deadline: Timestamp(now.0.saturating_add(window)),
            step: Step::Reserving,
            started_at: now,
            committed: Vec::new(),
            returned: Vec::new(),
        }
    }
}

/// Why the priced cart cannot be checked out as asked, if it cannot: the
/// buyer expects another total or currency, or a line is no longer for sale.
fn refusal(request: &CheckoutRequest, priced: &PricedLines) -> Option<CheckoutError> {
    let currency = currency(priced);
    if request.amount != priced.totals.total {
        return Some(CheckoutError::PriceChanged {
            expected: priced.totals.total,
        });
    }
    if request
        .currency
        .as_ref()
        .is_some_and(|c| !c.eq_ignore_ascii_case(&currency))
    {
        return Some(CheckoutError::CurrencyMismatch { cart: currency });
    }
    let gone: Vec<ShortLine> = priced
        .lines
        .iter()
        .filter(|l| !l.for_sale)
        .map(|l| ShortLine {
            item_id: l.line.item_id.clone(),
            variant_id: l.line.variant_id.clone(),
            requested: l.line.quantity,
            available: 0,
        })
        .collect();
    (!gone.is_empty()).then_some(CheckoutError::OutOfStock(gone))
}

/// The cart's currency (every line shares it; empty for an empty cart).
fn currency(priced: &PricedLines) -> String {
    priced
        .lines
        .first()
        .map(|l| l.line.currency.clone())
        .unwrap_or_default()
}

/// One order line per variant, at today's price, in SKU order: two
/// checkouts reserving the same SKUs take them in the same order.
fn order_lines(priced: &PricedLines) -> Vec<OrderLine> {
    let mut merged: BTreeMap<String, OrderLine> = BTreeMap::new();
    for view in &priced.lines {
        merged
            .entry(view.line.variant_id.clone())
            .and_modify(|l| l.quantity += view.line.quantity)
            .or_insert_with(|| OrderLine {
                item_id: view.line.item_id.clone(),
                variant_id: view.line.variant_id.clone(),
                seller_id: view.seller_id.clone(),
                name: view.name.clone(),
                quantity: view.line.quantity,
                unit_price: view.current_price,
            });
    }
    merged.into_values().collect()
}

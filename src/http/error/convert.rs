//! How each lower layer's errors become API errors: a code (and so a
//! status) per variant, with the details a client may act on. This is
//! mapping, not reading: no handler logic lives here.

use serde_json::{json, Value};

use super::{ApiError, Code};
use crate::actors::cart::CartError;
use crate::actors::checkout::CheckoutError;
use crate::actors::order::OrderError;
use crate::actors::runtime::EntityError;
use crate::cluster::CallError;
use crate::domain::cart::CartRuleError;
use crate::domain::order::FulfilmentRefused;
use crate::domain::FieldErrors;
use crate::search::SearchError;
use crate::services::account::AccountError;
use crate::services::cart::CartServiceError;
use crate::services::catalog::CatalogError;
use crate::services::checkout::CheckoutServiceError;
use crate::services::media::MediaError;
use crate::services::notifications::InboxError;
use crate::services::order::OrderServiceError;
use crate::services::recommend::RecommendError;
use crate::services::wishlist::WishlistError;
use crate::storage::StorageError;

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Closed => {
                ApiError::new(Code::Unavailable, "the node is not accepting writes")
            }
            StorageError::FlushFailed(cause) => {
                tracing::error!(error = %cause, "flush failed");
                ApiError::new(
                    Code::Unavailable,
                    "storage failed; the outcome of this request is unknown",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(errors) => ApiError::validation(errors),
            AccountError::EmailTaken => ApiError::new(
                Code::EmailTaken,
                "an account with this email already exists",
            ),
            AccountError::InvalidCredentials => {
                ApiError::new(Code::InvalidCredentials, "email or password is incorrect")
            }
            AccountError::Unauthenticated => ApiError::unauthenticated(),
            AccountError::Throttled(wait) => ApiError::new(
                Code::SignInThrottled,
                "too many failed sign-ins for this email; wait before trying again",
            )
            // Rounded up: a client that waits exactly this long gets in.
            .retry_after(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
            AccountError::Busy => ApiError::new(
                Code::Overloaded,
                "too many sign-ins in progress; retry shortly",
            )
            .retry_after(1),
            AccountError::Hashing(cause) => ApiError::internal(cause),
            AccountError::Storage(e) => e.into(),
            AccountError::SessionsUnreachable(cause) => {
                tracing::warn!(error = %cause, "shared sessions out of reach");
                ApiError::new(
                    Code::Unavailable,
                    "the cluster's session store is out of reach; nothing was changed, retry shortly",
                )
                .retry_after(1)
            }
        }
    }
}

impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Io(e) => ApiError::internal(e),
            MediaError::SharedUnreachable(cause) => {
                tracing::warn!(error = %cause, "shared media out of reach");
                ApiError::new(
                    Code::Unavailable,
                    "the cluster's media store is out of reach; retry shortly",
                )
                .retry_after(1)
            }
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Invalid(errors) => ApiError::validation(errors),
            CatalogError::NotASeller => {
                ApiError::new(Code::Forbidden, "only sellers may list items")
            }
            CatalogError::NotFound => ApiError::not_found("item"),
            CatalogError::InsufficientStock { available } => ApiError::new(
                Code::InsufficientStock,
                format!("the change would make stock negative: {available} available"),
            )
            .with("available", json!(available)),
            CatalogError::InvalidCursor => ApiError::new(
                Code::InvalidCursor,
                "the cursor was not issued by this server",
            ),
            CatalogError::Unavailable(e) => e.into(),
            CatalogError::Storage(e) => e.into(),
        }
    }
}

impl From<CartServiceError> for ApiError {
    fn from(e: CartServiceError) -> Self {
        match e {
            CartServiceError::Invalid(errors) => ApiError::validation(errors),
            CartServiceError::ItemNotFound => ApiError::not_found("item"),
            CartServiceError::ItemInactive => {
                ApiError::new(Code::ItemInactive, "the item is not for sale")
            }
            CartServiceError::InsufficientStock { available } => ApiError::new(
                Code::InsufficientStock,
                format!("only {available} available"),
            )
            .with("available", json!(available)),
            CartServiceError::Cart(e) => e.into(),
            CartServiceError::Catalog(e) => e.into(),
            CartServiceError::Storage(e) => e.into(),
            CartServiceError::Remote(e) => e.into(),
        }
    }
}

impl From<CartError> for ApiError {
    fn from(e: CartError) -> Self {
        match e {
            CartError::Rule(CartRuleError::Locked) | CartError::InProgress => ApiError::new(
                Code::CheckoutInProgress,
                "a checkout of this cart is in progress",
            ),
            CartError::Rule(rule) => {
                ApiError::validation(FieldErrors::single("itemId", rule.to_string()))
            }
            CartError::Empty => ApiError::new(Code::EmptyCart, "the cart is empty"),
            CartError::Unavailable(e) => e.into(),
            CartError::Storage(e) => e.into(),
        }
    }
}

impl From<CheckoutServiceError> for ApiError {
    fn from(e: CheckoutServiceError) -> Self {
        match e {
            CheckoutServiceError::CartNotFound => ApiError::not_found("cart"),
            CheckoutServiceError::Checkout(e) => e.into(),
            CheckoutServiceError::KeyReused => ApiError::new(
                Code::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different request body",
            ),
            CheckoutServiceError::KeyInUse => ApiError::new(
                Code::RequestInProgress,
                "a request with this Idempotency-Key is still running; retry shortly",
            )
            .retry_after(1),
            CheckoutServiceError::Order(e) => e.into(),
            CheckoutServiceError::Storage(e) => e.into(),
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        match e {
            CheckoutError::EmptyCart => ApiError::new(Code::EmptyCart, "the cart is empty"),
            CheckoutError::InProgress => ApiError::new(
                Code::CheckoutInProgress,
                "this cart is already being checked out",
            ),
            CheckoutError::PriceChanged { expected } => ApiError::new(
                Code::PriceChanged,
                format!("the cart's total is now {expected}; confirm the new amount"),
            )
            .with("expectedAmount", json!(expected)),
            CheckoutError::CurrencyMismatch { cart } => ApiError::validation(FieldErrors::single(
                "currency",
                format!("the cart is in {cart}"),
            )),
            CheckoutError::OutOfStock(lines) => {
                let lines: Vec<Value> = lines
                    .into_iter()
                    .map(|l| {
                        json!({
                            "itemId": l.item_id,
                            "variantId": l.variant_id,
                            "requested": l.requested,
                            "available": l.available,
                        })
                    })
                    .collect();
                ApiError::new(
                    Code::OutOfStock,
                    "some lines are out of stock; nothing was reserved and no order was created",
                )
                .with("lines", Value::Array(lines))
            }
            CheckoutError::Unavailable(reason) => {
                tracing::warn!(%reason, "checkout unavailable");
                ApiError::new(
                    Code::Unavailable,
                    "checkout could not complete; retry shortly",
                )
                .retry_after(1)
            }
            CheckoutError::NodeUnavailable(node) => CallError::Unavailable(node).into(),
            CheckoutError::Storage(e) => e.into(),
        }
    }
}

impl From<OrderServiceError> for ApiError {
    fn from(e: OrderServiceError) -> Self {
        match e {
            OrderServiceError::NotFound => ApiError::not_found("order"),
            OrderServiceError::NotASeller => {
                ApiError::new(Code::Forbidden, "only sellers see and fulfil orders")
            }
            OrderServiceError::InvalidCursor => ApiError::new(
                Code::InvalidCursor,
                "the cursor was not issued by this server",
            ),
            OrderServiceError::Order(e) => e.into(),
            OrderServiceError::Storage(e) => e.into(),
            OrderServiceError::Remote(e) => e.into(),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::InvalidTransition(refused) => {
                ApiError::new(Code::InvalidTransition, refused.to_string())
                    .with("orderStatus", json!(refused.from.as_str()))
            }
            OrderError::Fulfilment(FulfilmentRefused::NotTheSellers)
            | OrderError::NotFound
            | OrderError::Conflict => ApiError::not_found("order"),
            OrderError::Fulfilment(refused) => {
                ApiError::new(Code::InvalidTransition, refused.to_string()).with(
                    "orderStatus",
                    json!(refused.order_status().map(|s| s.as_str())),
                )
            }
            OrderError::RefundFailed(reason) => {
                tracing::warn!(%reason, "refund failed");
                ApiError::new(
                    Code::Unavailable,
                    "the payment gateway did not confirm the refund; nothing changed, retry shortly",
                )
                .retry_after(5)
            }
            OrderError::Unavailable(e) => e.into(),
            OrderError::Storage(e) => e.into(),
        }
    }
}

impl From<EntityError> for ApiError {
    fn from(e: EntityError) -> Self {
        match e {
            EntityError::Overloaded => ApiError::new(
                Code::Overloaded,
                "too many requests in flight; retry shortly",
            )
            .retry_after(1),
            EntityError::Timeout => {
                ApiError::new(Code::Timeout, "the request took too long").retry_after(1)
            }
            EntityError::Unavailable(reason) => {
                tracing::warn!(%reason, "entity unavailable");
                ApiError::new(Code::Unavailable, "temporarily unavailable; retry shortly")
                    .retry_after(1)
            }
            EntityError::NodeUnavailable(node) => CallError::Unavailable(node).into(),
            EntityError::Storage(e) => e.into(),
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::InvalidCursor => ApiError::new(
                Code::InvalidCursor,
                "the cursor was not issued by this server for this search",
            ),
            SearchError::Failed(cause) => ApiError::internal(cause),
        }
    }
}

impl From<InboxError> for ApiError {
    fn from(e: InboxError) -> Self {
        match e {
            InboxError::InvalidCursor => ApiError::new(
                Code::InvalidCursor,
                "the cursor was not issued by this server",
            ),
            InboxError::NotFound => ApiError::not_found("notification"),
            InboxError::Storage(e) => e.into(),
        }
    }
}

impl From<RecommendError> for ApiError {
    fn from(e: RecommendError) -> Self {
        match e {
            RecommendError::Storage(e) => e.into(),
            RecommendError::Search(e) => e.into(),
        }
    }
}

impl From<WishlistError> for ApiError {
    fn from(e: WishlistError) -> Self {
        match e {
            WishlistError::ItemNotFound => ApiError::not_found("item"),
            WishlistError::Full => {
                ApiError::validation(FieldErrors::single("itemId", e.to_string()))
            }
            WishlistError::Storage(e) => e.into(),
        }
    }
}

/// How long a client is told to wait before retrying an unavailable node.
const RETRY_AFTER_SECS: u64 = 1;

/// A failed call to another node: `503 NODE_UNAVAILABLE` (nobody answers
/// for it), `503 TIMEOUT` (outcome unknown), or `503 UNAVAILABLE`.
impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Unavailable(node) => ApiError::new(
                Code::NodeUnavailable,
                format!("node {node}, which holds this data, is unavailable; try again shortly"),
            )
            .with("node", serde_json::Value::String(node.clone()))
            .retry_after(RETRY_AFTER_SECS),
            CallError::TimedOut(node) => ApiError::new(
                Code::Timeout,
                format!(
                    "node {node} did not answer in time; the outcome is unknown, retrying is safe"
                ),
            )
            .with("node", serde_json::Value::String(node.clone()))
            .retry_after(RETRY_AFTER_SECS),
            CallError::Failed { node, reason } => {
                tracing::warn!(node, reason, "a call to another node failed");
                ApiError::new(
                    Code::Unavailable,
                    "the cluster cannot be reached from this node; try again shortly",
                )
                .with("node", serde_json::Value::String(node.clone()))
                .retry_after(RETRY_AFTER_SECS)
            }
        }
    }
}

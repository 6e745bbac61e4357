//! `POST /checkout`, with `Idempotency-Key`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Code, Problem, PROBLEM_JSON};
use super::extract::{Json, SignedIn};
use super::users::AddressBody;
use super::AppState;
use crate::domain::order::{card_last4, Order};
use crate::domain::FieldErrors;
use crate::services::checkout::idempotency::{body_hash, Claim, StoredResponse, MAX_KEY_LEN};
use crate::services::checkout::{
    CheckoutInput, CheckoutReply, CheckoutService, CheckoutServiceError,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(checkout))
}

/// The header naming a retry-safe request.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /checkout` body: the original design's, plus optional fields.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutBody {
    /// The buyer's cart (`GET /cart` → `id`).
    #[schema(value_type = String, required = true)]
    cart_id: Option<String>,
    /// The total the buyer expects to pay, minor units (`GET /cart` → `total`).
    #[schema(value_type = i64, required = true, minimum = 0)]
    amount: Option<i64>,
    /// Must match the cart's currency when given.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    currency: Option<String>,
    /// How the buyer pays.
    #[schema(value_type = PaymentInfoBody, required = true)]
    payment_info: Option<PaymentInfoBody>,
    /// Where to ship.
    shipping_address: Option<AddressBody>,
}

/// How the buyer pays.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentInfoBody {
    /// `CARD`.
    #[schema(value_type = String, required = true, pattern = "^[Cc][Aa][Rr][Dd]$")]
    payment_type: Option<String>,
    /// Digits, spaces, `*` or `-`, at least 4 digits, at most 64 characters;
    /// only its last four digits are ever stored or logged.
    #[schema(value_type = String, required = true, max_length = 64, pattern = "^[ *-]*([0-9][ *-]*){4,}$")]
    card_no: Option<String>,
}

/// The checkout's result.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutView {
    order_id: String,
    /// `CONFIRMED`, `PAYMENT_FAILED` (201) or `PAYMENT_PENDING` (202).
    status: String,
    /// `SUCCEEDED`, `FAILED`, `PENDING`, `REFUNDED`.
    payment_status: String,
    amount: i64,
    currency: String,
    /// Why payment failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<&Order> for CheckoutView {
    fn from(order: &Order) -> Self {
        CheckoutView {
            order_id: order.id.clone(),
            status: order.status.as_str().to_owned(),
            payment_status: order.payment_status.as_str().to_owned(),
            amount: order.amount,
            currency: order.currency.clone(),
            reason: order.failure_reason.clone(),
        }
    }
}

/// Turns the cart into an order: reserves stock, takes payment, confirms.
///
/// `201` once the saga reached a final state (`CONFIRMED` or
/// `PAYMENT_FAILED`); `202` with `PAYMENT_PENDING` if payment has not
/// answered within the server's wait. With `Idempotency-Key`, a retry gets
/// the first response again.
#[utoipa::path(post, path = "/checkout", tag = "orders", security(("bearer" = [])), request_body = CheckoutBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "up to 255 characters; retries with the same key and body get the first response")),
    responses(
        (status = 201, body = CheckoutView, description = "final state reached"),
        (status = 202, body = CheckoutView, description = "payment pending; follow GET /orders/{id}"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, description = "cart not found or not yours", content_type = "application/problem+json"),
        (status = 409, body = Problem, description = "PRICE_CHANGED (expectedAmount), OUT_OF_STOCK (lines), CHECKOUT_IN_PROGRESS, REQUEST_IN_PROGRESS", content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "VALIDATION_FAILED, EMPTY_CART, IDEMPOTENCY_KEY_REUSED", content_type = "application/problem+json"),
    ))]
async fn checkout(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    headers: HeaderMap,
    Json(body): Json<CheckoutBody>,
) -> Result<Response, ApiError> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN => Some(key.to_owned()),
            _ => {
                return Err(ApiError::validation(FieldErrors::single(
                    "Idempotency-Key",
                    format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
                )))
            }
        },
    };
    let hash = request_hash(&body);
    let input = CheckoutInput {
        cart_id: body.cart_id,
        amount: body.amount,
        currency: body.currency,
        payment_type: body
            .payment_info
            .as_ref()
            .and_then(|p| p.payment_type.clone()),
        card_no: body.payment_info.and_then(|p| p.card_no),
        shipping_address: body.shipping_address.map(Into::into),
    };
    let valid = input.validate().map_err(ApiError::validation)?;
    let user = who.user_id;
    let Some(key) = key else {
        return Ok(render(
            state
                .checkout
                .run(&user, valid, CheckoutService::fresh_ids())
                .await,
        )
        .into_response());
    };

    let keys = &state.idempotency;
    // Held until this handler returns or is dropped (client gone, timeout).
    let Some(_hold) = keys.hold(&user, &key) else {
        return Err(in_progress());
    };
    let claim = keys
        .claim(
            &user,
            &key,
            hash.clone(),
            CheckoutService::fresh_ids(),
            None,
        )
        .await?;
    let ids = match claim {
        Claim::Replay(stored) => return Ok(replay(stored)),
        Claim::Mismatch => return Err(key_reused()),
        Claim::Fresh {
            checkout_id,
            order_id,
        } => (checkout_id, order_id),
        Claim::Unanswered {
            checkout_id,
            order_id,
        } => {
            let checkouts = state.checkout.coordinators();
            if checkouts.is_running(&checkout_id) || checkouts.is_unfinished(&checkout_id).await? {
                return Err(in_progress());
            }
            // Left unanswered by a request that failed or a process that
            // stopped, and its checkout has ended: answer with the order it
            // made, or, if it made none, run the request now.
            if let Some(order) = state.orders.actors().get(&order_id).await? {
                let response = render(Ok(reply_for(order)));
                keys.answer(&user, &key, &checkout_id, response.stored.clone())
                    .await?;
                return Ok(response.into_response());
            }
            match keys
                .claim(
                    &user,
                    &key,
                    hash,
                    CheckoutService::fresh_ids(),
                    Some(checkout_id),
                )
                .await?
            {
                Claim::Fresh {
                    checkout_id,
                    order_id,
                } => (checkout_id, order_id),
                Claim::Replay(stored) => return Ok(replay(stored)),
                Claim::Mismatch => return Err(key_reused()),
                Claim::Unanswered { .. } => return Err(in_progress()),
            }
        }
    };
    let checkout_id = ids.0.clone();
    let result = state.checkout.run(&user, valid, ids).await;
    let response = render(result);
    if response.keep {
        keys.answer(&user, &key, &checkout_id, response.stored.clone())
            .await?;
    } else if response.stored.status < 500 {
        keys.release(&user, &key, &checkout_id).await?;
    }
    // After a 5xx the key stays unanswered: the next retry resolves it from
    // what the checkout did.
    Ok(response.into_response())
}

/// The hash a key's body is compared by: the body with the card number cut
/// to its last four digits (the key record must not hold a hash the full
/// number could be recovered from).
fn request_hash(body: &CheckoutBody) -> Vec<u8> {
    let mut value = serde_json::to_value(body).unwrap_or_default();
    if let Some(card) = value.pointer_mut("/paymentInfo/cardNo") {
        let last4 = card.as_str().and_then(card_last4);
        *card = serde_json::json!(last4);
    }
    body_hash(&serde_json::to_vec(&value).unwrap_or_default())
}

fn key_reused() -> ApiError {
    ApiError::new(
        Code::IdempotencyKeyReused,
        "this Idempotency-Key was used with a different request body",
    )
}

fn in_progress() -> ApiError {
    ApiError::new(
        Code::RequestInProgress,
        "a request with this Idempotency-Key is still running; retry shortly",
    )
    .retry_after(1)
}

fn reply_for(order: Order) -> CheckoutReply {
    if order.status == crate::domain::order::OrderStatus::PaymentPending {
        CheckoutReply::Pending(order)
    } else {
        CheckoutReply::Final(order)
    }
}

/// A rendered response, and whether a retry should get it again (Stripe
/// keeps results of requests that ran, not conflicts or server errors).
struct Rendered {
    stored: StoredResponse,
    keep: bool,
    retry_after: Option<HeaderValue>,
}

fn render(result: Result<CheckoutReply, CheckoutServiceError>) -> Rendered {
    let json = |status: StatusCode, order: &Order| StoredResponse {
        status: status.as_u16(),
        content_type: "application/json".into(),
        body: serde_json::to_string(&CheckoutView::from(order)).unwrap_or_default(),
    };
    match result {
        Ok(CheckoutReply::Final(order)) => Rendered {
            stored: json(StatusCode::CREATED, &order),
            keep: true,
            retry_after: None,
        },
        Ok(CheckoutReply::Pending(order)) => Rendered {
            stored: json(StatusCode::ACCEPTED, &order),
            keep: true,
            retry_after: None,
        },
        Err(failure) => {
            let error = ApiError::from(failure);
            let code = error.code();
            Rendered {
                stored: StoredResponse {
                    status: code.status().as_u16(),
                    content_type: PROBLEM_JSON.into(),
                    body: error.body(),
                },
                keep: code != Code::CheckoutInProgress && code.status().is_client_error(),
                retry_after: error
                    .retry_after_secs()
                    .map(|s| HeaderValue::from(s.max(1))),
            }
        }
    }
}

impl IntoResponse for Rendered {
    fn into_response(self) -> Response {
        let mut response = replay(self.stored);
        if let Some(value) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let content_type = HeaderValue::from_str(&stored.content_type)
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut response = (status, stored.body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

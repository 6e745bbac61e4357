//! `POST /checkout`, with `Idempotency-Key`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem, PROBLEM_JSON};
use super::extract::{Json, SignedIn};
use super::users::AddressBody;
use super::AppState;
use crate::domain::order::Order;
use crate::services::checkout::idempotency::StoredResponse;
use crate::services::checkout::{
    Answer, CheckoutInput, CheckoutReply, CheckoutServiceError, KeyedRequest,
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
    let keyed = headers
        .get(IDEMPOTENCY_KEY)
        .map(|key| KeyedRequest::new(key.as_bytes(), &body))
        .transpose()
        .map_err(ApiError::validation)?;
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
    let answer = state
        .checkout
        .checkout(&who.user_id, keyed, valid, render)
        .await?;
    Ok(match answer {
        Answer::Replay(stored) => replay(stored),
        Answer::Ran(rendered) => rendered.into_response(),
    })
}

/// A rendered response: what is sent, and what a retry with the same key
/// gets if the service keeps it (without `Retry-After`).
struct Rendered {
    stored: StoredResponse,
    retry_after: Option<HeaderValue>,
}

impl AsRef<StoredResponse> for Rendered {
    fn as_ref(&self) -> &StoredResponse {
        &self.stored
    }
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
            retry_after: None,
        },
        Ok(CheckoutReply::Pending(order)) => Rendered {
            stored: json(StatusCode::ACCEPTED, &order),
            retry_after: None,
        },
        Err(failure) => {
            let error = ApiError::from(failure);
            Rendered {
                stored: StoredResponse {
                    status: error.code().status().as_u16(),
                    content_type: PROBLEM_JSON.into(),
                    body: error.body(),
                },
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

//! `/sessions`: signing in and out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{Json, SignedIn};
use super::users::UserView;
use super::AppState;
use crate::domain::FieldErrors;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sign_in, sign_out))
}

/// `POST /sessions` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInBody {
    /// The account's email.
    #[schema(value_type = String, required = true)]
    email: Option<String>,
    /// The account's password.
    #[schema(value_type = String, required = true)]
    password: Option<String>,
    /// A guest cart to merge into the user's cart.
    cart_token: Option<String>,
}

/// A new session.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Bearer token for `Authorization: Bearer <token>`.
    token: String,
    #[schema(value_type = String, format = DateTime)]
    expires_at: crate::domain::Timestamp,
    user: UserView,
}

/// Signs in with email and password. After repeated failures for one email,
/// attempts for it wait (429 `SIGN_IN_THROTTLED` with `Retry-After`).
#[utoipa::path(post, path = "/sessions", tag = "accounts", request_body = SignInBody,
    responses(
        (status = 201, body = SessionView),
        (status = 401, body = Problem, description = "INVALID_CREDENTIALS", content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, description = "SIGN_IN_THROTTLED: too many failed sign-ins for this email; wait `Retry-After` seconds", content_type = "application/problem+json"),
    ))]
async fn sign_in(
    State(state): State<AppState>,
    Json(body): Json<SignInBody>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = FieldErrors::new();
    if body.email.is_none() {
        errors.add("email", "is required");
    }
    if body.password.is_none() {
        errors.add("password", "is required");
    }
    let (Some(email), Some(password)) = (body.email, body.password) else {
        return Err(ApiError::validation(errors));
    };
    let session = state.accounts.sign_in(&email, password).await?;
    if let Some(token) = body.cart_token {
        // The sign-in stands even if the merge fails; the guest cart stays.
        if let Err(e) = state.carts.merge_guest(&token, &session.user.id).await {
            tracing::warn!(error = %e, "guest cart merge failed at sign-in");
        }
    }
    let view = SessionView {
        token: session.token,
        expires_at: session.expires_at,
        user: UserView::of(&session.user, false),
    };
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// Signs out: the token stops working at once, and the session's open
/// websockets close (1008).
#[utoipa::path(delete, path = "/sessions", tag = "accounts", security(("bearer" = [])),
    responses((status = 204, description = "signed out"), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn sign_out(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
) -> Result<StatusCode, ApiError> {
    state.accounts.sign_out(who.session_key).await?;
    // The session's sockets on this node close now, not at their next
    // periodic check.
    state.hub.end_session(&who.user_id, &who.session_key);
    Ok(StatusCode::NO_CONTENT)
}

//! `/users`: registration and the caller's own profile.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{Json, SignedIn};
use super::AppState;
use crate::domain::user::{Address, AddressInput, User};
use crate::services::account::Registration;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user))
        .routes(routes!(get_me, update_me))
}

/// `POST /users` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewUserBody {
    /// Unique email address: one `@`, a dotted domain, no spaces, at most
    /// 254 characters.
    #[schema(value_type = String, required = true)]
    email: Option<String>,
    /// At least 8 characters, at most 1024 bytes.
    #[schema(value_type = String, required = true, min_length = 8)]
    password: Option<String>,
    /// Display name: 1..=100 characters once trimmed and stripped of markup.
    #[schema(value_type = String, required = true)]
    name: Option<String>,
    /// `buyer` (default, also for `null`) or `seller`.
    #[schema(value_type = Option<RoleName>)]
    role: Option<String>,
}

/// A user's role (for the OpenAPI document: the body keeps the raw text so
/// that a wrong value is a named 422).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
pub enum RoleName {
    /// Shops (the default).
    Buyer,
    /// Shops and lists items.
    Seller,
}

/// A postal address.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressBody {
    /// Street and number: 1..=200 characters once normalized.
    #[schema(value_type = String, required = true)]
    line1: Option<String>,
    /// Apartment, suite, etc.: at most 200 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    line2: Option<String>,
    /// City: 1..=100 characters once normalized.
    #[schema(value_type = String, required = true)]
    city: Option<String>,
    /// State or region: at most 100 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    /// Postal code: 1..=20 characters once normalized.
    #[schema(value_type = String, required = true)]
    postal_code: Option<String>,
    /// Country: 1..=60 characters once normalized.
    #[schema(value_type = String, required = true)]
    country: Option<String>,
}

impl From<AddressBody> for AddressInput {
    fn from(a: AddressBody) -> Self {
        AddressInput {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            state: a.state,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<&Address> for AddressBody {
    fn from(a: &Address) -> Self {
        AddressBody {
            line1: Some(a.line1.clone()),
            line2: a.line2.clone(),
            city: Some(a.city.clone()),
            state: a.state.clone(),
            postal_code: Some(a.postal_code.clone()),
            country: Some(a.country.clone()),
        }
    }
}

/// `PATCH /users/me` body.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfilePatch {
    /// New display name.
    name: Option<String>,
    /// Replaces every address (at most 10).
    #[schema(max_items = 10)]
    addresses: Option<Vec<AddressBody>>,
}

/// A user as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    id: String,
    email: String,
    name: String,
    /// `buyer` or `seller`.
    #[schema(value_type = RoleName)]
    role: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: crate::domain::Timestamp,
    /// Present on `GET /users/me` and `PATCH /users/me`.
    #[serde(skip_serializing_if = "Option::is_none")]
    addresses: Option<Vec<AddressBody>>,
}

impl UserView {
    /// The public fields of `user`; with its addresses when `with_addresses`.
    pub fn of(user: &User, with_addresses: bool) -> Self {
        UserView {
            id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            role: user.role.as_str().to_owned(),
            created_at: user.created_at,
            addresses: with_addresses
                .then(|| user.addresses.iter().map(AddressBody::from).collect()),
        }
    }
}

/// Creates an account.
#[utoipa::path(post, path = "/users", tag = "accounts", request_body = NewUserBody,
    responses(
        (status = 201, body = UserView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, description = "EMAIL_TAKEN", content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_user(
    State(state): State<AppState>,
    Json(body): Json<NewUserBody>,
) -> Result<impl IntoResponse, ApiError> {
    let registration = Registration {
        email: body.email,
        password: body.password,
        name: body.name,
        role: body.role,
    };
    let user = state.accounts.register(registration).await?;
    Ok((StatusCode::CREATED, axum::Json(UserView::of(&user, false))))
}

/// The caller's own account, with addresses.
#[utoipa::path(get, path = "/users/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn get_me(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
) -> Result<impl IntoResponse, ApiError> {
    let user = state.accounts.profile(&who.user_id).await?;
    Ok(axum::Json(UserView::of(&user, true)))
}

/// Changes the caller's name and/or addresses.
#[utoipa::path(patch, path = "/users/me", tag = "accounts", security(("bearer" = [])), request_body = ProfilePatch,
    responses(
        (status = 200, body = UserView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_me(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Json(body): Json<ProfilePatch>,
) -> Result<impl IntoResponse, ApiError> {
    let addresses = body
        .addresses
        .map(|list| list.into_iter().map(AddressInput::from).collect());
    let user = state
        .accounts
        .update_profile(&who.user_id, body.name, addresses)
        .await?;
    Ok(axum::Json(UserView::of(&user, true)))
}

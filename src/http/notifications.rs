//! `/notifications`: the signed-in user's inbox.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::{page_size, Path, SignedIn};
use super::AppState;
use crate::domain::{FieldErrors, Timestamp};
use crate::services::notifications::Notification;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
}

/// One notification.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    /// Opaque; pass to `POST /notifications/{id}/read`.
    id: String,
    /// `order.updated`.
    #[serde(rename = "type")]
    kind: String,
    order_id: String,
    /// The order's new status.
    status: String,
    message: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    read: bool,
}

impl NotificationView {
    /// The view of `n`, with its public (sealed) id.
    fn of(n: Notification, id: String) -> Self {
        NotificationView {
            id,
            kind: n.kind,
            order_id: n.order_id,
            status: n.status.as_str().to_owned(),
            message: n.message,
            created_at: n.created_at,
            read: n.read,
        }
    }
}

/// A page of notifications.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    items: Vec<NotificationView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// `GET /notifications` query.
#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// From the previous page's `nextCursor`.
    cursor: Option<String>,
    /// 1..=100, default 20.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 100)]
    size: Option<String>,
}

/// The caller's notifications, newest first (eventually consistent: fed by
/// events).
#[utoipa::path(get, path = "/notifications", tag = "live", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, body = NotificationPage),
        (status = 400, body = Problem, description = "INVALID_CURSOR, or MALFORMED_REQUEST (a repeated query parameter)", content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, description = "size out of range", content_type = "application/problem+json"),
    ))]
async fn list_notifications(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<NotificationPage>, ApiError> {
    let mut errors = FieldErrors::new();
    let size = page_size(query.size.as_deref(), 20, 100, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let cursor = query.cursor.filter(|c| !c.is_empty());
    let (items, next_cursor) = state
        .notifications
        .list(&who.user_id, cursor.as_deref(), size)
        .await?;
    Ok(axum::Json(NotificationPage {
        items: items
            .into_iter()
            .map(|n| {
                let id = state.notifications.public_id(&n);
                NotificationView::of(n, id)
            })
            .collect(),
        next_cursor,
    }))
}

/// Marks one of the caller's notifications read (idempotent).
#[utoipa::path(post, path = "/notifications/{id}/read", tag = "live", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "read"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn mark_read(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.notifications.mark_read(&who.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Forwarding: in a cluster, a request for an entity another node owns is
//! sent whole (method, target, headers, body) to that node over NATS, which
//! serves it through its own router and sends the response back; the client
//! cannot tell. A buyer's requests go to the buyer's node, an order's to the
//! order's, an item's changes to the item's, sign-up and sign-in to the node
//! the email is placed on. Reads every node serves from its own read models
//! (item pages, search, suggestions, recommendations, media, sockets) are
//! never forwarded, and nothing is forwarded twice: the owner serves what it
//! is sent.
//!
//! An owner that nobody answers for is `503 NODE_UNAVAILABLE` at once (NATS
//! "no responders"), with the node in the body and `Retry-After`; one that
//! does not answer in time is `503 TIMEOUT` (the outcome is unknown, and
//! every change is idempotent by its id or `Idempotency-Key`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;

use super::error::{ApiError, Code};
use super::extract::Caller;
use super::AppState;
use crate::cluster::Rpc;
use crate::domain::placement::Placement;
use crate::domain::{key_of_text, user};
use crate::services::media::MAX_IMAGE_BYTES;
use crate::storage::codec::{self, Record};

/// The NATS call kind forwarded requests travel as.
pub const KIND: &str = "http";
/// Largest body forwarded: an image upload, with room for its framing.
const MAX_FORWARDED_BODY: usize = MAX_IMAGE_BYTES + 64 * 1024;

/// What forwarding needs: the calls, where entities live, and how long a
/// forwarded request may take.
#[derive(Clone)]
pub struct Forwarding {
    /// Calls to other nodes.
    pub rpc: Rpc,
    /// Where entities live.
    pub placement: Arc<Placement>,
    /// How long a forwarded request may take.
    pub timeout: Duration,
    /// How long a forwarded checkout may take (it waits for its payment
    /// first, as it would here).
    pub checkout_timeout: Duration,
}

/// Marks a request sent by another node: served here, never forwarded.
#[derive(Debug, Clone)]
pub struct Forwarded;

/// Where a request is served.
enum Target {
    /// Here: a read model every node has, or this node's own entity.
    Here,
    /// On the node owning this placement key.
    Key(u16),
    /// On the node owning this id.
    Id(String),
    /// On the node the body's `email` is placed on.
    Email,
}

/// Serves the request here or forwards it to its owner (the last step of
/// [`super::gateway::admit`]).
pub async fn to_owner(state: &AppState, request: Request, next: Next) -> Response {
    let Some(forwarding) = &state.forwarding else {
        return next.run(request).await;
    };
    if request.extensions().get::<Forwarded>().is_some() {
        return next.run(request).await;
    }
    let (request, owner) = match target(&request) {
        Target::Here => return next.run(request).await,
        Target::Key(key) => (request, forwarding.placement.owner_of_key(key).to_owned()),
        Target::Id(id) => match forwarding.placement.remote_owner(&id) {
            Some(owner) => (request, owner.to_owned()),
            None => return next.run(request).await,
        },
        Target::Email => match email_owner(request, &forwarding.placement).await {
            Ok(found) => found,
            Err(response) => return response,
        },
    };
    if owner == forwarding.placement.this_node() {
        return next.run(request).await;
    }
    forward(forwarding, &owner, request).await
}

/// Which node serves `request`, from its route, its caller and its path.
fn target(request: &Request) -> Target {
    let Some(route) = request.extensions().get::<MatchedPath>() else {
        return Target::Here;
    };
    let method = request.method();
    let caller = match request.extensions().get::<Caller>() {
        Some(Caller::SignedIn(who)) => Some(who.user_id.clone()),
        _ => None,
    };
    let by_caller = || caller.clone().map_or(Target::Here, Target::Id);
    let id_segment = || {
        request
            .uri()
            .path()
            .split('/')
            .nth(2)
            .map_or(Target::Here, |id| Target::Id(id.to_owned()))
    };
    match (route.as_str(), method) {
        ("/users" | "/sessions", &Method::POST) => Target::Email,
        ("/sessions", &Method::DELETE)
        | ("/users/me", _)
        | ("/checkout", _)
        | ("/orders", _)
        | ("/notifications", _)
        | ("/notifications/{id}/read", _)
        | ("/wishlist", _)
        | ("/wishlist/{itemId}", _)
        | ("/seller/orders", _)
        | ("/seller/items", _)
        | ("/items", &Method::POST) => by_caller(),
        ("/cart", _) => match caller {
            Some(user) => Target::Id(user),
            None => request
                .headers()
                .get("x-cart-token")
                .and_then(|v| v.to_str().ok())
                .map_or(Target::Here, |token| Target::Key(key_of_text(token))),
        },
        (
            "/orders/{id}" | "/orders/{id}/cancel" | "/orders/{id}/ship" | "/orders/{id}/deliver",
            _,
        ) => id_segment(),
        ("/items/{id}", &Method::PATCH | &Method::DELETE)
        | ("/items/{id}/stock" | "/items/{id}/images", _) => id_segment(),
        _ => Target::Here,
    }
}

/// Reads the body's `email` to find its node; the request comes back
/// whole. A body that is not JSON with an email is served here (which
/// answers it with a validation error).
async fn email_owner(
    request: Request,
    placement: &Placement,
) -> Result<(Request, String), Response> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(body).await?;
    let email = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("email").and_then(|e| e.as_str()).map(str::to_owned));
    let owner = match email {
        Some(email) => placement.owner_of_key(user::email_placement_key(&email)),
        None => placement.this_node(),
    };
    Ok((
        Request::from_parts(parts, Body::from(bytes)),
        owner.to_owned(),
    ))
}

async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_FORWARDED_BODY)
        .await
        .map_err(|_| {
            ApiError::new(Code::PayloadTooLarge, "the request body is too large").into_response()
        })
}

/// Sends `request` to `node` and answers with its response.
async fn forward(forwarding: &Forwarding, node: &str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let timeout = if parts.uri.path() == "/checkout" {
        forwarding.checkout_timeout
    } else {
        forwarding.timeout
    };
    let wire = WireRequest {
        method: parts.method.as_str().to_owned(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            // CORS is answered once, by the node the client talks to.
            .filter(|(name, _)| !is_hop_by_hop(name) && *name != axum::http::header::ORIGIN)
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect(),
        body: body.to_vec(),
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.to_string()),
    };
    let encoded = match codec::encode(&wire) {
        Ok(bytes) => bytes,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    metrics::counter!("agora_forwarded_total", "node" => node.to_owned()).increment(1);
    match forwarding
        .rpc
        .call_within(node, KIND, encoded, timeout)
        .await
    {
        Ok(reply) => match codec::decode::<WireResponse>(&reply) {
            Ok(response) => response.into_response(),
            Err(e) => ApiError::internal(e).into_response(),
        },
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Headers that describe one connection, not the request.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
    )
}

/// Serves a request another node forwarded here, through `router`, and
/// encodes the response for the way back.
pub async fn answer(router: Router, bytes: Bytes) -> Vec<u8> {
    let response = match codec::decode::<WireRequest>(&bytes) {
        Ok(wire) => match wire.into_request() {
            Some(request) => match router.oneshot(request).await {
                Ok(response) => WireResponse::read(response).await,
                Err(never) => match never {},
            },
            None => WireResponse::problem(&ApiError::internal("a malformed forwarded request")),
        },
        Err(e) => WireResponse::problem(&ApiError::internal(e)),
    };
    codec::encode(&response).unwrap_or_default()
}

/// A request as it travels to its owner.
#[derive(bincode::Encode, bincode::Decode)]
struct WireRequest {
    method: String,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// The client's address, for the owner's logs and limits.
    peer: Option<String>,
}

impl Record for WireRequest {
    const KIND: &'static str = "forwarded request";
    const VERSION: u8 = 1;
}

impl WireRequest {
    fn into_request(self) -> Option<Request> {
        let mut builder = Request::builder()
            .method(Method::from_bytes(self.method.as_bytes()).ok()?)
            .uri(self.uri);
        for (name, value) in self.headers {
            builder = builder.header(
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_bytes(&value).ok()?,
            );
        }
        let mut request = builder.body(Body::from(self.body)).ok()?;
        request.extensions_mut().insert(Forwarded);
        if let Some(peer) = self.peer.and_then(|p| p.parse::<SocketAddr>().ok()) {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        Some(request)
    }
}

/// A response on its way back from the owner.
#[derive(bincode::Encode, bincode::Decode)]
struct WireResponse {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Record for WireResponse {
    const KIND: &'static str = "forwarded response";
    const VERSION: u8 = 1;
}

impl WireResponse {
    /// Reads `response` whole.
    async fn read(response: Response) -> WireResponse {
        let (parts, body) = response.into_parts();
        let body = match axum::body::to_bytes(body, MAX_FORWARDED_BODY).await {
            Ok(bytes) => bytes.to_vec(),
            Err(e) => return WireResponse::problem(&ApiError::internal(e)),
        };
        WireResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .filter(|(name, _)| !is_hop_by_hop(name))
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect(),
            body,
        }
    }

    /// `error` as the owner's answer.
    fn problem(error: &ApiError) -> WireResponse {
        WireResponse {
            status: error.code().status().as_u16(),
            headers: vec![("content-type".into(), b"application/problem+json".to_vec())],
            body: error.body().into_bytes(),
        }
    }
}

impl IntoResponse for WireResponse {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(&value),
            ) {
                headers.append(name, value);
            }
        }
        response
    }
}

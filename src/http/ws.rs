//! `GET /ws`: live updates over a websocket.
//!
//! The token is checked before the upgrade (`401` otherwise) and again every
//! few seconds while the socket is open: a session that ends (sign-out,
//! expiry) closes its sockets with 1008. A sign-out on this node closes the
//! session's sockets here at once; the periodic check catches expiry and
//! sign-outs made on other nodes. The server pings every 30 s and
//! closes a peer that did not answer the previous ping. Text frames carry
//! JSON commands (`subscribe`, `unsubscribe`, `ping`); an unknown command or
//! topic gets an error frame and the socket stays open; a frame that is not
//! JSON text closes it with 1003, one over 64 KiB with 1009.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use super::extract::SignedIn;
use super::AppState;
use crate::domain::looks_like_id;
use crate::services::live::Connection;

/// Largest frame or message a client may send.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Read and write buffer per socket.
const SOCKET_BUFFER: usize = 4 * 1024;
/// Server pings this often; a peer that missed the previous one is dropped.
const PING_EVERY: Duration = Duration::from_secs(30);

/// Close codes (RFC 6455 §7.4.1).
const POLICY_VIOLATION: u16 = 1008;
const UNSUPPORTED_DATA: u16 = 1003;
const TOO_BIG: u16 = 1009;
const TRY_AGAIN_LATER: u16 = 1013;
const GOING_AWAY: u16 = 1001;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

/// Opens a live-update socket (see API.md, "WebSocket: live updates").
#[utoipa::path(get, path = "/ws", tag = "live", security(("bearer" = [])),
    params(("token" = Option<String>, Query, description = "the bearer token, for clients that cannot set headers")),
    responses(
        (status = 101, description = "switched to the websocket protocol"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 426, body = Problem, description = "not a websocket upgrade request", content_type = "application/problem+json"),
    ))]
async fn upgrade(
    State(state): State<AppState>,
    SignedIn(who): SignedIn,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|_| ApiError::upgrade_required())?;
    let session_key = who.session_key;
    let user_id = who.user_id;
    // Small per-socket buffers (tungstenite's defaults are 128 KiB each):
    // an idle socket should cost kilobytes, not a quarter megabyte
    // (measured in `benches/live.rs`).
    Ok(upgrade
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, state, user_id, session_key)))
}

async fn serve(socket: WebSocket, state: AppState, user_id: String, session_key: [u8; 32]) {
    let (connection, outbound) = state.hub.connect(&user_id, session_key);
    let (sink, mut stream) = socket.split();
    // Writes run in their own task, so a peer that stops reading blocks
    // only its writer; the hub sees the queue fill and evicts the socket.
    let (replies, replies_rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(write_frames(sink, replies_rx, outbound));
    let ending = read_frames(&state, &connection, &mut stream, &replies, session_key).await;
    state.hub.disconnect(&connection);
    if let Some(message) = ending {
        // Best effort: a peer that stopped reading may never take it.
        let _ = tokio::time::timeout(Duration::from_millis(200), replies.send(message)).await;
    }
    drop(replies);
    if tokio::time::timeout(Duration::from_secs(1), writer)
        .await
        .is_err()
    {
        tracing::debug!("websocket writer did not finish; dropped");
    }
}

/// The writer task: replies first (they answer what the client just
/// sent), then the hub's pushes; ends after a close frame or a failed send.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut replies: mpsc::Receiver<Message>,
    mut outbound: mpsc::Receiver<Arc<str>>,
) {
    loop {
        let message = tokio::select! {
            biased;
            reply = replies.recv() => match reply {
                Some(message) => message,
                None => break,
            },
            pushed = outbound.recv() => match pushed {
                Some(text) => Message::Text(Utf8Bytes::from(&*text)),
                None => break,
            },
        };
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

/// What the read loop does after an event.
enum Next {
    /// Keep reading.
    Continue,
    /// Stop; send this close frame first, if any.
    End(Option<Message>),
}

/// The read loop: client frames, pings, session checks, eviction and
/// shutdown, until one of them ends the socket; returns the close frame to
/// send, if any.
async fn read_frames(
    state: &AppState,
    connection: &Arc<Connection>,
    stream: &mut SplitStream<WebSocket>,
    replies: &mpsc::Sender<Message>,
    session_key: [u8; 32],
) -> Option<Message> {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    // The first check runs at once: a sign-out that landed between the
    // token check and `connect` told no socket of this one.
    let mut session =
        tokio::time::interval(Duration::from_secs(state.settings.ws_session_check_secs));
    let mut awaiting_pong = false;
    loop {
        let next = tokio::select! {
            () = connection.evicted() => {
                Next::End(Some(close(TRY_AGAIN_LATER, "too slow: messages were not read")))
            }
            () = connection.session_ended() => {
                Next::End(Some(close(POLICY_VIOLATION, "the session has ended")))
            }
            frame = stream.next() => {
                on_frame(state, connection, frame, replies, &mut awaiting_pong).await
            }
            _ = ping.tick() => ping_peer(replies, &mut awaiting_pong).await,
            _ = session.tick() => check_session(state, &session_key).await,
            () = state.hub.stopped() => {
                Next::End(Some(close(GOING_AWAY, "the node is shutting down")))
            }
        };
        if let Next::End(message) = next {
            return message;
        }
    }
}

/// Handles one frame from the client (`None`: the stream ended).
async fn on_frame(
    state: &AppState,
    connection: &Arc<Connection>,
    frame: Option<Result<Message, axum::Error>>,
    replies: &mpsc::Sender<Message>,
    awaiting_pong: &mut bool,
) -> Next {
    match frame {
        None | Some(Ok(Message::Close(_))) => Next::End(None),
        Some(Err(e)) => {
            let too_big = matches!(
                e.into_inner().downcast_ref::<tungstenite::Error>(),
                Some(tungstenite::Error::Capacity(_))
            );
            Next::End(too_big.then(|| close(TOO_BIG, "message over 64 KiB")))
        }
        Some(Ok(Message::Text(text))) => match command(state, connection, text.as_str()).await {
            Ok(Some(reply)) => {
                let sent = replies.send(Message::Text(Utf8Bytes::from(reply))).await;
                if sent.is_err() {
                    return Next::End(None);
                }
                Next::Continue
            }
            Ok(None) => Next::Continue,
            Err(()) => Next::End(Some(close(UNSUPPORTED_DATA, "frames must be JSON text"))),
        },
        Some(Ok(Message::Binary(_))) => {
            Next::End(Some(close(UNSUPPORTED_DATA, "frames must be JSON text")))
        }
        Some(Ok(Message::Pong(_))) => {
            *awaiting_pong = false;
            Next::Continue
        }
        Some(Ok(Message::Ping(_))) => Next::Continue,
    }
}

/// Pings the peer, or ends the socket if it did not answer the last ping.
async fn ping_peer(replies: &mpsc::Sender<Message>, awaiting_pong: &mut bool) -> Next {
    if *awaiting_pong {
        return Next::End(None);
    }
    *awaiting_pong = true;
    if replies
        .send(Message::Ping(Default::default()))
        .await
        .is_err()
    {
        return Next::End(None);
    }
    Next::Continue
}

/// Ends the socket if its session has ended (a failed check keeps it: the
/// next one decides).
async fn check_session(state: &AppState, session_key: &[u8; 32]) -> Next {
    let valid = state
        .accounts
        .session_is_valid(session_key)
        .await
        .unwrap_or(true);
    if valid {
        Next::Continue
    } else {
        Next::End(Some(close(POLICY_VIOLATION, "the session has ended")))
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Handles one client command; `Ok(Some)` is a reply frame, `Err` means
/// the frame was not a JSON object (the socket closes).
async fn command(
    state: &AppState,
    connection: &Arc<Connection>,
    text: &str,
) -> Result<Option<String>, ()> {
    let hub = &state.hub;
    let Ok(Value::Object(message)) = serde_json::from_str::<Value>(text) else {
        return Err(());
    };
    let error = |code: &str, message: String| {
        Ok(Some(
            json!({"type": "error", "code": code, "message": message}).to_string(),
        ))
    };
    let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "subscribe" | "unsubscribe" => {
            let Some(topic) = message.get("topic").and_then(Value::as_str) else {
                return error("INVALID_TOPIC", "`topic` is required".into());
            };
            let Some(item_id) = topic.strip_prefix("item:").filter(|id| looks_like_id(id)) else {
                return error("INVALID_TOPIC", "topics are item:{itemId}".into());
            };
            if kind == "unsubscribe" {
                hub.unsubscribe(connection, topic);
                return Ok(Some(
                    json!({"type": "unsubscribed", "topic": topic}).to_string(),
                ));
            }
            // A failed read is answered like a missing item: the client may
            // subscribe again.
            let exists = matches!(state.catalog.item_for_sale(item_id).await, Ok(Some(_)));
            if !exists {
                return error("NOT_FOUND", format!("no item {item_id} for sale"));
            }
            if !hub.subscribe(connection, topic) {
                return error(
                    "TOO_MANY_TOPICS",
                    format!(
                        "a socket may follow at most {} topics",
                        crate::services::live::MAX_TOPICS
                    ),
                );
            }
            Ok(Some(
                json!({"type": "subscribed", "topic": topic}).to_string(),
            ))
        }
        "ping" => Ok(Some(json!({"type": "pong"}).to_string())),
        _ => error(
            "UNKNOWN_TYPE",
            "known types: subscribe, unsubscribe, ping".into(),
        ),
    }
}

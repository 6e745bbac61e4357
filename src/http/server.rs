//! The accept loop: each TCP connection is served by hyper's HTTP/1.1
//! connection with a header-read timeout, the client's address, websocket
//! upgrades and graceful shutdown. `axum::serve` does the same minus the
//! timeout, which is why this exists: without it a client that opens
//! connections and never finishes a request head holds them forever.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Service;

/// Largest request head (request line and headers) hyper accepts. Above it
/// hyper answers a bare `431` itself; below it our own, smaller limits
/// answer problem+json (see [`super::limits`]). It also bounds what one
/// slow client can make the server buffer (hyper's default is ~400 KiB).
pub const MAX_HEAD_BUFFER_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `stopping` turns true; then stops
/// accepting, lets open connections finish their requests (idle ones close
/// at once) and returns when the last one has closed.
///
/// A connection is closed when it has not sent a complete request head
/// `header_read_timeout` after it opened, or after its previous response
/// (hyper arms the same timer for a kept-alive connection's next request).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        // The buffer limit alone is approximate (a read may overshoot it);
        // the header size limit makes the bound exact.
        .max_buf_size(MAX_HEAD_BUFFER_BYTES)
        .max_header_size(MAX_HEAD_BUFFER_BYTES);
    let builder = Arc::new(builder);
    // Each connection task holds a receiver; the sender sees them all gone
    // when the last connection has closed.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        let builder = builder.clone();
        let router = router.clone();
        let mut stopping = stopping.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    // What `into_make_service_with_connect_info` did: the rate
                    // limiter keys anonymous callers by this address.
                    request.extensions_mut().insert(ConnectInfo(remote));
                    router.clone().call(request)
                });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_connection_end(result),
                () = stopped(&mut stopping) => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await);
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// Resolves once `stopping` is true (or its sender is gone, which only
/// happens when the node is going down anyway).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Header timeouts, resets and malformed requests are the client's
        // doing and routine on a public port.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Per-connection accept errors (the client gave up) are skipped; others,
/// such as running out of file descriptors, are logged and waited out
/// briefly instead of spinning on them.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

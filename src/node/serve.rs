//! Serving a started node over HTTP: the listeners (public and admin),
//! serve-until-shutdown with a grace period, then the node's stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use super::Node;
use crate::cluster::{Handler, Responder};
use crate::config::Settings;
use crate::http::route::Forwarding;
use crate::http::{self, AppState};

/// Kernel send buffer of every accepted connection (they inherit it from
/// the listener). A fixed size instead of Linux's autotuning (up to 4 MiB a
/// socket): a websocket client that stops reading then backs up into its
/// bounded queue after ~this much, and is dropped, instead of parking
/// megabytes in the kernel; it also bounds kernel memory per idle socket.
const SEND_BUFFER_BYTES: u32 = 128 * 1024;

/// The node's bound listeners, not yet serving.
pub struct Listeners {
    public: TcpListener,
    /// The operators' listener (`/metrics`), when `admin_http` is set.
    admin: Option<TcpListener>,
    /// The configured addresses, for when a socket cannot say.
    configured: (SocketAddr, Option<SocketAddr>),
}

impl Listeners {
    /// Binds `settings.http` (port 0 picks a free port; see
    /// [`Self::local_addr`]) and `settings.admin_http` when set.
    pub fn bind(settings: &Settings) -> anyhow::Result<Listeners> {
        let public =
            bind(settings.http).with_context(|| format!("binding HTTP to {}", settings.http))?;
        let admin = match settings.admin_http {
            Some(address) => {
                Some(bind(address).with_context(|| format!("binding admin HTTP to {address}"))?)
            }
            None => None,
        };
        Ok(Listeners {
            public,
            admin,
            configured: (settings.http, settings.admin_http),
        })
    }

    /// The address the HTTP listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.public.local_addr().unwrap_or(self.configured.0)
    }

    /// The address the admin listener is bound to, when `admin_http` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        let admin = self.admin.as_ref()?;
        admin.local_addr().ok().or(self.configured.1)
    }

    /// Serves `node` until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish (up to `shutdown_grace_secs`), and stops
    /// the node (which flushes storage). `ready` runs once everything
    /// answers, other nodes' forwarded requests included.
    pub async fn serve(
        self,
        node: Node,
        ready: impl FnOnce(),
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = node.http_state();
        serve_until(self, state, ready, shutdown).await;
        node.stop().await;
        Ok(())
    }
}

/// Serves the public listener (and the admin one, if any) until `shutdown`
/// resolves; then stops accepting and lets open connections finish, for at
/// most `shutdown_grace_secs`.
async fn serve_until(
    listeners: Listeners,
    state: AppState,
    ready: impl FnOnce(),
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let Listeners { public, admin, .. } = listeners;
    let grace = Duration::from_secs(state.settings.shutdown_grace_secs);
    let header_timeout = Duration::from_secs(state.settings.header_read_timeout_secs);
    let admin_router = admin.as_ref().map(|_| http::admin_router(state.clone()));
    let forwarding = state.forwarding.clone();
    let router = http::router(state);
    let responder = match &forwarding {
        Some(forwarding) => answer_forwarded(forwarding, router.clone()).await,
        None => None,
    };
    ready();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    let public = http::server::serve(public, router, header_timeout, stop_rx.clone());
    let operators = {
        let stop_rx = stop_rx.clone();
        async move {
            if let (Some(listener), Some(router)) = (admin, admin_router) {
                http::server::serve(listener, router, header_timeout, stop_rx).await;
            }
        }
    };
    let mut stopping = stop_rx;
    let deadline = async move {
        if stopping.wait_for(|stop| *stop).await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(public, operators) } => {}
        () = deadline => tracing::warn!("in-flight requests still running after the grace period; stopping anyway"),
    }
    if let Some(responder) = responder {
        responder.stop().await;
    }
}

/// Serves the requests other nodes forward here, through `router`.
async fn answer_forwarded(forwarding: &Forwarding, router: Router) -> Option<Responder> {
    let handler: Handler = Arc::new(move |bytes| {
        let router = router.clone();
        Box::pin(async move { http::route::answer(router, bytes).await })
    });
    match forwarding.rpc.serve(http::route::KIND, handler).await {
        Ok(responder) => Some(responder),
        Err(e) => {
            tracing::error!(error = %e, "cannot answer forwarded requests: other nodes will see this one as unavailable");
            None
        }
    }
}

fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(SEND_BUFFER_BYTES)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

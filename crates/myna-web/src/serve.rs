//! Serving a router with the limits a listener facing the network needs. `axum::serve` runs
//! hyper without a timer, so a client that sends its headers slowly holds a connection for
//! ever; here every service gets:
//! - a header-read timeout (hyper with a tokio timer), also for a kept-alive connection's
//!   next request;
//! - a body-read timeout and a timeout on the handler (until the response head: a push
//!   stream then runs on);
//! - a cap on open connections (the accept loop waits) and on requests in handlers at once
//!   (past it: `503` with `Retry-After`, at once).
//!
//! Each request carries the peer address as `axum::extract::ConnectInfo<SocketAddr>`.

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a connection's first byte (or its idle start) to the end of the request headers.
    pub header_read: Duration,
    /// Reading the whole request body.
    pub body_read: Duration,
    /// From the request to the response head.
    pub handler: Duration,
    /// Open connections; a push stream is one.
    pub max_connections: usize,
    /// Requests in handlers at once.
    pub max_in_flight: usize,
    /// How long a shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            handler: Duration::from_secs(60),
            max_connections: 10_000,
            max_in_flight: 512,
            drain: Duration::from_secs(5),
        }
    }
}

/// Past `max_in_flight`: refused at once, not queued behind a stalled handler.
async fn shed(permits: Arc<Semaphore>, req: Request, next: Next) -> Response {
    let Ok(_permit) = permits.try_acquire_owned() else {
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, "busy; retry shortly\n").into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    next.run(req).await
}

/// The router with the per-request limits of `limits` (the connection limits are `serve`'s).
pub fn limit(app: Router, limits: &Limits) -> Router {
    let permits = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    app.layer(axum::middleware::from_fn(move |req, next| {
        shed(permits.clone(), req, next)
    }))
    .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_read,
    ))
    .layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.handler,
    ))
}

/// Serves `app` on `listener` until `shutdown` completes, then waits up to `limits.drain` for
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = limit(app, &limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::routing::{get, post};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Limits small enough for a test to watch them act.
    fn tight() -> Limits {
        Limits {
            header_read: Duration::from_millis(500),
            body_read: Duration::from_millis(500),
            handler: Duration::from_millis(800),
            max_connections: 8,
            max_in_flight: 1,
            drain: Duration::from_millis(100),
        }
    }

    async fn start(app: Router, limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, app, limits, std::future::pending()));
        addr
    }

    fn app(gate: Arc<tokio::sync::Notify>) -> Router {
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/echo",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
            .route(
                "/wait",
                get(move || {
                    let gate = gate.clone();
                    async move {
                        gate.notified().await;
                        "released"
                    }
                }),
            )
            .route(
                "/stall",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
    }

    /// Everything the server sends until it closes the connection; `None` if it is still open
    /// after `within` (the bound is generous: the property is that it closes at all).
    async fn until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
        let mut got = Vec::new();
        let read = tokio::time::timeout(within, s.read_to_end(&mut got)).await;
        match read {
            Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
            Err(_) => None,
        }
    }

    async fn get_text(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        until_closed(&mut s, Duration::from_secs(20)).await.unwrap()
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_or_sends_nothing_is_cut_off() {
        let addr = start(app(Default::default()), tight()).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(
            until_closed(&mut slow, Duration::from_secs(15))
                .await
                .is_some(),
            "half-sent headers keep the connection open"
        );
        assert!(
            until_closed(&mut silent, Duration::from_secs(15))
                .await
                .is_some(),
            "a connection that sends nothing stays open"
        );
    }

    #[tokio::test]
    async fn a_kept_alive_connection_that_goes_quiet_is_cut_off() {
        let addr = start(app(Default::default()), tight()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        assert!(
            until_closed(&mut s, Duration::from_secs(15))
                .await
                .is_some(),
            "an idle kept-alive connection stays open"
        );
    }

    #[tokio::test]
    async fn with_every_connection_held_by_slow_clients_a_real_request_still_passes() {
        let limits = tight();
        let addr = start(app(Default::default()), limits).await;
        let mut slow = Vec::new();
        for _ in 0..limits.max_connections * 2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                .await
                .unwrap();
            slow.push(s);
        }
        let answer = get_text(addr, "/peer").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("127.0.0.1:"),
            "the handler sees the peer: {answer}"
        );
        drop(slow);
    }

    #[tokio::test]
    async fn a_body_that_trickles_is_refused_and_a_stalled_handler_times_out() {
        let addr = start(app(Default::default()), tight()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nabc")
            .await
            .unwrap();
        let answer = until_closed(&mut s, Duration::from_secs(15)).await;
        let answer = answer.expect("a trickling body holds the connection");
        assert!(!answer.contains("\r\n\r\n1000"), "{answer}");

        let answer = get_text(addr, "/stall").await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }

    #[tokio::test]
    async fn past_the_in_flight_cap_a_request_is_503_at_once_with_retry_after() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let addr = start(app(gate.clone()), tight()).await;
        let held = tokio::spawn(async move { get_text(addr, "/wait").await });
        // Until the first request is in its handler, a second one may be the one that waits.
        let mut refused = String::new();
        for _ in 0..100 {
            refused = get_text(addr, "/ok").await;
            if refused.starts_with("HTTP/1.1 503") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(
            refused.to_ascii_lowercase().contains("retry-after: 1"),
            "{refused}"
        );
        gate.notify_one();
        let released = held.await.unwrap();
        assert!(released.ends_with("released"), "{released}");
        assert!(get_text(addr, "/ok").await.starts_with("HTTP/1.1 200"));
    }
}

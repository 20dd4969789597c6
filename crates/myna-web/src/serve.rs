//! Serving a router with the limits a listener facing the network needs. `axum::serve` runs
//! hyper without a timer, so a client that sends its headers slowly holds a connection for
//! ever; here every service gets:
//! - a header-read timeout (hyper with a tokio timer), also for a kept-alive connection's
//!   next request, and a small header buffer;
//! - the whole request body read within one deadline, before the request counts as in
//!   flight (a body trickled a byte at a time cannot hold a handler's place);
//! - a write timeout: a client that stops reading is cut off;
//! - a timeout on the handler (until the response head: a push stream then runs on), `503`
//!   so that a tablet retries rather than drops;
//! - caps on open connections (in all and per address; the accept loop waits for the first,
//!   the second closes at once) and on requests in handlers at once (past it: `503` with
//!   `Retry-After`, at once). The process's descriptor limit is raised to its hard limit, and
//!   the connection cap kept below it.
//!
//! - TLS (rustls) when given a server configuration, the handshake within the header
//!   deadline. `require_tls` refuses a listener that is not loopback without it.
//!
//! Each request carries the peer address as `axum::extract::ConnectInfo<SocketAddr>`, and the
//! client's verified certificate as `PeerCertificate` when it presented one.

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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
    /// Largest request body read (the services keep their own, smaller, typed limits).
    pub max_body: usize,
    /// A write the client does not take within this is the end of the connection.
    pub write: Duration,
    /// From the request to the response head.
    pub handler: Duration,
    /// Open connections; a push stream is one.
    pub max_connections: usize,
    /// Open connections from one address (a fire bureau's tablets may share one NAT).
    pub max_connections_per_address: usize,
    /// Requests in handlers at once.
    pub max_in_flight: usize,
    /// How long a shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            // Twice the services' own (typed) limits of 64 KiB: past this, a plain 413 before
            // routing.
            max_body: 128 * 1024,
            write: Duration::from_secs(30),
            handler: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_address: 512,
            max_in_flight: 512,
            drain: Duration::from_secs(5),
        }
    }
}

fn refuse(status: StatusCode, text: &'static str) -> Response {
    let mut resp = (status, text).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// Past `max_in_flight`: refused at once, not queued behind a stalled handler.
async fn shed(permits: Arc<Semaphore>, req: Request, next: Next) -> Response {
    let Ok(_permit) = permits.try_acquire_owned() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "busy; retry shortly\n");
    };
    next.run(req).await
}

/// Reads the whole body within one deadline, so a request is in flight only once it is
/// complete.
async fn whole_body(limits: Limits, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        limits.body_read,
        axum::body::to_bytes(body, limits.max_body),
    );
    let bytes = match read.await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        }
        Err(_) => return refuse(StatusCode::REQUEST_TIMEOUT, "request body too slow\n"),
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The router with the per-request limits of `limits` (the connection limits are `serve`'s).
pub fn limit(app: Router, limits: &Limits) -> Router {
    let permits = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    let body_limits = *limits;
    // Layers run outside in: the body first, then the handler's place and its deadline.
    app.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        limits.handler,
    ))
    .layer(axum::middleware::from_fn(move |req, next| {
        shed(permits.clone(), req, next)
    }))
    .layer(axum::middleware::from_fn(move |req, next| {
        whole_body(body_limits, req, next)
    }))
}

/// The key of an address for per-client limits: an IPv6 client controls its whole /64, so
/// that is one key; an IPv4-mapped address is its IPv4 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Open connections per address (`address_key`).
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One open connection of an address; dropping it closes the count.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<AddressSlot> {
        let mut map = self.0.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.table.0.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Raises the descriptor limit to the hard limit and returns the connection cap that fits
/// under it (a few hundred descriptors stay for files, the database and outgoing calls).
fn connection_cap(wanted: usize) -> usize {
    const RESERVED: u64 = 256;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let room = usize::try_from(limit.saturating_sub(RESERVED)).unwrap_or(usize::MAX);
            if room < wanted {
                tracing::warn!(
                    descriptors = limit,
                    connections = room,
                    "the descriptor limit caps open connections below the configured cap"
                );
            }
            wanted.min(room).max(1)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the descriptor limit could not be read or raised");
            wanted.max(1)
        }
    }
}

/// A connection's byte stream, plain or TLS.
pub use myna_tls::PeerCertificate;

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send> Io for T {}

/// Refuses to serve plain HTTP on an address other hosts can reach: the services carry
/// medical data and credentials. Loopback stays plain (the tablet's own UI, tests, a local
/// TLS-terminating proxy).
pub fn require_tls(
    addr: std::net::SocketAddr,
    tls: Option<&rustls::ServerConfig>,
) -> Result<(), String> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is reachable from other hosts: serve it with TLS (--tls-cert and --tls-key)"
        ));
    }
    Ok(())
}

/// Serves `app` on `listener` until `shutdown` completes, then waits up to `limits.drain` for
/// requests in flight. With `tls`, every connection is TLS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let app = limit(app, &limits);
    let connections = Arc::new(Semaphore::new(connection_cap(limits.max_connections)));
    let per_address = Arc::new(PerAddress::default());
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
        let Some(slot) =
            per_address.take(address_key(peer.ip()), limits.max_connections_per_address)
        else {
            tracing::warn!(%peer, "too many connections from one address");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write));
        let app = app.clone();
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .max_buf_size(64 * 1024);
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let (io, certificate): (std::pin::Pin<Box<dyn Io>>, _) = match acceptor {
                None => (Box::pin(stream), None),
                // The handshake counts against the header deadline: a client that starts one
                // and stalls holds nothing for long.
                Some(acceptor) => {
                    match tokio::time::timeout(
                        limits.header_read,
                        acceptor.accept(Box::pin(stream)),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => {
                            let certificate = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .map(|leaf| PeerCertificate(Arc::from(leaf.as_ref())));
                            (Box::pin(tls), certificate)
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake too slow");
                            return;
                        }
                    }
                }
            };
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    if let Some(c) = &certificate {
                        req.extensions_mut().insert(c.clone());
                    }
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
            let connection = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop((permit, slot));
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

    /// A response larger than the loopback socket buffers.
    const BIG: usize = 32 * 1024 * 1024;

    /// A connection from another loopback address (Linux routes all of 127/8 to lo).
    async fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        socket.connect(addr).await.unwrap()
    }

    /// Limits small enough for a test to watch them act.
    fn tight() -> Limits {
        Limits {
            header_read: Duration::from_millis(500),
            body_read: Duration::from_millis(500),
            max_body: 64 * 1024,
            write: Duration::from_millis(500),
            handler: Duration::from_millis(800),
            max_connections: 8,
            max_connections_per_address: 4,
            max_in_flight: 1,
            drain: Duration::from_millis(100),
        }
    }

    async fn start(app: Router, limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, app, limits, None, std::future::pending()));
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
            .route("/big", get(|| async { "x".repeat(BIG) }))
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
        // Room in all for both slow addresses' caps and a real client.
        let limits = Limits {
            max_connections: 12,
            ..tight()
        };
        let per_ip = 8;
        let addr = start(app(Default::default()), limits).await;
        // Slow clients from two addresses: each address keeps its cap, the rest are closed.
        let mut slow = Vec::new();
        for ip in ["127.0.0.3", "127.0.0.4"] {
            for _ in 0..per_ip {
                let mut s = connect_from(ip, addr).await;
                let _ = s
                    .write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                    .await;
                slow.push(s);
            }
        }
        // The cap per address closed the ones past it at once.
        // Well inside the header deadline (500 ms): only the cap can have closed any yet.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(250);
        let mut closed_at_once = 0;
        for s in &mut slow {
            let mut byte = [0u8; 1];
            // Closed: an end of stream, or a reset (the server closed with our bytes unread).
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout_at(deadline, s.read(&mut byte)).await {
                closed_at_once += 1;
            }
        }
        assert_eq!(
            closed_at_once,
            2 * (per_ip - limits.max_connections_per_address),
            "past its cap, an address's connections close at once"
        );
        // A real client from another address is served at once.
        let mut s = connect_from("127.0.0.2", addr).await;
        s.write_all(b"GET /peer HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut s, Duration::from_secs(20)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("127.0.0.2:"),
            "the handler sees the peer: {answer}"
        );
        drop(slow);
    }

    #[tokio::test]
    async fn a_body_that_trickles_is_408_and_a_stalled_handler_503() {
        let addr = start(app(Default::default()), tight()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
            .await
            .unwrap();
        // One byte every 100 ms: each arrives well within any per-chunk timeout, but the
        // whole body would take 10 s.
        let (mut reader, mut writer) = s.into_split();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if writer.write_all(b"a").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut answer)).await;
        trickle.abort();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            read.is_ok(),
            "a trickling body held the connection: {answer}"
        );
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

        let answer = get_text(addr, "/stall").await;
        assert!(
            answer.starts_with("HTTP/1.1 503"),
            "a tablet retries a 503: {answer}"
        );
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off() {
        let addr = start(app(Default::default()), tight()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // Read nothing while the server's writes stall past its write timeout.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the connection stayed open");
        assert!(
            got.len() < BIG,
            "the server went on writing to a client that did not read ({} bytes)",
            got.len()
        );
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

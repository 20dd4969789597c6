//! A TCP proxy that delays every byte by a fixed time in each direction, for benchmarks over a
//! slow link (the kernel here has no `netem`). Rate and loss come from `scripts/netns-link`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::AsyncWrite;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(clap::Args)]
pub struct DelayProxyArgs {
    /// Address to accept connections on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where to forward each connection (host:port).
    #[arg(long)]
    pub to: String,
    /// Delay added to each direction, in milliseconds (a round trip gains twice this).
    #[arg(long, default_value_t = 50)]
    pub delay_ms: u64,
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: DelayProxyArgs) -> Result<ExitCode> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let delay = Duration::from_millis(args.delay_ms);
    tracing::info!(
        listen = %args.listen,
        to = %args.to,
        delay_ms = args.delay_ms,
        "delay proxy serving"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    tokio::select! {
        r = serve(listener, args.to, delay) => r.map(|()| ExitCode::SUCCESS),
        _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
        _ = term.recv() => Ok(ExitCode::SUCCESS),
    }
}

/// Accepts connections on `listener` forever, forwarding each to `to` with `delay` each way.
pub async fn serve(listener: TcpListener, to: String, delay: Duration) -> Result<()> {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Usually transient (out of file descriptors); back off rather than spin or die.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let to = to.clone();
        tokio::spawn(async move {
            if let Err(e) = proxy(client, &to, delay).await {
                tracing::debug!(%peer, "connection ended: {e:#}");
            }
        });
    }
}

/// Bytes read at once; also the largest chunk held in a queue.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction before reading pauses (backpressure, bounded memory).
const QUEUE: usize = 1024;

async fn proxy(client: TcpStream, to: &str, delay: Duration) -> Result<()> {
    let server = TcpStream::connect(to)
        .await
        .with_context(|| format!("cannot connect to {to}"))?;
    // Small writes (SSE events, TLS records) must not wait for Nagle on top of the delay.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    // An error either way drops both sockets, closing the other side too; a clean EOF only
    // ends its own direction (half-close).
    tokio::try_join!(
        pipe(client_r, server_w, delay),
        pipe(server_r, client_w, delay)
    )
    .map(|_| ())
}

/// One direction. Empty `bytes` marks EOF, so the FIN is delayed like the data before it.
struct Chunk {
    due: Instant,
    bytes: Vec<u8>,
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) -> Result<()> {
    let (tx, mut rx) = mpsc::channel::<Chunk>(QUEUE);
    // Reading and writing run concurrently so a chunk waiting out its delay never holds up
    // reading the next one.
    let read = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read_some(&mut from, &mut buf).await.context("read")?;
            let chunk = Chunk {
                due: Instant::now() + delay,
                bytes: buf[..n].to_vec(),
            };
            if tx.send(chunk).await.is_err() {
                // The writer has stopped; its error is the one reported.
                return Ok::<(), anyhow::Error>(());
            }
            if n == 0 {
                return Ok(());
            }
        }
    };
    let write = async move {
        while let Some(chunk) = rx.recv().await {
            tokio::time::sleep_until(chunk.due).await;
            if chunk.bytes.is_empty() {
                shutdown(&mut to).await.context("shutdown")?;
                return Ok::<(), anyhow::Error>(());
            }
            write_all(&mut to, &chunk.bytes).await.context("write")?;
        }
        // The reader failed before EOF; try_join reports its error.
        Ok(())
    };
    tokio::try_join!(read, write).map(|_| ())
}

// tokio's io-util feature (read/write_all) is not enabled in this workspace; the readiness
// API of the net feature does the same.
async fn read_some(from: &mut OwnedReadHalf, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        from.readable().await?;
        match from.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(to: &mut OwnedWriteHalf, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends FIN now (dropping the half would too, but silently and only at the end).
async fn shutdown(to: &mut OwnedWriteHalf) -> std::io::Result<()> {
    std::future::poll_fn(|cx| Pin::new(&mut *to).poll_shutdown(cx)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// An echo server that echoes until EOF, then half-closes.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let n = read_some(&mut r, &mut buf).await.unwrap();
                        if n == 0 {
                            shutdown(&mut w).await.unwrap();
                            return;
                        }
                        write_all(&mut w, &buf[..n]).await.unwrap();
                    }
                });
            }
        });
        addr
    }

    async fn start_proxy(to: SocketAddr, delay: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, to.to_string(), delay));
        addr
    }

    async fn read_to_end(r: &mut OwnedReadHalf) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            let n = read_some(r, &mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn bytes_arrive_intact_and_in_order() {
        let echo = echo_server().await;
        let proxy = start_proxy(echo, Duration::from_millis(5)).await;
        let (mut r, mut w) = TcpStream::connect(proxy).await.unwrap().into_split();
        // Large enough to span many reads and chunks; a pattern that catches reordering.
        let sent: Vec<u8> = (0..2_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            for part in to_send.chunks(7_001) {
                write_all(&mut w, part).await.unwrap();
            }
            // Our FIN must reach the echo server, and its FIN must come back.
            shutdown(&mut w).await.unwrap();
        });
        let got = read_to_end(&mut r).await;
        writer.await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "bytes differ");
    }

    #[tokio::test]
    async fn round_trip_takes_at_least_twice_the_delay() {
        let delay = Duration::from_millis(80);
        let echo = echo_server().await;
        let proxy = start_proxy(echo, delay).await;
        let (mut r, mut w) = TcpStream::connect(proxy).await.unwrap().into_split();
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let start = std::time::Instant::now();
            write_all(&mut w, b"ping").await.unwrap();
            let mut got = Vec::new();
            while got.len() < 4 {
                let n = read_some(&mut r, &mut buf).await.unwrap();
                assert_ne!(n, 0, "unexpected EOF");
                got.extend_from_slice(&buf[..n]);
            }
            let elapsed = start.elapsed();
            assert_eq!(got, b"ping");
            assert!(elapsed >= 2 * delay, "round trip took only {elapsed:?}");
        }
    }

    #[tokio::test]
    async fn unreachable_upstream_closes_the_client() {
        // Bind then drop, so the port is (almost certainly) closed.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = start_proxy(closed, Duration::from_millis(1)).await;
        let (mut r, _w) = TcpStream::connect(proxy).await.unwrap().into_split();
        let mut buf = [0u8; 16];
        // EOF or reset, but never a hang.
        let end = read_some(&mut r, &mut buf).await;
        assert!(matches!(end, Ok(0) | Err(_)), "got {end:?}");
    }
}

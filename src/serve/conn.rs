//! Connections: the accept loop under a connection limit, HTTP/1.1 (hyper) on each connection,
//! TLS when configured, and a watchdog per connection that closes it when a client is too slow.
//!
//! A connection is always in one of three phases, each with its deadline:
//!
//! - **head**: a request head (request line and headers) is arriving; it must be complete within
//!   the header timeout. A connection starts in this phase when it is accepted (so the TLS
//!   handshake and the first request head share that time), and enters it again at the first
//!   byte after a response.
//! - **busy**: a request is being answered; the connection is closed when no byte could be
//!   written for the idle timeout (a client that stopped reading a response).
//! - **idle**: between requests (keep-alive); closed after the idle timeout.
//!
//! The phases are kept by an IO wrapper under TLS (it sees every byte on the socket) and by the
//! service (a request starts when hyper has parsed its head, and ends when its response body
//! is dropped, i.e. sent or abandoned). hyper's own header timer is off: it would also start
//! when a keep-alive connection goes idle, making the idle timeout the header timeout.
//!
//! Beyond the connection limit, new connections are not accepted: they wait in the kernel's
//! listen backlog (their handshake is done by the kernel, their bytes buffered) until a
//! connection closes. None is refused while the backlog has room, and the slow ones cannot
//! hold their slots longer than the timeouts.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// How long a connection may take, and how many may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The whole request head (and, on a new connection, the TLS handshake) must arrive within
    /// this long.
    pub header_timeout: Duration,
    /// A connection idle between requests, or whose client stopped reading a response, is closed
    /// after this long.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
        }
    }
}

/// How long in-flight requests may take to finish after a shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Busy,
    Idle,
}

#[derive(Debug)]
struct Activity {
    phase: Phase,
    /// When the phase began, or (busy) when a byte was last written.
    since: Instant,
    in_flight: usize,
}

/// The phase of one connection and its deadline.
#[derive(Debug)]
struct Tracker {
    limits: Limits,
    state: Mutex<Activity>,
    /// Wakes the watchdog when the phase changes (its deadline may be earlier now).
    changed: tokio::sync::Notify,
}

impl Tracker {
    fn new(limits: Limits) -> Self {
        Tracker {
            limits,
            state: Mutex::new(Activity {
                phase: Phase::Head,
                since: Instant::now(),
                in_flight: 0,
            }),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Activity)) {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let before = guard.phase;
        f(&mut guard);
        if guard.phase != before {
            self.changed.notify_one();
        }
    }

    fn read(&self, n: usize) {
        if n > 0 {
            self.with(|a| {
                if a.phase == Phase::Idle {
                    a.phase = Phase::Head;
                    a.since = Instant::now();
                }
            });
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.with(|a| {
                if a.phase == Phase::Busy {
                    a.since = Instant::now();
                }
            });
        }
    }

    fn request_started(&self) {
        self.with(|a| {
            a.in_flight += 1;
            a.phase = Phase::Busy;
            a.since = Instant::now();
        });
    }

    fn request_done(&self) {
        self.with(|a| {
            a.in_flight = a.in_flight.saturating_sub(1);
            if a.in_flight == 0 {
                a.phase = Phase::Idle;
                a.since = Instant::now();
            }
        });
    }

    fn deadline(&self) -> Instant {
        let mut d = Instant::now();
        self.with(|a| {
            d = a.since
                + match a.phase {
                    Phase::Head => self.limits.header_timeout,
                    Phase::Busy | Phase::Idle => self.limits.idle_timeout,
                }
        });
        d
    }

    /// Returns when the connection has overrun its current deadline.
    async fn overrun(&self) {
        loop {
            let deadline = self.deadline();
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.changed.notified() => {}
            }
        }
    }
}

/// The socket, reporting every byte to the tracker.
struct Watched<IO> {
    inner: IO,
    tracker: Arc<Tracker>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.tracker.read(buf.filled().len() - before);
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.tracker.wrote(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.tracker.wrote(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request in flight: ends when dropped.
struct InFlight(Arc<Tracker>);

impl InFlight {
    fn start(tracker: &Arc<Tracker>) -> Self {
        tracker.request_started();
        InFlight(Arc::clone(tracker))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// What an [`Observed`] response body reports to as it is sent; dropped with the body.
pub trait Watch: Send + Unpin + 'static {
    /// A data frame of `bytes` bytes was handed to the connection.
    fn sent(&mut self, _bytes: usize) {}
}

/// A response body passed through unchanged, telling its [`Watch`] what it sends.
pub struct Observed<W> {
    /// The body.
    pub body: Body,
    /// What is told.
    pub watch: W,
}

impl<W: Watch> hyper::body::Body for Observed<W> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.watch.sent(data.len());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The request ends when its response body is dropped.
impl Watch for InFlight {}

/// A response body that ends its request when dropped.
type TrackedBody = Observed<InFlight>;

/// The router as hyper's service, marking each request's start and end.
#[derive(Clone)]
struct Service {
    router: TowerToHyperService<Router>,
    tracker: Arc<Tracker>,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(&self.tracker);
        let fut = self.router.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|body| TrackedBody {
                body,
                watch: in_flight,
            }))
        })
    }
}

/// Waits until `stop` says true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// HTTP/1.1 on one (plain or TLS) stream until the client is done, or gracefully after `stop`.
async fn http<IO>(io: IO, router: Router, tracker: Arc<Tracker>, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = Service {
        router: TowerToHyperService::new(router),
        tracker,
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // The watchdog times heads; hyper's timer would also time keep-alive idleness.
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopped(&mut stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Serves one accepted connection (any stream: tests use in-memory ones) until it ends, is
/// closed by its watchdog, or drains after `stop`.
pub(crate) async fn connection<IO>(
    io: IO,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracker = Arc::new(Tracker::new(limits));
    let io = Watched {
        inner: io,
        tracker: Arc::clone(&tracker),
    };
    let serve = async {
        match tls {
            None => http(io, router, Arc::clone(&tracker), stop).await,
            Some(acceptor) => {
                // A failed handshake (wrong CA, no client certificate, plain HTTP) just closes.
                if let Ok(stream) = acceptor.accept(io).await {
                    http(stream, router, Arc::clone(&tracker), stop).await;
                }
            }
        }
    };
    // On overrun, dropping `serve` closes the socket.
    tokio::select! {
        () = serve => {}
        () = tracker.overrun() => {}
    }
}

/// Accepts connections on `listener` until `stop` says true, at most `limits.max_connections`
/// at once; then stops accepting and gives the open ones up to 10 s to finish.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    loop {
        let permit = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors, a connection reset before it was accepted:
                    // not the server's end. Pause rather than spin.
                    super::log(&format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (tls, router, stop) = (tls.clone(), router.clone(), stop.clone());
        tokio::spawn(async move {
            connection(stream, tls, router, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    // Every slot back: every connection closed.
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(limits.max_connections)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn router() -> Router {
        Router::new()
            .route("/small", axum::routing::get(|| async { "ok" }))
            .route("/big", axum::routing::get(|| async { vec![7u8; 4 << 20] }))
    }

    fn limits(header_ms: u64, idle_ms: u64) -> Limits {
        Limits {
            header_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            max_connections: 4,
        }
    }

    /// Runs a connection over an in-memory pipe; returns the client end and the server task.
    fn serve(
        l: Limits,
        buffer: usize,
    ) -> (
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<()>,
        watch::Sender<bool>,
    ) {
        let (client, server) = tokio::io::duplex(buffer);
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(connection(server, None, router(), l, rx));
        (client, task, tx)
    }

    async fn read_response(c: &mut tokio::io::DuplexStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = c.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn a_slow_head_is_cut_at_the_header_timeout() {
        let (mut c, task, _tx) = serve(limits(300, 10_000), 4096);
        let started = std::time::Instant::now();
        c.write_all(b"GET /small HTTP/1.1\r\nHo").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("closed")
            .unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).await.unwrap(), 0, "no response");
    }

    #[tokio::test]
    async fn keep_alive_then_idle_timeout_not_header_timeout() {
        // The header timeout is short; between requests the idle timeout rules.
        let (mut c, task, _tx) = serve(limits(200, 1_000), 4096);
        for _ in 0..2 {
            c.write_all(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let r = read_response(&mut c).await;
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(!task.is_finished(), "idle for less than the idle timeout");
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("closed when idle")
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped() {
        // 4 MiB through a 4 KiB pipe that nobody reads.
        let (mut c, task, _tx) = serve(limits(200, 500), 4096);
        let started = std::time::Instant::now();
        c.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("dropped")
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(450));
    }

    #[tokio::test]
    async fn a_slow_but_steady_reader_is_served() {
        let (mut c, task, _tx) = serve(limits(200, 400), 64 << 10);
        c.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            // Reads pause, but never for the idle timeout.
            tokio::time::sleep(Duration::from_millis(1)).await;
            match c.read(&mut buf).await.unwrap() {
                0 => break,
                n => got += n,
            }
        }
        assert!(got > 4 << 20, "{got}");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn stop_closes_idle_connections() {
        let (mut c, task, tx) = serve(limits(5_000, 60_000), 4096);
        c.write_all(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_response(&mut c).await.starts_with("HTTP/1.1 200"));
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("graceful shutdown closes an idle connection")
            .unwrap();
    }
}

//! Thread-per-core serving for the gateway: one accept loop hands each new
//! connection to the least-busy *lane*, an OS thread running its own
//! single-threaded tokio runtime. A request is then served start to finish on
//! one thread: reading it, the upstream call (each lane keeps its own pool of
//! upstream connections, see [`crate::providers::set_lane`]), the ledger
//! commit and the answer. No task hops between threads, so an idle gateway
//! wakes one thread per socket event instead of several, and a busy one needs
//! no work stealing.
//!
//! Each lane serves HTTP/1.1 with hyper directly ([`serve`]), so that a
//! client that does not finish its request headers within the header read
//! timeout is disconnected (axum's own `serve` sets no such timeout); a
//! connection carries its [`ConnPermit`] (the connection caps) until it closes.
//! A lane's requests go through its [`Front`]: `POST /v1/chat/completions`
//! straight to its handler, everything else through the axum application.

use super::ingress::ConnPermit;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};

/// What a lane's connections are served with. `POST /v1/chat/completions`,
/// the request path that carries the load, goes straight to its handler and
/// the failure audit (`super::chat_with`, `ingress::audit_response`): no
/// router match, middleware stack, cloned route service or cloned headers
/// (about a third of a request's allocations went there). Every other request
/// is the axum application's, whose `/v1/chat/completions` route ends in the
/// same handler and the same audit, so both ways answer alike.
#[derive(Clone)]
pub(super) struct Front {
    app: axum::Router,
    state: Arc<super::AppState>,
}

impl Front {
    pub(super) fn new(app: axum::Router, state: Arc<super::AppState>) -> Self {
        Front { app, state }
    }
}

type Served = Pin<Box<dyn std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Front {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Served;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Served {
        if req.method() == hyper::Method::POST && req.uri().path() == "/v1/chat/completions" {
            let st = self.state.clone();
            Box::pin(async move {
                let (parts, body) = req.into_parts();
                let mut resp = super::chat_with(st.clone(), &parts.headers, axum::body::Body::new(body)).await;
                super::ingress::audit_response(&st, &parts.headers, &mut resp);
                Ok(resp)
            })
        } else {
            Box::pin(hyper_util::service::TowerToHyperService::new(self.app.clone()).call(req))
        }
    }
}

/// A connection accepted by the accept loop, on its way to a lane.
pub(super) struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    guard: LaneGuard,
    permit: Option<ConnPermit>,
}

/// Counts a connection against its lane until the connection is dropped.
struct LaneGuard(Arc<AtomicUsize>);

impl Drop for LaneGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The accept loop's side of the lanes: picks the lane with the fewest open
/// connections (the lowest index on a tie).
pub(super) struct Dispatcher {
    lanes: Vec<(mpsc::UnboundedSender<Handoff>, Arc<AtomicUsize>)>,
}

impl Dispatcher {
    pub(super) fn new() -> Self {
        Self { lanes: Vec::new() }
    }

    /// Adds a lane and returns the listener its runtime serves.
    pub(super) fn add_lane(&mut self, local: SocketAddr) -> LaneListener {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lanes.push((tx, Arc::new(AtomicUsize::new(0))));
        LaneListener { rx, local }
    }

    /// Sends `stream` to a lane. Returns it if every lane has stopped.
    pub(super) fn dispatch(
        &self,
        stream: std::net::TcpStream,
        peer: SocketAddr,
        permit: Option<ConnPermit>,
    ) -> Result<(), std::net::TcpStream> {
        let mut order: Vec<usize> = (0..self.lanes.len()).collect();
        order.sort_by_key(|&i| self.lanes[i].1.load(Ordering::Relaxed));
        let (mut stream, mut permit) = (stream, permit);
        for i in order {
            let (tx, open) = &self.lanes[i];
            open.fetch_add(1, Ordering::Relaxed);
            let h = Handoff { stream, peer, guard: LaneGuard(open.clone()), permit };
            match tx.send(h) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(h)) => (stream, permit) = (h.stream, h.permit),
            }
        }
        Err(stream)
    }
}

/// What a lane's `axum::serve` accepts from: connections the dispatcher sent.
pub(super) struct LaneListener {
    rx: mpsc::UnboundedReceiver<Handoff>,
    local: SocketAddr,
}

impl Listener for LaneListener {
    type Io = LaneStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some(h) = self.rx.recv().await else {
                // The accept loop has stopped: so has the gateway, and the
                // graceful-shutdown signal ends `serve` without another accept.
                return std::future::pending().await;
            };
            match tokio::net::TcpStream::from_std(h.stream) {
                Ok(s) => return (LaneStream { inner: s, _guard: h.guard, _permit: h.permit }, h.peer),
                Err(e) => tracing::warn!(error = %e, peer = %h.peer, "could not take a gateway connection onto its lane"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A gateway connection on its lane; leaving the lane's count, and the
/// connection caps' counts, when dropped.
pub(super) struct LaneStream {
    inner: tokio::net::TcpStream,
    _guard: LaneGuard,
    _permit: Option<ConnPermit>,
}

impl AsyncRead for LaneStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for LaneStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves a lane's connections with `app` until `stop` turns true, then lets
/// the connections finish the request they are on (graceful shutdown) and
/// returns when they have closed. A client gets `header_read_timeout` to
/// send each request's headers (also the longest a keep-alive connection
/// stays idle); then its connection is closed.
pub(super) async fn serve(mut listener: LaneListener, app: Front, header_read_timeout: Duration, stop: watch::Receiver<bool>) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let mut conns = tokio::task::JoinSet::new();
    let mut stop_accepting = stop.clone();
    loop {
        let (io, _peer) = tokio::select! {
            _ = stop_accepting.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        while conns.try_join_next().is_some() {}
        let conn = builder.serve_connection(TokioIo::new(io), app.clone());
        let mut stop = stop.clone();
        // Counted as the lane's work (for busy polling, `super::busy`).
        conns.spawn(super::busy::Active(Box::pin(async move {
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = stop.wait_for(|s| *s) => None,
            };
            let result = match ended {
                Some(r) => r,
                None => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "a gateway connection ended with an error");
            }
        })));
    }
    while conns.join_next().await.is_some() {}
}

/// How often a lane's [`keep_a_timer_due`] fires.
const LANE_TICK: Duration = Duration::from_secs(1);

/// Keeps a timer due within [`LANE_TICK`] on the lane's runtime, forever (the
/// task ends with the runtime).
///
/// Tokio wakes its I/O driver whenever a timer is armed that is due before
/// the deadline the driver last parked with, even on a current-thread
/// runtime that is busy polling a task and so cannot be parked
/// (tokio-rs/tokio#5207): an `eventfd` write, after which the lane's next
/// `epoll_wait` returns at once to read it. A lane serving one keep-alive
/// connection did that on every request: it parked waiting for the upstream
/// with only the upstream pool's idle timer (90 s) ahead, then armed hyper's
/// header read timer (30 s) for the connection's next request — one `write`
/// and one `epoll_wait` a request more than the bare proxy, which arms no
/// timer. With a timer always due within a second, the driver's deadline is
/// never later than a request's timers (all of them a second or more), so
/// arming them wakes nothing; the tick costs an idle lane one wake-up a second.
pub(super) async fn keep_a_timer_due() {
    let mut tick = tokio::time::interval(LANE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// Whether an accept error is about resources (wait before retrying) rather
/// than one failed connection (retry at once). As in axum's own loop.
pub(super) fn is_resource_error(e: &io::Error) -> bool {
    !matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset)
}

/// How many lanes a gateway gets by default: one per core, at most 8.
pub fn default_lanes() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8)
}

/// For tests of a lane's runtime (call it on one): a socket whose peer, a
/// thread, sends it one byte after `delay`; join the thread once it has.
#[cfg(test)]
pub(super) fn byte_after(delay: Duration) -> (tokio::net::UnixStream, std::thread::JoinHandle<std::os::unix::net::UnixStream>) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let peer = std::thread::Builder::new()
        .name("lane-test-peer".into())
        .spawn(move || {
            std::thread::sleep(delay);
            use std::io::Write;
            (&theirs).write_all(b"x").unwrap();
            theirs
        })
        .unwrap();
    ours.set_nonblocking(true).unwrap();
    (tokio::net::UnixStream::from_std(ours).unwrap(), peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write system calls this thread has made so far (`syscw` in
    /// `/proc/thread-self/io`; reading it is not one).
    #[cfg(target_os = "linux")]
    fn writes_by_this_thread() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
        io.lines().find_map(|l| l.strip_prefix("syscw:")).and_then(|v| v.trim().parse().ok()).expect("a syscw line")
    }

    /// Polls a timer once, which registers it with the runtime's driver.
    #[cfg(target_os = "linux")]
    async fn poll_once(mut timer: Pin<&mut tokio::time::Sleep>) {
        use std::future::Future;
        std::future::poll_fn(|cx| {
            let _ = timer.as_mut().poll(cx);
            Poll::Ready(())
        })
        .await
    }

    /// On a lane-like runtime (with the lane's timer keeper or without it)
    /// that parked waiting for a socket with only a 90 s timer ahead (the
    /// upstream pool's idle timer), the write system calls this thread makes
    /// to arm a 30 s timer (hyper's header read timeout) once woken.
    #[cfg(target_os = "linux")]
    fn writes_to_arm_a_request_timer(keeper: bool) -> u64 {
        use tokio::io::AsyncReadExt;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            if keeper {
                tokio::spawn(keep_a_timer_due());
                tokio::task::yield_now().await;
            }
            let mut idle = std::pin::pin!(tokio::time::sleep(Duration::from_secs(90)));
            poll_once(idle.as_mut()).await;
            let (mut ours, writer) = byte_after(Duration::from_millis(50));
            let mut byte = [0u8; 1];
            ours.read_exact(&mut byte).await.unwrap();
            let before = writes_by_this_thread();
            let mut header = std::pin::pin!(tokio::time::sleep(Duration::from_secs(30)));
            poll_once(header.as_mut()).await;
            let after = writes_by_this_thread();
            drop(writer.join());
            after - before
        })
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn arming_a_request_timer_does_not_wake_a_lane_that_keeps_a_timer_due() {
        // Without the keeper, tokio wakes its own driver (tokio-rs/tokio#5207):
        // if this fails, tokio no longer does, and the keeper can go.
        assert_eq!(writes_to_arm_a_request_timer(false), 1, "tokio's driver wake-up on arming a nearer timer");
        assert_eq!(writes_to_arm_a_request_timer(true), 0, "a lane with its timer keeper writes nothing to arm a request's timer");
    }

    #[test]
    fn connections_go_to_the_least_busy_lane_and_leave_it_when_dropped() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut d = Dispatcher::new();
        let mut a = d.add_lane(addr);
        let mut b = d.add_lane(addr);
        let mut clients = Vec::new();
        let mut take = || {
            clients.push(std::net::TcpStream::connect(addr).unwrap());
            let (s, peer) = l.accept().unwrap();
            d.dispatch(s, peer, None).unwrap();
        };
        take();
        take();
        take();
        let (a1, b1, a2) = (a.rx.try_recv().unwrap(), b.rx.try_recv().unwrap(), a.rx.try_recv().unwrap());
        assert!(b.rx.try_recv().is_err());
        assert_eq!(d.lanes[0].1.load(Ordering::Relaxed), 2);
        drop(a1);
        drop(a2);
        assert_eq!(d.lanes[0].1.load(Ordering::Relaxed), 0);
        take();
        assert!(a.rx.try_recv().is_ok(), "the emptied lane takes the next connection");
        drop(b1);
        // A stopped lane is skipped; with every lane stopped the stream comes back.
        drop(a);
        take();
        assert!(b.rx.try_recv().is_ok());
        drop(b);
        clients.push(std::net::TcpStream::connect(addr).unwrap());
        let (s, peer) = l.accept().unwrap();
        assert!(d.dispatch(s, peer, None).is_err());
    }
}

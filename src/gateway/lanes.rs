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
        conns.spawn(async move {
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
        });
    }
    while conns.join_next().await.is_some() {}
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

#[cfg(test)]
mod tests {
    use super::*;

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

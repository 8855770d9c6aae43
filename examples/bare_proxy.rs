//! The hyper floor: a plain reverse proxy on the same HTTP stack, runtime,
//! allocator and lane layout as the gateway, doing nothing else — no
//! authentication, routing, accounting or JSON. `benches/wrk/floor.sh`
//! measures it beside nginx and the gateway (a variant whose name starts with
//! `bare`), so that issue 22's ratios can be split into what hyper and the
//! kernel cost on this machine and what Switchboard adds on top.
//!
//! ```sh
//! cargo build --profile dist --example bare_proxy   # built as the gateway is measured
//! target/dist/examples/bare_proxy --listen 127.0.0.1:4580 --upstream http://127.0.0.1:4571
//! target/dist/examples/bare_proxy --listen … --upstream … --collect   # read both bodies whole, as the gateway does
//! ```
//!
//! Lanes as in `gateway::lanes`: one thread per core (`--lanes N`), each with
//! a current-thread tokio runtime and its own keep-alive pool of upstream
//! connections; an accept thread hands each connection to the lane with the
//! fewest open connections.

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Cli {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// The upstream's base URL (`http://host:port`; plain HTTP only).
    #[arg(long)]
    upstream: String,
    /// Serving lanes (default: one per core).
    #[arg(long)]
    lanes: Option<usize>,
    /// Read the request and the answer whole before forwarding them (the
    /// gateway must: it parses both).
    #[arg(long)]
    collect: bool,
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>;

struct Lane {
    conns: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<std::net::TcpStream>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let upstream: Uri = cli.upstream.parse()?;
    let authority = upstream.authority().ok_or_else(|| anyhow::anyhow!("the upstream needs host:port"))?.clone();
    let n = cli.lanes.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let mut lanes = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = mpsc::unbounded_channel();
        let conns = Arc::new(AtomicUsize::new(0));
        let (authority, collect, open) = (authority.clone(), cli.collect, conns.clone());
        std::thread::Builder::new().name(format!("lane-{i}")).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a lane's runtime");
            rt.block_on(lane(rx, authority, collect, open));
        })?;
        lanes.push(Lane { conns, tx });
    }
    let listener = std::net::TcpListener::bind(cli.listen)?;
    eprintln!("bare proxy on {} -> {} ({n} lanes{})", cli.listen, cli.upstream, if cli.collect { ", bodies read whole" } else { "" });
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let lane = lanes.iter().min_by_key(|l| l.conns.load(Ordering::Relaxed)).expect("at least one lane");
        lane.conns.fetch_add(1, Ordering::Relaxed);
        let _ = lane.tx.send(stream);
    }
    Ok(())
}

async fn lane(
    mut rx: mpsc::UnboundedReceiver<std::net::TcpStream>,
    authority: hyper::http::uri::Authority,
    collect: bool,
    open: Arc<AtomicUsize>,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(128).build(connector);
    while let Some(std_stream) = rx.recv().await {
        let _ = std_stream.set_nonblocking(true);
        let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
            open.fetch_sub(1, Ordering::Relaxed);
            continue;
        };
        let (client, authority, open) = (client.clone(), authority.clone(), open.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| forward(client.clone(), authority.clone(), collect, req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn forward(
    client: Client<HttpConnector, Body>,
    authority: hyper::http::uri::Authority,
    collect: bool,
    req: Request<Incoming>,
) -> Result<Response<Body>, hyper::Error> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
    parts.uri = Uri::builder().scheme("http").authority(authority).path_and_query(path).build().expect("a valid URI");
    let body: Body = if collect {
        Full::new(body.collect().await?.to_bytes()).map_err(|never| match never {}).boxed_unsync()
    } else {
        body.boxed_unsync()
    };
    let answer = match client.request(Request::from_parts(parts, body)).await {
        Ok(a) => a,
        Err(e) => {
            let mut r = Response::new(Full::new(Bytes::from(format!("upstream: {e}"))).map_err(|never| match never {}).boxed_unsync());
            *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
    };
    let (parts, body) = answer.into_parts();
    let body: Body = if collect {
        Full::new(body.collect().await?.to_bytes()).map_err(|never| match never {}).boxed_unsync()
    } else {
        body.boxed_unsync()
    };
    Ok(Response::from_parts(parts, body))
}

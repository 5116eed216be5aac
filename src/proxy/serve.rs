//! The proxy's HTTP side, on hyper: HTTP/1.1 with keep-alive both ways, bodies streamed as
//! they come (server-sent events, uploads of any size), WebSocket and other upgrades spliced
//! byte for byte, `X-Forwarded-*` added, and a loop guard. It forwards only to loopback ports
//! a registry holds for the name asked.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::pages;
use super::routes::{Route, Routes, normalize};

type Body = BoxBody<Bytes, hyper::Error>;

/// The header the proxy adds to what it forwards: a request that arrives with it came
/// round in a loop.
pub const LOOP_HEADER: &str = "x-git-ports-proxy";

/// What every connection shares.
pub struct Shared {
    pub routes: Routes,
    /// The proxy's own port: never an upstream.
    pub port: u16,
    /// How long a server may take to answer before a 504.
    pub answer_timeout: Duration,
}

impl Shared {
    pub fn new(routes: Routes, port: u16, answer_timeout: Duration) -> Shared {
        Shared {
            routes,
            port,
            answer_timeout,
        }
    }
}

/// The server connection a client connection last used. HTTP/1.1 carries one request at a
/// time, so each client connection keeps one connection to the server of its own and reuses
/// it while it asks for the same port: no pool, and no lock any other connection waits for.
type Upstream = Arc<tokio::sync::Mutex<Option<(u16, SendRequest<Body>)>>>;

/// Why a request did not reach its server.
enum SendError {
    Connect,
    Http(hyper::Error),
}

/// Sends `req` to `port` on this client connection's server connection, or on a new one
/// (also when the kept one turns out closed: the request comes back unsent, and goes again).
async fn send(
    slot: &Upstream,
    port: u16,
    req: Request<Body>,
) -> Result<Response<Incoming>, SendError> {
    let mut kept = slot.lock().await;
    let mut req = req;
    if let Some((p, sender)) = kept.as_mut()
        && *p == port
        && !sender.is_closed()
        && sender.ready().await.is_ok()
    {
        match sender.try_send_request(req).await {
            Ok(resp) => return Ok(resp),
            Err(mut e) => match e.take_message() {
                Some(again) => req = again,
                None => return Err(SendError::Http(e.into_error())),
            },
        }
    }
    let stream = connect(port).await.map_err(|_| SendError::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(SendError::Http)?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(SendError::Http);
    *kept = Some((port, sender));
    resp
}

async fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(first) => TcpStream::connect(("::1", port)).await.map_err(|_| first)?,
    };
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Serves one listener until the process ends.
pub async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        // A client has this long to send a whole request head.
        let head_timeout = shared.answer_timeout.min(Duration::from_secs(10));
        tokio::spawn(async move {
            let upstream: Upstream = Arc::default();
            let service = hyper::service::service_fn(move |req| {
                let (shared, upstream) = (shared.clone(), upstream.clone());
                async move { Ok::<_, Infallible>(handle(req, shared, peer, upstream).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                // A client that never sends a whole request head is dropped.
                .header_read_timeout(head_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn page(status: StatusCode, wants_html: bool, text: &str) -> Response<Body> {
    let (kind, body) = if wants_html {
        ("text/html; charset=utf-8", pages::html(status, text))
    } else {
        ("text/plain; charset=utf-8", format!("{text}\n"))
    };
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1).
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ] {
        h.remove(n);
    }
}

fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Adds `X-Forwarded-For` (appended), `-Host` and `-Proto`, and the loop guard.
fn forwarded(h: &mut HeaderMap, peer: SocketAddr, host: &str) {
    let ip = peer.ip().to_string();
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    if !h.contains_key("x-forwarded-host")
        && let Ok(v) = HeaderValue::from_str(host)
    {
        h.insert("x-forwarded-host", v);
    }
    if !h.contains_key("x-forwarded-proto") {
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    h.insert(LOOP_HEADER, HeaderValue::from_static("1"));
}

async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    upstream: Upstream,
) -> Response<Body> {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if req.headers().contains_key(LOOP_HEADER) {
        return page(
            StatusCode::LOOP_DETECTED,
            wants_html,
            "git ports proxy: this request came back to the proxy it left (a loop); a server behind the proxy forwards to the proxy",
        );
    }
    let raw_host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let Some(host) = raw_host.as_deref().and_then(normalize) else {
        return page(
            StatusCode::BAD_REQUEST,
            wants_html,
            "git ports proxy: the request names no host: ask for a worktree's name, such as http://feature-x.shop.localhost:PORT/",
        );
    };
    let route = shared.routes.resolve(&host);
    let (port, place) = match &*route {
        Route::To { port, place } => (*port, place),
        Route::NotHeld { place } => {
            let text = format!(
                "git ports proxy: worktree '{}' of {} holds no port for {}: run `git ports allocate {} {}`",
                place.worktree,
                place.repo,
                place.service,
                place.service,
                crate::output::worktree_arg(&place.worktree)
            );
            return page(StatusCode::BAD_GATEWAY, wants_html, &text);
        }
        Route::Unreadable { repo, why } => {
            let text = format!("git ports proxy: {repo} cannot be read now: {why}");
            return page(StatusCode::SERVICE_UNAVAILABLE, wants_html, &text);
        }
        Route::Unknown { names } => {
            let list = if names.is_empty() {
                "none yet (allocate a port in a worktree to give it one)".to_string()
            } else {
                names.join(", ")
            };
            let text =
                format!("git ports proxy: no worktree is named {host}; the names are: {list}");
            return page(StatusCode::NOT_FOUND, wants_html, &text);
        }
    };
    if port == shared.port {
        return page(
            StatusCode::LOOP_DETECTED,
            wants_html,
            &format!("git ports proxy: {host} is the proxy's own port {port}"),
        );
    }
    let down = |why: &str| {
        format!(
            "git ports proxy: nothing answers for {} ({} of worktree '{}' in {}) on port {port}: {why}. Start it in {} with `git ports exec -- COMMAND`",
            place.host,
            place.service,
            place.worktree,
            place.repo,
            place.path.display()
        )
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    // Origin form (`/path?query`), as a server expects it from a client.
    let Ok(uri) = path.parse::<Uri>() else {
        return page(
            StatusCode::BAD_REQUEST,
            wants_html,
            "git ports proxy: a path it cannot forward",
        );
    };
    if is_upgrade(req.headers()) {
        return upgrade(req, uri, port, peer, &host, &shared, wants_html, &down).await;
    }
    *req.uri_mut() = uri;
    strip_hop_by_hop(req.headers_mut());
    forwarded(
        req.headers_mut(),
        peer,
        raw_host.as_deref().unwrap_or(&host),
    );
    let req = req.map(|b| b.boxed());
    match tokio::time::timeout(shared.answer_timeout, send(&upstream, port, req)).await {
        Err(_) => page(
            StatusCode::GATEWAY_TIMEOUT,
            wants_html,
            &down(&format!(
                "it accepted the connection but sent no answer within {}s",
                shared.answer_timeout.as_secs_f64()
            )),
        ),
        Ok(Err(SendError::Connect)) => page(
            StatusCode::BAD_GATEWAY,
            wants_html,
            &down("the connection was refused"),
        ),
        Ok(Err(SendError::Http(e))) => page(
            StatusCode::BAD_GATEWAY,
            wants_html,
            &down(&format!("the connection failed ({e})")),
        ),
        Ok(Ok(resp)) => {
            let mut resp = resp.map(|b| b.boxed());
            strip_hop_by_hop(resp.headers_mut());
            // The proxy speaks HTTP/1.1 to its client whatever the server spoke to it.
            *resp.version_mut() = hyper::Version::HTTP_11;
            resp
        }
    }
}

/// An upgrade (a WebSocket): the request goes to the server on a connection of its own;
/// once it answers 101, the two connections are spliced together.
#[allow(clippy::too_many_arguments)]
async fn upgrade(
    mut req: Request<Incoming>,
    uri: Uri,
    port: u16,
    peer: SocketAddr,
    host: &str,
    shared: &Shared,
    wants_html: bool,
    down: &(dyn Fn(&str) -> String + Sync),
) -> Response<Body> {
    let client_side = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let mut up = Request::builder()
        .method(parts.method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut headers = parts.headers;
    forwarded(&mut headers, peer, host);
    if let Some(h) = up.headers_mut() {
        *h = headers;
    }
    let Ok(up) = up.body(Empty::<Bytes>::new()) else {
        return page(
            StatusCode::BAD_REQUEST,
            wants_html,
            "git ports proxy: an upgrade it cannot forward",
        );
    };
    let conn = match tokio::time::timeout(shared.answer_timeout, connect(port)).await {
        Ok(Ok(c)) => c,
        Ok(Err(_)) => {
            return page(
                StatusCode::BAD_GATEWAY,
                wants_html,
                &down("the connection was refused"),
            );
        }
        Err(_) => {
            return page(
                StatusCode::GATEWAY_TIMEOUT,
                wants_html,
                &down("it did not accept the connection"),
            );
        }
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(TokioIo::new(conn)).await
    else {
        return page(
            StatusCode::BAD_GATEWAY,
            wants_html,
            &down("the connection failed"),
        );
    };
    tokio::spawn(connection.with_upgrades());
    let mut resp = match tokio::time::timeout(shared.answer_timeout, sender.send_request(up)).await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return page(
                StatusCode::BAD_GATEWAY,
                wants_html,
                &down(&format!("the connection failed ({e})")),
            );
        }
        Err(_) => {
            return page(
                StatusCode::GATEWAY_TIMEOUT,
                wants_html,
                &down("it sent no answer"),
            );
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let server_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(c), Ok(s)) = (client_side.await, server_side.await) {
                let _ =
                    tokio::io::copy_bidirectional(&mut TokioIo::new(c), &mut TokioIo::new(s)).await;
            }
        });
    }
    resp.map(|b| b.boxed())
}

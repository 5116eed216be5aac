//! The proxy's HTTP side, on hyper: HTTP/1.1 with keep-alive both ways (and HTTP/2 to a
//! client over TLS, see `tls.rs`), bodies streamed as
//! they come (server-sent events, uploads of any size), WebSocket upgrades spliced byte for
//! byte, `X-Forwarded-*` set (the proxy is the edge: what a client sent under those names is
//! replaced), and a loop guard. It forwards only to loopback ports a registry holds for the
//! name asked, and only to the worktree's own server there (see `upstream.rs`).
//!
//! Every peer is taken for hostile: connections are capped ([`connection_limit`]), a request
//! head must arrive within 10 s, a request body may pause at most [`BODY_IDLE`], a `Host`
//! longer than a DNS name is refused, a moment without file descriptors slows accepting down
//! instead of spinning, and nothing a client names is remembered unless it leads somewhere.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::body::{BODY_IDLE_TOO_LONG, BODY_MALFORMED, watched};
use super::headers::{
    LOOP_HEADER, client_address, forwarded, host_of, is_websocket, strip_hop_by_hop,
};
use super::pages::{self, page, page_with};
use super::routes::{Route, Routes, is_local, normalize};
use super::upstream::{Guard, Refusal};

use super::body::{Body, BodyError};

/// The most client connections the proxy serves at once (each also holds one to a server):
/// far more than a browser opens (six per name, a few hundred in all), and within the open
/// files a process may have. Connections past it wait in the kernel's queue.
pub const MAX_CONNECTIONS: usize = 1024;

pub use super::body::BODY_IDLE;

/// How long a client has to send a whole request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// [`MAX_CONNECTIONS`], or fewer where the open-file limit would not hold that many (two
/// descriptors a connection, and a margin for the files the proxy reads).
pub fn connection_limit() -> usize {
    let files = crate::net::open_file_limit();
    MAX_CONNECTIONS.min(files.saturating_sub(64) / 2).max(8)
}

/// What every connection of one thread shares.
pub struct Shared {
    pub routes: Routes,
    /// Who the proxy may connect to, per port.
    pub guard: Guard,
    /// The proxy's own port: never an upstream.
    pub port: u16,
    /// How long a server may take to answer before a 504.
    pub answer_timeout: Duration,
    /// One permit per client connection, shared by every thread.
    pub connections: Arc<Semaphore>,
    /// HTTPS: the local authority and the certificates issued from it, shared by every thread.
    pub tls: Arc<super::tls::Tls>,
}

impl Shared {
    pub fn new(
        routes: Routes,
        port: u16,
        answer_timeout: Duration,
        connections: Arc<Semaphore>,
        tls: Arc<super::tls::Tls>,
    ) -> Shared {
        Shared {
            routes,
            guard: Guard::default(),
            port,
            answer_timeout,
            connections,
            tls,
        }
    }
}

/// The server connection a client connection last used. HTTP/1.1 carries one request at a
/// time, so each client connection keeps one connection to the server of its own and reuses
/// it while it asks for the same port: no pool, and no lock any other connection waits for.
type Upstream = Arc<tokio::sync::Mutex<Option<(u16, SendRequest<Body>)>>>;

/// Why a request did not reach its server.
enum SendError {
    /// The proxy will not connect: nothing listens, or not only the worktree's own server.
    Refused(Refusal),
    /// The connection was refused.
    Connect,
    Http(hyper::Error),
}

/// Sends `req` to `port` on this client connection's server connection, or on a new one
/// (also when the kept one turns out closed: the request comes back unsent, and goes again).
/// A new connection goes only where [`Guard::target`] allows.
async fn send(
    shared: &Shared,
    slot: &Upstream,
    port: u16,
    place: &super::routes::Place,
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
    let stream = connect(shared, port, place).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(SendError::Http)?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(SendError::Http);
    *kept = Some((port, sender));
    resp
}

/// A new connection to the worktree's own server on `port`.
async fn connect(
    shared: &Shared,
    port: u16,
    place: &super::routes::Place,
) -> Result<TcpStream, SendError> {
    let addr = shared
        .guard
        .target(port, place)
        .map_err(SendError::Refused)?;
    let s = TcpStream::connect(addr)
        .await
        .map_err(|_| SendError::Connect)?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Serves one listener until the process ends.
pub async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut pause = Duration::from_millis(10);
    loop {
        // A connection is taken only when there is room for it.
        let Ok(permit) = shared.connections.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => {
                pause = Duration::from_millis(10);
                c
            }
            Err(e) => {
                if crate::net::starved(&e) {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(stream, peer, shared).await;
        });
    }
}

/// One client connection: TLS when its first byte opens a handshake, else plain HTTP/1.1.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let head_timeout = shared.answer_timeout.min(HEAD_TIMEOUT);
    let mut first = [0u8; 1];
    // A client that sends nothing is dropped as one that never sends a whole head is.
    let Ok(Ok(1)) = tokio::time::timeout(head_timeout, stream.peek(&mut first)).await else {
        return;
    };
    if first[0] != super::tls::HANDSHAKE {
        let service = service(shared.clone(), peer, false);
        let _ = http1(head_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
        return;
    }
    // The handshake, the name asked for included, is bounded as a request head is.
    let accepted = tokio::time::timeout(head_timeout, async {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await
                .ok()?;
        let name = start.client_hello().server_name().and_then(normalize);
        let config = name
            .filter(|n| serves(&shared, n))
            .and_then(|n| shared.tls.config_for(&n));
        match config {
            Some(config) => start.into_stream(config).await.ok(),
            // Refused with an alert, and nothing routed.
            None => {
                if let Some(refusal) = super::tls::refusal() {
                    let _ = start.into_stream(refusal).await;
                }
                None
            }
        }
    })
    .await;
    let Ok(Some(tls)) = accepted else {
        return;
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let service = service(shared.clone(), peer, true);
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(250)
            .serve_connection(TokioIo::new(tls), service)
            .await;
    } else {
        let _ = http1(head_timeout)
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades()
            .await;
    }
}

fn http1(head_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        // A client that never sends a whole request head is dropped.
        .header_read_timeout(head_timeout)
        .keep_alive(true);
    b
}

/// The requests of one client connection, each with the server connection it last used.
fn service(
    shared: Arc<Shared>,
    peer: SocketAddr,
    https: bool,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    let upstream: Upstream = Arc::default();
    // X-Forwarded-For, the same for every request of the connection.
    let client = client_address(peer);
    hyper::service::service_fn(move |req| {
        let (shared, upstream, client) = (shared.clone(), upstream.clone(), client.clone());
        async move { Ok::<_, Infallible>(handle(req, shared, client, upstream, https).await) }
    })
}

/// Whether the proxy gives a certificate for `name`: one of its names (a route to a port, to
/// a worktree without one, or to a conflict it explains), or `localhost`, whose page lists
/// them; always under `localhost`. Every other name is refused in the handshake.
fn serves(shared: &Shared, name: &str) -> bool {
    if name == crate::names::SUFFIX {
        return true;
    }
    name.ends_with(&format!(".{}", crate::names::SUFFIX))
        && !matches!(*shared.routes.resolve(name), Route::Unknown)
}

async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    client: HeaderValue,
    upstream: Upstream,
    https: bool,
) -> Response<Body> {
    let scheme = if https { "https" } else { "http" };
    // What the client spoke (HTTP/2 over TLS, else HTTP/1.x): the server is always spoken to
    // in HTTP/1.1, and the answer goes back in the client's.
    let version = req.version();
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
    let raw_host = match host_of(&req) {
        Ok(h) => h,
        Err(why) => {
            return page(
                StatusCode::BAD_REQUEST,
                wants_html,
                &format!("git ports proxy: {why}"),
            );
        }
    };
    let Some(host) = normalize(&raw_host) else {
        return page(
            StatusCode::BAD_REQUEST,
            wants_html,
            "git ports proxy: the host asked for is no DNS name (empty, not ASCII, or longer than 253 bytes)",
        );
    };
    let route = shared.routes.resolve(&host);
    let (port, place) = match &*route {
        Route::To { port, place } => (*port, place),
        Route::NotHeld { place } => {
            let allocate =
                crate::output::git_in(&place.path, &format!("allocate {}", place.service));
            let mut text = format!(
                "git ports proxy: worktree '{}' of {} holds no port for {}: run `{allocate}`",
                place.worktree, place.repo, place.service,
            );
            if place.origin {
                text.push_str(&format!(
                    ", or point {} at a worktree that holds one: `{}`",
                    place.host,
                    crate::output::git_in(&place.path, "point WORKTREE")
                ));
            }
            return page(StatusCode::BAD_GATEWAY, wants_html, &text);
        }
        Route::Conflict {
            port,
            place,
            holder,
        } => {
            let text = format!(
                "git ports proxy: {} is not served: port {port}, which worktree '{}' of {} holds for {}, is held by {holder} too (a conflict: a copied repository, or a registry restored from a backup), so the server there may be theirs. Run `{}` to give the worktree a port of its own",
                place.host,
                place.worktree,
                place.repo,
                place.service,
                crate::output::git_in(&place.path, "doctor --fix")
            );
            return page(StatusCode::BAD_GATEWAY, wants_html, &text);
        }
        Route::Unreadable { what, why } => {
            let text = format!("git ports proxy: {what} cannot be read now: {why}");
            return page(StatusCode::SERVICE_UNAVAILABLE, wants_html, &text);
        }
        Route::Unknown if !is_local(&host) => {
            return page(
                StatusCode::MISDIRECTED_REQUEST,
                wants_html,
                "git ports proxy: this proxy serves only names under localhost",
            );
        }
        Route::Unknown => {
            let names: Vec<String> = shared.routes.names().into_iter().map(|n| n.0).collect();
            let list = if names.is_empty() {
                "none yet (allocate a port in a worktree to give it one)".to_string()
            } else {
                names.join(", ")
            };
            let text =
                format!("git ports proxy: no worktree is named {host}; the names are: {list}");
            let links = pages::Extra {
                links: names
                    .iter()
                    .map(|n| format!("{scheme}://{n}:{}/", shared.port))
                    .collect(),
                retry: false,
            };
            return page_with(StatusCode::NOT_FOUND, wants_html, &text, &links);
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
            "git ports proxy: nothing answers for {} ({} of worktree '{}' in {}) on port {port}: {why}. Start it with `{}`",
            place.host,
            place.service,
            place.worktree,
            place.repo,
            crate::output::git_in(&place.path, "exec -- COMMAND")
        )
    };
    // A browser waiting for a server to come up sees it as soon as it does.
    let retry = pages::Extra {
        links: Vec::new(),
        retry: true,
    };
    let refused = |r: &Refusal| match r {
        Refusal::Nothing => page_with(
            StatusCode::BAD_GATEWAY,
            wants_html,
            &down("nothing listens on it"),
            &retry,
        ),
        Refusal::NotLoopback(a) => page(
            StatusCode::BAD_GATEWAY,
            wants_html,
            &down(&format!(
                "its server listens on {a} only, not on loopback (127.0.0.1 or ::1)"
            )),
        ),
        Refusal::Foreign(o) => page(
            StatusCode::BAD_GATEWAY,
            wants_html,
            &format!(
                "git ports proxy: {} is not served: port {port} ({} of worktree '{}' in {}) is listened on by {}, and the proxy forwards only to the worktree's own server. Stop that process, or see `git ports status --health-check`",
                place.host,
                place.service,
                place.worktree,
                place.repo,
                o.describe()
            ),
        ),
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
    // An absolute-form target's authority is the host (RFC 9112 §3.2.2): the server gets it
    // as Host, as from a client that asked it directly.
    if req.uri().authority().is_some()
        && let Ok(v) = HeaderValue::from_str(&raw_host)
    {
        req.headers_mut().insert(header::HOST, v);
    }
    if is_websocket(req.headers()) {
        let stream = match connect(&shared, port, place).await {
            Ok(s) => s,
            Err(SendError::Refused(r)) => return refused(&r),
            Err(_) => {
                return page(
                    StatusCode::BAD_GATEWAY,
                    wants_html,
                    &down("the connection was refused"),
                );
            }
        };
        return upgrade(
            req, uri, stream, &client, &raw_host, scheme, &shared, wants_html, &down,
        )
        .await;
    }
    *req.uri_mut() = uri;
    *req.version_mut() = hyper::Version::HTTP_11;
    strip_hop_by_hop(req.headers_mut());
    forwarded(req.headers_mut(), &client, &raw_host, scheme);
    let (parts, body) = req.into_parts();
    let idle = shared.answer_timeout.min(BODY_IDLE);
    let (body, watch) = watched(body, idle);
    let req = Request::from_parts(parts, body);
    // The server's time to answer counts once the client has sent its whole body; a body
    // that stalls is cut off by its own bound.
    let sending = send(&shared, &upstream, port, place, req);
    tokio::pin!(sending);
    let mut deadline = tokio::time::Instant::now() + shared.answer_timeout;
    let sent = loop {
        tokio::select! {
            r = &mut sending => break Ok(r),
            () = tokio::time::sleep_until(deadline) => {
                if watch.finished() {
                    break Err(());
                }
                deadline = tokio::time::Instant::now() + shared.answer_timeout;
            }
        }
    };
    match watch.fault() {
        BODY_MALFORMED => {
            return page(
                StatusCode::BAD_REQUEST,
                wants_html,
                "git ports proxy: the request body is malformed (its chunked encoding cannot be read)",
            );
        }
        BODY_IDLE_TOO_LONG => {
            return page(
                StatusCode::REQUEST_TIMEOUT,
                wants_html,
                &format!(
                    "git ports proxy: the request body sent nothing for {}s",
                    idle.as_secs_f64()
                ),
            );
        }
        _ => {}
    }
    match sent {
        Err(_) => page(
            StatusCode::GATEWAY_TIMEOUT,
            wants_html,
            &down(&format!(
                "it accepted the connection but sent no answer within {}s",
                shared.answer_timeout.as_secs_f64()
            )),
        ),
        Ok(Err(SendError::Refused(r))) => refused(&r),
        Ok(Err(SendError::Connect)) => page_with(
            StatusCode::BAD_GATEWAY,
            wants_html,
            &down("the connection was refused"),
            &retry,
        ),
        Ok(Err(SendError::Http(e))) if e.is_parse() => page(
            StatusCode::BAD_GATEWAY,
            wants_html,
            &format!(
                "git ports proxy: the server on port {port} ({} of worktree '{}' in {}) answered, but not with HTTP: is it the {} server? (a database or redis on a web name answers so)",
                place.service, place.worktree, place.repo, place.service
            ),
        ),
        Ok(Err(SendError::Http(e))) => page(
            StatusCode::BAD_GATEWAY,
            wants_html,
            &down(&format!("the connection failed ({e})")),
        ),
        Ok(Ok(resp)) => {
            let mut resp = resp.map(|b| b.map_err(BodyError::from).boxed());
            strip_hop_by_hop(resp.headers_mut());
            // The proxy speaks the client's HTTP whatever the server spoke to it.
            *resp.version_mut() = version;
            resp
        }
    }
}

/// A WebSocket: the request goes to the server on a connection of its own; once it answers
/// 101, the two connections are spliced together.
#[allow(clippy::too_many_arguments)]
async fn upgrade(
    mut req: Request<Incoming>,
    uri: Uri,
    conn: TcpStream,
    client: &HeaderValue,
    host: &str,
    scheme: &'static str,
    shared: &Shared,
    wants_html: bool,
    down: &(dyn Fn(&str) -> String + Sync),
) -> Response<Body> {
    let client_side = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let mut up = Request::builder()
        .method(parts.method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut headers = parts.headers;
    forwarded(&mut headers, client, host, scheme);
    if let Some(h) = up.headers_mut() {
        *h = headers;
    }
    let (body, _) = watched(body, shared.answer_timeout.min(BODY_IDLE));
    let Ok(up) = up.body(body) else {
        return page(
            StatusCode::BAD_REQUEST,
            wants_html,
            "git ports proxy: an upgrade it cannot forward",
        );
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(conn)).await
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
    resp.map(|b| b.map_err(BodyError::from).boxed())
}

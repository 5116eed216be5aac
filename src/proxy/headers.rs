//! The headers the proxy reads and writes on the way through: the host a request asks for,
//! the hop-by-hop headers it drops, the WebSocket upgrade it splices, and the
//! `X-Forwarded-*` it sets as the edge.

use std::net::SocketAddr;

use hyper::Request;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The header the proxy adds to what it forwards: a request that arrives with it came
/// round in a loop.
pub const LOOP_HEADER: &str = "x-git-ports-proxy";

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1).
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
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

/// Whether the request asks to become a WebSocket: the one upgrade the proxy splices. Any
/// other (`h2c`, which `curl --http2` asks for) is declined, as RFC 9110 §7.8 lets it be: the
/// request goes on as plain HTTP/1.1, body and all.
pub fn is_websocket(h: &HeaderMap) -> bool {
    let has = |name: HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

/// Sets `X-Forwarded-For`, `-Host` and `-Proto` to what this proxy saw, replacing whatever the
/// client sent under those names (and under `Forwarded`): the proxy is the first hop, so a
/// client's own values would be lies the server believes. Adds the loop guard.
pub fn forwarded(h: &mut HeaderMap, client: &HeaderValue, host: &str, scheme: &'static str) {
    h.remove(header::FORWARDED);
    h.insert("x-forwarded-for", client.clone());
    h.remove("x-forwarded-host");
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert("x-forwarded-host", v);
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
    h.insert(LOOP_HEADER, HeaderValue::from_static("1"));
}

/// The client's address as `X-Forwarded-For` gives it: an IP address, always a valid value.
pub fn client_address(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The host a request asks for, as sent (RFC 9112 §3.2): the target's own authority for an
/// absolute-form target (`GET http://feat.shop.localhost/`), else the one `Host` header.
/// `Err` carries the reason for a 400.
pub fn host_of(req: &Request<Incoming>) -> Result<String, &'static str> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err("the request has more than one Host header");
    }
    if let Some(a) = req.uri().authority() {
        return Ok(a.as_str().to_string());
    }
    match req.headers().get(header::HOST) {
        Some(v) => v
            .to_str()
            .map(str::to_string)
            .map_err(|_| "the Host header is not text"),
        None => Err(
            "the request names no host: ask for a worktree's name, such as http://feature-x.shop.localhost:PORT/",
        ),
    }
}

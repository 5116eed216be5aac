//! The pages the proxy answers with itself: one line for curl and scripts, the same words
//! as a small HTML page for browsers.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::body::Body;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a page adds for a browser: links to follow, and whether it reloads itself until the
/// server it waits for answers.
#[derive(Debug, Default)]
pub struct Extra {
    /// URLs to list as links.
    pub links: Vec<String>,
    /// Reload every [`RETRY_SECS`] seconds.
    pub retry: bool,
}

/// How often a page waiting for a server reloads itself.
pub const RETRY_SECS: u32 = 2;

/// `text` as an HTML page titled by the status, with `extra`'s links and reloading.
pub fn html(status: StatusCode, text: &str, extra: &Extra) -> String {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = escape(text.trim_start_matches("git ports proxy: "));
    let refresh = if extra.retry {
        format!("<meta http-equiv=\"refresh\" content=\"{RETRY_SECS}\">")
    } else {
        String::new()
    };
    let waiting = if extra.retry {
        format!(
            "<p><small>This page reloads every {RETRY_SECS} seconds until the server answers.</small></p>\n"
        )
    } else {
        String::new()
    };
    let links = if extra.links.is_empty() {
        String::new()
    } else {
        let items: String = extra
            .links
            .iter()
            .map(|l| format!("<li><a href=\"{u}\">{u}</a></li>", u = escape(l)))
            .collect();
        format!("<ul>{items}</ul>\n")
    };
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">{refresh}<title>{t}</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:46em;margin:3em auto;padding:0 1em}}\
         code{{background:#eee;padding:0 .2em}}</style></head>\n<body><h1>{t}</h1>\n<p>{body}</p>\n\
         {links}{waiting}<p><small>git ports proxy</small></p></body></html>\n",
        t = escape(&title),
    )
}

/// The proxy's own answer: `text` as a page for a browser, one line for anything else.
pub fn page(status: StatusCode, wants_html: bool, text: &str) -> Response<Body> {
    page_with(status, wants_html, text, &Extra::default())
}

/// [`page`] with links, or reloading itself.
pub fn page_with(
    status: StatusCode,
    wants_html: bool,
    text: &str,
    extra: &Extra,
) -> Response<Body> {
    let (kind, body) = if wants_html {
        ("text/html; charset=utf-8", html(status, text, extra))
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

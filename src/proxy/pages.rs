//! The pages the proxy answers with itself: one line for curl and scripts, the same words
//! as a small HTML page for browsers.

use hyper::StatusCode;

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

/// `text` as an HTML page titled by the status.
pub fn html(status: StatusCode, text: &str) -> String {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = escape(text.trim_start_matches("git ports proxy: "));
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:46em;margin:3em auto;padding:0 1em}}\
         code{{background:#eee;padding:0 .2em}}</style></head>\n<body><h1>{t}</h1>\n<p>{body}</p>\n\
         <p><small>git ports proxy</small></p></body></html>\n",
        t = escape(&title),
    )
}

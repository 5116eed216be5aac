//! `ports.derived`: variables computed from a worktree's ports and names, and the small
//! template language they are written in.

use crate::config::is_service_name;

/// A variable computed from a worktree's ports (`ports.derived`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub name: String,
    pub template: Vec<Piece>,
}

/// A part of a template: text, a service's port, its host name, the URL any client on this
/// machine connects to, or the URL a browser opens (`None`: the default service's,
/// `ports.hostService`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Port(String),
    Host(Option<String>),
    Url(Option<String>),
    PublicUrl(Option<String>),
}

/// What a template needs that the worktree has none of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A port of this service.
    Port(String),
    /// A host name (the worktree has none yet).
    Name(String),
    /// A URL scheme for this service (`ports.<service>.scheme`).
    Scheme(String),
}

/// What a template's placeholders stand for, for one worktree.
pub struct Values<'a> {
    pub port: &'a dyn Fn(&str) -> Option<u16>,
    /// The worktree's host name for a service.
    pub host: &'a dyn Fn(&str) -> Option<String>,
    /// The URL scheme of a service.
    pub scheme: &'a dyn Fn(&str) -> Option<String>,
    /// The service a bare placeholder means.
    pub default: &'a str,
    /// The proxy's port when `ports.https` sends browsers through its HTTPS.
    pub https: Option<u16>,
}

/// The URL a browser opens for a service at `host`: `SCHEME://HOST:PORT` on the server's own
/// port, or, with `https` (the proxy's port, `ports.https`), through the proxy's HTTPS
/// (`https://`, `wss://` for WebSocket), which only the proxy speaks. One rule for the
/// variables and the `{public_url}` placeholder.
pub fn public_url(scheme: &str, host: &str, port: u16, https: Option<u16>) -> String {
    match (https, scheme) {
        (Some(proxy), "http" | "https") => format!("https://{host}:{proxy}"),
        (Some(proxy), "ws" | "wss") => format!("wss://{host}:{proxy}"),
        _ => format!("{scheme}://{host}:{port}"),
    }
}

/// Parses a template: `{service}` stands for the service's port, `{host}` and
/// `{host:service}` for a host name, `{url}` and `{url:service}` for `SCHEME://localhost:PORT`,
/// `{public_url}` and `{public_url:service}` for `SCHEME://HOST:PORT`, `{{` and `}}` for
/// braces.
pub fn parse_template(t: &str) -> std::result::Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                let service = |s: &str| is_service_name(s).then(|| Some(s.to_string()));
                let piece = match name.split_once(':') {
                    _ if !closed => None,
                    None if name == "host" => Some(Piece::Host(None)),
                    None if name == "url" => Some(Piece::Url(None)),
                    None if name == "public_url" => Some(Piece::PublicUrl(None)),
                    None => is_service_name(&name).then(|| Piece::Port(name.clone())),
                    Some(("host", s)) => service(s).map(Piece::Host),
                    Some(("url", s)) => service(s).map(Piece::Url),
                    Some(("public_url", s)) => service(s).map(Piece::PublicUrl),
                    Some(_) => None,
                };
                let Some(piece) = piece else {
                    return Err(format!(
                        "'{{{name}}}' is not a service: write {{service}} for a port, {{host}} or {{host:service}} for a host name, {{url}} or {{url:service}} for the URL any client here connects to, {{public_url}} or {{public_url:service}} for the one a browser opens, {{{{ and }}}} for braces"
                    ));
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
            }
            '}' => return Err("a lone '}': write }} for a brace".into()),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

impl Derived {
    /// The value for these ports, names and schemes, or the first thing it needs that the
    /// worktree has none of.
    pub fn render(&self, v: &Values) -> std::result::Result<String, Missing> {
        let port = |s: &str| (v.port)(s).ok_or_else(|| Missing::Port(s.to_string()));
        let host = |s: &str| (v.host)(s).ok_or_else(|| Missing::Name(s.to_string()));
        let scheme = |s: &str| (v.scheme)(s).ok_or_else(|| Missing::Scheme(s.to_string()));
        let mut out = String::new();
        for p in &self.template {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Port(s) => out.push_str(&port(s)?.to_string()),
                Piece::Host(s) => out.push_str(&host(s.as_deref().unwrap_or(v.default))?),
                Piece::Url(s) => {
                    let s = s.as_deref().unwrap_or(v.default);
                    out.push_str(&format!("{}://localhost:{}", scheme(s)?, port(s)?));
                }
                Piece::PublicUrl(s) => {
                    let s = s.as_deref().unwrap_or(v.default);
                    out.push_str(&public_url(&scheme(s)?, &host(s)?, port(s)?, v.https));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(
            parse_template("http://localhost:{api}/{{x}}"),
            Ok(vec![
                Piece::Text("http://localhost:".into()),
                Piece::Port("api".into()),
                Piece::Text("/{x}".into()),
            ])
        );
        for bad in ["{API}", "{}", "{api", "a}b", "{a b}"] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
        let no_host = |_: &str| None;
        let http = |_: &str| Some("http".to_string());
        let d = Derived {
            name: "X".into(),
            template: parse_template("{web}-{api}").unwrap_or_default(),
        };
        let web_only = |s: &str| (s == "web").then_some(8000);
        let v = Values {
            port: &web_only,
            host: &no_host,
            scheme: &http,
            default: "web",
            https: None,
        };
        assert_eq!(d.render(&v), Err(Missing::Port("api".into())));
        let one = |_: &str| Some(1);
        let v = Values { port: &one, ..v };
        assert_eq!(d.render(&v), Ok("1-1".into()));
        // Host names and URLs: the default service's, or a named one's.
        for bad in [
            "{host:}",
            "{url:API}",
            "{hosts:web}",
            "{host:web:x}",
            "{public_url:}",
        ] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
        let d = Derived {
            name: "X".into(),
            template: parse_template("{host} {url:api} {host:api} {public_url}")
                .unwrap_or_default(),
        };
        let host = |s: &str| {
            Some(if s == "web" {
                "a.b.localhost".to_string()
            } else {
                format!("{s}.a.b.localhost")
            })
        };
        let nine = |_: &str| Some(9000);
        let v = Values {
            port: &nine,
            host: &host,
            scheme: &http,
            default: "web",
            https: None,
        };
        assert_eq!(
            d.render(&v),
            Ok(
                "a.b.localhost http://localhost:9000 api.a.b.localhost http://a.b.localhost:9000"
                    .into()
            )
        );
        let v = Values {
            host: &no_host,
            ..v
        };
        assert_eq!(d.render(&v), Err(Missing::Name("web".into())));
        let none = |_: &str| None;
        let url = Derived {
            name: "X".into(),
            template: parse_template("{url:db}").unwrap_or_default(),
        };
        let v = Values { scheme: &none, ..v };
        assert_eq!(url.render(&v), Err(Missing::Scheme("db".into())));
    }
}

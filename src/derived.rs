//! `ports.derived`: variables computed from a worktree's ports and names, and the small
//! template language they are written in.

use crate::config::is_service_name;

/// A variable computed from a worktree's ports (`ports.derived`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub name: String,
    pub template: Vec<Piece>,
}

/// A part of a template: text, a service's port, a service's host name or its URL (`None`:
/// the default service's, `ports.hostService`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Port(String),
    Host(Option<String>),
    Url(Option<String>),
}

/// Parses a template: `{service}` stands for the service's port, `{host}` and
/// `{host:service}` for a host name, `{url}` and `{url:service}` for `http://HOST:PORT`, `{{`
/// and `}}` for braces.
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
                let piece = match name.split_once(':') {
                    _ if !closed => None,
                    None if name == "host" => Some(Piece::Host(None)),
                    None if name == "url" => Some(Piece::Url(None)),
                    None => is_service_name(&name).then(|| Piece::Port(name.clone())),
                    Some(("host", s)) if is_service_name(s) => Some(Piece::Host(Some(s.into()))),
                    Some(("url", s)) if is_service_name(s) => Some(Piece::Url(Some(s.into()))),
                    Some(_) => None,
                };
                let Some(piece) = piece else {
                    return Err(format!(
                        "'{{{name}}}' is not a service: write {{service}} for a port, {{host}} or {{host:service}} for a host name, {{url}} or {{url:service}} for a URL, {{{{ and }}}} for braces"
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
    /// The value for these ports and host names (`host(service)`; the default service is
    /// `default`), or the first thing it needs that the worktree has none of.
    pub fn render(
        &self,
        port: impl Fn(&str) -> Option<u16>,
        host: impl Fn(&str) -> Option<String>,
        default: &str,
    ) -> std::result::Result<String, String> {
        let mut out = String::new();
        for p in &self.template {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Port(s) => out.push_str(&port(s).ok_or_else(|| s.clone())?.to_string()),
                Piece::Host(s) => {
                    let s = s.as_deref().unwrap_or(default);
                    out.push_str(&host(s).ok_or_else(|| format!("a host name for {s}"))?);
                }
                Piece::Url(s) => {
                    let s = s.as_deref().unwrap_or(default);
                    let h = host(s).ok_or_else(|| format!("a host name for {s}"))?;
                    let p = port(s).ok_or_else(|| s.to_string())?;
                    out.push_str(&format!("http://{h}:{p}"));
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
        let d = Derived {
            name: "X".into(),
            template: parse_template("{web}-{api}").unwrap_or_default(),
        };
        let no_host = |_: &str| None;
        assert_eq!(
            d.render(|s| (s == "web").then_some(8000), no_host, "web"),
            Err("api".into())
        );
        assert_eq!(d.render(|_| Some(1), no_host, "web"), Ok("1-1".into()));
        // Host names and URLs: the default service's, or a named one's.
        for bad in ["{host:}", "{url:API}", "{hosts:web}", "{host:web:x}"] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
        let d = Derived {
            name: "X".into(),
            template: parse_template("{host} {url:api} {host:api}").unwrap_or_default(),
        };
        let host = |s: &str| {
            Some(if s == "web" {
                "a.b.localhost".to_string()
            } else {
                format!("{s}.a.b.localhost")
            })
        };
        assert_eq!(
            d.render(|_| Some(9000), host, "web"),
            Ok("a.b.localhost http://api.a.b.localhost:9000 api.a.b.localhost".into())
        );
        assert_eq!(
            d.render(|_| Some(9000), no_host, "web"),
            Err("a host name for web".into())
        );
    }
}

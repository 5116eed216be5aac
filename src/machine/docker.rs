//! Docker: the containers whose published ports this machine's ports forward to, asked of
//! the Docker Engine API where the `docker` CLI would find it (`DOCKER_HOST`, then the
//! current context, then the system's socket), and stopping one. A published port is held by
//! `docker-proxy` (root, working in `/`), by a rootless forwarder, or by no socket at all (a
//! NAT rule), so without this a worktree's own database would look like someone else's.
//!
//! Asked only when a port's listener is a forwarder or hidden, or something answers where
//! nothing listens; silent where no Docker is installed; one notice per command when the
//! engine cannot be reached, never one per port.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Listener;

/// The programs that hold a published port for a container: Docker's userland proxy,
/// rootless Docker's and Podman's forwarders, Docker Desktop's backend on macOS and Windows.
const FORWARDERS: &[&str] = &[
    "docker-proxy",
    "rootlesskit",
    "rootlessport",
    "conmon",
    "slirp4netns",
    "pasta",
    "com.docker.backend",
    "com.docker.vpnkit",
    "vpnkit-bridge",
    "wslrelay",
];

/// The labels Compose (v1 and v2) gives every container it makes.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_DIR: &str = "com.docker.compose.project.working_dir";

/// How long one request to the engine may take.
const WAIT: Duration = Duration::from_secs(3);
/// How long a listing is reused: within one command, and for a second at most in the proxy.
const FRESH: Duration = Duration::from_secs(1);
/// The most a listing may weigh.
const MAX_BODY: usize = 64 << 20;

/// A running container, as the engine lists it; in JSON its id, name, service and project.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Container {
    pub id: String,
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// The compose service and project it was made for, and the project's directory;
    /// `null` for a container Compose did not make (`docker run`).
    pub service: Option<String>,
    pub project: Option<String>,
    #[serde(skip)]
    pub dir: Option<PathBuf>,
    /// The host ports it publishes over TCP, each with its address.
    #[serde(skip)]
    pub published: Vec<(IpAddr, u16)>,
}

impl Container {
    /// `container db of shop-feature-x`, or `container pg (not made by Compose)`.
    pub fn describe(&self) -> String {
        match (&self.service, &self.project) {
            (Some(s), Some(p)) => format!("container {s} of {p}"),
            _ => format!("container {} (not of a compose project)", self.name),
        }
    }
}

/// Where the engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Unix(PathBuf),
    Pipe(PathBuf),
    /// `host:port` on this machine, without TLS.
    Tcp(String),
    /// On another machine (or behind TLS or SSH, which git-ports does not speak): its
    /// published ports are not this machine's.
    Remote(String),
}

fn parse(host: &str) -> Endpoint {
    if let Some(p) = host.strip_prefix("unix://") {
        return Endpoint::Unix(PathBuf::from(p));
    }
    if let Some(p) = host.strip_prefix("npipe://") {
        return Endpoint::Pipe(PathBuf::from(p.replace('/', "\\")));
    }
    if let Some(a) = host.strip_prefix("tcp://") {
        let a = a.trim_end_matches('/');
        let h = a.rsplit_once(':').map_or(a, |(h, _)| h);
        let local = matches!(h, "localhost" | "127.0.0.1" | "[::1]");
        let tls = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        if local && !tls {
            return Endpoint::Tcp(a.to_string());
        }
    }
    Endpoint::Remote(host.to_string())
}

/// An engine's address, and how it is shown (`unix:///var/run/docker.sock`).
type Found = (Endpoint, String);

/// The engine's address as the `docker` CLI chooses it, worked out once per [`FRESH`]: a
/// context costs a `docker context inspect`, and a stop asks for the address once per
/// container.
fn endpoint() -> Option<Found> {
    static FOUND: Mutex<Option<(Instant, Option<Found>)>> = Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, e)) = found.as_ref()
        && at.elapsed() < FRESH
    {
        return e.clone();
    }
    let e = find_endpoint();
    *found = Some((Instant::now(), e.clone()));
    e
}

/// The engine's address as the `docker` CLI chooses it; `None` when none is configured and
/// the system's socket is not there (no Docker on this machine).
fn find_endpoint() -> Option<Found> {
    if let Some(h) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return Some((parse(&h), h));
    }
    let context = std::env::var("DOCKER_CONTEXT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(current_context);
    if let Some(c) = context.filter(|c| c != "default") {
        // A context's endpoint is stored under a digest of its name: the CLI reads it.
        let out = super::run_bounded(
            std::process::Command::new("docker").args([
                "context",
                "inspect",
                &c,
                "--format",
                "{{.Endpoints.docker.Host}}",
            ]),
            WAIT,
        );
        let host = out
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|h| !h.is_empty());
        return Some(match host {
            Some(h) => (parse(&h), h),
            None => (
                Endpoint::Remote(format!("context {c}")),
                format!("context {c}"),
            ),
        });
    }
    let (e, shown) = if cfg!(windows) {
        (
            Endpoint::Pipe(PathBuf::from(r"\\.\pipe\docker_engine")),
            "npipe:////./pipe/docker_engine",
        )
    } else {
        (
            Endpoint::Unix(PathBuf::from("/var/run/docker.sock")),
            "unix:///var/run/docker.sock",
        )
    };
    let there = match &e {
        Endpoint::Unix(p) | Endpoint::Pipe(p) => p.exists(),
        _ => true,
    };
    there.then(|| (e, shown.to_string()))
}

/// `currentContext` in the CLI's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`).
fn current_context() -> Option<String> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().join(".docker")))?;
    let text = crate::store::read_text(&dir.join("config.json")).ok()??;
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "currentContext")]
        current: Option<String>,
    }
    serde_json::from_str::<Config>(&text).ok()?.current
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn connect(e: &Endpoint, wait: Duration) -> std::io::Result<Box<dyn Stream>> {
    match e {
        #[cfg(unix)]
        Endpoint::Unix(p) => {
            let s = std::os::unix::net::UnixStream::connect(p)?;
            s.set_read_timeout(Some(wait))?;
            s.set_write_timeout(Some(wait))?;
            Ok(Box::new(s))
        }
        Endpoint::Pipe(p) => Ok(Box::new(
            std::fs::OpenOptions::new().read(true).write(true).open(p)?,
        )),
        Endpoint::Tcp(a) => {
            use std::net::ToSocketAddrs;
            let addr = a
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))?;
            let s = std::net::TcpStream::connect_timeout(&addr, wait)?;
            s.set_read_timeout(Some(wait))?;
            s.set_write_timeout(Some(wait))?;
            Ok(Box::new(s))
        }
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "not on this machine",
        )),
    }
}

/// One request to the engine: its status code and body. HTTP/1.0, so the answer is the
/// whole body up to the end of the connection.
fn request(
    e: &Endpoint,
    method: &str,
    path: &str,
    wait: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = connect(e, wait)?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut got = Vec::new();
    s.take(MAX_BODY as u64).read_to_end(&mut got)?;
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("the engine's answer is not HTTP"))?;
    let head = String::from_utf8_lossy(&got[..end]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("the engine's answer is not HTTP"))?;
    Ok((code, got[end + 4..].to_vec()))
}

/// Why the engine at `shown` was not asked, as one line.
fn unreachable(shown: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (is this user in the docker group?)".to_string()
        }
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
            "nothing answers (is the daemon running?)".to_string()
        }
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            format!("no answer within {}s", WAIT.as_secs())
        }
        _ => e.to_string(),
    };
    format!("cannot ask Docker at {shown}: {why}; ports its containers publish are not named")
}

#[derive(Deserialize)]
struct Row {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
    #[serde(rename = "Ports", default)]
    ports: Vec<PortRow>,
}

#[derive(Deserialize)]
struct PortRow {
    #[serde(rename = "IP")]
    ip: Option<String>,
    #[serde(rename = "PublicPort")]
    public: Option<u16>,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

fn containers_of(body: &[u8]) -> Option<Vec<Container>> {
    let rows: Vec<Row> = serde_json::from_slice(body).ok()?;
    Some(
        rows.into_iter()
            .map(|r| {
                let labels = r.labels.unwrap_or_default();
                let mut published = Vec::new();
                for p in &r.ports {
                    let (Some(port), Some(ip)) = (p.public, p.ip.as_deref()) else {
                        continue;
                    };
                    if p.kind.as_deref().is_some_and(|k| k != "tcp") {
                        continue;
                    }
                    if let Ok(a) = ip.parse::<IpAddr>()
                        && !published.contains(&(a, port))
                    {
                        published.push((a, port));
                    }
                }
                Container {
                    name: r
                        .names
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_else(|| r.id.chars().take(12).collect()),
                    id: r.id,
                    project: labels.get(LABEL_PROJECT).cloned(),
                    service: labels.get(LABEL_SERVICE).cloned(),
                    // Resolved once here, as worktrees are: a listing serves many ports.
                    dir: labels.get(LABEL_DIR).map(|d| {
                        super::canonical(Path::new(d)).unwrap_or_else(|| PathBuf::from(d))
                    }),
                    published,
                }
            })
            .collect(),
    )
}

/// The one line about Docker this command has to say, if any.
static NOTICE: Mutex<Option<String>> = Mutex::new(None);
/// Whether it was said: once per process.
static NOTED: Mutex<bool> = Mutex::new(false);
/// The last listing and when it was taken.
static LISTED: Mutex<Option<(Instant, Listing)>> = Mutex::new(None);

/// The running containers, or why not: `None` for no Docker here, else the one line to say.
type Listing = Result<Vec<Container>, Option<String>>;

fn note(line: String) {
    let mut noted = NOTED.lock().unwrap_or_else(|e| e.into_inner());
    if !*noted {
        *noted = true;
        *NOTICE.lock().unwrap_or_else(|e| e.into_inner()) = Some(line);
    }
}

/// What this process has to say about Docker (the engine could not be asked, or is another
/// machine's), once.
pub fn notice() -> Option<String> {
    NOTICE.lock().unwrap_or_else(|e| e.into_inner()).take()
}

fn listing() -> Listing {
    let mut listed = LISTED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, list)) = listed.as_ref()
        && at.elapsed() < FRESH
    {
        return list.clone();
    }
    let list = list_now();
    *listed = Some((Instant::now(), list.clone()));
    list
}

/// The running containers; `None` where there is no Docker here or it cannot be asked
/// (which is noted once).
pub fn containers() -> Option<Vec<Container>> {
    match listing() {
        Ok(c) => Some(c),
        Err(Some(line)) => {
            note(line);
            None
        }
        Err(None) => None,
    }
}

/// The running containers, asked in passing: nothing is said when Docker cannot be asked
/// (a command that is not puzzled by a port says nothing about Docker).
pub fn containers_quietly() -> Option<Vec<Container>> {
    listing().ok()
}

fn list_now() -> Listing {
    let (e, shown) = endpoint().ok_or(None)?;
    if let Endpoint::Remote(_) = e {
        return Err(Some(format!(
            "Docker at {shown} is not on this machine: the ports its containers publish are not this machine's, so they are not named"
        )));
    }
    match request(&e, "GET", "/containers/json", WAIT) {
        Ok((200, body)) => containers_of(&body).ok_or_else(|| Some(format!(
            "Docker at {shown} listed its containers in a form git-ports does not read; ports its containers publish are not named"
        ))),
        Ok((code, _)) => Err(Some(format!(
            "Docker at {shown} answered {code} when asked for its containers; ports its containers publish are not named"
        ))),
        Err(err) => Err(Some(unreachable(&shown, &err))),
    }
}

/// Whether `l` may be a container's published port: a forwarder holds it, or the system
/// does not show who does (root's `docker-proxy`, seen by another user).
fn forwarded(l: &Listener) -> bool {
    match &l.process {
        None => l.mine != Some(true),
        Some(p) => {
            let name = Path::new(&p.command)
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            FORWARDERS.contains(&name.as_str())
        }
    }
}

/// Names the containers behind `ports` in `found`: a forwarder's (or a hidden) socket on an
/// address a container publishes becomes that container's, and a port a container publishes
/// with no socket at all (a NAT rule) gains one listener per published address. Docker is
/// asked only when some port is puzzling that way.
pub fn explain(ports: &[u16], found: &mut HashMap<u16, Vec<Listener>>) {
    let puzzling = ports.iter().any(|p| match found.get(p) {
        None => true,
        Some(ls) => ls.iter().any(forwarded),
    });
    if !puzzling {
        return;
    }
    let Some(containers) = containers() else {
        return;
    };
    for c in &containers {
        for &(addr, port) in &c.published {
            if !ports.contains(&port) {
                continue;
            }
            let ls = found.entry(port).or_default();
            if let Some(l) = ls
                .iter_mut()
                .find(|l| l.addr == addr && l.container.is_none() && forwarded(l))
            {
                l.container = Some(c.clone());
            } else if !ls.iter().any(|l| l.addr == addr) && ls.iter().all(|l| l.container.is_some())
            {
                ls.push(Listener {
                    addr,
                    uid: None,
                    mine: None,
                    socket: 0,
                    process: None,
                    container: Some(c.clone()),
                });
            }
        }
    }
    found.retain(|_, ls| !ls.is_empty());
}

/// How stopping a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    AlreadyGone,
    /// The engine could not be asked, or refused.
    Failed,
}

/// Stops container `id`: the engine asks its main process to end and ends it after `grace`.
pub fn stop(id: &str, grace: Duration) -> Stopped {
    let Some((e, _)) = endpoint() else {
        return Stopped::Failed;
    };
    if !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Stopped::Failed;
    }
    let secs = grace.as_secs().max(1);
    let path = format!("/containers/{id}/stop?t={secs}");
    let wait = WAIT + Duration::from_secs(secs);
    *LISTED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    match request(&e, "POST", &path, wait) {
        Ok((204, _)) => Stopped::Stopped,
        Ok((304 | 404, _)) => Stopped::AlreadyGone,
        _ => Stopped::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_read_as_the_docker_cli_reads_them() {
        assert_eq!(
            parse("unix:///run/user/1000/docker.sock"),
            Endpoint::Unix(PathBuf::from("/run/user/1000/docker.sock"))
        );
        assert_eq!(
            parse("npipe:////./pipe/docker_engine"),
            Endpoint::Pipe(PathBuf::from(r"\\.\pipe\docker_engine"))
        );
        assert!(matches!(parse("tcp://10.0.0.5:2376"), Endpoint::Remote(_)));
        assert!(matches!(parse("ssh://me@box"), Endpoint::Remote(_)));
    }

    #[test]
    fn an_engine_that_cannot_be_asked_is_one_line_saying_why() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            unreachable("unix:///var/run/docker.sock", &denied),
            "cannot ask Docker at unix:///var/run/docker.sock: permission denied (is this user in the docker group?); ports its containers publish are not named"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_socket_nothing_listens_on_is_a_daemon_not_running() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("docker.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        let err = request(&Endpoint::Unix(path), "GET", "/containers/json", WAIT)
            .map(|_| ())
            .expect_err("nobody answers");
        assert!(
            unreachable("x", &err).ends_with("nothing answers (is the daemon running?); ports its containers publish are not named"),
            "{err}"
        );
    }

    #[test]
    fn a_listing_names_compose_containers_and_their_tcp_ports_only() {
        let body = br#"[{"Id":"abc123","Names":["/shop-fx-db-1"],
            "Labels":{"com.docker.compose.project":"shop-fx","com.docker.compose.service":"db",
            "com.docker.compose.project.working_dir":"/src/shop-fx"},
            "Ports":[{"IP":"0.0.0.0","PrivatePort":5432,"PublicPort":45432,"Type":"tcp"},
                     {"IP":"::","PrivatePort":5432,"PublicPort":45432,"Type":"tcp"},
                     {"IP":"0.0.0.0","PrivatePort":53,"PublicPort":45053,"Type":"udp"},
                     {"PrivatePort":6379,"Type":"tcp"}]},
            {"Id":"def456","Names":["/pg"],"Labels":null,"Ports":[]}]"#;
        let c = containers_of(body).expect("parses");
        assert_eq!(c[0].describe(), "container db of shop-fx");
        assert_eq!(c[0].dir.as_deref(), Some(Path::new("/src/shop-fx")));
        assert_eq!(
            c[0].published,
            vec![
                ("0.0.0.0".parse().expect("address"), 45432),
                ("::".parse().expect("address"), 45432)
            ]
        );
        assert_eq!(c[1].describe(), "container pg (not of a compose project)");
        assert!(containers_of(b"{").is_none());
    }
}

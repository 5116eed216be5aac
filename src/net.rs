//! Sockets: the bind probe that tells whether a port is in use on this machine, and the
//! health check that connects to allocated ports on a small bounded pool of threads.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Whether something on this machine holds `port`. Binds both `[::]` (dual stack) and
/// `127.0.0.1`: a probe of one family misses a server that listens only on the other.
/// Only "address in use" counts: a machine without IPv6 fails the `[::]` bind for other reasons.
pub fn in_use(port: u16) -> bool {
    let addrs = [
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
    ];
    addrs
        .iter()
        .any(|a| matches!(TcpListener::bind(a), Err(e) if e.kind() == io::ErrorKind::AddrInUse))
}

/// What a connect found.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Something accepted, after this many milliseconds.
    Running { ms: f64 },
    /// Every address refused: nothing is listening.
    Stopped,
    /// Neither accepted nor refused: timeout, unreachable, …
    Error(String),
}

impl Health {
    pub fn word(&self) -> &'static str {
        match self {
            Health::Running { .. } => "running",
            Health::Stopped => "stopped",
            Health::Error(_) => "error",
        }
    }
}

/// The most threads the health check uses. Loopback connects take microseconds, so a few
/// threads would do for answering ports; the rest are there so that ports that never answer
/// wait out their timeouts together: 50 silent ports cost about one timeout, not fifty.
pub const POOL: usize = 64;

/// Connects to `port` on 127.0.0.1 and on ::1 (a server bound to `localhost` may listen on
/// either). Running if either accepts; stopped if both refuse.
pub fn check(port: u16, timeout: Duration) -> Health {
    let mut errors = Vec::new();
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let start = Instant::now();
        match TcpStream::connect_timeout(&SocketAddr::new(ip, port), timeout) {
            Ok(_) => {
                return Health::Running {
                    ms: start.elapsed().as_secs_f64() * 1000.0,
                };
            }
            Err(e) if refused(&e) => {}
            Err(e) => errors.push(format!("{ip}: {}", describe(&e))),
        }
    }
    if errors.is_empty() {
        Health::Stopped
    } else {
        Health::Error(errors.join("; "))
    }
}

/// A refused connect, or an address this machine does not have (no IPv6): nothing listens.
fn refused(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::AddrNotAvailable
    ) || e.raw_os_error() == Some(97) // EAFNOSUPPORT on Linux: no IPv6 at all
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "connection timed out".into(),
        _ => e.to_string(),
    }
}

/// Checks every port concurrently on at most [`POOL`] threads; results in input order.
pub fn check_all(ports: &[u16], timeout: Duration) -> Vec<Health> {
    let results: Vec<Mutex<Option<Health>>> = ports.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = POOL.min(ports.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&port) = ports.get(i) else { break };
                    let h = check(port, timeout);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(h);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Health::Error("not checked".into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_and_check_see_a_real_listener() {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            return;
        };
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        assert!(in_use(port));
        assert!(matches!(
            check(port, Duration::from_secs(2)),
            Health::Running { .. }
        ));
        drop(l);
        assert!(!in_use(port));
        assert_eq!(
            check_all(&[port, port], Duration::from_secs(2)),
            vec![Health::Stopped; 2]
        );
    }
}

/// A process listening on a port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listener {
    pub pid: u32,
    pub command: String,
}

/// Which process listens on `port`, from `/proc` on Linux: the socket's inode from
/// `/proc/net/tcp{,6}`, then the process holding it among `/proc/<pid>/fd`. `None` when it
/// cannot be told (another user's process, or not Linux).
pub fn listener(port: u16) -> Option<Listener> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let p = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if p == Some(port) && *state == "0A" && *inode != "0" {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                let command = std::fs::read_to_string(proc.path().join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default();
                return Some(Listener { pid, command });
            }
        }
    }
    None
}

//! Sockets: the bind probe that tells whether a port is in use on this machine, and the
//! health check that connects to every allocated port on both address families at once,
//! bounded by one timeout.
//!
//! What RUNNING means: the TCP handshake completed on 127.0.0.1 or ::1, that is, a socket is
//! listening there and the kernel accepted the connection for it. A server that never calls
//! `accept` still counts (its queue had room), and so does one that accepts and at once
//! resets. A listener whose queue is full drops the handshake: that is a timeout, reported as
//! ERROR, never as STOPPED. A service whose `ports.<service>.ready` is `http` is RUNNING
//! only once it answers an HTTP request as well.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Whether something on this machine holds `port`: a bind probe of each address this OS
/// needs tried (see `machine::port_taken`).
pub fn in_use(port: u16) -> bool {
    crate::machine::port_taken(port)
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

/// Connects to `port` on 127.0.0.1 and on ::1 at once (a server bound to `localhost` may
/// listen on either): running if either accepts, stopped if both refuse. `timeout` bounds the
/// whole check.
pub fn check(port: u16, timeout: Duration) -> Health {
    check_all(&[port], timeout)
        .pop()
        .unwrap_or_else(|| Health::Error("not checked".into()))
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

/// How many sockets one check may hold open at once: the process's limit on open files, less
/// a margin. Past it, ports are checked in waves, each bounded by the timeout.
fn socket_budget() -> usize {
    open_file_limit().saturating_sub(64).max(64)
}

/// Whether an error is for want of something only time brings back: descriptors (EMFILE,
/// ENFILE), buffers (ENOBUFS), memory (ENOMEM) or processes (EAGAIN from a spawn). A server
/// waits and tries again rather than spin or fail the request.
pub fn starved(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12 | 11))
}

/// How many files this process may have open (its soft limit), where the system says;
/// 1024, the common default, where it does not.
pub fn open_file_limit() -> usize {
    crate::machine::open_file_limit()
}

/// Checks every port on both address families at once, one timeout for all: every connect
/// starts together, nonblocking, and one poll waits for them, so N ports take about one
/// timeout (in waves of what the open-file limit allows). Results are in input order.
/// How a service shows it is ready: accepting a connection (`tcp`, the default), or
/// answering an HTTP request (`http` or `http:/path`), which a server stopped by a signal or
/// still starting does not do although the kernel accepts its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    Tcp,
    Http(String),
}

impl std::str::FromStr for Ready {
    type Err = String;
    fn from_str(s: &str) -> Result<Ready, String> {
        match s.trim() {
            "tcp" => Ok(Ready::Tcp),
            "http" => Ok(Ready::Http("/".into())),
            t => match t.strip_prefix("http:") {
                Some(p) if p.starts_with('/') && !p.contains(char::is_whitespace) => {
                    Ok(Ready::Http(p.to_string()))
                }
                _ => Err("expected tcp, http or http:/PATH".into()),
            },
        }
    }
}

/// Whether `port` gives an HTTP answer to `GET path` within `timeout` (any status counts:
/// the server is up), on 127.0.0.1 then ::1.
pub fn http_answers(port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut last = String::from("no answer");
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        let mut s = match TcpStream::connect_timeout(&SocketAddr::new(ip, port), left) {
            Ok(s) => s,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let left = timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        let _ = s.set_read_timeout(Some(left));
        let _ = s.set_write_timeout(Some(left));
        let req =
            format!("GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
        if let Err(e) = s.write_all(req.as_bytes()) {
            last = e.to_string();
            continue;
        }
        let mut head = [0u8; 5];
        match s.read_exact(&mut head) {
            Ok(()) if &head == b"HTTP/" => return Ok(()),
            Ok(()) => last = "answered, but not HTTP".into(),
            Err(_) => {
                last = format!(
                    "accepts connections but gave no HTTP answer within {:.1}s",
                    timeout.as_secs_f64()
                )
            }
        }
    }
    Err(last)
}

/// Asks each running port whose service wants an HTTP answer for one, all at once (64 at
/// a time), within `timeout`: a port that does not answer becomes an error saying so.
pub fn confirm_http(checks: &mut [(&mut Health, u16, String)], timeout: Duration) {
    for chunk in checks.chunks_mut(64) {
        std::thread::scope(|scope| {
            let asked: Vec<_> = chunk
                .iter_mut()
                .filter(|(h, _, _)| matches!(h, Health::Running { .. }))
                .map(|(h, port, path)| {
                    let (port, path) = (*port, path.clone());
                    (h, scope.spawn(move || http_answers(port, &path, timeout)))
                })
                .collect();
            for (h, answer) in asked {
                if let Ok(Err(e)) = answer.join() {
                    **h = Health::Error(e);
                }
            }
        });
    }
}

pub fn check_all(ports: &[u16], timeout: Duration) -> Vec<Health> {
    let mut results: Vec<Option<Health>> = vec![None; ports.len()];
    let wave = (socket_budget() / 2).max(1);
    for (ports, out) in ports.chunks(wave).zip(results.chunks_mut(wave)) {
        check_wave(ports, timeout, out);
    }
    results
        .into_iter()
        .map(|h| h.unwrap_or_else(|| Health::Error("not checked".into())))
        .collect()
}

struct Attempt {
    port: usize,
    ip: IpAddr,
    stream: mio::net::TcpStream,
}

fn check_wave(ports: &[u16], timeout: Duration, out: &mut [Option<Health>]) {
    use mio::{Events, Interest, Poll, Token};
    let start = Instant::now();
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            for o in out.iter_mut() {
                *o = Some(Health::Error(format!("cannot poll: {e}")));
            }
            return;
        }
    };
    // Per port: connects still under way, and what the finished ones said.
    let mut pending = vec![0u8; ports.len()];
    let mut errors: Vec<Vec<String>> = vec![Vec::new(); ports.len()];
    let mut attempts: Vec<Option<Attempt>> = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            match mio::net::TcpStream::connect(SocketAddr::new(ip, port)) {
                Ok(mut stream) => {
                    let token = Token(attempts.len());
                    match poll
                        .registry()
                        .register(&mut stream, token, Interest::WRITABLE)
                    {
                        Ok(()) => {
                            pending[i] += 1;
                            attempts.push(Some(Attempt {
                                port: i,
                                ip,
                                stream,
                            }));
                        }
                        Err(e) => errors[i].push(format!("{ip}: {e}")),
                    }
                }
                Err(e) if refused(&e) => {}
                Err(e) => errors[i].push(format!("{ip}: {}", describe(&e))),
            }
        }
    }
    let settle = |i: usize, out: &mut [Option<Health>], errors: &[Vec<String>]| {
        if out[i].is_none() {
            out[i] = Some(if errors[i].is_empty() {
                Health::Stopped
            } else {
                Health::Error(errors[i].join("; "))
            });
        }
    };
    for (i, _) in pending.iter().enumerate().filter(|(_, p)| **p == 0) {
        settle(i, out, &errors);
    }
    let mut left = pending.iter().filter(|&&p| p > 0).count();
    let mut events = Events::with_capacity(1024);
    let deadline = start + timeout;
    while left > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if let Err(e) = poll.poll(&mut events, Some(deadline - now)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        for event in events.iter() {
            let Some(slot) = attempts.get_mut(event.token().0) else {
                continue;
            };
            let Some(a) = slot.take() else { continue };
            let i = a.port;
            let outcome = match a.stream.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => match a.stream.peer_addr() {
                    Ok(_) => Ok(()),
                    // Woken before the handshake ended: keep waiting.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        *slot = Some(a);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            pending[i] = pending[i].saturating_sub(1);
            match outcome {
                Ok(()) if out[i].is_none() => {
                    out[i] = Some(Health::Running {
                        ms: start.elapsed().as_secs_f64() * 1000.0,
                    });
                    left -= 1;
                    // The other family's connect, if any, no longer matters.
                    pending[i] = 0;
                    continue;
                }
                Ok(()) => {}
                Err(e) if refused(&e) => {}
                Err(e) => errors[i].push(format!("{}: {}", a.ip, describe(&e))),
            }
            if pending[i] == 0 && out[i].is_none() {
                settle(i, out, &errors);
                left -= 1;
            }
        }
    }
    // Whatever is still under way at the deadline timed out.
    for i in 0..ports.len() {
        if out[i].is_none() {
            errors[i].push("connection timed out".into());
            settle(i, out, &errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

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

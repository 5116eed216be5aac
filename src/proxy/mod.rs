//! `git ports proxy`: one local reverse proxy per user that routes by name. It listens on
//! loopback only (127.0.0.1 and ::1), on `ports.proxyPort` (default 4480, outside every
//! default service range), and sends `feature-x.shop.localhost` to the port the registry of
//! `shop` holds for worktree `feature-x`, for every repository the ledger names, read live.
//! `proxy start` runs it in the background (its state, `proxy.json`, and its log beside the
//! ledger); `proxy` alone runs it in the foreground. The async runtime lives in this module.

mod pages;
pub mod routes;
mod serve;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::{DEFAULT_PROXY_PORT, KEY_PROXY_PORT, KEY_PROXY_TIMEOUT};
use crate::lease::{Alive, Holder};
use crate::ledger::LedgerStore;
use crate::output::Out;
use routes::{Route, Routes};

pub use serve::LOOP_HEADER;

/// The file, beside the ledger, that says which process runs the proxy and on which port.
pub const STATE_FILE: &str = "proxy.json";
/// The background proxy's log, beside the ledger.
pub const LOG_FILE: &str = "proxy.log";
/// How long a server may take to answer when `ports.proxyTimeout` is not set.
const DEFAULT_ANSWER_SECS: f64 = 60.0;

/// The running proxy, as its state file records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub holder: Holder,
    pub port: u16,
}

/// How the proxy is set up: git config (global, or the repository's where it runs).
pub struct Setup {
    pub port: u16,
    pub answer_timeout: Duration,
    pub ledger: LedgerStore,
}

fn git_config(key: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", "--get", key])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Setup {
    pub fn read() -> Result<Setup> {
        let ledger = LedgerStore::locate()?.ok_or_else(|| {
            Error::Usage("no data directory for the ledger: set GIT_PORTS_HOME".into())
        })?;
        let bad = |key: &str, value: &str, reason: &str| Error::Config {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let port = match git_config(KEY_PROXY_PORT) {
            None => DEFAULT_PROXY_PORT,
            Some(v) => v
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| bad(KEY_PROXY_PORT, &v, "expected a port from 1 to 65535"))?,
        };
        let secs = match git_config(KEY_PROXY_TIMEOUT) {
            None => DEFAULT_ANSWER_SECS,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| (0.001..=3600.0).contains(s))
                .ok_or_else(|| bad(KEY_PROXY_TIMEOUT, &v, "expected seconds from 0.001 to 3600"))?,
        };
        // The proxy's state and log go beside the ledger, which may not exist yet.
        ledger.make_dir()?;
        Ok(Setup {
            port,
            answer_timeout: Duration::from_secs_f64(secs),
            ledger,
        })
    }

    fn dir(&self) -> PathBuf {
        self.ledger
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir().join(STATE_FILE)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join(LOG_FILE)
    }

    /// The proxy that runs now, if its state file names a live process. A file left by a
    /// proxy that was killed names a process that is gone (or a pid now someone else's,
    /// whose start time differs): it is no obstacle.
    pub fn running(&self) -> Option<State> {
        running(&self.ledger)
    }

    /// Records this process as the proxy, in one atomic write.
    fn record(&self) -> Result<()> {
        let holder = Holder::of(std::process::id()).map_err(|r| Error::LeaseRefused {
            pid: std::process::id(),
            reason: r.reason(),
        })?;
        let text = serde_json::to_string_pretty(&State {
            holder,
            port: self.port,
        })
        .map_err(|e| Error::Usage(e.to_string()))?;
        let path = self.state_path();
        let io = |action| {
            let path = path.clone();
            move |source| Error::Io {
                path,
                action,
                source,
            }
        };
        let lock = crate::store::lock(&path, 10.0, Instant::now()).map_err(|e| match e {
            crate::store::LockError::Io(e) => io("cannot lock")(e),
            crate::store::LockError::Timeout { .. } => Error::Usage(format!(
                "{}: another git ports proxy is starting",
                path.display()
            )),
        })?;
        crate::store::write_atomic(&path, &text, &lock, crate::fault::Target::ProxyState)
            .map_err(io("cannot write"))
    }
}

/// The proxy that runs now, from its state file beside `ledger` (see [`Setup::running`]).
pub fn running(ledger: &LedgerStore) -> Option<State> {
    let path = ledger.path.parent()?.join(STATE_FILE);
    let text = std::fs::read_to_string(path).ok()?;
    let state: State = serde_json::from_str(&text).ok()?;
    Alive::default().holds(&state.holder).then_some(state)
}

/// Binds both loopback addresses, the IPv4 one at least; a port taken is one line naming
/// who holds it.
fn bind(port: u16) -> Result<Vec<std::net::TcpListener>> {
    let taken = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            let who = crate::owner::listeners(&[port])
                .get(&port)
                .map(|l| crate::owner::Owner::of(l, None, &[]).describe())
                .unwrap_or_else(|| "another process".into());
            Error::Usage(format!(
                "port {port} is already in use by {who}: stop it, or give the proxy another port with `git config --global {KEY_PROXY_PORT} PORT`"
            ))
        } else if e.kind() == std::io::ErrorKind::PermissionDenied {
            Error::Usage(format!(
                "port {port} needs a privilege this process lacks (ports below 1024 do): grant it (see `git ports help proxy`) or use a port of 1024 or more"
            ))
        } else {
            Error::Usage(format!("cannot listen on port {port}: {e}"))
        }
    };
    let v4 = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(taken)?;
    let mut all = vec![v4];
    match std::net::TcpListener::bind(("::1", port)) {
        Ok(v6) => all.push(v6),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(taken(e)),
        // No IPv6 on this machine: 127.0.0.1 serves every client.
        Err(_) => {}
    }
    for l in &all {
        l.set_nonblocking(true)
            .map_err(|e| Error::Usage(format!("cannot listen on port {port}: {e}")))?;
    }
    Ok(all)
}

/// `git ports proxy`: runs the proxy in the foreground until killed.
pub fn foreground(out: &mut Out) -> Result<()> {
    let setup = Setup::read()?;
    if let Some(s) = setup
        .running()
        .filter(|s| s.holder.pid != std::process::id())
    {
        return Err(Error::Usage(format!(
            "git ports proxy already runs (pid {}) on port {}",
            s.holder.pid, s.port
        )));
    }
    let listeners = bind(setup.port)?;
    setup.record()?;
    let addrs: Vec<String> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| format!("http://{a}"))
        .collect();
    eprintln!(
        "git ports proxy: listening on {} (pid {})",
        addrs.join(" and "),
        std::process::id()
    );
    out.text.clear();
    // One single-threaded runtime per core, each accepting from the same sockets: every task
    // of a connection (the client's side and its server's) stays on the thread that took it,
    // so a request never waits for a wake-up from another thread; and each thread has its own
    // routes, so no lookup waits for another thread's.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
    let cannot = |e: std::io::Error| Error::Usage(format!("cannot run the proxy: {e}"));
    let mut running = Vec::new();
    for _ in 0..threads {
        let mine: Vec<std::net::TcpListener> = listeners
            .iter()
            .map(std::net::TcpListener::try_clone)
            .collect::<std::io::Result<_>>()
            .map_err(cannot)?;
        let shared = Arc::new(serve::Shared::new(
            Routes::new(Some(setup.ledger.clone())),
            setup.port,
            setup.answer_timeout,
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(cannot)?;
        running.push(std::thread::spawn(move || {
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                for l in mine {
                    if let Ok(l) = tokio::net::TcpListener::from_std(l) {
                        tasks.push(tokio::spawn(serve::accept(l, shared.clone())));
                    }
                }
                for t in tasks {
                    let _ = t.await;
                }
            })
        }));
    }
    for t in running {
        let _ = t.join();
    }
    Ok(())
}

/// `git ports proxy start`: the proxy in the background, unless one runs.
pub fn start(out: &mut Out) -> Result<()> {
    let setup = Setup::read()?;
    if let Some(s) = setup.running() {
        out.line(format!(
            "git ports proxy already runs (pid {}) on port {}",
            s.holder.pid, s.port
        ));
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        path: PathBuf::from("git-ports"),
        action: "cannot find the running binary",
        source,
    })?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(setup.log_path())
        .map_err(|source| Error::Io {
            path: setup.log_path(),
            action: "cannot open",
            source,
        })?;
    let err = log.try_clone().map_err(|source| Error::Io {
        path: setup.log_path(),
        action: "cannot open",
        source,
    })?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("proxy")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: a ^C in the terminal that started it does not stop it.
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: "git-ports proxy".into(),
        source,
    })?;
    let pid = child.id();
    let start = Instant::now();
    loop {
        if let Some(s) = setup.running().filter(|s| s.holder.pid == pid) {
            out.line(format!(
                "✓ git ports proxy runs (pid {pid}) on http://127.0.0.1:{} and http://[::1]:{}",
                s.port, s.port
            ));
            out.line(format!("  log: {}", setup.log_path().display()));
            return Ok(());
        }
        if let Ok(Some(_)) = child.try_wait() {
            let log = std::fs::read_to_string(setup.log_path()).unwrap_or_default();
            let last = log
                .lines()
                .rev()
                .find(|l| l.starts_with("git-ports: "))
                .map(|l| l.trim_start_matches("git-ports: ").to_string())
                .unwrap_or_else(|| format!("it exited; see {}", setup.log_path().display()));
            return Err(Error::Usage(format!("the proxy did not start: {last}")));
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(Error::Usage(format!(
                "the proxy (pid {pid}) did not come up within 10s; see {}",
                setup.log_path().display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `git ports proxy stop`.
pub fn stop(out: &mut Out) -> Result<()> {
    let setup = Setup::read()?;
    let Some(s) = setup.running() else {
        out.line("git ports proxy is not running");
        let _ = std::fs::remove_file(setup.state_path());
        return Ok(());
    };
    let owner = crate::owner::Owner {
        pid: Some(s.holder.pid),
        ..crate::owner::Owner::unknown()
    };
    let ending = crate::stop::stop(&owner, Duration::from_secs(5));
    let _ = std::fs::remove_file(setup.state_path());
    out.line(format!(
        "✓ git ports proxy (pid {}) {}",
        s.holder.pid,
        match ending {
            crate::stop::Ending::Killed => "ignored SIGTERM and was killed",
            crate::stop::Ending::NotPermitted => "could not be signalled",
            _ => "stopped",
        }
    ));
    Ok(())
}

/// One name the proxy serves, for `proxy status` and `status`.
#[derive(Debug, Clone, Serialize)]
pub struct Served {
    pub url: String,
    pub host: String,
    pub repository: String,
    pub worktree: String,
    pub service: String,
    /// The port it forwards to; null when the worktree holds none for the service.
    pub port: Option<u16>,
    /// A repository's origin, which follows `git ports point`.
    pub origin: bool,
}

/// Every name the ledger knows, with where the proxy sends it now.
pub fn served(ledger: &LedgerStore, port: u16) -> Vec<Served> {
    let Ok(l) = ledger.load() else {
        return Vec::new();
    };
    let routes = Routes::new(Some(ledger.clone()));
    let origins: Vec<String> = l
        .names
        .repos
        .iter()
        .map(|r| crate::names::origin(&r.label))
        .collect();
    origins
        .iter()
        .map(|h| (h.clone(), true))
        .chain(l.names.hosts.keys().map(|h| (h.clone(), false)))
        .filter_map(|(host, origin)| {
            let route = routes.resolve(&host);
            let (port_to, place) = match &*route {
                Route::To { port, place } => (Some(*port), place.clone()),
                Route::NotHeld { place } => (None, place.clone()),
                _ => return None,
            };
            Some(Served {
                url: format!("http://{host}:{port}"),
                host,
                repository: place.repo,
                worktree: place.worktree,
                service: place.service,
                port: port_to,
                origin,
            })
        })
        .collect()
}

/// `git ports proxy status`.
pub fn status(out: &mut Out, json: bool) -> Result<bool> {
    let setup = Setup::read()?;
    let running = setup.running();
    let port = running.as_ref().map_or(setup.port, |s| s.port);
    let names = served(&setup.ledger, port);
    if json {
        #[derive(Serialize)]
        struct Report {
            running: bool,
            pid: Option<u32>,
            port: u16,
            names: Vec<Served>,
        }
        out.json(&Report {
            running: running.is_some(),
            pid: running.as_ref().map(|s| s.holder.pid),
            port,
            names,
        });
        return Ok(running.is_some());
    }
    match &running {
        Some(s) => out.line(format!(
            "git ports proxy runs (pid {}) on port {}",
            s.holder.pid, s.port
        )),
        None => out.line(format!(
            "git ports proxy is not running (it would listen on port {port}; start it with `git ports proxy start`)"
        )),
    }
    for n in &names {
        let to = match n.port {
            Some(p) => format!("{} of '{}' ({p})", n.service, n.worktree),
            None => format!("'{}', which holds no port for {}", n.worktree, n.service),
        };
        let origin = if n.origin { " (origin)" } else { "" };
        out.line(format!("  {}{origin} → {to}, {}", n.url, n.repository));
    }
    Ok(running.is_some())
}

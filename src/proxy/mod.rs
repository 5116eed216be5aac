//! `git ports proxy`: one local reverse proxy per user that routes by name. It listens on
//! loopback only (127.0.0.1 and ::1), on `ports.proxyPort` (default 4480, outside every
//! default service range), and sends `feature-x.shop.localhost` to the port the registry of
//! `shop` holds for worktree `feature-x`, for every repository the ledger names, read live.
//! `proxy start` runs it in the background (its state, `proxy.json`, and its log beside the
//! ledger); `proxy` alone runs it in the foreground. The async runtime lives in this module.

mod body;
pub mod ca;
mod headers;
mod pages;
pub mod routes;
mod serve;
mod tls;
mod trust;
pub use trust::{trust, untrust};
mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::KEY_PROXY_PORT;
use crate::ledger::LedgerStore;
use crate::machine::{Census, Identity, Life};
use crate::output::Out;
use routes::{Route, Routes};

pub use headers::LOOP_HEADER;
pub use serve::{BODY_IDLE, MAX_CONNECTIONS};

/// The file, beside the ledger, that says which process runs the proxy and on which port.
pub const STATE_FILE: &str = "proxy.json";
/// The background proxy's log, beside the ledger.
pub const LOG_FILE: &str = "proxy.log";

/// The running proxy, as its state file records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub holder: Identity,
    pub port: u16,
}

/// Why the process a state file names is not this user's git-ports proxy: the file is never
/// taken at its word before anything is signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotProxy {
    /// The process is gone (or its pid is someone else's now).
    Gone,
    /// Pid 1: the system's first process, or a pid namespace's.
    First,
    /// Another user's process.
    OtherUser,
    /// A process that does not run `git-ports proxy`.
    Program,
    /// A git-ports proxy that does not listen on the port the file names.
    NotListening,
    /// A process of another pid namespace, whose pid means another process here.
    Elsewhere,
}

impl NotProxy {
    fn describe(self) -> &'static str {
        match self {
            NotProxy::Gone => "which is no longer running",
            NotProxy::First => "the first process of its system or pid namespace",
            NotProxy::OtherUser => "a process of another user",
            NotProxy::Program => "a process that is not `git-ports proxy`",
            NotProxy::NotListening => "which does not listen on the proxy's port",
            NotProxy::Elsewhere => "a process of another pid namespace",
        }
    }
}

/// Whether `state` names this user's git-ports proxy, running: the process that started
/// then (its start time and boot), not pid 1, this user's, running `git-ports proxy`, and
/// listening on the port. Only then is it signalled, or taken for the proxy.
pub fn proven(state: &State) -> std::result::Result<(), NotProxy> {
    let pid = state.holder.pid;
    if pid <= 1 {
        return Err(NotProxy::First);
    }
    // A pid counted in another pid namespace names another process here.
    if !state.holder.counted_here() {
        return Err(NotProxy::Elsewhere);
    }
    if !matches!(
        Census::default().life(&state.holder),
        Life::Alive(p) if p == pid
    ) {
        return Err(NotProxy::Gone);
    }
    if crate::machine::same_user(pid) != Some(true) {
        return Err(NotProxy::OtherUser);
    }
    let Some((name, args)) = crate::machine::program(pid) else {
        return Err(NotProxy::Gone);
    };
    let own = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_name().map(std::ffi::OsStr::to_os_string));
    let named = name == "git-ports" || name == "git-ports.exe" || own.is_some_and(|o| o == name);
    if !named || args.first().is_none_or(|a| a != "proxy") || args.len() > 1 {
        return Err(NotProxy::Program);
    }
    if !crate::machine::listens(pid, state.port) {
        return Err(NotProxy::NotListening);
    }
    Ok(())
}

/// How the proxy is set up: git config (global, or the repository's where it runs).
pub struct Setup {
    pub port: u16,
    /// `ports.exclude` fences the port off.
    excluded: bool,
    pub answer_timeout: Duration,
    pub ledger: LedgerStore,
    pub(super) lock_timeout: f64,
}

impl Setup {
    pub fn read() -> Result<Setup> {
        let ledger = LedgerStore::locate()?.ok_or_else(|| {
            Error::Usage("no data directory for the ledger: set GIT_PORTS_HOME".into())
        })?;
        // The repository's config where the command runs, else the user's.
        let settings = match crate::repo::Repo::open() {
            Ok(r) => r.settings,
            Err(_) => crate::repo::Repo::outside()?.settings,
        };
        if let Some(e) = settings.stopping(crate::config::Stops::Proxy, None) {
            return Err(e);
        }
        // The proxy's state and log go beside the ledger, which may not exist yet.
        ledger.make_dir()?;
        Ok(Setup {
            excluded: settings.fenced(settings.proxy_port) == Some(crate::config::Fence::Excluded),
            port: settings.proxy_port,
            answer_timeout: Duration::from_secs_f64(settings.proxy_timeout),
            lock_timeout: settings.lock_timeout,
            ledger,
        })
    }

    pub fn dir(&self) -> PathBuf {
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

    /// The state file and whether it names the running proxy; `None` when there is none.
    /// A file another user owns or can write is refused.
    fn state(&self) -> Result<Option<(State, std::result::Result<(), NotProxy>)>> {
        let path = self.state_path();
        crate::ledger::private(&path, "file")?;
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let Ok(state) = serde_json::from_str::<State>(&text) else {
            return Ok(None);
        };
        let proof = proven(&state);
        Ok(Some((state, proof)))
    }

    /// The proxy that runs now, if the state file names it (see [`proven`]). A file left
    /// by a proxy that was killed, or naming any other process, is no obstacle.
    pub fn running(&self) -> Result<Option<State>> {
        Ok(self
            .state()?
            .and_then(|(s, proof)| proof.is_ok().then_some(s)))
    }

    /// Records this process as the proxy, in one atomic write.
    fn record(&self) -> Result<()> {
        let holder = Identity::of_self().map_err(|r| Error::LeaseRefused {
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

    /// Refuses a port the ledger gives to a worktree or a lease: the proxy would take it
    /// from under that server.
    fn check_port_free(&self) -> Result<()> {
        let ledger = self.ledger.load()?;
        let fence = match ledger.reserved.get(&self.port) {
            Some(r) => Some(crate::config::Fence::Reserved(r.reason.clone())),
            None => self.excluded.then_some(crate::config::Fence::Excluded),
        };
        if let Some(fence) = fence {
            return Err(Error::Usage(format!(
                "port {} is {}: give the proxy another port with `git config --global {KEY_PROXY_PORT} PORT`",
                self.port,
                fence.describe()
            )));
        }
        if let Some(c) = ledger.ports.get(&self.port) {
            return Err(Error::Usage(format!(
                "port {} is held by {} in the ledger: give the proxy another port with `git config --global {KEY_PROXY_PORT} PORT`",
                self.port,
                c.describe()
            )));
        }
        Ok(())
    }
}

/// The proxy that runs now, from its state file beside `ledger`, for reports: `None` when
/// the file is missing, not this user's, or names anything but this user's running proxy.
pub fn running(ledger: &LedgerStore) -> Option<State> {
    let path = ledger.path.parent()?.join(STATE_FILE);
    crate::ledger::private(&path, "file").ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    let state: State = serde_json::from_str(&text).ok()?;
    proven(&state).is_ok().then_some(state)
}

/// Whether each runtime thread listens on sockets of its own (`SO_REUSEPORT`, which Linux
/// balances over the sockets of a group by connection), rather than all sharing one: shared,
/// a burst of connections lands mostly on whichever thread wakes first. Elsewhere the option
/// means something else (the last socket bound takes all, on BSD and macOS), so they share.
const PER_THREAD: bool = cfg!(target_os = "linux");

/// A listening socket on `addr`, in a `SO_REUSEPORT` group where [`PER_THREAD`].
fn listen_on(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    #[cfg(unix)]
    s.set_reuse_address(true)?;
    #[cfg(all(unix, not(target_os = "cygwin")))]
    if PER_THREAD {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds both loopback addresses, the IPv4 one at least; a port taken is one line naming
/// who holds it.
fn bind(port: u16) -> Result<Vec<std::net::TcpListener>> {
    let taken = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            let who = crate::owner::listeners(&[port])
                .get(&port)
                .map(|ls| crate::owner::Owner::of(ls, None, &[]).describe())
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
    let v4 = listen_on((std::net::Ipv4Addr::LOCALHOST, port).into()).map_err(taken)?;
    let mut all = vec![v4];
    match listen_on((std::net::Ipv6Addr::LOCALHOST, port).into()) {
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
        .running()?
        .filter(|s| s.holder.pid != std::process::id())
    {
        return Err(Error::Usage(format!(
            "git ports proxy already runs (pid {}) on port {}",
            s.holder.pid, s.port
        )));
    }
    setup.check_port_free()?;
    let listeners = bind(setup.port)?;
    setup.record()?;
    // A daemon keeps no directory: in a worktree, it would count as that worktree's server
    // (and keep a removed worktree's directory alive).
    std::env::set_current_dir("/").map_err(|source| Error::Io {
        path: PathBuf::from("/"),
        action: "cannot change to",
        source,
    })?;
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
    // One single-threaded runtime per core, each accepting from sockets of its own (Linux:
    // the kernel spreads connections over them) or from the same ones: every task of a
    // connection (the client's side and its server's) stays on the thread that took it, so a
    // request never waits for a wake-up from another thread; and each thread has its own
    // routes, so no lookup waits for another thread's.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
    let cannot = |e: std::io::Error| Error::Usage(format!("cannot run the proxy: {e}"));
    let connections = Arc::new(tokio::sync::Semaphore::new(serve::connection_limit()));
    let mut running = Vec::new();
    let addrs: Vec<std::net::SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let mut sets: Vec<Vec<std::net::TcpListener>> = Vec::new();
    for _ in 1..threads {
        let set = match PER_THREAD {
            true => addrs
                .iter()
                .map(|a| listen_on(*a))
                .collect::<std::io::Result<_>>(),
            false => listeners
                .iter()
                .map(std::net::TcpListener::try_clone)
                .collect::<std::io::Result<_>>(),
        };
        sets.push(set.map_err(cannot)?);
    }
    sets.insert(0, listeners);
    // A group of this user's sockets could be joined by another process of this user's
    // between the check that the port is free and the binds: whoever is in it besides these
    // threads would be handed connections, so the proxy refuses to run beside it.
    if PER_THREAD {
        let ours: usize = sets.iter().map(Vec::len).sum();
        let listening = crate::machine::sockets(setup.port).len();
        if listening > ours {
            return Err(Error::Usage(format!(
                "port {} is listened on by another process as well: stop it, or give the proxy another port with `git config --global {KEY_PROXY_PORT} PORT`",
                setup.port
            )));
        }
    }
    let tls = Arc::new(tls::Tls::new(setup.dir()));
    for mine in sets {
        mine.iter().for_each(crate::machine::own);
        let shared = Arc::new(serve::Shared::new(
            Routes::new(Some(setup.ledger.clone())),
            setup.port,
            setup.answer_timeout,
            connections.clone(),
            tls.clone(),
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
    if let Some(s) = setup.running()? {
        if s.port != setup.port {
            return Err(Error::Usage(format!(
                "git ports proxy already runs (pid {}) on port {}, not on port {} as {KEY_PROXY_PORT} says now: stop it with `git ports proxy stop`, then start it again",
                s.holder.pid, s.port, setup.port
            )));
        }
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
    setup.check_port_free()?;
    cmd.arg("proxy")
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err);
    // Its own process group: a ^C in the terminal that started it does not stop it.
    crate::machine::detach(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: "git-ports proxy".into(),
        source,
    })?;
    let pid = child.id();
    let start = Instant::now();
    loop {
        if let Some(s) = setup.running()?.filter(|s| s.holder.pid == pid) {
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

/// `git ports proxy stop`: stops the process the state file names, once it is proven to be
/// this user's running proxy (see [`proven`]); anything else is left alone, and said so.
pub fn stop(out: &mut Out) -> Result<()> {
    let setup = Setup::read()?;
    let state = setup.state()?;
    let s = match state {
        None | Some((_, Err(NotProxy::Gone))) => {
            out.line("git ports proxy is not running");
            let _ = std::fs::remove_file(setup.state_path());
            return Ok(());
        }
        Some((s, Err(why))) => {
            out.line(format!(
                "git ports proxy is not running: its state file names pid {}, {}; nothing was signalled",
                s.holder.pid,
                why.describe()
            ));
            let _ = std::fs::remove_file(setup.state_path());
            return Ok(());
        }
        Some((s, Ok(()))) => s,
    };
    let grace = Duration::from_secs(5);
    let ending = crate::stop::stop(s.holder.pid, grace);
    if ending == crate::stop::Ending::NotPermitted {
        return Err(Error::Usage(format!(
            "git ports proxy (pid {}) {}",
            s.holder.pid,
            ending.describe(grace)
        )));
    }
    let _ = std::fs::remove_file(setup.state_path());
    out.line(format!(
        "✓ git ports proxy (pid {}) {}",
        s.holder.pid,
        ending.describe(grace)
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
    let routes = Routes::new(Some(ledger.clone()));
    // The first lookup reads the ledger.
    let _ = routes.resolve(crate::names::SUFFIX);
    routes
        .names()
        .into_iter()
        .filter_map(|(host, origin)| {
            let route = routes.resolve(&host);
            let (port_to, place) = match &*route {
                Route::To { port, place } | Route::Conflict { port, place, .. } => {
                    (Some(*port), place.clone())
                }
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
    let running = setup.running()?;
    let port = running.as_ref().map_or(setup.port, |s| s.port);
    let names = served(&setup.ledger, port);
    let https = trust::https(&setup);
    if json {
        #[derive(Serialize)]
        struct Report {
            running: bool,
            pid: Option<u32>,
            port: u16,
            names: Vec<Served>,
            https: trust::Https,
        }
        out.json(&Report {
            running: running.is_some(),
            pid: running.as_ref().map(|s| s.holder.pid),
            port,
            names,
            https,
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
    match (&https.ca, &https.problem) {
        (Some(ca), _) => {
            let places: Vec<String> = https
                .trusted
                .iter()
                .filter(|p| p.trusted)
                .map(|p| p.path.clone())
                .collect();
            let trusted = if places.is_empty() {
                "trusted nowhere yet: run `git ports proxy trust`".to_string()
            } else {
                format!("trusted in {}", places.join(", "))
            };
            out.line(format!(
                "HTTPS on: authority {} (SHA-256 {}), valid until {}, {trusted}",
                crate::output::shell_quote(ca),
                https.fingerprint.as_deref().unwrap_or(""),
                https
                    .valid_until
                    .as_deref()
                    .map_or("", |v| v.get(..10).unwrap_or(v)),
            ));
        }
        (None, Some(problem)) => out.line(format!("HTTPS off: {problem}")),
        (None, None) => out.line(
            "HTTPS off: no certificate authority yet (`git ports proxy trust` makes one and trusts it)",
        ),
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

//! The machine: who listens on each port, and the processes behind the sockets — a
//! process's identity (which a later process given the same pid never inherits), whether it
//! still runs, its user, program and working directory, and stopping it, gracefully then for
//! good. One set of functions here, one file per OS beside it, as std's `sys/` does:
//!
//! - `linux/` reads `/proc`: the socket tables, every process's descriptors, start times
//!   in clock ticks with the boot id, and pid namespaces (a pid counted in a container is
//!   never taken for the host's process of that number). Faster than asking a crate to walk
//!   the same files (see `benches/bench.rs`, owner lookup).
//! - `macos.rs` and `windows.rs` ask the system through the `listeners` crate (sockets to
//!   pids: libproc on macOS, the IP helper's TCP tables on Windows) and the `sysinfo` crate
//!   (the process table: start time, user, working directory, program; and stopping), both
//!   through `crates.rs`. A process's start time there is wall-clock seconds, which no
//!   process of a later boot can share.
//!
//! Nothing outside this module sees a `cfg`. What an OS cannot tell is said, never guessed:
//! a socket whose process cannot be seen (another user's, an elevated one) has no process
//! and no user, and is never taken for anyone's own.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as sys;

#[cfg(not(target_os = "linux"))]
mod crates;
#[cfg(not(target_os = "linux"))]
use crates as sys;

#[cfg(all(unix, not(target_os = "linux")))]
mod macos;
#[cfg(all(unix, not(target_os = "linux")))]
use macos as os;

#[cfg(windows)]
mod windows;

pub mod docker;
#[cfg(windows)]
use windows as os;

/// One listening socket on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The address it is bound to: `127.0.0.1`, `::1`, `0.0.0.0`, `::`, …
    pub addr: IpAddr,
    /// The numeric user whose socket it is, where the system has one (Unix).
    pub uid: Option<u32>,
    /// Whether it is this process's user's socket; `None` where the system does not say
    /// (another user's or an elevated process on Windows, a socket no visible process holds).
    pub mine: Option<bool>,
    /// The socket's identity: the same number while the socket lives (its inode on Linux;
    /// elsewhere its process's pid, the closest the system gives).
    pub socket: u64,
    /// The process holding it, where the system tells (another user's processes are hidden
    /// from all but root).
    pub process: Option<Process>,
    /// The container whose published port this is, where a forwarder holds the socket (or
    /// no socket does: a NAT rule).
    pub container: Option<docker::Container>,
}

/// A process, as the system shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// Its name as the system gives it: bytes, kept exactly.
    pub command: OsString,
    /// Its working directory, where the system tells.
    pub cwd: Option<Cwd>,
}

/// A process's working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cwd {
    /// The directory's path; for a deleted one, the path it had.
    pub path: PathBuf,
    /// It was deleted (a removed worktree's server runs on in it). Told by the file system,
    /// never by the text the system shows: a directory may well be named `wt (deleted)`.
    pub deleted: bool,
}

/// A listening socket as the socket tables alone give it, without its process: cheap enough
/// to ask before every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub addr: IpAddr,
    pub uid: Option<u32>,
    pub socket: u64,
}

/// The user this process runs as, where the system numbers users (Unix).
pub fn my_uid() -> Option<u32> {
    sys::my_uid()
}

/// Every socket listening on each of `ports`, found in one pass over the socket tables and
/// the processes. A port nothing listens on is absent.
/// A port a container publishes is that container's (see `docker.rs`).
/// A socket of the engine's (root's, or where the system does not say whose) at an address a
/// running container publishes is that container's, found without scanning every process
/// for its holder: with many published ports that scan is most of the time.
pub fn listeners(ports: &[u16]) -> HashMap<u16, Vec<Listener>> {
    let me = my_uid();
    let published: std::cell::OnceCell<Vec<docker::Container>> = std::cell::OnceCell::new();
    let theirs = |port: u16, addr: IpAddr| -> Option<docker::Container> {
        published
            .get_or_init(|| docker::containers_quietly().unwrap_or_default())
            .iter()
            .find(|c| c.published.contains(&(addr, port)))
            .cloned()
    };
    let engine = |uid: Option<u32>| uid.is_none() || uid == Some(0) || uid != me;
    let skip =
        |port: u16, addr: IpAddr, uid: Option<u32>| engine(uid) && theirs(port, addr).is_some();
    let mut found = sys::listeners(ports, &skip);
    for (port, ls) in found.iter_mut() {
        for l in ls
            .iter_mut()
            .filter(|l| l.process.is_none() && engine(l.uid))
        {
            l.container = theirs(*port, l.addr);
        }
    }
    docker::explain(ports, &mut found);
    found
}

/// The sockets listening on `port`, without their processes.
pub fn sockets(port: u16) -> Vec<Socket> {
    sys::sockets(port)
}

/// Whether anything on this machine listens on `port`, by the socket tables; `None` where
/// they cannot be read.
pub fn listened(port: u16) -> Option<bool> {
    sys::listened(port)
}

/// Whether something on this machine holds `port`, by binding each address this OS needs
/// tried. On Linux a dual-stack `[::]` conflicts with a listener of either family on any
/// address, and `127.0.0.1` with one bound there on a system without IPv6. Elsewhere a
/// socket on the wildcard address and one on a specific address may share a port (BSD
/// sockets with SO_REUSEADDR, which Rust's std sets; Windows, unless one asked for exclusive
/// use), so the wildcard and loopback address of each family are tried, and on Windows the
/// TCP tables are read as well. Only "address in use" counts: a machine without IPv6 fails
/// those binds for other reasons.
pub fn port_taken(port: u16) -> bool {
    use std::net::{SocketAddr, TcpListener};
    let bound = sys::PROBE.iter().any(|&a| {
        matches!(
            TcpListener::bind(SocketAddr::new(a, port)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
        )
    });
    bound || (sys::PROBE_TABLES && listened(port) == Some(true))
}

/// Runs `cmd` to its end with its output gathered, for `wait` at most (then it is killed,
/// and the error says it timed out).
pub fn run_bounded(
    cmd: &mut std::process::Command,
    wait: std::time::Duration,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let gather = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = gather(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = gather(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() >= wait {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no end within {}s", wait.as_secs_f64()),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// The working directory of process `pid` now.
pub fn cwd(pid: u32) -> Option<Cwd> {
    sys::cwd(pid)
}

/// Makes a listening socket of this process's known as this process's to the socket
/// tables: wine names a socket's process only once the process has touched the socket's own
/// descriptor, which reading an option does (Linux, macOS and Windows always name it).
pub fn own(listener: &std::net::TcpListener) {
    let _ = listener.ttl();
}

/// Whether process `pid` holds a socket listening on `port` now.
pub fn listens(pid: u32, port: u16) -> bool {
    sys::listens(pid, port)
}

/// The file name of the program process `pid` runs (`git-ports`, `git-ports.exe`), and its
/// arguments after the program's own name, where the system tells.
pub fn program(pid: u32) -> Option<(OsString, Vec<OsString>)> {
    sys::program(pid)
}

/// Whether process `pid` runs as this process's user; `None` when it cannot be told (no such
/// process, or the system hides its user). Root is no exception: another user's process is
/// theirs.
pub fn same_user(pid: u32) -> Option<bool> {
    sys::same_user(pid)
}

/// Whether process `pid` is still there (and not a zombie waiting for its parent).
pub fn alive(pid: u32) -> bool {
    sys::alive(pid)
}

/// Where two directories are one on this system: both resolved (symlinks, `/var` and
/// `/private/var` on macOS, `\\?\` and the case Windows stores). `dir` must exist.
pub fn canonical(dir: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(dir).ok()
}

/// How a process is asked to stop, and how it is ended, on this OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Asked to end (SIGTERM; on Windows, the request to close that `taskkill` sends).
    Ask,
    /// Ended at once (SIGKILL; on Windows, TerminateProcess).
    End,
}

/// What sending a signal came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// The system refused (another user's process, an elevated one).
    NotPermitted,
    /// The process cannot be asked, only ended (a console program on Windows has no window
    /// to close).
    CannotAsk,
    /// No such process.
    Gone,
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: Signal) -> Sent {
    sys::signal(pid, signal)
}

/// What [`Signal::Ask`] is called on this OS, for reports: `SIGTERM`.
pub const ASK: &str = sys::ASK;

/// Makes `cmd` start a daemon: in a session of its own (its own process group on Unix; on
/// Windows a new process group without a console), so a ^C or a closed terminal that ends
/// its starter does not end it.
pub fn detach(cmd: &mut std::process::Command) -> &mut std::process::Command {
    sys::detach(cmd)
}

/// Hands this process over to `cmd`: on Unix the process becomes it (`exec`), keeping its
/// pid, so a lease for this process is the command's, and this returns only the error that
/// kept it from starting. Where there is no `exec` (Windows), `cmd` runs as a child, and this
/// returns its exit code once it ends.
pub fn hand_over(cmd: &mut std::process::Command) -> std::io::Result<i32> {
    sys::hand_over(cmd)
}

/// Who holds the lock on `file` (`pid 123 (git-ports)`), where the system tells.
pub fn lock_holder(file: &std::fs::File) -> Option<String> {
    sys::lock_holder(file)
}

/// How many files this process may have open (its soft limit), where the system says;
/// 1024, the common default, where it does not.
pub fn open_file_limit() -> usize {
    sys::open_file_limit().unwrap_or(1024)
}

/// A process, as a lease or the proxy's state file records it: what a later process given
/// the same pid never shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Its pid, as its own pid namespace counts it.
    pub pid: u32,
    /// When it started: clock ticks since boot on Linux; seconds since 1970 elsewhere.
    pub start: u64,
    /// The boot it started in (Linux's boot id); empty where the start time is wall-clock
    /// time, which no process of another boot shares.
    pub boot: String,
    /// The pid namespace `pid` is counted in (Linux: the inode of `/proc/PID/ns/pid`);
    /// absent elsewhere, and in leases written before namespaces were told apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidns: Option<u64>,
}

/// Why a process cannot be identified for a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such process (or it has exited).
    NoProcess,
    /// It runs as another user, whose processes this user must not speak for.
    OtherUser,
    /// The system's first process, which never exits: its lease would never end.
    Init,
    /// The system does not show what tells a process from a later one with its pid.
    Unsupported,
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NoProcess => "no such process is running",
            Refused::OtherUser => "it runs as another user",
            Refused::Init => "it is the system's first process, which never exits",
            Refused::Unsupported => sys::UNIDENTIFIABLE,
        }
    }
}

/// What can be told of a recorded process from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// It runs; the system shows it under this pid.
    Alive(u32),
    /// It has exited (or its pid is another process's now).
    Gone,
    /// It runs where this process cannot look (another pid namespace), or the system would
    /// not say: it is kept.
    Unseen,
}

impl Identity {
    /// The process this process's pid namespace calls `pid`: it must be running and be this
    /// user's.
    pub fn of(pid: u32) -> Result<Identity, Refused> {
        if pid == 1 {
            return Err(Refused::Init);
        }
        sys::identify(pid)
    }

    /// This process.
    pub fn of_self() -> Result<Identity, Refused> {
        sys::identify_self()
    }

    /// Whether its pid is counted as this process counts pids: only then may it be signalled
    /// by that number.
    pub fn counted_here(&self) -> bool {
        sys::counted_here(self.pidns)
    }

    /// The command line it runs now, for people (arguments joined by spaces), where the
    /// system shows it under pid `at` (see [`Life::Alive`]).
    pub fn command_at(at: u32) -> Option<String> {
        sys::command_line(at)
    }

    /// The command line it runs now, when it runs.
    pub fn command(&self) -> Option<String> {
        match Census::default().life(self) {
            Life::Alive(at) => Identity::command_at(at),
            _ => None,
        }
    }
}

/// Which recorded processes are alive, each pid looked at once however many leases it
/// holds: thousands of dead leases cost one look each, in one pass.
#[derive(Default)]
pub struct Census(sys::Census);

impl Census {
    pub fn holds(&mut self, h: &Identity) -> bool {
        self.life(h) != Life::Gone
    }

    pub fn life(&mut self, h: &Identity) -> Life {
        self.0.life(h)
    }
}

/// The process a lease without `--pid` is for: the one that ran `git ports lease`, which is
/// this process's parent once `git` itself (which runs `git-ports` and exits with it) and
/// any subshell forked for a command substitution (a copy of its own parent) are passed
/// over: its pid as the system counts it, and its identity (or why it has none). `None` when
/// that walk reaches the system's first process, whose lease would never end.
pub fn caller() -> Option<(u32, Result<Identity, Refused>)> {
    sys::caller()
}

/// Sends `signal` through `sysinfo`, and tells a refusal from a process that is gone.
fn send(pid: u32, signal: sysinfo::Signal) -> Sent {
    let me = sysinfo::Pid::from_u32(pid);
    let Ok(mut system) = sysinfo::System::new() else {
        return Sent::NotPermitted;
    };
    system.refresh_processes_specifics(
        sysinfo::ProcessesToUpdate::Some(&[me]),
        true,
        sysinfo::ProcessRefreshKind::nothing(),
    );
    let Some(p) = system.process(me) else {
        return Sent::Gone;
    };
    match p.kill_with(signal) {
        Some(true) => Sent::Delivered,
        // No such signal here: this process can only be ended.
        None => Sent::CannotAsk,
        Some(false) if alive(pid) => Sent::NotPermitted,
        Some(false) => Sent::Gone,
    }
}

/// Whether `name`, a program's file name, is git's own (`git`, `git.exe`).
fn is_git(name: &[u8]) -> bool {
    let name = name.strip_suffix(b".exe").unwrap_or(name);
    name == b"git"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_start_is_not() {
        let me = Identity::of(std::process::id()).expect("this process can be identified");
        assert_eq!(Identity::of_self().as_ref(), Ok(&me));
        let mut census = Census::default();
        assert!(census.holds(&me));
        assert!(alive(std::process::id()));
        assert_eq!(same_user(std::process::id()), Some(true));
        let reused = Identity {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(
            !Census::default().holds(&reused),
            "a reused pid is not the holder"
        );
        let other_boot = Identity {
            boot: "another boot".into(),
            ..me
        };
        assert!(!Census::default().holds(&other_boot));
        assert_eq!(Identity::of(u32::MAX).err(), Some(Refused::NoProcess));
        assert!(!alive(u32::MAX));
    }

    #[test]
    fn a_listener_of_this_process_is_found_with_its_directory() {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        own(&l);
        let port = l.local_addr().expect("addr").port();
        let found = listeners(&[port]);
        let ls = found.get(&port).expect("the listener is found");
        assert_eq!(ls.len(), 1, "{ls:?}");
        assert_eq!(ls[0].mine, Some(true));
        let p = ls[0].process.as_ref().expect("its process is found");
        assert_eq!(p.pid, std::process::id());
        let here = canonical(&std::env::current_dir().expect("cwd"));
        let cwd = p.cwd.as_ref().expect("its directory is found");
        assert_eq!(canonical(&cwd.path), here);
        assert!(!cwd.deleted);
        assert!(listens(std::process::id(), port));
        assert_eq!(listened(port), Some(true));
        assert_eq!(sockets(port).len(), 1);
        let (name, _) = program(std::process::id()).expect("this program");
        let exe = std::env::current_exe().expect("exe");
        assert_eq!(Some(name.as_os_str()), exe.file_name());
        drop(l);
        assert!(listeners(&[port]).is_empty());
        assert_eq!(listened(port), Some(false));
    }

    #[test]
    fn git_is_known_by_its_name_on_every_os() {
        assert!(is_git(b"git"));
        assert!(is_git(b"git.exe"));
        assert!(!is_git(b"git-ports"));
        assert!(!is_git(b"gitk"));
    }
}

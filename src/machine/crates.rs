//! The machine through the `listeners` crate (which process holds each socket: libproc on
//! macOS, the IP helper's TCP tables on Windows) and the `sysinfo` crate (the process table:
//! start time, parent, user, program, working directory; and signals), on every OS but
//! Linux. What differs between those OSes is in `macos.rs` and `windows.rs`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

use super::os;
use super::{Cwd, Identity, Life, Listener, Process, Refused, Sent, Signal, Socket};

pub use os::{ASK, PROBE, PROBE_TABLES, detach, hand_over};

pub const UNIDENTIFIABLE: &str = "the system does not show this process's start time, which tells it from a later one with its pid";

/// A listening TCP socket: port, address, and the pid holding it (0 for one no process
/// visible here holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    port: u16,
    addr: IpAddr,
    pid: u32,
}

/// Every listening TCP socket, with the name of its process.
type Table = Vec<(Row, OsString)>;

/// The table; `None` when the system would not list the sockets.
fn table() -> Option<Table> {
    let all = listeners::get_all().ok()?;
    Some(
        all.into_iter()
            .filter(|l| {
                l.protocol == listeners::Protocol::TCP && l.state == listeners::SocketState::Listen
            })
            .map(|l| {
                (
                    Row {
                        port: l.socket.port(),
                        addr: l.socket.ip(),
                        pid: l.process.pid,
                    },
                    OsString::from(l.process.name),
                )
            })
            .collect(),
    )
}

/// The table as read at most [`FRESH`] ago: the proxy asks before every connection, and a
/// full listing walks every process's descriptors on macOS.
fn recent_table() -> Option<Table> {
    const FRESH: Duration = Duration::from_millis(250);
    static LAST: Mutex<Option<(Instant, Option<Table>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, t)) = last.as_ref()
        && at.elapsed() < FRESH
    {
        return t.clone();
    }
    let t = table();
    *last = Some((Instant::now(), t.clone()));
    t
}

/// The processes `pids`, with what `what` asks for.
fn processes(pids: &[u32], what: ProcessRefreshKind) -> Option<System> {
    let mut system = System::new().ok()?;
    let pids: Vec<Pid> = pids.iter().map(|&p| Pid::from_u32(p)).collect();
    system.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, what);
    Some(system)
}

fn with_user() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing().with_user(UpdateKind::Always)
}

/// This process's user, as the system names users.
fn my_user() -> Option<sysinfo::Uid> {
    static ME: std::sync::OnceLock<Option<sysinfo::Uid>> = std::sync::OnceLock::new();
    ME.get_or_init(|| {
        let me = std::process::id();
        processes(&[me], with_user())?
            .process(Pid::from_u32(me))?
            .user_id()
            .cloned()
    })
    .clone()
}

fn running(p: &sysinfo::Process) -> bool {
    !matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead)
}

pub fn my_uid() -> Option<u32> {
    os::uid(&my_user()?)
}

pub fn same_user(pid: u32) -> Option<bool> {
    let me = my_user()?;
    let system = processes(&[pid], with_user())?;
    let theirs = system.process(Pid::from_u32(pid))?.user_id()?;
    Some(*theirs == me)
}

/// `_skip` saves nothing here: the table comes whole, with its processes.
pub fn listeners(
    ports: &[u16],
    _skip: &dyn Fn(u16, IpAddr, Option<u32>) -> bool,
) -> HashMap<u16, Vec<Listener>> {
    let wanted: HashSet<u16> = ports.iter().copied().collect();
    let mut found: HashMap<u16, Vec<Listener>> = HashMap::new();
    let Some(rows) = table() else {
        return found;
    };
    let rows: Table = rows
        .into_iter()
        .filter(|(r, _)| wanted.contains(&r.port))
        .collect();
    if rows.is_empty() {
        return found;
    }
    let mut pids: Vec<u32> = rows
        .iter()
        .map(|(r, _)| r.pid)
        .filter(|&p| p != 0)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    let system = processes(&pids, with_user().with_cwd(UpdateKind::Always));
    let me = my_user();
    for (row, name) in rows {
        let p = system
            .as_ref()
            .filter(|_| row.pid != 0)
            .and_then(|s| s.process(Pid::from_u32(row.pid)));
        let user = p.and_then(|p| p.user_id());
        found.entry(row.port).or_default().push(Listener {
            addr: row.addr,
            uid: user.and_then(os::uid),
            mine: me.as_ref().zip(user).map(|(m, u)| m == u),
            socket: u64::from(row.pid),
            process: p.map(|p| Process {
                pid: row.pid,
                command: name,
                cwd: p.cwd().filter(|c| !c.as_os_str().is_empty()).map(|c| Cwd {
                    path: c.to_path_buf(),
                    deleted: !c.is_dir(),
                }),
            }),
            container: None,
        });
    }
    found
}

pub fn sockets(port: u16) -> Vec<Socket> {
    recent_table()
        .unwrap_or_default()
        .into_iter()
        .filter(|(r, _)| r.port == port)
        .map(|(r, _)| Socket {
            addr: r.addr,
            uid: None,
            socket: u64::from(r.pid),
        })
        .collect()
}

pub fn listened(port: u16) -> Option<bool> {
    Some(table()?.iter().any(|(r, _)| r.port == port))
}

pub fn listens(pid: u32, port: u16) -> bool {
    table()
        .unwrap_or_default()
        .iter()
        .any(|(r, _)| r.pid == pid && r.port == port)
}

pub fn cwd(pid: u32) -> Option<Cwd> {
    let system = processes(
        &[pid],
        ProcessRefreshKind::nothing().with_cwd(UpdateKind::Always),
    )?;
    let c = system.process(Pid::from_u32(pid))?.cwd()?;
    (!c.as_os_str().is_empty()).then(|| Cwd {
        path: c.to_path_buf(),
        deleted: !c.is_dir(),
    })
}

pub fn program(pid: u32) -> Option<(OsString, Vec<OsString>)> {
    let system = processes(
        &[pid],
        ProcessRefreshKind::nothing()
            .with_exe(UpdateKind::Always)
            .with_cmd(UpdateKind::Always),
    )?;
    let p = system.process(Pid::from_u32(pid))?;
    let name = match p.exe().and_then(|e| e.file_name()) {
        Some(n) => n.to_os_string(),
        None => p.name().to_os_string(),
    };
    Some((name, p.cmd().iter().skip(1).cloned().collect()))
}

pub fn alive(pid: u32) -> bool {
    processes(&[pid], ProcessRefreshKind::nothing())
        .and_then(|s| s.process(Pid::from_u32(pid)).map(running))
        .unwrap_or(false)
}

pub fn signal(pid: u32, signal: Signal) -> Sent {
    os::signal(pid, signal)
}

/// The system does not say who holds a file lock here.
pub fn lock_holder(_file: &std::fs::File) -> Option<String> {
    None
}

pub fn open_file_limit() -> Option<usize> {
    System::open_files_limit().ok()
}

pub fn command_line(pid: u32) -> Option<String> {
    let system = processes(
        &[pid],
        ProcessRefreshKind::nothing().with_cmd(UpdateKind::Always),
    )?;
    let words: Vec<String> = system
        .process(Pid::from_u32(pid))?
        .cmd()
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Every process here has one pid: there are no pid namespaces.
pub fn counted_here(_ns: Option<u64>) -> bool {
    true
}

pub fn identify(pid: u32) -> Result<Identity, Refused> {
    let me = my_user().ok_or(Refused::Unsupported)?;
    let system = processes(&[pid], with_user()).ok_or(Refused::Unsupported)?;
    let p = system
        .process(Pid::from_u32(pid))
        .filter(|p| running(p))
        .ok_or(Refused::NoProcess)?;
    match p.user_id() {
        Some(u) if *u == me => {}
        Some(_) => return Err(Refused::OtherUser),
        None => return Err(Refused::NoProcess),
    }
    if p.start_time() == 0 {
        return Err(Refused::Unsupported);
    }
    Ok(Identity {
        pid,
        start: p.start_time(),
        boot: String::new(),
        pidns: None,
    })
}

pub fn identify_self() -> Result<Identity, Refused> {
    identify(std::process::id())
}

/// The process table, read once, the first time a recorded process is asked about.
#[derive(Default)]
pub struct Census {
    table: Option<Option<HashMap<u32, (u64, bool)>>>,
}

impl Census {
    pub fn life(&mut self, h: &Identity) -> Life {
        if !h.boot.is_empty() || h.pidns.is_some() {
            // Recorded by a system that counts time from its boot: not this one's.
            return Life::Gone;
        }
        let table = self.table.get_or_insert_with(|| {
            let mut system = System::new().ok()?;
            system.refresh_processes_specifics(
                ProcessesToUpdate::All,
                true,
                ProcessRefreshKind::nothing(),
            );
            Some(
                system
                    .processes()
                    .iter()
                    .map(|(pid, p)| (pid.as_u32(), (p.start_time(), running(p))))
                    .collect(),
            )
        });
        match table {
            // The system would not list its processes: keep what cannot be checked.
            None => Life::Unseen,
            Some(t) => match t.get(&h.pid) {
                Some(&(start, true)) if start == h.start => Life::Alive(h.pid),
                _ => Life::Gone,
            },
        }
    }
}

pub fn caller() -> Option<(u32, Result<Identity, Refused>)> {
    let mut system = System::new().ok()?;
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing()
            .with_exe(UpdateKind::Always)
            .with_cmd(UpdateKind::Always),
    );
    let get = |p: u32| system.process(Pid::from_u32(p));
    let mut pid = get(std::process::id())?.parent()?.as_u32();
    for _ in 0..16 {
        if pid <= 1 {
            return None;
        }
        let p = get(pid)?;
        let parent = p.parent().map(Pid::as_u32);
        let is_git = super::is_git(crate::bytes::os_bytes(p.name()).as_slice());
        let subshell = parent
            .and_then(get)
            .is_some_and(|q| p.exe().is_some() && q.exe() == p.exe() && q.cmd() == p.cmd());
        if !is_git && !subshell {
            return Some((pid, identify(pid)));
        }
        pid = parent?;
    }
    None
}

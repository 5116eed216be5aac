//! Processes, from `/proc`: a process's identity (its start in clock ticks since boot, field
//! 22 of `/proc/PID/stat`; the boot, `/proc/sys/kernel/random/boot_id`; and the pid
//! namespace its pid is counted in, `/proc/PID/ns/pid`), its user, program, directory and
//! parent. A pid the kernel gives to a later process, in this boot or the next, never
//! matches a recorded identity, and a pid counted in a sandbox (`unshare -p`, bwrap, a
//! container) is never read as the pid of another process outside it. A process that cannot
//! be seen from here, in a namespace this one cannot look into, is kept: a port skipped
//! beats a port given twice. A zombie (exited, not yet reaped) is gone.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;

use crate::bytes::os_bytes;
use crate::machine::{Cwd, Identity, Life, Refused};

/// The first pid namespace of every Linux system (`PROC_PID_INIT_INO`): a process counted
/// in it sees every process there is.
const INIT_PIDNS: u64 = 0xEFFF_FFFC;

fn proc_dir(pid: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

/// A process's state, start time and parent, from `/proc/PID/stat` (`PID` a number, or
/// `self`): the fields after the command, which is in parentheses and may itself hold spaces
/// and parentheses.
pub(super) fn stat(pid: &str) -> Option<(u8, u64, u32)> {
    let text = fs::read(proc_dir(pid).join("stat")).ok()?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 2..)?).ok()?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // fields[0] is field 3 (state), fields[1] field 4 (ppid), fields[19] field 22 (start).
    let state = *fields.first()?.as_bytes().first()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start, ppid))
}

/// The pid namespace a process is in: the inode `/proc/PID/ns/pid` names (`pid:[N]`).
pub(super) fn pidns(pid: &str) -> Option<u64> {
    let link = fs::read_link(proc_dir(pid).join("ns/pid")).ok()?;
    link.to_str()?
        .strip_prefix("pid:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A process's pid in each pid namespace it is in, from the one `/proc` counts in to its
/// own (`NSpid:` of `/proc/PID/status`).
fn nspids(pid: &str) -> Option<Vec<u32>> {
    let text = fs::read_to_string(proc_dir(pid).join("status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("NSpid:"))?;
    let pids: Vec<u32> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|p| p.parse().ok())
        .collect();
    (!pids.is_empty()).then_some(pids)
}

/// The pid namespace this `/proc` counts in, when it is this process's own (the usual case;
/// a sandbox that did not mount a `/proc` of its own sees its parent's).
pub(super) fn mount_ns() -> Option<u64> {
    static NS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *NS.get_or_init(|| {
        let own = nspids("self")?;
        (own.len() == 1).then(|| pidns("self")).flatten()
    })
}

fn boot_id() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// Whether a process in state `state` is still running (not a zombie, not dead).
pub(super) fn running(state: u8) -> bool {
    !matches!(state, b'Z' | b'X' | b'x')
}

/// This process's pid as `/proc` counts it.
pub(super) fn proc_self() -> Option<u32> {
    fs::read_link("/proc/self").ok()?.to_str()?.parse().ok()
}

/// The pid `/proc` gives the process that this process's own pid namespace calls `pid`
/// (what `$$`, `--pid` and `getpid` say): the same number, unless `/proc` is a parent
/// namespace's.
pub(super) fn in_proc(pid: u32) -> Option<u32> {
    if mount_ns().is_some() {
        return Some(pid);
    }
    let own = pidns("self")?;
    let procs = fs::read_dir("/proc").ok()?;
    procs.flatten().find_map(|p| {
        let name = p.file_name().to_string_lossy().into_owned();
        let n: u32 = name.parse().ok()?;
        (pidns(&name) == Some(own) && nspids(&name)?.last() == Some(&pid)).then_some(n)
    })
}

/// The process `/proc` calls `pid`: it must be running and be this user's.
fn of_proc(pid: u32) -> Result<Identity, Refused> {
    if pid == 1 {
        return Err(Refused::Init);
    }
    let boot = boot_id().ok_or(Refused::Unsupported)?;
    let name = pid.to_string();
    let (state, start, _) = stat(&name).ok_or(Refused::NoProcess)?;
    if !running(state) {
        return Err(Refused::NoProcess);
    }
    match same_user(pid) {
        Some(true) => {}
        Some(false) => return Err(Refused::OtherUser),
        None => return Err(Refused::NoProcess),
    }
    let own = nspids(&name).and_then(|p| p.last().copied()).unwrap_or(pid);
    if own == 1 {
        return Err(Refused::Init);
    }
    Ok(Identity {
        pid: own,
        start,
        boot: boot.to_string(),
        pidns: pidns(&name),
    })
}

/// The process this process's pid namespace calls `pid`.
pub fn identify(pid: u32) -> Result<Identity, Refused> {
    of_proc(in_proc(pid).ok_or(Refused::NoProcess)?)
}

pub fn identify_self() -> Result<Identity, Refused> {
    of_proc(proc_self().ok_or(Refused::Unsupported)?)
}

pub fn counted_here(ns: Option<u64>) -> bool {
    ns.is_none() || ns == pidns("self")
}

/// The command line process `at` runs, its arguments joined by spaces.
pub fn command_line(at: u32) -> Option<String> {
    let raw = fs::read(proc_dir(&at.to_string()).join("cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

pub fn cwd(pid: u32) -> Option<Cwd> {
    use std::os::unix::fs::MetadataExt;
    let link = format!("/proc/{pid}/cwd");
    let text = fs::read_link(&link).ok()?;
    // The link itself leads to the directory, deleted or not: a directory that has been
    // removed has no links left.
    let deleted = fs::metadata(&link).is_ok_and(|m| m.nlink() == 0);
    let path = if deleted {
        let raw = os_bytes(text.as_os_str());
        let raw = raw.strip_suffix(b" (deleted)").unwrap_or(&raw).to_vec();
        PathBuf::from(crate::bytes::os_from_bytes(&raw))
    } else {
        text
    };
    Some(Cwd { path, deleted })
}

pub fn program(pid: u32) -> Option<(OsString, Vec<OsString>)> {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    // A binary replaced since it started (a rebuild, an upgrade) shows as `NAME (deleted)`.
    let name = os_bytes(exe.file_name()?);
    let name = name.strip_suffix(b" (deleted)").unwrap_or(&name).to_vec();
    let args = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args = args
        .split(|&b| b == 0)
        .skip(1)
        .filter(|a| !a.is_empty())
        .map(crate::bytes::os_from_bytes)
        .collect();
    Some((crate::bytes::os_from_bytes(&name), args))
}

/// The name the kernel keeps for process `pid` (`/proc/PID/comm`).
pub fn command(pid: u32) -> OsString {
    fs::read(format!("/proc/{pid}/comm"))
        .map(|mut c| {
            while c.last() == Some(&b'\n') {
                c.pop();
            }
            crate::bytes::os_from_bytes(&c)
        })
        .unwrap_or_default()
}

/// Whether process `pid` is there and not a zombie.
pub fn alive(pid: u32) -> bool {
    stat(&pid.to_string()).is_some_and(|(state, _, _)| running(state))
}
/// Whether process `pid` runs as this process's user; `None` when it cannot be told (no such
/// process, or no `/proc`). Root is no exception: another user's process is theirs.
pub(super) fn same_user(pid: u32) -> Option<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = |p: PathBuf| fs::metadata(p).map(|m| m.uid()).ok();
        Some(uid(proc_dir(&pid.to_string()))? == uid(PathBuf::from("/proc/self"))?)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        None
    }
}

/// Which recorded processes are alive, each pid looked at once: a dead one costs one failed
/// open. One of another pid namespace costs one look at every process, once.
#[derive(Default)]
pub struct Census {
    starts: HashMap<u32, Option<u64>>,
    others: Option<Others>,
}

/// Every process of this user's that `/proc` shows, by pid namespace and the pid it has
/// there.
struct Others {
    by: HashMap<(u64, u32), (u32, u64, bool)>,
    namespaces: HashSet<u64>,
    /// When each process of this user's that hides its namespace (it cannot be read) started:
    /// a holder not found that started at one of those times may be that one.
    hidden: HashSet<u64>,
    /// `/proc` itself could not be read.
    blind: bool,
}

fn look_at_everyone() -> Others {
    let mut o = Others {
        by: HashMap::new(),
        namespaces: HashSet::new(),
        hidden: HashSet::new(),
        blind: false,
    };
    let Ok(procs) = fs::read_dir("/proc") else {
        o.blind = true;
        return o;
    };
    for p in procs.flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        let Ok(n) = name.parse::<u32>() else {
            continue;
        };
        if same_user(n) != Some(true) {
            continue;
        }
        let (Some(ns), Some(own), Some((state, start, _))) = (
            pidns(&name),
            nspids(&name).and_then(|p| p.last().copied()),
            stat(&name),
        ) else {
            if let Some((_, start, _)) = stat(&name) {
                o.hidden.insert(start);
            }
            continue;
        };
        o.namespaces.insert(ns);
        o.by.insert((ns, own), (n, start, running(state)));
    }
    o
}

impl Census {
    pub fn life(&mut self, h: &Identity) -> Life {
        if boot_id() != Some(h.boot.as_str()) {
            return Life::Gone;
        }
        let here = match h.pidns {
            None => true,
            Some(ns) => mount_ns() == Some(ns),
        };
        if here {
            let now = *self.starts.entry(h.pid).or_insert_with(|| {
                stat(&h.pid.to_string())
                    .and_then(|(state, start, _)| running(state).then_some(start))
            });
            return if now == Some(h.start) {
                Life::Alive(h.pid)
            } else {
                Life::Gone
            };
        }
        let ns = h.pidns.unwrap_or_default();
        let others = self.others.get_or_insert_with(look_at_everyone);
        match others.by.get(&(ns, h.pid)) {
            Some(&(at, start, true)) if start == h.start => Life::Alive(at),
            Some(_) => Life::Gone,
            // Its namespace is in view and it is not there; or this /proc shows every
            // process there is.
            None if !others.blind
                && !others.hidden.contains(&h.start)
                && (others.namespaces.contains(&ns) || mount_ns() == Some(INIT_PIDNS)) =>
            {
                Life::Gone
            }
            None => Life::Unseen,
        }
    }
}

/// The caller, with pids as `/proc` counts them (see `machine::caller`).
pub fn caller() -> Option<(u32, Result<Identity, Refused>)> {
    let (_, _, mut pid) = stat("self")?;
    for _ in 0..16 {
        if pid <= 1 {
            return None;
        }
        let name = pid.to_string();
        let (_, _, ppid) = stat(&name)?;
        let comm = fs::read(proc_dir(&name).join("comm")).ok()?;
        let is_git = crate::machine::is_git(comm.trim_ascii_end());
        let same = |p: u32| {
            let d = proc_dir(&p.to_string());
            (
                fs::read_link(d.join("exe")).ok(),
                fs::read(d.join("cmdline")).ok(),
            )
        };
        let subshell = ppid > 1 && same(pid) == same(ppid) && same(pid).0.is_some();
        if !is_git && !subshell {
            return Some((pid, of_proc(pid)));
        }
        pid = ppid;
    }
    None
}

//! Leases: a port for one process, machine-wide, gone when the process is.
//!
//! A process is known by its pid, the moment it started (clock ticks since boot, field 22 of
//! `/proc/PID/stat`), the boot it started in (`/proc/sys/kernel/random/boot_id`) and the pid
//! namespace its pid is counted in (`/proc/PID/ns/pid`): a pid the kernel gives to a later
//! process, in this boot or the next, never inherits a lease, and a pid counted in a sandbox
//! (`unshare -p`, bwrap, a container) is never read as the pid of another process outside
//! it. A holder that cannot be seen from here, in a namespace this one cannot look into, is
//! kept: a port skipped beats a port given twice. A zombie (exited, not yet reaped) is gone.
//! Only Linux has `/proc`; elsewhere a lease is refused rather than guessed.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The process a lease belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// Its pid, as its own pid namespace counts it.
    pub pid: u32,
    /// When it started: clock ticks since boot.
    pub start: u64,
    /// The boot it started in.
    pub boot: String,
    /// The pid namespace `pid` is counted in (the inode of `/proc/PID/ns/pid`); absent in
    /// leases written before namespaces were told apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidns: Option<u64>,
}

/// Why a process cannot hold a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No such process (or it has exited).
    NoProcess,
    /// It runs as another user, whose processes this user must not speak for.
    OtherUser,
    /// The system's first process, which never exits: its lease would never end.
    Init,
    /// This system has no `/proc` to tell a process by.
    Unsupported,
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NoProcess => "no such process is running",
            Refused::OtherUser => "it runs as another user",
            Refused::Init => "it is the system's first process, which never exits",
            Refused::Unsupported => {
                "leases need /proc (Linux) to tell a process from a later one with its pid"
            }
        }
    }
}

/// The first pid namespace of every Linux system (`PROC_PID_INIT_INO`): a process counted
/// in it sees every process there is.
const INIT_PIDNS: u64 = 0xEFFF_FFFC;

fn proc_dir(pid: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

/// A process's state, start time and parent, from `/proc/PID/stat` (`PID` a number, or
/// `self`): the fields after the command, which is in parentheses and may itself hold spaces
/// and parentheses.
fn stat(pid: &str) -> Option<(u8, u64, u32)> {
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
fn pidns(pid: &str) -> Option<u64> {
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
fn mount_ns() -> Option<u64> {
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
fn running(state: u8) -> bool {
    !matches!(state, b'Z' | b'X' | b'x')
}

/// This process's pid as `/proc` counts it.
fn proc_self() -> Option<u32> {
    fs::read_link("/proc/self").ok()?.to_str()?.parse().ok()
}

/// The pid `/proc` gives the process that this process's own pid namespace calls `pid`
/// (what `$$`, `--pid` and `getpid` say): the same number, unless `/proc` is a parent
/// namespace's.
fn in_proc(pid: u32) -> Option<u32> {
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

impl Holder {
    /// The process `/proc` calls `pid`, as a lease holder: it must be running and be this
    /// user's.
    fn of_proc(pid: u32) -> Result<Holder, Refused> {
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
        Ok(Holder {
            pid: own,
            start,
            boot: boot.to_string(),
            pidns: pidns(&name),
        })
    }

    /// The process this process's pid namespace calls `pid`, as a lease holder.
    pub fn of(pid: u32) -> Result<Holder, Refused> {
        if pid == 1 {
            return Err(Refused::Init);
        }
        Holder::of_proc(in_proc(pid).ok_or(Refused::NoProcess)?)
    }

    /// This process, as a holder.
    pub fn of_self() -> Result<Holder, Refused> {
        Holder::of_proc(proc_self().ok_or(Refused::Unsupported)?)
    }

    /// Whether its pid is counted as this process counts pids: only then may it be signalled
    /// by that number.
    pub fn counted_here(&self) -> bool {
        self.pidns.is_none() || self.pidns == pidns("self")
    }

    /// The command line it runs now, for people (arguments joined by spaces), read where
    /// `/proc` shows it (`at`, see [`Life::Alive`]).
    pub fn command_at(at: u32) -> Option<String> {
        let raw = fs::read(proc_dir(&at.to_string()).join("cmdline")).ok()?;
        let words: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        (!words.is_empty()).then(|| words.join(" "))
    }

    /// The command line it runs now, when it is counted as `/proc` counts.
    pub fn command(&self) -> Option<String> {
        match Alive::default().life(self) {
            Life::Alive(at) => Holder::command_at(at),
            _ => None,
        }
    }
}

/// Whether process `pid` runs as this process's user; `None` when it cannot be told (no such
/// process, or no `/proc`). Root is no exception: another user's process is theirs.
pub fn same_user(pid: u32) -> Option<bool> {
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

/// The holder a lease for `pid` (or, without one, for the caller) is made to, or the error
/// that says why there is none.
pub fn holder(pid: Option<u32>) -> crate::error::Result<Holder> {
    use crate::error::Error;
    match pid {
        Some(p) => Holder::of(p).map_err(|r| Error::LeaseRefused {
            pid: p,
            reason: r.reason(),
        }),
        None => {
            let p = caller().ok_or(Error::NoLeaseHolder(
                "no process above this one would ever end",
            ))?;
            Holder::of_proc(p).map_err(|r| Error::LeaseRefused {
                pid: p,
                reason: r.reason(),
            })
        }
    }
}

/// What can be told of a lease's holder from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// It runs; `/proc` shows it under this pid.
    Alive(u32),
    /// It has exited (or its pid is another process's now).
    Gone,
    /// It runs in a pid namespace this process cannot look into: it is kept.
    Unseen,
}

/// Which lease holders are alive, each pid looked at once however many leases it holds:
/// thousands of dead leases cost one failed open each, in one pass. A holder of another
/// pid namespace costs one look at every process, once.
#[derive(Default)]
pub struct Alive {
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

impl Alive {
    pub fn holds(&mut self, h: &Holder) -> bool {
        self.life(h) != Life::Gone
    }

    pub fn life(&mut self, h: &Holder) -> Life {
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

/// The process a lease without `--pid` is for: the one that ran `git ports lease`, which is
/// this process's parent once `git` itself (which runs `git-ports` and exits with it) and
/// any subshell forked for a command substitution (a copy of its own parent) are passed
/// over. `None` when that walk reaches init, whose lease would never end. Pids as `/proc`
/// counts them.
pub fn caller() -> Option<u32> {
    let (_, _, mut pid) = stat("self")?;
    for _ in 0..16 {
        if pid <= 1 {
            return None;
        }
        let name = pid.to_string();
        let (_, _, ppid) = stat(&name)?;
        let comm = fs::read(proc_dir(&name).join("comm")).ok()?;
        let is_git = comm.trim_ascii_end() == b"git";
        let same = |p: u32| {
            let d = proc_dir(&p.to_string());
            (
                fs::read_link(d.join("exe")).ok(),
                fs::read(d.join("cmdline")).ok(),
            )
        };
        let subshell = ppid > 1 && same(pid) == same(ppid) && same(pid).0.is_some();
        if !is_git && !subshell {
            return Some(pid);
        }
        pid = ppid;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_alive_and_a_changed_start_is_not() {
        let me = Holder::of(std::process::id()).expect("this process can hold a lease");
        assert_eq!(Holder::of_self().as_ref(), Ok(&me));
        let mut alive = Alive::default();
        assert!(alive.holds(&me));
        let reused = Holder {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(
            !Alive::default().holds(&reused),
            "a reused pid is not the holder"
        );
        let other_boot = Holder {
            boot: "another boot".into(),
            ..me
        };
        assert!(!Alive::default().holds(&other_boot));
        assert_eq!(Holder::of(u32::MAX).err(), Some(Refused::NoProcess));
    }
}

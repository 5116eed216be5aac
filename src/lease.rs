//! Leases: a port for one process, machine-wide, gone when the process is.
//!
//! A process is known by its pid, the moment it started (clock ticks since boot, field 22 of
//! `/proc/PID/stat`) and the boot it started in (`/proc/sys/kernel/random/boot_id`): a pid
//! the kernel gives to a later process, in this boot or the next, never inherits a lease. A
//! zombie (exited, not yet reaped) is gone. Only Linux has `/proc`; elsewhere a lease is
//! refused rather than guessed.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The process a lease belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    pub pid: u32,
    /// When it started: clock ticks since boot.
    pub start: u64,
    /// The boot it started in.
    pub boot: String,
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

fn proc_dir(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

/// A process's state and start time, from `/proc/PID/stat`: the fields after the command,
/// which is in parentheses and may itself hold spaces and parentheses.
fn stat(pid: u32) -> Option<(u8, u64, u32)> {
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

impl Holder {
    /// The process `pid`, as a lease holder: it must be running and be this user's.
    pub fn of(pid: u32) -> Result<Holder, Refused> {
        if pid == 1 {
            return Err(Refused::Init);
        }
        let boot = boot_id().ok_or(Refused::Unsupported)?;
        let (state, start, _) = stat(pid).ok_or(Refused::NoProcess)?;
        if !running(state) {
            return Err(Refused::NoProcess);
        }
        match same_user(pid) {
            Some(true) => {}
            Some(false) => return Err(Refused::OtherUser),
            None => return Err(Refused::NoProcess),
        }
        Ok(Holder {
            pid,
            start,
            boot: boot.to_string(),
        })
    }

    /// The command line it runs now, for people (arguments joined by spaces).
    pub fn command(&self) -> Option<String> {
        let raw = fs::read(proc_dir(self.pid).join("cmdline")).ok()?;
        let words: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        (!words.is_empty()).then(|| words.join(" "))
    }
}

/// Whether process `pid` runs as this process's user; `None` when it cannot be told (no such
/// process, or no `/proc`). Root is no exception: another user's process is theirs.
pub fn same_user(pid: u32) -> Option<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = |p: PathBuf| fs::metadata(p).map(|m| m.uid()).ok();
        Some(uid(proc_dir(pid))? == uid(PathBuf::from("/proc/self"))?)
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
    let pid = match pid {
        Some(p) => p,
        None => caller().ok_or(Error::NoLeaseHolder(
            "no process above this one would ever end",
        ))?,
    };
    Holder::of(pid).map_err(|r| Error::LeaseRefused {
        pid,
        reason: r.reason(),
    })
}

/// Which lease holders are alive, each pid looked at once however many leases it holds:
/// thousands of dead leases cost one failed open each, in one pass.
#[derive(Default)]
pub struct Alive {
    starts: HashMap<u32, Option<u64>>,
}

impl Alive {
    pub fn holds(&mut self, h: &Holder) -> bool {
        if boot_id() != Some(h.boot.as_str()) {
            return false;
        }
        let now = *self.starts.entry(h.pid).or_insert_with(|| {
            stat(h.pid).and_then(|(state, start, _)| running(state).then_some(start))
        });
        now == Some(h.start)
    }
}

/// The process a lease without `--pid` is for: the one that ran `git ports lease`, which is
/// this process's parent once `git` itself (which runs `git-ports` and exits with it) and
/// any subshell forked for a command substitution (a copy of its own parent) are passed
/// over. `None` when that walk reaches init, whose lease would never end.
pub fn caller() -> Option<u32> {
    let me = std::process::id();
    let (_, _, mut pid) = stat(me)?;
    for _ in 0..16 {
        if pid <= 1 {
            return None;
        }
        let (_, _, ppid) = stat(pid)?;
        let comm = fs::read(proc_dir(pid).join("comm")).ok()?;
        let is_git = comm.trim_ascii_end() == b"git";
        let same = |p: u32| {
            (
                fs::read_link(proc_dir(p).join("exe")).ok(),
                fs::read(proc_dir(p).join("cmdline")).ok(),
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

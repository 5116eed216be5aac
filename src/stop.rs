//! Stopping a server: SIGTERM, a bounded grace, then SIGKILL, and what came of it. Only the
//! processes a caller has judged to be a worktree's own get here (see `owner.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::owner::Owner;

/// How stopping one process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// It ended on SIGTERM within the grace.
    Stopped,
    /// It ignored SIGTERM for the whole grace, and was killed.
    Killed,
    /// It had ended before it was asked to.
    AlreadyGone,
    /// The system refused to signal it (another user's process).
    NotPermitted,
}

impl Ending {
    /// How a report says it, after the process.
    pub fn describe(self, grace: Duration) -> String {
        match self {
            Ending::Stopped => "stopped".into(),
            Ending::Killed => format!("ignored SIGTERM for {}s: killed", grace.as_secs_f64()),
            Ending::AlreadyGone => "had already exited".into(),
            Ending::NotPermitted => {
                "not stopped: the system does not let this user signal it".into()
            }
        }
    }
}

/// Whether process `pid` is still there (and not a zombie waiting for its parent).
pub fn alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // `pid (comm) S …`: the state follows the last `)`.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => false,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        signal(pid, "0")
    }
}

/// Sends a signal with `kill(1)`: git-ports writes no unsafe code, and `kill` is on every Unix.
fn signal(pid: u32, sig: &str) -> bool {
    std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops process `pid`: SIGTERM, up to `grace` for it to end, then SIGKILL. Pid 1 (the
/// system's, or a pid namespace's first process) is never signalled.
pub fn stop(pid: u32, grace: Duration) -> Ending {
    if pid <= 1 {
        return Ending::NotPermitted;
    }
    if !alive(pid) {
        return Ending::AlreadyGone;
    }
    if !signal(pid, "TERM") {
        return if alive(pid) {
            Ending::NotPermitted
        } else {
            Ending::AlreadyGone
        };
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        if !alive(pid) {
            return Ending::Stopped;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(pid, "KILL");
    let start = Instant::now();
    while alive(pid) && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ending::Killed
}

/// Stops every process of `owner` (a port may be listened on by one process per address),
/// and says how the hardest of them ended.
pub fn stop_owner(owner: &Owner, grace: Duration) -> Ending {
    let rank = |e: &Ending| match e {
        Ending::AlreadyGone => 0,
        Ending::Stopped => 1,
        Ending::Killed => 2,
        Ending::NotPermitted => 3,
    };
    let endings: Vec<Ending> = owner.pids.iter().map(|&p| stop(p, grace)).collect();
    endings
        .into_iter()
        .max_by_key(rank)
        .unwrap_or(Ending::NotPermitted)
}

/// Whether every process of `owner` is this user's: another user's is never stopped, even
/// by root.
pub fn ours(owner: &Owner) -> bool {
    !owner.pids.is_empty()
        && owner
            .pids
            .iter()
            .all(|&p| crate::lease::same_user(p) == Some(true))
}

/// Whether every process of `owner` is this user's and runs in `dir` now: a check just
/// before signalling, so a pid reused since the lookup, or another user's process, is never
/// signalled.
pub fn still_in(owner: &Owner, dir: &Path) -> bool {
    ours(owner)
        && owner
            .pids
            .iter()
            .all(|&pid| crate::owner::cwd_of(pid).is_some_and(|c| crate::owner::runs_in(&c, dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_that_already_exited_is_said_so_and_not_signalled() {
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let pid = child.id();
        // Exited but not reaped: a zombie, which is gone too.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!alive(pid));
        assert_eq!(stop(pid, Duration::from_millis(100)), Ending::AlreadyGone);
        let _ = child.wait();
        assert_eq!(stop(pid, Duration::from_millis(100)), Ending::AlreadyGone);
        assert_eq!(stop(1, Duration::from_millis(100)), Ending::NotPermitted);
    }
}

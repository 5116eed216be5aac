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

/// Stops the process `owner` names: SIGTERM, up to `grace` for it to end, then SIGKILL.
pub fn stop(owner: &Owner, grace: Duration) -> Ending {
    let Some(pid) = owner.pid else {
        return Ending::NotPermitted;
    };
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

/// Whether the process is this user's: another user's is never stopped, even by root.
pub fn ours(owner: &Owner) -> bool {
    owner
        .pid
        .is_some_and(|p| crate::lease::same_user(p) == Some(true))
}

/// Whether the process is this user's and runs in `dir` now: a check just before signalling,
/// so a pid reused since the lookup, or another user's process, is never signalled.
pub fn still_in(owner: &Owner, dir: &Path) -> bool {
    let Some(pid) = owner.pid else { return false };
    if !ours(owner) {
        return false;
    }
    let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
        return false;
    };
    let listener = crate::owner::Listener {
        pid,
        command: Default::default(),
        cwd: Some(cwd),
    };
    listener.runs_in(dir)
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
        let owner = Owner {
            pid: Some(pid),
            ..Owner::unknown()
        };
        assert!(!alive(pid));
        assert_eq!(
            stop(&owner, Duration::from_millis(100)),
            Ending::AlreadyGone
        );
        let _ = child.wait();
        assert_eq!(
            stop(&owner, Duration::from_millis(100)),
            Ending::AlreadyGone
        );
    }
}

//! Stopping a server: asked to end (SIGTERM, or Windows' request to close), a bounded grace,
//! then ended for good, and what came of it. Only the processes a caller has judged to be a
//! worktree's own get here (see `owner.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::machine::{self, Census, Identity, Life, Refused, Sent, Signal};
use crate::owner::Owner;

/// How stopping one process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// It ended when asked, within the grace.
    Stopped,
    /// It ignored the request for the whole grace, and was ended.
    Killed,
    /// It cannot be asked on this system (a console program on Windows), and was ended.
    Ended,
    /// It had ended before it was asked to.
    AlreadyGone,
    /// The system refused to signal it (another user's process).
    NotPermitted,
    /// A container its engine did not stop (it could not be asked, or refused).
    EngineRefused,
}

impl Ending {
    /// How a report says it, after the process.
    pub fn describe(self, grace: Duration) -> String {
        match self {
            Ending::Stopped => "stopped".into(),
            Ending::Killed => format!(
                "ignored {} for {}s: killed",
                machine::ASK,
                grace.as_secs_f64()
            ),
            Ending::Ended => format!("cannot be sent {}, so it was ended at once", machine::ASK),
            Ending::AlreadyGone => "had already exited".into(),
            Ending::NotPermitted => {
                "not stopped: the system does not let this user signal it".into()
            }
            Ending::EngineRefused => "not stopped: Docker did not stop it".into(),
        }
    }
}

/// Whether process `pid` is still there (and not a zombie waiting for its parent).
pub fn alive(pid: u32) -> bool {
    machine::alive(pid)
}

/// Whether the process `id` names still runs: not only its pid, which a later process may
/// have been given.
fn still(id: &Identity) -> bool {
    matches!(Census::default().life(id), Life::Alive(_))
}

/// Stops process `pid`: asks it to end (SIGTERM), up to `grace` for it to, then ends it
/// (SIGKILL). The process is known by its identity, taken first: a pid the system gives to
/// another process meanwhile is never signalled. Pid 1 (the system's, or a pid namespace's
/// first process) never is either.
pub fn stop(pid: u32, grace: Duration) -> Ending {
    if pid <= 1 {
        return Ending::NotPermitted;
    }
    let id = match Identity::of(pid) {
        Ok(id) => id,
        Err(Refused::OtherUser | Refused::Init) => return Ending::NotPermitted,
        Err(_) if !alive(pid) => return Ending::AlreadyGone,
        Err(_) => return Ending::NotPermitted,
    };
    match machine::signal(pid, Signal::Ask) {
        Sent::Delivered => {}
        Sent::Gone => return Ending::AlreadyGone,
        Sent::NotPermitted => return Ending::NotPermitted,
        Sent::CannotAsk => {
            if !still(&id) {
                return Ending::AlreadyGone;
            }
            return match machine::signal(pid, Signal::End) {
                Sent::NotPermitted => Ending::NotPermitted,
                Sent::Gone => Ending::AlreadyGone,
                _ => {
                    settle(&id);
                    Ending::Ended
                }
            };
        }
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        if !still(&id) {
            return Ending::Stopped;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !still(&id) {
        return Ending::Stopped;
    }
    machine::signal(pid, Signal::End);
    settle(&id);
    Ending::Killed
}

/// Waits (two seconds at most) for an ended process to be gone.
fn settle(id: &Identity) {
    let start = Instant::now();
    while still(id) && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops every process of `owner` (a port may be listened on by one process per address),
/// and says how the hardest of them ended.
pub fn stop_owner(owner: &Owner, grace: Duration) -> Ending {
    let rank = |e: &Ending| match e {
        Ending::AlreadyGone => 0,
        Ending::Stopped => 1,
        Ending::Ended => 2,
        Ending::Killed => 3,
        Ending::NotPermitted | Ending::EngineRefused => 4,
    };
    let endings: Vec<Ending> = owner
        .pids
        .iter()
        .map(|&p| stop(p, grace))
        .chain(owner.containers.iter().map(|c| stop_container(c, grace)))
        .collect();
    endings
        .into_iter()
        .max_by_key(rank)
        .unwrap_or(Ending::NotPermitted)
}

/// Stops a container through its engine (which asks its main process to end, and ends it
/// after `grace`). A container's id is never given to another.
/// A container publishing several ports is stopped once: each port after the first says how
/// that went.
pub fn stop_container(c: &crate::owner::Container, grace: Duration) -> Ending {
    static DONE: std::sync::Mutex<Vec<(String, Ending)>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, e)) = done.iter().find(|(id, _)| *id == c.id) {
        return *e;
    }
    let e = match crate::machine::docker::stop(&c.id, grace) {
        crate::machine::docker::Stopped::Stopped => Ending::Stopped,
        crate::machine::docker::Stopped::AlreadyGone => Ending::AlreadyGone,
        crate::machine::docker::Stopped::Failed => Ending::EngineRefused,
    };
    done.push((c.id.clone(), e));
    e
}

/// Whether every process of `owner` is this user's: another user's is never stopped, even
/// by root. A container is the user's who can ask its engine (whose forwarder is root's).
pub fn ours(owner: &Owner) -> bool {
    !(owner.pids.is_empty() && owner.containers.is_empty())
        && owner
            .pids
            .iter()
            .all(|&p| machine::same_user(p) == Some(true))
}

/// Whether every process of `owner` is this user's and runs in `dir` now: a check just
/// before signalling, so a pid reused since the lookup, or another user's process, is never
/// signalled.
pub fn still_in(owner: &Owner, dir: &Path) -> bool {
    ours(owner)
        && owner
            .pids
            .iter()
            .all(|&pid| machine::cwd(pid).is_some_and(|c| crate::owner::runs_in(&c, dir)))
        && owner.containers.iter().all(|c| {
            c.dir
                .as_deref()
                .is_some_and(|d| crate::owner::runs_in(&crate::owner::container_dir(d), dir))
        })
}

/// A container of the worktree's compose project that publishes none of its ports.
#[derive(Debug, Serialize)]
pub struct StoppedContainer {
    pub container: crate::owner::Container,
    pub ending: Ending,
}

/// Stops the containers of the compose projects in `dir` that `done` has not stopped already:
/// the rest of the worktree's stack (a worker, a database published on no port of its own).
pub fn rest_of_stack(
    dir: &std::path::Path,
    done: &[&Owner],
    grace: Duration,
) -> Vec<StoppedContainer> {
    crate::owner::containers_in(dir)
        .into_iter()
        .filter(|c| {
            !done
                .iter()
                .any(|o| o.containers.iter().any(|d| d.id == c.id))
        })
        .map(|c| StoppedContainer {
            ending: stop_container(&c, grace),
            container: c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_already_exited_is_said_so_and_not_signalled() {
        // This test binary, which exits at once without arguments it knows.
        let exe = std::env::current_exe().expect("test binary");
        let mut child = std::process::Command::new(exe)
            .arg("--no-such-flag")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        // Exited but not reaped: a zombie, which is gone too.
        let start = Instant::now();
        while alive(pid) && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid));
        assert_eq!(stop(pid, Duration::from_millis(100)), Ending::AlreadyGone);
        let _ = child.wait();
        assert_eq!(stop(pid, Duration::from_millis(100)), Ending::AlreadyGone);
        assert_eq!(stop(1, Duration::from_millis(100)), Ending::NotPermitted);
    }
}

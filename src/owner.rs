//! Who listens on a port: the process (pid, command, working directory) and whose worktree
//! that is. Only listening sockets count, never a client's connection. The lookup reads
//! `/proc` on Linux; elsewhere nothing is known, and callers say "another process".

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bytes::{os_bytes, show_bytes};

/// A process listening on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub pid: u32,
    /// Its name as the system gives it: bytes, kept exactly.
    pub command: OsString,
    /// Its working directory, where the system tells.
    pub cwd: Option<PathBuf>,
}

/// The processes listening on `ports`, found in one pass over the socket tables and the
/// processes. A port whose listener cannot be told (another user's process, or not Linux) is
/// absent.
pub fn listeners(ports: &[u16]) -> HashMap<u16, Listener> {
    #[cfg(target_os = "linux")]
    {
        linux::listeners(ports)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = ports;
        HashMap::new()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::fs;

    /// Socket inode → port, for sockets in the LISTEN state (0A) on the given ports.
    fn listening_inodes(ports: &[u16]) -> HashMap<String, u16> {
        let mut inodes = HashMap::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = fs::read_to_string(table) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                    continue;
                };
                let port = local
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok());
                if let Some(p) = port.filter(|p| ports.contains(p))
                    && *state == "0A"
                    && *inode != "0"
                {
                    inodes.insert(format!("socket:[{inode}]"), p);
                }
            }
        }
        inodes
    }

    pub fn listeners(ports: &[u16]) -> HashMap<u16, Listener> {
        let inodes = listening_inodes(ports);
        let mut found = HashMap::new();
        if inodes.is_empty() {
            return found;
        }
        let Ok(procs) = fs::read_dir("/proc") else {
            return found;
        };
        for proc in procs.flatten() {
            let Ok(pid) = proc.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(fds) = fs::read_dir(proc.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = fs::read_link(fd.path()) else {
                    continue;
                };
                let Some(&port) = target.to_str().and_then(|t| inodes.get(t)) else {
                    continue;
                };
                found.entry(port).or_insert_with(|| Listener {
                    pid,
                    command: fs::read(proc.path().join("comm"))
                        .map(|mut c| {
                            while c.last() == Some(&b'\n') {
                                c.pop();
                            }
                            crate::bytes::os_from_bytes(&c)
                        })
                        .unwrap_or_default(),
                    cwd: fs::read_link(proc.path().join("cwd")).ok(),
                });
            }
            if found.len()
                == inodes
                    .values()
                    .collect::<std::collections::HashSet<_>>()
                    .len()
            {
                break;
            }
        }
        found
    }
}

impl Listener {
    /// Whether the listener runs in `dir` or below it, even once `dir` is deleted (the system
    /// then shows its working directory as `DIR (deleted)`): a server a removed worktree
    /// left running.
    pub fn runs_in(&self, dir: &Path) -> bool {
        // Every path starts with an empty or relative one: no such dir ever matches.
        let Some(cwd) = self.cwd.as_ref().filter(|_| dir.is_absolute()) else {
            return false;
        };
        let raw = os_bytes(cwd.as_os_str());
        let raw = raw.strip_suffix(b" (deleted)").unwrap_or(&raw);
        let cwd = PathBuf::from(crate::bytes::os_from_bytes(raw));
        cwd.starts_with(dir) || std::fs::canonicalize(dir).is_ok_and(|d| cwd.starts_with(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_runs_in_its_directory_deleted_or_not_and_never_in_no_directory() {
        let l = Listener {
            pid: 1,
            command: "x".into(),
            cwd: Some(PathBuf::from("/src/app-wt/server (deleted)")),
        };
        assert!(l.runs_in(Path::new("/src/app-wt")));
        assert!(!l.runs_in(Path::new("/src/app")));
        assert!(!l.runs_in(Path::new("")));
        assert!(!l.runs_in(Path::new("relative")));
    }
}

/// A worktree a listener may be working in.
#[derive(Debug, Clone)]
pub struct Place {
    /// The worktree's directory, canonical.
    pub path: PathBuf,
    /// Its name.
    pub worktree: String,
    /// `~/src/other`, for a worktree of another repository; `None` for this repository.
    pub repository: Option<String>,
}

/// Whose a listener is, against the worktree that holds the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The worktree that holds the port.
    #[serde(rename = "self")]
    Own,
    /// Another worktree of this repository.
    Worktree,
    /// A worktree of another repository on this machine.
    Repository,
    /// A program in no known worktree (or whose directory cannot be read).
    Other,
    /// Something listens, but the system does not say what (another user's process, or a
    /// system without `/proc`): never taken for the worktree's own server.
    Unknown,
}

/// The worktrees a listener may run in: `ours` (this repository's), and the worktrees of the
/// other repositories the ledger names (one place per worktree, however many ports it
/// holds).
pub fn places(
    ours: &[crate::repo::Worktree],
    ledger: Option<&crate::ledger::Ledger>,
    repo_id: &Path,
) -> Vec<Place> {
    let mut places: Vec<Place> = ours
        .iter()
        .filter_map(|w| {
            Some(Place {
                path: std::fs::canonicalize(&w.path).ok()?,
                worktree: w.name.clone(),
                repository: None,
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for c in ledger
        .into_iter()
        .flat_map(|l| l.ports.values())
        .filter(|c| c.repo != repo_id)
    {
        if !seen.insert((&c.repo, &c.worktree)) {
            continue;
        }
        if let Ok(path) = std::fs::canonicalize(&c.path) {
            places.push(Place {
                path,
                worktree: c.name.clone(),
                repository: Some(crate::ledger::tilde(&crate::ledger::repo_dir(&c.repo))),
            });
        }
    }
    places
}

/// Who serves each of `ports` now, each against the directory of the worktree that holds it;
/// `places` is asked only when something listens.
pub fn who_serves(
    ports: &[(u16, Option<PathBuf>)],
    places: impl FnOnce() -> Vec<Place>,
) -> HashMap<u16, Owner> {
    let wanted: Vec<u16> = ports.iter().map(|p| p.0).collect();
    let found = listeners(&wanted);
    if found.is_empty() {
        return HashMap::new();
    }
    let places = places();
    ports
        .iter()
        .filter_map(|(port, holder)| {
            let l = found.get(port)?;
            Some((*port, Owner::of(l, holder.as_deref(), &places)))
        })
        .collect()
}

/// Who serves a port, for people and for JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Owner {
    /// `null` for an unknown listener.
    pub pid: Option<u32>,
    /// Exact in JSON: a string, or `{"hex": …}` for a name that is not UTF-8.
    #[serde(with = "crate::bytes::os_path_opt")]
    pub command: Option<PathBuf>,
    #[serde(with = "crate::bytes::os_path_opt")]
    pub cwd: Option<PathBuf>,
    /// `self`, `worktree`, `repository`, `other` or `unknown`.
    pub owner: Kind,
    /// The worktree it runs in, for `self`, `worktree` and `repository`.
    pub worktree: Option<String>,
    /// The other repository, for `repository`.
    pub repository: Option<String>,
}

impl Owner {
    /// A listener the system does not name.
    pub fn unknown() -> Owner {
        Owner {
            pid: None,
            command: None,
            cwd: None,
            owner: Kind::Unknown,
            worktree: None,
            repository: None,
        }
    }

    /// Classifies `l` by the deepest known worktree its working directory is in; `holder` is
    /// the directory of the worktree that holds the port, if one does.
    pub fn of(l: &Listener, holder: Option<&Path>, places: &[Place]) -> Owner {
        let cwd = l.cwd.as_deref().and_then(|c| std::fs::canonicalize(c).ok());
        let place = cwd.as_deref().and_then(|c| {
            places
                .iter()
                .filter(|p| c.starts_with(&p.path))
                .max_by_key(|p| p.path.components().count())
        });
        let holder = holder.and_then(|h| std::fs::canonicalize(h).ok());
        let owner = match place {
            Some(p) if holder.as_deref() == Some(p.path.as_path()) => Kind::Own,
            Some(p) if p.repository.is_none() => Kind::Worktree,
            Some(_) => Kind::Repository,
            None => Kind::Other,
        };
        Owner {
            pid: Some(l.pid),
            command: Some(PathBuf::from(&l.command)),
            cwd: l.cwd.clone(),
            owner,
            worktree: place.map(|p| p.worktree.clone()),
            repository: place.and_then(|p| p.repository.clone()),
        }
    }

    /// Whether the holder's own worktree serves the port.
    pub fn is_own(&self) -> bool {
        self.owner == Kind::Own
    }

    /// `pid 4242 (node)`, the process as people read it (bytes that are not UTF-8 as
    /// `\ooo`); `None` for an unknown listener.
    pub fn process(&self) -> Option<String> {
        let pid = self.pid?;
        let command = self
            .command
            .as_ref()
            .map(|c| show_bytes(&os_bytes(c.as_os_str())))
            .unwrap_or_default();
        Some(format!("pid {pid} ({command})"))
    }

    /// `pid 4242 (node) in worktree 'feature-y'`, as every command says it.
    pub fn describe(&self) -> String {
        let Some(who) = self.process() else {
            return "a process git-ports cannot identify (another user's, or one the system does not show)".into();
        };
        match (self.owner, &self.worktree, &self.repository) {
            (Kind::Own, _, _) => format!("{who}, this worktree's own server"),
            (Kind::Worktree, Some(w), _) => format!("{who} in worktree '{w}'"),
            (Kind::Repository, Some(w), Some(r)) => format!("{who} in {r} ({w})"),
            _ => match &self.cwd {
                Some(c) => format!(
                    "{who} in {}, not a known worktree",
                    show_bytes(&os_bytes(c.as_os_str()))
                ),
                None => who,
            },
        }
    }
}

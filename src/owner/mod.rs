//! Who listens on a port: every listening socket on it, one per address it is bound to, with
//! the user whose socket it is and the process holding it (pid, command, working directory)
//! where the system tells; and whose worktree that is. A port is a worktree's own only when
//! every one of its listeners is: a server on `[::1]:P` beside another user's on
//! `127.0.0.1:P` is FOREIGN, since half of the clients that ask for `localhost:P` reach the
//! other one. Only listening sockets count, never a client's connection. What the system
//! shows of sockets and processes comes from `machine`; this module judges it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bytes::{os_bytes, show_bytes};

pub use crate::machine::docker::Container;
pub use crate::machine::{Cwd, Listener, Process, listeners};

/// Whether a directory whose working directory is `cwd` is in `dir` or below it; a deleted
/// one by the path it had (a server a removed worktree left running). A `dir` that is empty,
/// relative or a symlink contains nothing: a worktree directory replaced by a link to an
/// ancestor would otherwise claim every process below that ancestor.
pub fn runs_in(cwd: &Cwd, dir: &Path) -> bool {
    if !dir.is_absolute()
        || std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink())
    {
        return false;
    }
    let here = match cwd.deleted {
        true => cwd.path.clone(),
        false => crate::machine::canonical(&cwd.path).unwrap_or_else(|| cwd.path.clone()),
    };
    here.starts_with(dir) || crate::machine::canonical(dir).is_some_and(|d| here.starts_with(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_runs_in_its_worktree_deleted_or_not_and_never_in_no_directory() {
        // An absolute path on every OS, that is not there.
        let src = std::env::temp_dir()
            .join("git-ports-no-such-dir")
            .join("src");
        let deleted = Cwd {
            path: src.join("app-wt").join("server"),
            deleted: true,
        };
        assert!(runs_in(&deleted, &src.join("app-wt")));
        assert!(!runs_in(&deleted, &src.join("app")));
        assert!(!runs_in(&deleted, Path::new("")));
        assert!(!runs_in(&deleted, Path::new("relative")));
        // A directory that exists and is named so is not in `/src/app-wt`.
        let named = Cwd {
            path: src.join("app-wt (deleted)"),
            deleted: false,
        };
        assert!(!runs_in(&named, &src.join("app-wt")));
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
    /// A program of this user's in no known worktree (or whose directory cannot be read).
    Other,
    /// Another user's process: never this user's worktree's, wherever it runs.
    User,
    /// Something listens, but the system does not say what or whose (a socket no process
    /// visible here holds, an elevated process on Windows): never taken for the worktree's
    /// own server.
    Unknown,
}

/// The directory of a worktree that may own processes: one that is there, is not a symlink
/// and is not one git would prune. `None` for any other.
fn place_dir(path: &Path, prunable: bool) -> Option<PathBuf> {
    if prunable || std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return None;
    }
    crate::machine::canonical(path)
}

/// The worktrees a listener may run in: `ours` (this repository's), and the worktrees of the
/// other repositories the ledger names (one place per worktree, however many ports it
/// holds). A worktree whose directory is gone (prunable) or is a symlink owns no process.
pub fn places(
    ours: &[crate::repo::Worktree],
    ledger: Option<&crate::ledger::Ledger>,
    repo_id: &Path,
) -> Vec<Place> {
    let mut places: Vec<Place> = ours
        .iter()
        .filter_map(|w| {
            Some(Place {
                path: place_dir(&w.path, w.prunable)?,
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
        if let Some(path) = place_dir(&c.path, false) {
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
            let ls = found.get(port)?;
            Some((*port, Owner::of(ls, holder.as_deref(), &places)))
        })
        .collect()
}

/// The processes among `ls` that are this user's and run in `dir`: a server a removed
/// worktree left running on its port. `None` when there is none.
pub fn left_in(ls: &[Listener], dir: &Path) -> Option<Owner> {
    let mine: Vec<&Listener> = ls
        .iter()
        .filter(|l| match &l.container {
            // A container of the removed worktree's compose project.
            Some(c) => c
                .dir
                .as_ref()
                .is_some_and(|d| runs_in(&container_dir(d), dir)),
            None => {
                l.mine == Some(true)
                    && l.process
                        .as_ref()
                        .and_then(|p| p.cwd.as_ref())
                        .is_some_and(|c| runs_in(c, dir))
            }
        })
        .collect();
    let first = mine.first()?;
    let mut o = Owner::one(first, Kind::Other, None);
    o.pids = pids(mine.iter().copied().filter(|l| l.container.is_none()));
    o.containers = containers(mine.iter().copied());
    Some(o)
}

/// A container's project directory, as a working directory: gone when it is not there.
pub fn container_dir(d: &Path) -> Cwd {
    Cwd {
        path: d.to_path_buf(),
        deleted: !d.is_dir(),
    }
}

/// The running containers of the compose projects in `dir` (a worktree, or a removed one's
/// directory), whatever ports they publish; none where Docker is not here.
pub fn containers_in(dir: &Path) -> Vec<Container> {
    crate::machine::docker::containers()
        .unwrap_or_default()
        .iter()
        .filter(|c| c.project.is_some())
        .filter(|c| {
            c.dir
                .as_ref()
                .is_some_and(|d| runs_in(&container_dir(d), dir))
        })
        .cloned()
        .collect()
}

fn containers<'a>(ls: impl Iterator<Item = &'a Listener>) -> Vec<Container> {
    let mut out: Vec<Container> = Vec::new();
    for c in ls.filter_map(|l| l.container.as_ref()) {
        if !out.iter().any(|o| o.id == c.id) {
            out.push(c.clone());
        }
    }
    out
}

fn pids<'a>(ls: impl Iterator<Item = &'a Listener>) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for p in ls.filter_map(|l| l.process.as_ref()).map(|p| p.pid) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Who serves a port, for people and for JSON: the listener that decides (the first that is
/// not the worktree's own, else the first), and how many listen.
#[derive(Debug, Clone, Serialize)]
pub struct Owner {
    /// `null` for a listener whose process is not known.
    pub pid: Option<u32>,
    /// Exact in JSON: a string, or `{"hex": …}` for a name that is not UTF-8.
    #[serde(with = "crate::bytes::os_path_opt")]
    pub command: Option<PathBuf>,
    #[serde(with = "crate::bytes::os_path_opt")]
    pub cwd: Option<PathBuf>,
    /// `self`, `worktree`, `repository`, `other`, `user` or `unknown`.
    pub owner: Kind,
    /// The worktree it runs in, for `self`, `worktree` and `repository`.
    pub worktree: Option<String>,
    /// The other repository, for `repository`.
    pub repository: Option<String>,
    /// The address it listens on.
    pub address: Option<IpAddr>,
    /// The user whose socket it is.
    pub uid: Option<u32>,
    /// The container whose published port it is, where one is: then `pid` and `command`
    /// are `null`, and `cwd` is its compose project's directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Box<Container>>,
    /// The worktree's own server listens on the port too, on another address.
    pub beside_own: bool,
    /// Every process listening on the port (for stopping: all of them are the worktree's own
    /// when `owner` is `self`).
    #[serde(skip)]
    pub pids: Vec<u32>,
    /// The addresses the port is listened on, in the order found.
    #[serde(skip)]
    pub addresses: Vec<IpAddr>,
    /// Every container publishing the port (for stopping, as `pids`).
    #[serde(skip)]
    pub containers: Vec<Container>,
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
            address: None,
            uid: None,
            container: None,
            beside_own: false,
            pids: Vec::new(),
            addresses: Vec::new(),
            containers: Vec::new(),
        }
    }

    fn one(l: &Listener, owner: Kind, place: Option<&Place>) -> Owner {
        let p = l.process.as_ref().filter(|_| l.container.is_none());
        let c = l.container.as_ref();
        Owner {
            pid: p.map(|p| p.pid),
            command: p.map(|p| PathBuf::from(&p.command)),
            cwd: match c {
                Some(c) => c.dir.clone(),
                None => p.and_then(|p| p.cwd.as_ref()).map(|c| c.path.clone()),
            },
            owner,
            worktree: place.map(|p| p.worktree.clone()),
            repository: place.and_then(|p| p.repository.clone()),
            address: Some(l.addr),
            uid: l.uid.filter(|_| c.is_none()),
            container: c.map(|c| Box::new(c.clone())),
            beside_own: false,
            pids: pids(std::iter::once(l).filter(|l| l.container.is_none())),
            addresses: vec![l.addr],
            containers: containers(std::iter::once(l)),
        }
    }

    /// What one listener is, by the deepest known worktree its working directory is in;
    /// `holder` is the directory of the worktree that holds the port, if one does.
    fn kind<'p>(
        l: &Listener,
        holder: Option<&Path>,
        places: &'p [Place],
    ) -> (Kind, Option<&'p Place>) {
        // A container is whose its compose project's directory is: the forwarder that holds
        // its port (root's `docker-proxy`, in `/`) says nothing about that.
        if let Some(c) = &l.container {
            let Some(dir) = &c.dir else {
                return (Kind::Other, None);
            };
            // Already resolved when the containers were listed: taken as it is.
            let dir = Cwd {
                path: dir.clone(),
                deleted: true,
            };
            return Owner::placed(&dir, holder, places);
        }
        match l.mine {
            Some(true) => {}
            Some(false) => return (Kind::User, None),
            // The system does not say whose it is (an elevated process on Windows): never
            // taken for this user's.
            None => return (Kind::Unknown, None),
        }
        let Some(p) = &l.process else {
            return (Kind::Unknown, None);
        };
        let Some(cwd) = &p.cwd else {
            return (Kind::Other, None);
        };
        Owner::placed(cwd, holder, places)
    }

    /// Whose a working directory is: the deepest known worktree it is in.
    fn placed<'p>(
        cwd: &Cwd,
        holder: Option<&Path>,
        places: &'p [Place],
    ) -> (Kind, Option<&'p Place>) {
        let path = if cwd.deleted {
            cwd.path.clone()
        } else {
            crate::machine::canonical(&cwd.path).unwrap_or_else(|| cwd.path.clone())
        };
        let place = places
            .iter()
            .filter(|p| path.starts_with(&p.path))
            .max_by_key(|p| p.path.components().count());
        let holder = holder.and_then(|h| place_dir(h, false));
        let kind = match place {
            Some(p) if holder.as_deref() == Some(p.path.as_path()) => Kind::Own,
            Some(p) if p.repository.is_none() => Kind::Worktree,
            Some(_) => Kind::Repository,
            None => Kind::Other,
        };
        (kind, place)
    }

    /// Classifies the listeners of one port against the worktree that holds it (`holder`,
    /// its directory, if one does): the worktree's own only if every listener is.
    pub fn of(ls: &[Listener], holder: Option<&Path>, places: &[Place]) -> Owner {
        let kinds: Vec<(Kind, Option<&Place>)> =
            ls.iter().map(|l| Owner::kind(l, holder, places)).collect();
        let deciding = kinds.iter().position(|(k, _)| *k != Kind::Own).unwrap_or(0);
        let Some(l) = ls.get(deciding) else {
            return Owner::unknown();
        };
        let (kind, place) = kinds[deciding];
        let mut o = Owner::one(l, kind, place);
        o.beside_own = kind != Kind::Own && kinds.iter().any(|(k, _)| *k == Kind::Own);
        o.pids = pids(ls.iter().filter(|l| l.container.is_none()));
        o.containers = containers(ls.iter());
        o.addresses = ls.iter().map(|l| l.addr).collect();
        o
    }

    /// Whether the holder's own worktree serves the port, on every address it listens on.
    pub fn is_own(&self) -> bool {
        self.owner == Kind::Own
    }

    /// The command a person would stop it with by hand: `kill 4242`, `docker stop shop-fx-db-1`.
    pub fn stop_by_hand(&self) -> String {
        if !self.containers.is_empty() {
            let names: Vec<String> = self
                .containers
                .iter()
                .map(|c| crate::output::shell_quote(&c.name))
                .collect();
            return format!("docker stop {}", names.join(" "));
        }
        let pids: Vec<String> = self.pids.iter().map(|p| p.to_string()).collect();
        format!("kill {}", pids.join(" "))
    }

    /// `pid 4242 (node)`, the process as people read it (bytes that are not UTF-8 as
    /// `\ooo`); `None` for a listener whose process is not known.
    pub fn process(&self) -> Option<String> {
        if let Some(c) = &self.container {
            return Some(c.describe());
        }
        let pid = self.pid?;
        let command = self
            .command
            .as_ref()
            .map(|c| show_bytes(&os_bytes(c.as_os_str())))
            .unwrap_or_default();
        Some(format!("pid {pid} ({command})"))
    }

    /// As [`Owner::describe`], for a command that is not run in the holder's worktree
    /// (`check`): the holder's own server is named as `holder`'s (`worktree 'fx'`,
    /// `~/src/app (fx)`), never as "this worktree's".
    pub fn describe_for(&self, holder: &str) -> String {
        match (self.owner, self.process()) {
            (Kind::Own, Some(who)) => format!("{who}, the server of {holder}, which holds it"),
            _ => self.describe(),
        }
    }

    /// `pid 4242 (node) in worktree 'feature-y'`, as every command says it.
    pub fn describe(&self) -> String {
        let who = match (self.process(), self.owner) {
            (Some(who), Kind::User) => match self.uid {
                Some(u) => format!("{who} of another user (uid {u})"),
                None => format!("{who} of another user"),
            },
            (None, Kind::User) => match self.uid {
                Some(u) => format!("a process of another user (uid {u})"),
                None => "a process of another user".into(),
            },
            (Some(who), _) => who,
            (None, _) => {
                "a process git-ports cannot identify (the system does not show which holds the socket)".into()
            }
        };
        let base = match (self.owner, &self.worktree, &self.repository) {
            (Kind::User, _, _) => who,
            // A process the system names but whose user it does not show (an elevated one on
            // Windows): never taken for this user's.
            (Kind::Unknown, _, _) if self.pid.is_some() => {
                format!("{who}, whose user the system does not show")
            }
            (Kind::Unknown, _, _) => who,
            (Kind::Own, _, _) => format!("{who}, this worktree's own server"),
            (Kind::Worktree, Some(w), _) => format!("{who} in worktree '{w}'"),
            (Kind::Other, _, _) if self.container.as_ref().is_some_and(|c| c.project.is_none()) => {
                format!(
                    "{who}: started without Compose, so git-ports cannot tell which worktree it is of"
                )
            }
            (Kind::Repository, Some(w), Some(r)) => format!("{who} in {r} ({w})"),
            _ => match &self.cwd {
                Some(c) => format!(
                    "{who} in {}, not a known worktree",
                    show_bytes(&os_bytes(c.as_os_str()))
                ),
                None => format!("{who}, whose working directory the system does not show"),
            },
        };
        match (self.beside_own, self.address) {
            (true, Some(a)) => format!("{base}, on {a}, beside this worktree's own server"),
            _ => base,
        }
    }
}

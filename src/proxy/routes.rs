//! Where a host name leads: the ledger's names and each repository's registry, read live (a
//! file is read again only when its size, time or inode changed), so a new allocation or a
//! re-pointed origin needs no restart. A file that cannot be read now is an answer of its
//! own (503), asked again on the next request, never remembered as "no names"; only names
//! that lead somewhere are remembered, a bounded number of them.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::ledger::{Ledger, LedgerStore, repo_dir, tilde};
use crate::names::{self, SUFFIX};
use crate::registry::Registry;
use crate::store::Store;

/// How many names' routes each thread remembers at most: far more than a machine's
/// worktrees, and small whatever clients ask for.
const REMEMBERED: usize = 1024;

/// What a host name leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A port the registry holds: forward there, to the worktree's own server only.
    To { port: u16, place: Place },
    /// The worktree holds no port for the service.
    NotHeld { place: Place },
    /// The registry holds the port, but the ledger gives it to another holder (a copied
    /// repository, a registry restored from a backup): the server there may be theirs.
    Conflict {
        port: u16,
        place: Place,
        holder: String,
    },
    /// The ledger or the repository's registry cannot be read now.
    Unreadable { what: String, why: String },
    /// No such name.
    Unknown,
}

/// A worktree and service, as the pages name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub worktree: String,
    /// The repository's top directory, `~/`-shortened.
    pub repo: String,
    /// The worktree's directory.
    pub path: PathBuf,
    /// The directories of the repository's other worktrees inside this one (nested
    /// worktrees): a server running there is theirs, not this worktree's.
    pub nested: Vec<PathBuf>,
    pub service: String,
    /// The name asked for.
    pub host: String,
    /// The name was the repository's origin.
    pub origin: bool,
}

/// A file as last read: its identity on disk.
type Stamp = Option<(u64, std::time::SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.len(), m.modified().ok()?, ino))
}

/// `path`'s stamp, taken again only when the last is older than [`STAT_EVERY`].
fn recent_stamp(stamps: &mut HashMap<PathBuf, (std::time::Instant, Stamp)>, path: &Path) -> Stamp {
    let now = std::time::Instant::now();
    if let Some((at, s)) = stamps.get(path)
        && now.duration_since(*at) < STAT_EVERY
    {
        return *s;
    }
    let s = stamp(path);
    if stamps.len() >= 4096 {
        stamps.clear();
    }
    stamps.insert(path.to_path_buf(), (now, s));
    s
}

struct Cached<T> {
    stamp: Stamp,
    value: T,
}

/// The table the proxy routes by.
pub struct Routes {
    ledger: Option<LedgerStore>,
    state: Mutex<State>,
}

/// How long a file's stamp is taken as still true: a request within it asks the file system
/// nothing (two `statx` were a third of a request's system calls). A change to a file is
/// routed by at most this much later.
const STAT_EVERY: std::time::Duration = std::time::Duration::from_millis(2);

#[derive(Default)]
struct State {
    /// Each file's stamp and when it was taken.
    stamps: HashMap<PathBuf, (std::time::Instant, Stamp)>,
    ledger: Option<Cached<Ledger>>,
    registries: HashMap<PathBuf, Cached<Arc<Registry>>>,
    /// Routes worked out, by host, with the files they were worked out from: a request
    /// whose files have not changed costs two stats and a lookup.
    routes: HashMap<String, Known>,
}

struct Known {
    ledger: Stamp,
    /// The registry the route read, and how it was then.
    registry: Option<(PathBuf, Stamp)>,
    route: Arc<Route>,
}

/// `Host` as a name: lowercase, without a port or a trailing dot; `None` when it is no
/// name at all (empty, not ASCII, longer than DNS allows).
pub fn normalize(host: &str) -> Option<String> {
    let host = host.trim();
    let name = match (host.find(']'), host.rsplit_once(':')) {
        // An IPv6 literal, `[::1]:4480`.
        (Some(end), _) if host.starts_with('[') => &host[..=end],
        (_, Some((h, p))) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty() && name.is_ascii() && name.len() <= names::NAME_MAX).then_some(name)
}

/// Whether a page may list this machine's names to whoever asked for `host`: a name under
/// `localhost` or a loopback address, which only this machine's own clients send. A page
/// of another site that rebinds its name to 127.0.0.1 asks with its own name, and learns
/// nothing.
pub fn is_local(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == SUFFIX
        || host.ends_with(&format!(".{SUFFIX}"))
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

impl Routes {
    pub fn new(ledger: Option<LedgerStore>) -> Routes {
        Routes {
            ledger,
            state: Mutex::new(State::default()),
        }
    }

    /// Where `host` (already normalized) leads now.
    pub fn resolve(&self, host: &str) -> Arc<Route> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ledger_stamp = self
            .ledger
            .as_ref()
            .and_then(|l| recent_stamp(&mut state.stamps, &l.path));
        let State { stamps, routes, .. } = &mut *state;
        if let Some(k) = routes.get(host).filter(|k| k.ledger == ledger_stamp)
            && k.registry
                .as_ref()
                .is_none_or(|(p, s)| recent_stamp(stamps, p) == *s)
        {
            return k.route.clone();
        }
        let (route, registry) = work_out(&mut state, &self.ledger, host, ledger_stamp);
        let route = Arc::new(route);
        // Only a name that leads somewhere is remembered: a client asking for names nobody
        // has fills nothing.
        let lasting = matches!(
            &*route,
            Route::To { .. } | Route::NotHeld { .. } | Route::Conflict { .. }
        );
        if lasting {
            if state.routes.len() >= REMEMBERED {
                state.routes.clear();
            }
            state.routes.insert(
                host.to_string(),
                Known {
                    ledger: ledger_stamp,
                    registry,
                    route: route.clone(),
                },
            );
        }
        route
    }

    /// Every name there is, for a page to a local client: origins first, then worktrees.
    /// Every name routed (each worktree's and origin's, and each of their services'), with
    /// whether it is an origin's: origins first, then worktrees, from the ledger as last
    /// read.
    pub fn names(&self) -> Vec<(String, bool)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(ledger) = state.ledger.as_ref().map(|c| c.value.clone()) else {
            return Vec::new();
        };
        let mut bare: Vec<(String, PathBuf, String, bool)> = ledger
            .names
            .repos
            .iter()
            .map(|r| {
                let key = r
                    .point
                    .clone()
                    .unwrap_or_else(|| crate::registry::MAIN_KEY.to_string());
                (names::origin(&r.label), r.repo.clone(), key, true)
            })
            .collect();
        bare.sort();
        bare.extend(
            ledger
                .names
                .hosts
                .iter()
                .map(|(h, c)| (h.clone(), c.repo.clone(), c.worktree.clone(), false)),
        );
        let mut out = Vec::new();
        for (host, repo, key, origin) in bare.into_iter().filter(|b| b.0.ends_with(SUFFIX)) {
            out.push((host.clone(), origin));
            let default = ledger
                .names
                .repo(&repo)
                .map_or(names::DEFAULT_SERVICE, |r| r.service())
                .to_string();
            if let Ok((registry, _)) = registry_of(&mut state, &repo)
                && let Some(e) = registry.worktrees.get(&key)
            {
                for service in e.ports.keys().filter(|s| **s != default) {
                    out.push((format!("{service}.{host}"), origin));
                }
            }
        }
        out
    }
}

/// The route of `host` from the files as they are, and the registry it read.
fn work_out(
    state: &mut State,
    ledger_store: &Option<LedgerStore>,
    host: &str,
    ledger_stamp: Stamp,
) -> (Route, Option<(PathBuf, Stamp)>) {
    let Some(store) = ledger_store else {
        return (Route::Unknown, None);
    };
    if state
        .ledger
        .as_ref()
        .is_none_or(|c| c.stamp != ledger_stamp)
    {
        // Routes worked out from the old ledger are worked out again as they are asked for.
        state.routes.clear();
        state.ledger = None;
        match store.load() {
            Ok(value) => {
                state.ledger = Some(Cached {
                    stamp: ledger_stamp,
                    value,
                });
            }
            // Not remembered: the next request reads it again.
            Err(e) => {
                let what = store.path.display().to_string();
                return (
                    Route::Unreadable {
                        what,
                        why: e.to_string(),
                    },
                    None,
                );
            }
        }
    }
    let Some(ledger) = state.ledger.as_ref().map(|c| &c.value) else {
        return (Route::Unknown, None);
    };
    let Some(Found {
        repo,
        key,
        service,
        prefixed,
        origin: via_origin,
    }) = find(ledger, host)
    else {
        return (Route::Unknown, None);
    };
    let name = ledger
        .ports
        .values()
        .find(|c| c.repo == repo && c.worktree == key)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| crate::registry::display_key_of(&repo, &key));
    let shown = tilde(&repo_dir(&repo));
    let (registry, registry_stamp) = match registry_of(state, &repo) {
        Ok(r) => r,
        Err(why) => return (Route::Unreadable { what: shown, why }, None),
    };
    let read = Some((Store::new(&repo).path, registry_stamp));
    let Some(ledger) = state.ledger.as_ref().map(|c| &c.value) else {
        return (Route::Unknown, None);
    };
    // A first label that is no service anyone here has (`nope.shop.localhost`) is a name
    // that does not exist, not a service to allocate.
    let known = crate::config::DEFAULT_SERVICES
        .iter()
        .any(|(s, _, _)| *s == service)
        || registry.allocations().any(|h| h.service == service);
    if prefixed && !known {
        return (Route::Unknown, read);
    }
    let entry = registry.worktrees.get(&key);
    // The main worktree is where the repository is, whether or not it holds a port, and
    // whatever path a copied registry remembers for it.
    let main = key == crate::registry::MAIN_KEY && repo.file_name().is_some_and(|n| n == ".git");
    let path = match entry {
        _ if main => repo_dir(&repo),
        Some(e) => e.path.clone(),
        None => PathBuf::new(),
    };
    let nested = registry
        .worktrees
        .iter()
        .filter(|(k, e)| **k != key && e.path.starts_with(&path) && e.path != path)
        .map(|(_, e)| e.path.clone())
        .collect();
    let place = Place {
        worktree: name,
        repo: shown,
        path,
        nested,
        service: service.clone(),
        host: host.to_string(),
        origin: via_origin,
    };
    let route = match entry.and_then(|e| e.ports.get(&service)) {
        Some(a) => match ledger.ports.get(&a.port) {
            // The ledger gives the port to someone else: whatever serves it may be theirs.
            Some(c) if !c.is_registry(&repo) => Route::Conflict {
                port: a.port,
                place,
                holder: c.describe(),
            },
            _ => Route::To {
                port: a.port,
                place,
            },
        },
        None => Route::NotHeld { place },
    };
    (route, read)
}

/// The repository's registry, read again only when the file changed, and how the file was;
/// or why it cannot be read now (never remembered).
fn registry_of(state: &mut State, repo: &Path) -> Result<(Arc<Registry>, Stamp), String> {
    let store = Store::new(repo);
    let now = stamp(&store.path);
    if let Some(c) = state.registries.get(repo).filter(|c| c.stamp == now) {
        return Ok((c.value.clone(), now));
    }
    let value = store.load().map(Arc::new).map_err(|e| e.to_string())?;
    if state.registries.len() >= REMEMBERED {
        state.registries.clear();
    }
    state.registries.insert(
        repo.to_path_buf(),
        Cached {
            stamp: now,
            value: value.clone(),
        },
    );
    Ok((value, now))
}

/// What a host name names.
struct Found {
    repo: PathBuf,
    /// The worktree's registry key.
    key: String,
    service: String,
    /// The service was named in front (`api.feature-x.shop.localhost`).
    prefixed: bool,
    /// The name is (or is under) the repository's origin.
    origin: bool,
}

/// What `host` names: a worktree's host (its default service), a service in front of one,
/// a repository's origin (the worktree it points at), or a service in front of that.
fn find(ledger: &Ledger, host: &str) -> Option<Found> {
    let n = &ledger.names;
    let service_of = |repo: &Path| {
        n.repo(repo)
            .map_or(names::DEFAULT_SERVICE, |r| r.service())
            .to_string()
    };
    let worktree = |h: &str, service: Option<&str>| {
        n.hosts.get(h).map(|c| Found {
            repo: c.repo.clone(),
            key: c.worktree.clone(),
            service: service.map_or_else(|| service_of(&c.repo), str::to_string),
            prefixed: service.is_some(),
            origin: false,
        })
    };
    let origin = |h: &str, service: Option<&str>| {
        n.repos
            .iter()
            .find(|r| names::origin(&r.label) == h)
            .map(|r| Found {
                repo: r.repo.clone(),
                key: r
                    .point
                    .clone()
                    .unwrap_or_else(|| crate::registry::MAIN_KEY.to_string()),
                service: service.map_or_else(|| service_of(&r.repo), str::to_string),
                prefixed: service.is_some(),
                origin: true,
            })
    };
    if let Some(f) = worktree(host, None).or_else(|| origin(host, None)) {
        return Some(f);
    }
    let (service, rest) = host.split_once('.')?;
    if !crate::config::is_service_name(service) {
        return None;
    }
    worktree(rest, Some(service)).or_else(|| origin(rest, Some(service)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized_as_browsers_send_them() {
        assert_eq!(
            normalize("Feature-X.Shop.localhost:4480").as_deref(),
            Some("feature-x.shop.localhost")
        );
        assert_eq!(
            normalize("shop.localhost.").as_deref(),
            Some("shop.localhost")
        );
        assert_eq!(normalize("[::1]:4480").as_deref(), Some("[::1]"));
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("bücher.localhost"), None);
        assert_eq!(
            normalize("xn--bcher-kva.localhost").as_deref(),
            Some("xn--bcher-kva.localhost")
        );
    }
}

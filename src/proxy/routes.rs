//! Where a host name leads: the ledger's names and each repository's registry, read live (a
//! file is read again only when its size, time or inode changed), so a new allocation or a
//! re-pointed origin needs no restart.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::ledger::{Ledger, LedgerStore, repo_dir, tilde};
use crate::names::{self, SUFFIX};
use crate::registry::Registry;
use crate::store::Store;

/// What a host name leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A port the registry holds: forward there.
    To { port: u16, place: Place },
    /// The worktree holds no port for the service.
    NotHeld { place: Place },
    /// The repository's registry cannot be read now.
    Unreadable { repo: String, why: String },
    /// No such name; the names there are.
    Unknown { names: Vec<String> },
}

/// A worktree and service, as the pages name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub worktree: String,
    /// The repository's top directory, `~/`-shortened.
    pub repo: String,
    /// The worktree's directory.
    pub path: PathBuf,
    pub service: String,
    /// The name asked for.
    pub host: String,
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

struct Cached<T> {
    stamp: Stamp,
    value: T,
}

/// The table the proxy routes by.
pub struct Routes {
    ledger: Option<LedgerStore>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    ledger: Option<Cached<Ledger>>,
    registries: HashMap<PathBuf, Cached<Result<Arc<Registry>, String>>>,
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
/// name at all (empty, not ASCII).
pub fn normalize(host: &str) -> Option<String> {
    let host = host.trim();
    let name = match (host.find(']'), host.rsplit_once(':')) {
        // An IPv6 literal, `[::1]:4480`.
        (Some(end), _) if host.starts_with('[') => &host[..=end],
        (_, Some((h, p))) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty() && name.is_ascii()).then_some(name)
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
        let ledger_stamp = self.ledger.as_ref().and_then(|l| stamp(&l.path));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = state.routes.get(host)
            && k.ledger == ledger_stamp
            && k.registry.as_ref().is_none_or(|(p, s)| stamp(p) == *s)
        {
            return k.route.clone();
        }
        let (route, registry) = work_out(&mut state, &self.ledger, host, ledger_stamp);
        let route = Arc::new(route);
        if state.routes.len() > 4096 {
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
        route
    }
}

/// The route of `host` from the files as they are, and the registry it read.
fn work_out(
    state: &mut State,
    ledger_store: &Option<LedgerStore>,
    host: &str,
    ledger_stamp: Stamp,
) -> (Route, Option<(PathBuf, Stamp)>) {
    if state
        .ledger
        .as_ref()
        .is_none_or(|c| c.stamp != ledger_stamp)
    {
        let value = ledger_store
            .as_ref()
            .and_then(|l| l.load().ok())
            .unwrap_or_default();
        state.ledger = Some(Cached {
            stamp: ledger_stamp,
            value,
        });
        // Routes worked out from the old ledger are worked out again as they are asked for.
        state.routes.clear();
    }
    let Some(ledger) = state.ledger.as_ref().map(|c| &c.value) else {
        return (Route::Unknown { names: Vec::new() }, None);
    };
    let Some((repo, key, service, prefixed)) = find(ledger, host) else {
        let names = all_names(ledger);
        return (Route::Unknown { names }, None);
    };
    let unknown = Route::Unknown {
        names: all_names(ledger),
    };
    let name = ledger
        .ports
        .values()
        .find(|c| c.repo == repo && c.worktree == key)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| crate::registry::display_key(&key));
    let (registry, registry_stamp) = registry_of(state, &repo);
    let read = Some((Store::new(&repo).path, registry_stamp));
    let shown = tilde(&repo_dir(&repo));
    let registry = match registry {
        Ok(r) => r,
        Err(why) => return (Route::Unreadable { repo: shown, why }, read),
    };
    // A first label that is no service anyone here has (`nope.shop.localhost`) is a name
    // that does not exist, not a service to allocate.
    let known = crate::config::DEFAULT_SERVICES
        .iter()
        .any(|(s, _, _)| *s == service)
        || registry.allocations().any(|h| h.service == service);
    if prefixed && !known {
        return (unknown, read);
    }
    let entry = registry.worktrees.get(&key);
    let place = Place {
        worktree: name,
        repo: shown,
        path: entry.map(|e| e.path.clone()).unwrap_or_default(),
        service: service.clone(),
        host: host.to_string(),
    };
    let route = match entry.and_then(|e| e.ports.get(&service)) {
        Some(a) => Route::To {
            port: a.port,
            place,
        },
        None => Route::NotHeld { place },
    };
    (route, read)
}

/// The repository's registry, read again only when the file changed, and how the file was.
fn registry_of(state: &mut State, repo: &Path) -> (Result<Arc<Registry>, String>, Stamp) {
    let store = Store::new(repo);
    let now = stamp(&store.path);
    let fresh = state.registries.get(repo).is_some_and(|c| c.stamp == now);
    if !fresh {
        let value = store.load().map(Arc::new).map_err(|e| e.to_string());
        state
            .registries
            .insert(repo.to_path_buf(), Cached { stamp: now, value });
    }
    let value = state
        .registries
        .get(repo)
        .map(|c| c.value.clone())
        .unwrap_or_else(|| Err("not read".into()));
    (value, now)
}

/// The repository, worktree key and service `host` names: a worktree's host (its default
/// service), a service in front of one, a repository's origin (the worktree it points at),
/// or a service in front of that; and whether the service was in front.
fn find(ledger: &Ledger, host: &str) -> Option<(PathBuf, String, String, bool)> {
    let n = &ledger.names;
    let service_of = |repo: &Path| {
        n.repo(repo)
            .map_or(names::DEFAULT_SERVICE, |r| r.service())
            .to_string()
    };
    if let Some(c) = n.hosts.get(host) {
        return Some((
            c.repo.clone(),
            c.worktree.clone(),
            service_of(&c.repo),
            false,
        ));
    }
    let origin = |h: &str| {
        n.repos
            .iter()
            .find(|r| names::origin(&r.label) == h)
            .map(|r| {
                let key = r
                    .point
                    .clone()
                    .unwrap_or_else(|| crate::registry::MAIN_KEY.to_string());
                (r.repo.clone(), key)
            })
    };
    if let Some((repo, key)) = origin(host) {
        let s = service_of(&repo);
        return Some((repo, key, s, false));
    }
    let (service, rest) = host.split_once('.')?;
    if !crate::config::is_service_name(service) {
        return None;
    }
    if let Some(c) = n.hosts.get(rest) {
        return Some((
            c.repo.clone(),
            c.worktree.clone(),
            service.to_string(),
            true,
        ));
    }
    origin(rest).map(|(repo, key)| (repo, key, service.to_string(), true))
}

/// Every name there is, for a 404 page: origins first, then worktrees.
fn all_names(ledger: &Ledger) -> Vec<String> {
    let mut out: Vec<String> = ledger
        .names
        .repos
        .iter()
        .map(|r| names::origin(&r.label))
        .collect();
    out.sort();
    out.extend(ledger.names.hosts.keys().cloned());
    out.retain(|h| h.ends_with(SUFFIX));
    out
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

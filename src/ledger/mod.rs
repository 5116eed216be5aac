//! The machine-wide ledger: every port any repository on this machine has allocated, so two
//! repositories never hand out the same port. A change to a registry and the ledger is made
//! in one operation, `change.rs`.
//!
//! The promise, at every instant on disk: every port a registry holds is claimed for that
//! repository in the ledger. A change therefore takes both locks (ledger, then registry:
//! always that order, so two repositories cannot deadlock), serializes every file it will
//! write before it opens any, adds new claims to the ledger, writes the registry, and only
//! then drops the claims it released. A crash between two steps leaves at most a claim nobody
//! uses, healed by the next change; never a port held without a claim.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bytes::os_path;
use crate::config::ENV_HOME;
use crate::error::{Error, Result};
use crate::machine::{Census, Identity, Life};
use crate::names::Names;
use crate::registry::{Registry, unique};
use crate::store::{self, Lock, LockError, Store};

pub use crate::keys::LEDGER_FILE;
pub use identity::{identity, same_repo};

mod identity;
pub const VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    pub version: u64,
    #[serde(default, deserialize_with = "unique")]
    pub ports: BTreeMap<u16, Claim>,
    /// The host names of worktrees and repositories (see `names.rs`); absent while there are
    /// none, so such a ledger is the file older versions wrote.
    #[serde(default, skip_serializing_if = "Names::is_empty")]
    pub names: Names,
    /// Ports fenced off machine-wide (`git ports reserve`): no repository, lease or proxy is
    /// given them. Absent while there are none.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique"
    )]
    pub reserved: BTreeMap<u16, Reservation>,
}

/// A port fenced off machine-wide, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    /// What the user said it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was reserved.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Reservation {
    /// `a reservation (the system's postgres)`, as a search says what it passed over.
    pub fn describe(&self) -> String {
        match &self.reason {
            Some(r) => format!("a reservation ({r})"),
            None => "a reservation (git ports reserve)".into(),
        }
    }
}

/// What the ledger gives to others than one repository's registry: other repositories'
/// claims and every lease, by port, and the ports reserved machine-wide.
#[derive(Debug, Clone, Default)]
pub struct Elsewhere {
    pub claims: HashMap<u16, Claim>,
    pub reserved: BTreeMap<u16, Reservation>,
}

impl Elsewhere {
    /// The claim on `port` of another repository, or of a lease.
    pub fn get(&self, port: &u16) -> Option<&Claim> {
        self.claims.get(port)
    }

    /// Whether another repository or a lease claims `port`.
    pub fn contains_key(&self, port: &u16) -> bool {
        self.claims.contains_key(port)
    }

    /// Takes the claim on `port` out.
    pub fn remove(&mut self, port: &u16) -> Option<Claim> {
        self.claims.remove(port)
    }
}

/// Who holds a port: a repository (its common dir), a worktree of it and a service; or, for
/// a lease, one process, leased from that worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    #[serde(with = "os_path")]
    pub repo: PathBuf,
    /// The worktree's registry key.
    pub worktree: String,
    /// The worktree's name as people know it.
    pub name: String,
    pub service: String,
    #[serde(with = "os_path")]
    pub path: PathBuf,
    /// A lease: the port is this process's, not the registry's, and is free again once the
    /// process is gone. A ledger without leases is the same file as before leases existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Identity>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            version: VERSION,
            ports: BTreeMap::new(),
            names: Names::default(),
            reserved: BTreeMap::new(),
        }
    }
}

impl Claim {
    /// `~/src/other-repo (feature-x)`: the repository's top directory and the worktree; for
    /// a lease, `a lease of pid 4242 from ~/src/app (feature-x)`.
    pub fn describe(&self) -> String {
        let place = format!("{} ({})", tilde(&repo_dir(&self.repo)), self.name);
        match &self.lease {
            Some(l) => format!("a lease of pid {} from {place}", l.pid),
            None => place,
        }
    }

    /// Whether this claim is a registry's, as opposed to a lease's.
    pub fn is_registry(&self, repo: &Path) -> bool {
        self.lease.is_none() && self.repo == repo
    }
}

/// Whether claims are still backed, each repository read and each lease holder looked at
/// once per pass.
#[derive(Default)]
pub struct Witness {
    seen: HashMap<PathBuf, Seen>,
    alive: Census,
}

impl Witness {
    /// What can be told of `repo` now, looked at once.
    fn seen(&mut self, repo: &Path) -> &Seen {
        self.seen
            .entry(repo.to_path_buf())
            .or_insert_with(|| look(repo))
    }

    /// Whether `claim` on `port` still stands: a lease while its process lives, a
    /// repository's claim while the repository backs it.
    pub fn backs(&mut self, port: u16, claim: &Claim) -> bool {
        match &claim.lease {
            Some(h) => self.alive.holds(h),
            None => self
                .seen
                .entry(claim.repo.clone())
                .or_insert_with(|| look(&claim.repo))
                .backs(port),
        }
    }
}

/// The directory people know a repository by: the main worktree for `.git`, else the common
/// dir itself (a bare repository).
pub fn repo_dir(common_dir: &Path) -> PathBuf {
    match (common_dir.file_name(), common_dir.parent()) {
        (Some(n), Some(parent)) if n == ".git" => parent.to_path_buf(),
        _ => common_dir.to_path_buf(),
    }
}

/// `~/src/app` for a path under HOME.
pub fn tilde(p: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
        && let Ok(rest) = p.strip_prefix(&home)
    {
        return Path::new("~").join(rest).display().to_string();
    }
    p.display().to_string()
}

/// What can be told of a repository the ledger names, from the disk now.
pub enum Seen {
    /// Its registry, read.
    Registry(Registry),
    /// It may be there, but cannot be read now: a permission error, a drive not mounted, a
    /// registry that does not parse or is too large. Its claims stand.
    Unreadable(String),
    /// Certainly gone: its claims can be dropped.
    Gone,
}

impl Seen {
    /// Whether the repository backs the claim on `port`: its registry holds the port at all,
    /// for whichever worktree and service (a claim made for a worktree whose holding a crash
    /// left half-moved is still the repository's). Unreadable repositories are taken to.
    pub fn backs(&self, port: u16) -> bool {
        match self {
            Seen::Registry(r) => r.holder(port).is_some(),
            Seen::Unreadable(_) => true,
            Seen::Gone => false,
        }
    }
}

/// Looks at the repository whose common dir is `common`.
pub fn look(common: &Path) -> Seen {
    match fs::symlink_metadata(common) {
        Ok(_) => match Store::new(common).load() {
            Ok(r) => Seen::Registry(r),
            Err(e) => Seen::Unreadable(e.to_string()),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound && certainly_gone(common) => Seen::Gone,
        Err(e) => Seen::Unreadable(format!("{}: {e}", common.display())),
    }
}

/// A repository is certainly gone only on evidence an unmounted drive cannot give: its
/// directory is there and holds other files but no common dir (the repository was deleted
/// from it), or its directory is missing from a parent that is there and holds other files.
/// An empty directory proves nothing: it is what a mount point looks like while its drive
/// (sshfs, NFS, a bind mount) is away. An unreadable one may hold it.
fn certainly_gone(common: &Path) -> bool {
    let not_empty = |d: &Path| fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some());
    let dir = repo_dir(common);
    if dir != common {
        match fs::symlink_metadata(&dir) {
            Ok(_) => return not_empty(&dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return false,
        }
    }
    dir.parent().is_some_and(not_empty)
}

impl Ledger {
    pub fn parse(text: &str) -> std::result::Result<Ledger, String> {
        let ledger: Ledger = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if ledger.version != VERSION {
            return Err(format!(
                "unsupported version {} (this git-ports reads version {VERSION})",
                ledger.version
            ));
        }
        if let Some(p) = ledger.ports.keys().find(|&&p| p == 0) {
            return Err(format!("port {p} is outside 1-65535"));
        }
        Ok(ledger)
    }

    /// The file's text. Fails rather than give text that does not say exactly this ledger.
    pub fn to_json(&self) -> std::result::Result<String, String> {
        let mut s = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        s.push('\n');
        Ok(s)
    }

    /// Drops claims the claiming repository no longer backs: it is certainly gone, or its
    /// registry no longer holds the port for that worktree; and leases whose process is
    /// gone. A repository that cannot be read keeps its claims: better a port skipped than a
    /// port given twice. `except`'s own claims are its registry's to decide.
    pub fn mend(&mut self, except: &Path) {
        let mut witness = Witness::default();
        self.ports
            .retain(|&port, claim| claim.is_registry(except) || witness.backs(port, claim));
        // An origin pointed at a worktree its registry no longer has points at the main one.
        for r in self.names.repos.iter_mut().filter(|r| r.repo != except) {
            if let (Some(k), Seen::Registry(reg)) = (&r.point, witness.seen(&r.repo))
                && !reg.worktrees.contains_key(k)
            {
                r.point = None;
            }
        }
        // Names go with their repository, and a worktree's with the worktree.
        self.names.retain(|repo, worktree| {
            repo == except
                || match (witness.seen(repo), worktree) {
                    (Seen::Gone, _) => false,
                    (Seen::Registry(r), Some(w)) => r.worktrees.contains_key(w),
                    (Seen::Registry(_) | Seen::Unreadable(_), _) => true,
                }
        });
    }

    /// Claims recorded under another path of `repo` (reached through a bind mount or a
    /// symlinked parent) become claims of `repo` as this process reaches it: one repository
    /// has one identity, whatever path reaches it. One stat per other path in the ledger.
    pub fn adopt_aliases(&mut self, repo: &Path) {
        let mut same: HashMap<PathBuf, bool> = HashMap::new();
        let mut adopt = |c: &mut PathBuf| {
            if c != repo && *same.entry(c.clone()).or_insert_with(|| same_repo(c, repo)) {
                *c = repo.to_path_buf();
            }
        };
        for c in self.ports.values_mut() {
            adopt(&mut c.repo);
        }
        for c in self.names.hosts.values_mut() {
            adopt(&mut c.repo);
        }
        for r in self.names.repos.iter_mut() {
            adopt(&mut r.repo);
        }
    }

    /// Claims every port `registry` holds for `repo`, except ports a claim of another
    /// repository already covers (a conflict, reported elsewhere; never overwritten here).
    pub fn claim_all(
        &mut self,
        repo: &Path,
        registry: &Registry,
        name_of: impl Fn(&str) -> String,
    ) {
        for (key, entry) in &registry.worktrees {
            for (service, a) in &entry.ports {
                let claim = Claim {
                    repo: repo.to_path_buf(),
                    worktree: key.clone(),
                    name: name_of(key),
                    service: service.clone(),
                    path: entry.path.clone(),
                    lease: None,
                };
                match self.ports.get(&a.port) {
                    Some(c) if !c.is_registry(repo) => {}
                    Some(c) if *c == claim => {}
                    _ => {
                        self.ports.insert(a.port, claim);
                    }
                }
            }
        }
    }

    /// Drops the claims of `repo` that `registry` no longer holds (its leases are their
    /// processes').
    pub fn release_rest(&mut self, repo: &Path, registry: &Registry) {
        let held = registry.by_port();
        self.ports
            .retain(|p, c| !c.is_registry(repo) || held.contains_key(p));
    }

    /// Claims that are not `repo`'s registry's (other repositories' and every lease), and
    /// the reservations.
    pub fn elsewhere(&self, repo: &Path) -> Elsewhere {
        Elsewhere {
            claims: self
                .ports
                .iter()
                .filter(|(_, c)| !c.is_registry(repo))
                .map(|(p, c)| (*p, c.clone()))
                .collect(),
            reserved: self.reserved.clone(),
        }
    }

    /// The leases whose process is alive now (or cannot be seen from here, and so is kept),
    /// by port, with what can be told of each.
    pub fn live_leases(&self) -> Vec<(u16, &Claim, Life)> {
        let mut alive = Census::default();
        self.ports
            .iter()
            .filter_map(|(p, c)| {
                let life = alive.life(c.lease.as_ref()?);
                (life != Life::Gone).then_some((*p, c, life))
            })
            .collect()
    }

    /// Ports `registry` holds that the ledger gives to another repository which still backs
    /// its claim, or to a live lease: each is held by two holders at once (a copied
    /// repository, a registry restored from a backup).
    pub fn conflicts(&self, repo: &Path, registry: &Registry) -> BTreeMap<u16, Claim> {
        let mut witness = Witness::default();
        registry
            .allocations()
            .filter_map(|h| {
                let port = h.allocation.port;
                let c = self.ports.get(&port).filter(|c| !c.is_registry(repo))?;
                witness.backs(port, c).then(|| (port, c.clone()))
            })
            .collect()
    }
}

/// The ledger file: `$GIT_PORTS_HOME/ledger.json`, else the user's data directory.
#[derive(Debug, Clone)]
pub struct LedgerStore {
    pub path: PathBuf,
}

impl LedgerStore {
    /// Where the ledger is; `None` where the system has no data directory. A relative
    /// `GIT_PORTS_HOME` is refused: it would make one ledger per working directory, and two
    /// repositories would then give out the same port.
    pub fn locate() -> Result<Option<LedgerStore>> {
        let dir = match std::env::var_os(ENV_HOME).filter(|v| !v.is_empty()) {
            Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
            Some(d) => {
                return Err(Error::Env {
                    var: ENV_HOME,
                    value: d.to_string_lossy().into_owned(),
                    reason: "must be an absolute path".into(),
                });
            }
            None => match directories::ProjectDirs::from("", "", "git-ports") {
                Some(p) => p.data_dir().to_path_buf(),
                None => return Ok(None),
            },
        };
        private(&dir, "directory")?;
        Ok(Some(LedgerStore {
            path: dir.join(LEDGER_FILE),
        }))
    }

    fn io(&self, action: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::LedgerIo {
            path: self.path.clone(),
            action,
            source,
        }
    }

    /// The ledger as `repo` sees it: claims made through another path of it are its own.
    pub fn load_for(&self, repo: &Path) -> Result<Ledger> {
        let mut l = self.load()?;
        l.adopt_aliases(repo);
        Ok(l)
    }

    pub fn load(&self) -> Result<Ledger> {
        let corrupt = |reason| Error::LedgerCorrupt {
            path: self.path.clone(),
            reason,
        };
        match store::read_text(&self.path) {
            Ok(None) => Ok(Ledger::default()),
            Ok(Some(t)) => Ledger::parse(&t).map_err(corrupt),
            Err(store::ReadError::Refused(reason)) => Err(corrupt(reason)),
            Err(store::ReadError::Io(e)) => Err(self.io("cannot read")(e)),
        }
    }

    /// Creates the ledger's directory, private to this user (0700): the ledger is one user's,
    /// and nobody else may replace it, nor the proxy's files beside it.
    pub fn make_dir(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(dir)
                .map_err(self.io("cannot create the directory of"))?;
        }
        Ok(())
    }

    /// Locks the ledger, creating its directory (see [`LedgerStore::make_dir`]).
    pub fn lock(&self, timeout: f64, start: std::time::Instant) -> Result<Lock> {
        self.make_dir()?;
        store::lock(&self.path, timeout, start).map_err(|e| match e {
            LockError::Io(e) => self.io("cannot lock")(e),
            LockError::Timeout { secs, holder } => Error::LockTimeout {
                what: "ledger",
                path: self.path.clone(),
                secs,
                holder,
            },
        })
    }

    pub(crate) fn write(
        &self,
        text: &str,
        guard: &Lock,
        target: crate::fault::Target,
        action: &'static str,
    ) -> Result<()> {
        store::write_atomic(&self.path, text, guard, target).map_err(self.io(action))
    }
}

/// Refuses `path` (the ledger's directory, or a file in it such as the proxy's state) when it
/// is another user's or others can write it, as git's `safe.directory` refuses a repository
/// another user owns: whoever can write there could hand out ports, or name the process that
/// `proxy stop` signals. A path that is not there yet is made private by whoever makes it.
pub fn private(path: &Path, what: &'static str) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(m) = fs::metadata(path) else {
            return Ok(());
        };
        let shown = crate::output::shell_quote(&path.display().to_string());
        let me = crate::machine::my_uid();
        if let Some(me) = me
            && m.uid() != me
        {
            return Err(Error::NotPrivate {
                path: path.to_path_buf(),
                rule: format!("a {what} of this user's that nobody else can write"),
                reason: format!("belongs to uid {}, not to this user (uid {me})", m.uid()),
                fix: format!(
                    "set {ENV_HOME} to a directory of your own, or, if this one is yours, `chown -R {me} {shown}`"
                ),
            });
        }
        if m.mode() & 0o022 != 0 {
            return Err(Error::NotPrivate {
                path: path.to_path_buf(),
                rule: format!("a {what} of this user's that nobody else can write"),
                reason: "can be written by other users".into(),
                fix: format!("`chmod go-w {shown}`"),
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        let mut l = Ledger::default();
        l.ports.insert(
            8000,
            Claim {
                repo: "/src/a/.git".into(),
                worktree: "/".into(),
                name: "a".into(),
                service: "web".into(),
                path: "/src/a".into(),
                lease: None,
            },
        );
        assert_eq!(Ledger::parse(&l.to_json().unwrap_or_default()), Ok(l));
        assert!(Ledger::parse("{\"version\": 2, \"ports\": {}}").is_err());
        assert!(Ledger::parse("{\"version\": 1, \"ports\": {\"0\": 1}}").is_err());
        assert!(Ledger::parse("[]").is_err());
        let claim = r#"{"repo":"/a/.git","worktree":"/","name":"a","service":"web","path":"/a"}"#;
        let dup = format!(r#"{{"version":1,"ports":{{"8000":{claim},"8000":{claim}}}}}"#);
        assert!(Ledger::parse(&dup).is_err_and(|e| e.contains("duplicate key '8000'")));
        assert_eq!(repo_dir(Path::new("/src/a/.git")), PathBuf::from("/src/a"));
        assert_eq!(
            repo_dir(Path::new("/src/b.git")),
            PathBuf::from("/src/b.git")
        );
    }

    #[cfg(unix)]
    #[test]
    fn paths_that_are_not_utf8_round_trip_exactly() {
        use std::os::unix::ffi::OsStrExt;
        let repo = PathBuf::from(std::ffi::OsStr::from_bytes(b"/src/caf\xe9/.git"));
        let mut l = Ledger::default();
        l.ports.insert(
            8000,
            Claim {
                repo: repo.clone(),
                worktree: "/".into(),
                name: "caf\\351".into(),
                service: "web".into(),
                path: repo.clone(),
                lease: None,
            },
        );
        let text = l.to_json().unwrap_or_default();
        assert!(
            text.contains("\"hex\": \"2f7372632f636166e92f2e676974\""),
            "{text}"
        );
        assert_eq!(Ledger::parse(&text), Ok(l));
    }
}

//! The machine-wide ledger: every port any repository on this machine has allocated, so two
//! repositories never hand out the same port. Each repository's registry stays the truth for
//! that repository; the ledger is the index across them and is mended whenever it is read.
//!
//! Lock order: the ledger's lock is always taken before a registry's, so two repositories
//! allocating at once cannot deadlock.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ENV_HOME;
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::store::{self, Lock};

pub const LEDGER_FILE: &str = "ledger.json";
pub const VERSION: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    pub version: u64,
    #[serde(default)]
    pub ports: BTreeMap<u16, Claim>,
}

/// Who holds a port: a repository (its common dir), a worktree of it and a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub repo: PathBuf,
    /// The worktree's registry key.
    pub worktree: String,
    /// The worktree's name as people know it.
    pub name: String,
    pub service: String,
    pub path: String,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            version: VERSION,
            ports: BTreeMap::new(),
        }
    }
}

impl Claim {
    /// `~/src/other-repo (feature-x)`: the repository's top directory and the worktree.
    pub fn describe(&self) -> String {
        format!("{} ({})", tilde(&repo_dir(&self.repo)), self.name)
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

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Drops claims the claiming repository no longer backs: its common dir is gone, or its
    /// registry no longer holds the port for that worktree. A registry that cannot be read
    /// keeps its claims: better a port skipped than a port given twice.
    pub fn mend(&mut self, except: &Path) {
        let mut registries: HashMap<PathBuf, Option<Registry>> = HashMap::new();
        self.ports.retain(|&port, claim| {
            if claim.repo == except {
                return true;
            }
            if !claim.repo.is_dir() {
                return false;
            }
            let reg = registries
                .entry(claim.repo.clone())
                .or_insert_with(|| crate::store::Store::new(&claim.repo).load().ok());
            match reg {
                None => true,
                Some(r) => r
                    .worktrees
                    .get(&claim.worktree)
                    .and_then(|e| e.ports.get(&claim.service))
                    .is_some_and(|a| a.port == port),
            }
        });
    }

    /// Makes this repository's claims exactly its registry's allocations.
    pub fn sync(&mut self, repo: &Path, registry: &Registry, name_of: impl Fn(&str) -> String) {
        self.ports.retain(|_, c| c.repo != repo);
        for (key, entry) in &registry.worktrees {
            for (service, a) in &entry.ports {
                self.ports.entry(a.port).or_insert_with(|| Claim {
                    repo: repo.to_path_buf(),
                    worktree: key.clone(),
                    name: name_of(key),
                    service: service.clone(),
                    path: entry.path.clone(),
                });
            }
        }
    }

    /// Claims of repositories other than `repo`.
    pub fn elsewhere(&self, repo: &Path) -> HashMap<u16, Claim> {
        self.ports
            .iter()
            .filter(|(_, c)| c.repo != repo)
            .map(|(p, c)| (*p, c.clone()))
            .collect()
    }
}

/// The ledger file: `$GIT_PORTS_HOME/ledger.json`, else the user's data directory.
#[derive(Debug, Clone)]
pub struct LedgerStore {
    pub path: PathBuf,
}

impl LedgerStore {
    pub fn locate() -> Option<LedgerStore> {
        let dir = match std::env::var_os(ENV_HOME).filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => directories::ProjectDirs::from("", "", "git-ports")?
                .data_dir()
                .to_path_buf(),
        };
        Some(LedgerStore {
            path: dir.join(LEDGER_FILE),
        })
    }

    fn io(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::LedgerIo {
            path: self.path.clone(),
            action,
            source,
        }
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

    pub fn lock(&self) -> Result<Lock> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(self.io("cannot create the directory of"))?;
        }
        store::lock(&self.path).map_err(self.io("cannot lock"))
    }

    pub fn save(&self, ledger: &Ledger, guard: &Lock) -> Result<()> {
        store::write_atomic(&self.path, &ledger.to_json(), guard).map_err(self.io("cannot write"))
    }
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
            },
        );
        assert_eq!(Ledger::parse(&l.to_json()), Ok(l));
        assert!(Ledger::parse("{\"version\": 2, \"ports\": {}}").is_err());
        assert!(Ledger::parse("{\"version\": 1, \"ports\": {\"0\": 1}}").is_err());
        assert!(Ledger::parse("[]").is_err());
        assert_eq!(repo_dir(Path::new("/src/a/.git")), PathBuf::from("/src/a"));
        assert_eq!(
            repo_dir(Path::new("/src/b.git")),
            PathBuf::from("/src/b.git")
        );
    }
}

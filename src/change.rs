//! The one operation that writes a registry and the ledger (`Change::run`), and the one that
//! writes the ledger alone (`Change::on_ledger`): both locks (ledger first), every file
//! serialized before any is opened for writing, new claims and names, the registry, released
//! claims and names, then the files that follow the registry, locks still held. Every prefix
//! of that order keeps the promise of `ledger.rs`.

use std::io;
use std::path::Path;

use crate::error::{Error, Result};
use crate::ledger::{Elsewhere, Ledger, LedgerStore};
use crate::registry::Registry;
use crate::store::{Lock, Store};

/// One change to a repository's registry, kept in step with the ledger.
pub struct Change<'a> {
    pub ledger: Option<&'a LedgerStore>,
    pub store: &'a Store,
    /// This repository in the ledger: its common dir, canonical.
    pub repo_id: &'a Path,
    /// False keeps the repository out of the ledger (`ports.machineWide false`).
    pub machine_wide: bool,
    /// Seconds the command may wait for its locks, all of them together.
    pub timeout: f64,
    /// When the command started: the wait for every lock ends `timeout` after it.
    pub start: std::time::Instant,
    /// How this repository's worktrees are named.
    pub naming: &'a Naming,
}

use crate::names::Naming;

/// What a change did besides its result: things that took effect but deserve a word.
pub type Warnings = Vec<String>;

/// Whether a lock failed only because the directory cannot be written (a read-only `.git`):
/// a change that writes nothing needs no lock there.
fn unwritable(e: &Error) -> bool {
    let kind = match e {
        Error::RegistryIo { source, .. } | Error::LedgerIo { source, .. } => source.kind(),
        _ => return false,
    };
    matches!(
        kind,
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
    )
}

impl Change<'_> {
    /// The registry's lock; where its directory cannot be written (a read-only `.git`), the
    /// error that says so, kept for a change that turns out to write.
    fn lock_registry(&self) -> Result<Result<Lock>> {
        match self.store.lock(self.timeout, self.start) {
            Ok(g) => Ok(Ok(g)),
            Err(e) if unwritable(&e) => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }

    /// Runs `f` on the registry with both locks held, knowing what other repositories hold,
    /// and writes what changed in the order that keeps the promise; then, the locks still
    /// held, runs `after` on the registry as committed (`before`, `after`), for the files
    /// that follow it (env files). If `f` fails, or anything cannot be serialized, nothing is
    /// written. Where the locks cannot be taken because the directory is read-only, a change
    /// that would write nothing still answers.
    pub fn run<T, U>(
        &self,
        name_of: impl Fn(&str) -> String,
        f: impl FnOnce(&mut Registry, &Elsewhere) -> Result<T>,
        after: impl FnOnce(&Registry, &Registry) -> Result<U>,
    ) -> Result<(T, U, Warnings)> {
        let Some(ledger_store) = self.ledger else {
            let guard = self.lock_registry()?;
            let mut registry = self.store.load()?;
            let before = registry.clone();
            let out = f(&mut registry, &Elsewhere::default())?;
            if registry != before {
                let text = registry_text(self.store, &registry)?;
                self.store.save(&text, &guard?)?;
            }
            let done = after(&before, &registry)?;
            return Ok((out, done, Vec::new()));
        };
        let ledger_guard = ledger_store.lock(self.timeout, self.start)?;
        let registry_guard = self.lock_registry()?;
        let loaded = ledger_store.load()?;
        let mut registry = self.store.load()?;
        let registry_before = registry.clone();

        let mut mended = loaded.clone();
        mended.adopt_aliases(self.repo_id);
        mended.mend(self.repo_id);
        let elsewhere = mended.elsewhere(self.repo_id);
        let out = f(&mut registry, &elsewhere)?;

        let mut claimed = mended;
        if self.machine_wide {
            claimed.claim_all(self.repo_id, &registry, &name_of);
            claimed.names.name_all(
                self.repo_id,
                &self.naming.repo,
                &worktree_names(&registry, &name_of),
                self.naming,
            );
        }
        let mut released = claimed.clone();
        let mut warnings = Vec::new();
        let unpointed = if self.machine_wide {
            released.release_rest(self.repo_id, &registry);
            let held = |k: &str| registry.worktrees.contains_key(k);
            released.names.release_rest(self.repo_id, held)
        } else {
            released.release_rest(self.repo_id, &Registry::default());
            released.names.release_rest(self.repo_id, |_| false)
        };
        let registry_guard = match registry_guard {
            Ok(g) => g,
            // A read-only registry: only an answer that changes nothing here can be given.
            Err(e) if registry != registry_before => return Err(e),
            Err(_) => {
                let done = after(&registry_before, &registry)?;
                return Ok((out, done, Vec::new()));
            }
        };
        // Everything to be written is serialized before any file is opened for writing; what
        // does not change is neither serialized nor written.
        let corrupt = |reason| Error::LedgerCorrupt {
            path: ledger_store.path.clone(),
            reason: format!("cannot be written: {reason}; nothing was changed"),
        };
        let claimed_text = (claimed != loaded)
            .then(|| claimed.to_json())
            .transpose()
            .map_err(corrupt)?;
        let released_text = (released != claimed)
            .then(|| released.to_json())
            .transpose()
            .map_err(corrupt)?;
        let registry_text = (registry != registry_before)
            .then(|| registry_text(self.store, &registry))
            .transpose()?;

        if let Some(text) = &claimed_text {
            ledger_store.write(
                text,
                &ledger_guard,
                crate::fault::Target::LedgerClaim,
                "cannot write (nothing was changed)",
            )?;
        }
        if let Some(text) = &registry_text {
            self.store
                .save(text, &registry_guard)
                .map_err(|e| match e {
                    Error::RegistryIo { path, source, .. } => Error::RegistryIo {
                        path,
                        action: "cannot write (nothing was changed)",
                        source,
                    },
                    e => e,
                })?;
        }
        if let Some((origin, key)) = unpointed.filter(|_| self.machine_wide) {
            warnings.push(format!(
                "{origin} pointed at worktree '{}', which holds no port now: it serves the main worktree again (`git ports point WORKTREE` aims it elsewhere)",
                name_of(&key)
            ));
        }
        if let Some(text) = &released_text
            && let Err(e) = ledger_store.write(
                text,
                &ledger_guard,
                crate::fault::Target::LedgerRelease,
                "cannot write",
            )
        {
            let ports: Vec<String> = claimed
                .ports
                .keys()
                .filter(|p| !released.ports.contains_key(p))
                .map(u16::to_string)
                .collect();
            warnings.push(format!(
                "the change took effect, but {e}: it still claims port(s) {} until the next change",
                ports.join(", ")
            ));
        }
        let done = after(&registry_before, &registry)?;
        drop(registry_guard);
        drop(ledger_guard);
        Ok((out, done, warnings))
    }
}

impl Change<'_> {
    /// A change of the ledger alone (a lease, where an origin points): `f` changes the
    /// ledger knowing this repository's registry, after claims no longer backed and leases
    /// of processes now gone are dropped and this repository's claims and names are made;
    /// it is written in one atomic write, at `target`'s points. The registry is not written,
    /// so a crash at any point leaves the ledger as it was or as `f` left it.
    pub fn on_ledger<T>(
        &self,
        name_of: impl Fn(&str) -> String,
        target: crate::fault::Target,
        f: impl FnOnce(&Registry, &mut Ledger) -> Result<T>,
    ) -> Result<T> {
        let Some(ledger_store) = self.ledger.filter(|_| self.machine_wide) else {
            return Err(Error::LedgerOnly);
        };
        let guard = ledger_store.lock(self.timeout, self.start)?;
        let loaded = ledger_store.load()?;
        // Every writer of this registry holds the ledger's lock first: read under it, the
        // registry cannot change until the ledger is written.
        let registry = self.store.load()?;
        let mut ledger = loaded.clone();
        ledger.adopt_aliases(self.repo_id);
        ledger.mend(self.repo_id);
        ledger.claim_all(self.repo_id, &registry, &name_of);
        let names = worktree_names(&registry, &name_of);
        ledger
            .names
            .name_all(self.repo_id, &self.naming.repo, &names, self.naming);
        let out = f(&registry, &mut ledger)?;
        if ledger != loaded {
            let text = ledger.to_json().map_err(|reason| Error::LedgerCorrupt {
                path: ledger_store.path.clone(),
                reason: format!("cannot be written: {reason}; nothing was changed"),
            })?;
            ledger_store.write(&text, &guard, target, "cannot write (nothing was changed)")?;
        }
        Ok(out)
    }
}

/// A change of the ledger that concerns no repository (a machine-wide reservation): `f`
/// changes the ledger as it is under its lock, and it is written in one atomic write at
/// `target`'s points if it changed. Nothing else is read or written.
pub fn on_machine<T>(
    store: &LedgerStore,
    timeout: f64,
    start: std::time::Instant,
    target: crate::fault::Target,
    f: impl FnOnce(&mut Ledger) -> Result<T>,
) -> Result<T> {
    let guard = store.lock(timeout, start)?;
    let loaded = store.load()?;
    let mut ledger = loaded.clone();
    let out = f(&mut ledger)?;
    if ledger != loaded {
        let text = ledger.to_json().map_err(|reason| Error::LedgerCorrupt {
            path: store.path.clone(),
            reason: format!("cannot be written: {reason}; nothing was changed"),
        })?;
        store.write(&text, &guard, target, "cannot write (nothing was changed)")?;
    }
    Ok(out)
}

/// Each worktree of the registry, with the name its host is made from.
fn worktree_names(registry: &Registry, name_of: impl Fn(&str) -> String) -> Vec<(String, Vec<u8>)> {
    registry
        .worktrees
        .keys()
        .map(|k| (k.clone(), name_of(k).into_bytes()))
        .collect()
}

fn registry_text(store: &Store, registry: &Registry) -> Result<String> {
    registry.to_json().map_err(|reason| Error::RegistryCorrupt {
        path: store.path.clone(),
        reason: format!("cannot be written: {reason}; nothing was changed"),
    })
}

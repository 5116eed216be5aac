//! One file per subcommand. This dispatcher only matches; each command's `run` does the work.

pub mod allocate;
pub mod available;
pub mod check;
pub mod completions;
pub mod env;
pub mod get;
pub mod hook;
pub mod man;
pub mod prune;
pub mod release;
pub mod status;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::cli::{Cli, Command};
use crate::error::{Family, Result};
use crate::ledger::{Claim, LedgerStore};
use crate::output::{Out, use_color};
use crate::registry::Registry;
use crate::repo::Repo;
use crate::store::Store;

/// What every command that works on a repository needs.
pub struct Ctx {
    pub repo: Repo,
    pub store: Store,
    /// The machine-wide ledger; `None` where no data directory can be found.
    pub ledger: Option<LedgerStore>,
    /// This repository in the ledger: its common dir, canonical.
    pub repo_id: PathBuf,
    pub out: Out,
    pub now: DateTime<Utc>,
}

/// Ports other repositories on this machine hold.
pub type Elsewhere = HashMap<u16, Claim>;

impl Ctx {
    pub fn open() -> Result<Ctx> {
        let repo = Repo::open()?;
        let store = Store::new(&repo.common_dir);
        let out = Out::new(use_color(repo.settings.color));
        let repo_id = std::fs::canonicalize(&repo.common_dir).unwrap_or(repo.common_dir.clone());
        let ledger = LedgerStore::locate();
        Ok(Ctx {
            repo,
            store,
            ledger,
            repo_id,
            out,
            now: Utc::now(),
        })
    }

    /// What the ledger says other repositories hold, read without locking, for reports.
    pub fn elsewhere(&self) -> Result<Elsewhere> {
        match &self.ledger {
            Some(l) => Ok(l.load()?.elsewhere(&self.repo_id)),
            None => Ok(Elsewhere::new()),
        }
    }

    /// The one way commands change the registry: lock the ledger, then the registry (always in
    /// that order, so two repositories cannot deadlock), mend the ledger, let `f` change the
    /// registry knowing what other repositories hold, then record this repository's
    /// allocations in the ledger, or, with `ports.machineWide false`, remove them from it.
    pub fn update<T>(&self, f: impl FnOnce(&mut Registry, &Elsewhere) -> Result<T>) -> Result<T> {
        let Some(ledger_store) = &self.ledger else {
            return self.store.update(|reg| f(reg, &Elsewhere::new()));
        };
        let guard = ledger_store.lock()?;
        let mut ledger = ledger_store.load()?;
        let before = ledger.clone();
        ledger.mend(&self.repo_id);
        let elsewhere = ledger.elsewhere(&self.repo_id);
        let (out, registry) = self.store.update(|reg| {
            let out = f(reg, &elsewhere)?;
            Ok((out, reg.clone()))
        })?;
        if self.repo.settings.machine_wide {
            ledger.sync(&self.repo_id, &registry, |k| self.repo.display_name(k));
        } else {
            ledger.sync(&self.repo_id, &Registry::default(), |k| k.to_string());
        }
        if ledger != before {
            ledger_store.save(&ledger, &guard)?;
        }
        Ok(out)
    }
}

/// Which exit-code table the command answers to.
pub fn family(cli: &Cli) -> Family {
    match &cli.command {
        None | Some(Command::Status(_)) => Family::Status,
        Some(_) => Family::Allocate,
    }
}

/// Runs the command and gives its exit code on success. Whatever it printed is in `out`,
/// error or not.
pub fn run(cli: Cli, out: &mut Out) -> Result<i32> {
    let command = match cli.command {
        // These two need no repository.
        Some(Command::Man(args)) => return man::run(out, args).map(|()| 0),
        Some(Command::Completions(args)) => return completions::run(out, args).map(|()| 0),
        Some(command) => command,
        None => Command::Status(cli.status),
    };
    let mut ctx = Ctx::open()?;
    let result = run_in_repo(&mut ctx, command);
    *out = std::mem::take(&mut ctx.out);
    result
}

fn run_in_repo(ctx: &mut Ctx, command: Command) -> Result<i32> {
    let done = |r: Result<()>| r.map(|()| 0);
    match command {
        Command::Status(args) => done(status::run(ctx, args)),
        Command::Allocate(args) => done(allocate::run(ctx, args)),
        Command::Release(args) => done(release::run(ctx, args)),
        Command::Check(args) => done(check::run(ctx, args)),
        Command::Available(args) => done(available::run(ctx, args)),
        Command::Get(args) => done(get::run(ctx, args)),
        Command::Env(args) => done(env::run(ctx, args)),
        Command::Prune(args) => done(prune::run(ctx, args)),
        Command::Hook(args) => done(hook::run(ctx, args.command)),
        Command::Exec(args) => env::exec(ctx, args),
        // Run by `run` before a repository is opened.
        Command::Man(_) | Command::Completions(_) => Ok(0),
    }
}

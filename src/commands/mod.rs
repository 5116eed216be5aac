//! One file per subcommand. This dispatcher only matches; each command's `run` does the work.

pub mod allocate;
pub mod available;
pub mod check;
pub mod completions;
pub mod doctor;
pub mod env;
pub mod get;
pub mod hook;
pub mod lease;
pub mod man;
pub mod point;
pub mod prune;
pub mod release;
pub mod reserve;
pub mod status;
pub mod stop;
pub mod unreserve;
pub mod wait;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::change::Change;
use crate::cli::{Cli, Command};
use crate::error::{Family, Outcome, Result};
use crate::ledger::LedgerStore;
use crate::output::{Out, use_color};
use crate::policy::allocate::{Allocated, SkipReason};
use crate::registry::Registry;
use crate::repo::{Repo, Worktree};
use crate::store::Store;

pub use crate::ledger::Elsewhere;

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
    /// Run outside any repository: only the machine-wide commands get here.
    pub outside: bool,
    /// When the command started: every lock it takes is waited for until
    /// `ports.lockTimeout` after this.
    pub start: std::time::Instant,
    /// How this repository's worktrees are named.
    pub naming: crate::names::Naming,
}

impl Ctx {
    pub fn open() -> Result<Ctx> {
        let start = std::time::Instant::now();
        let mut repo = Repo::open()?;
        let store = Store::new(&repo.common_dir);
        // Only `--separate-git-dir` needs the registry here, for the main worktree's path.
        if !repo.main_path_known()
            && let Ok(registry) = store.load()
        {
            repo.remember_main(&registry);
        }
        let out = Out::new(use_color(repo.settings.color));
        let repo_id = crate::ledger::identity(&repo.common_dir);
        let ledger = LedgerStore::locate()?;
        let naming = crate::names::Naming {
            template: repo.settings.host_template.clone(),
            repo: repo_name(&repo_id),
            service: repo.settings.host_service.clone(),
            services: repo.settings.known(),
        };
        Ok(Ctx {
            naming,
            repo,
            store,
            ledger,
            repo_id,
            out,
            now: crate::clock::now(),
            outside: false,
            start,
        })
    }

    /// A context without a repository, for `status --machine` and `check`.
    pub fn outside() -> Result<Ctx> {
        let repo = Repo::outside()?;
        let out = Out::new(use_color(repo.settings.color));
        Ok(Ctx {
            store: Store::new(&repo.common_dir),
            ledger: LedgerStore::locate()?,
            repo_id: PathBuf::new(),
            out,
            repo,
            now: crate::clock::now(),
            outside: true,
            start: std::time::Instant::now(),
            naming: crate::names::Naming::default(),
        })
    }

    /// This repository's registry; empty outside any.
    pub fn registry(&self) -> Result<Registry> {
        if self.outside {
            return Ok(Registry::default());
        }
        self.store.load()
    }

    /// What the ledger says other repositories hold, read without locking, for reports.
    pub fn elsewhere(&self) -> Result<Elsewhere> {
        match &self.ledger {
            Some(l) => Ok(l.load_for(&self.repo_id)?.elsewhere(&self.repo_id)),
            None => Ok(Elsewhere::default()),
        }
    }

    /// Who serves each of `ports` now, each classified against the worktree that holds it
    /// (see `owner.rs`), among this repository's worktrees and the ledger's others.
    pub fn owners(
        &self,
        ports: &[(u16, Option<PathBuf>)],
    ) -> std::collections::HashMap<u16, crate::owner::Owner> {
        crate::owner::who_serves(ports, || self.places())
    }

    /// The host names of this repository's worktrees, from the ledger as it is now.
    pub fn hosts(&self) -> crate::names::Hosts {
        self.ledger
            .as_ref()
            .filter(|_| !self.outside)
            .and_then(|l| l.load_for(&self.repo_id).ok())
            .map(|l| l.names.hosts_for(&self.repo_id))
            .unwrap_or_default()
    }

    /// Every worktree a listening process may be working in.
    pub fn places(&self) -> Vec<crate::owner::Place> {
        let ours = if self.outside {
            &[][..]
        } else {
            self.repo.worktrees()
        };
        let ledger = self
            .ledger
            .as_ref()
            .and_then(|l| l.load_for(&self.repo_id).ok());
        crate::owner::places(ours, ledger.as_ref(), &self.repo_id)
    }

    /// The one way commands change the registry: a [`Change`] that keeps the ledger in step
    /// (see `ledger.rs`). `f` changes the registry knowing what other repositories hold; the
    /// env files of every worktree follow, inside the change.
    pub fn update<T>(&self, f: impl FnOnce(&mut Registry, &Elsewhere) -> Result<T>) -> Result<T> {
        self.change(f, |_| Ok(())).map(|(out, ())| out)
    }

    /// [`Ctx::update`], then `after` on the registry as committed, the locks still held: for
    /// a file that must be written from exactly what the change committed.
    pub fn change<T, U>(
        &self,
        f: impl FnOnce(&mut Registry, &Elsewhere) -> Result<T>,
        after: impl FnOnce(&Registry) -> Result<U>,
    ) -> Result<(T, U)> {
        let change = self.change_of()?;
        let repo = &self.repo;
        let (out, (done, files), warnings) = change.run(
            |k| repo.display_name(k),
            f,
            |before, now| {
                // The names this change gave are in the ledger now.
                let files = crate::envfile::sync(repo, before, now, &self.hosts());
                Ok((after(now)?, files))
            },
        )?;
        self.out.warn_all(warnings);
        self.out.warn_all(files);
        Ok((out, done))
    }

    /// The settings of a change, once those it depends on are known to be valid.
    pub fn change_of(&self) -> Result<Change<'_>> {
        let settings = &self.repo.settings;
        if let Some(e) = settings.stopping(crate::config::Stops::Changes, None) {
            return Err(e);
        }
        // A wrong entry of the ports fenced off is skipped by every search: said, not hidden.
        for e in settings.problems_of(crate::config::KEY_EXCLUDE) {
            self.out.warn(format!("{e}; that entry is skipped"));
        }
        Ok(Change {
            ledger: self.ledger.as_ref(),
            store: &self.store,
            repo_id: &self.repo_id,
            machine_wide: settings.machine_wide,
            timeout: settings.lock_timeout,
            start: self.start,
            naming: &self.naming,
        })
    }

    /// Leases a port of each of `services` to `holder`, made from worktree `wt`: in the
    /// ledger alone, in one locked write (see [`Change::lease`]). The ports, in the order of
    /// `services`.
    pub fn lease(
        &self,
        wt: &Worktree,
        services: &[String],
        holder: &crate::machine::Identity,
    ) -> Result<Vec<(String, u16)>> {
        for s in services {
            self.repo.settings.lease_range(s)?;
        }
        let repo = &self.repo;
        self.change_of()?.on_ledger(
            |k| repo.display_name(k),
            crate::fault::Target::LedgerLease,
            |registry, ledger| {
                let elsewhere = ledger.elsewhere(&self.repo_id);
                let leases = crate::policy::lease::pick(
                    repo,
                    &self.repo_id,
                    wt,
                    registry,
                    &elsewhere,
                    services,
                    holder,
                )?;
                let ports = leases
                    .iter()
                    .map(|(p, c)| (c.service.clone(), *p))
                    .collect();
                ledger.ports.extend(leases);
                Ok(ports)
            },
        )
    }
}

impl Ctx {
    /// Names the processes on the ports an allocation's search skipped as in use, in the
    /// words every command uses.
    pub fn name_skipped(&self, results: &mut [Allocated]) {
        let ports: Vec<(u16, Option<PathBuf>)> = results
            .iter()
            .flat_map(|a| a.skipped.iter())
            .filter(|s| s.reason == SkipReason::InUse)
            .map(|s| (s.port, None))
            .collect();
        if ports.is_empty() {
            return;
        }
        let owners = self.owners(&ports);
        for s in results.iter_mut().flat_map(|a| a.skipped.iter_mut()) {
            if s.reason == SkipReason::InUse {
                s.process = owners.get(&s.port).cloned();
            }
        }
    }
}

impl Ctx {
    /// The ports worktree `wt` holds for `services` (every one it holds when none is named),
    /// in service order; a service it holds no port for is an error that says so, or that
    /// names the known services for a typo.
    pub fn held_ports(&self, wt: &Worktree, services: &[String]) -> Result<Vec<(String, u16)>> {
        let registry = self.store.load()?;
        let held = registry.worktrees.get(&wt.key);
        if !services.is_empty() {
            return services
                .iter()
                .map(|s| {
                    held.and_then(|e| e.ports.get(s))
                        .map(|a| (s.clone(), a.port))
                        .ok_or_else(|| self.repo.settings.not_held(&wt.name, s))
                })
                .collect();
        }
        let mut ports: Vec<(String, u16)> = held
            .into_iter()
            .flat_map(|e| e.ports.iter().map(|(s, a)| (s.clone(), a.port)))
            .collect();
        ports.sort_by_key(|(s, _)| (self.repo.settings.rank(s), s.clone()));
        Ok(ports)
    }
}

/// The services known where git-ports runs (the defaults, and those git config adds), for a
/// hint; the defaults where no config can be read.
pub fn known_services() -> Vec<String> {
    match Repo::open().or_else(|_| Repo::outside()) {
        Ok(repo) => repo.settings.known(),
        Err(_) => crate::config::Settings::defaults().known(),
    }
}

/// Ports as named on the command line, each once, in the order first named.
pub fn unique_ports(ports: &[u16]) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    for &p in ports {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Services as named on the command line, each once, in the order first named.
pub fn unique(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The name a repository goes by: its top directory's (`shop` for `/src/shop/.git`, and for
/// a bare `/srv/shop.git`), as bytes.
fn repo_name(common: &std::path::Path) -> Vec<u8> {
    let dir = crate::ledger::repo_dir(common);
    let name = dir
        .file_name()
        .map(crate::bytes::os_bytes)
        .unwrap_or_default();
    name.strip_suffix(b".git")
        .map(<[u8]>::to_vec)
        .unwrap_or(name)
}

/// `8002, held before, is in use by pid 4242 (python3)`: why a sticky port was not given
/// back, said next to the port given instead.
pub fn held_before(a: &Allocated) -> Option<String> {
    let port = a.held_before?;
    let why = match a.skipped.iter().find(|s| s.port == port) {
        Some(s) => match (&s.holder, &s.process) {
            (Some(h), _) => format!("is held by {h}"),
            (None, Some(p)) => format!("is in use by {}", p.describe()),
            (None, None) => "is in use by another process".to_string(),
        },
        None => return None,
    };
    Some(format!("{port}, held before, {why}"))
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
pub fn run(cli: Cli, out: &mut Out) -> Result<Outcome> {
    let command = match cli.command {
        // These two need no repository.
        Some(Command::Man(args)) => return man::run(out, args).map(|()| Outcome::Done),
        // Each tool call runs as a command of its own, in the repository it names.
        Some(Command::Mcp(_)) => return crate::mcp::serve().map(|()| Outcome::Done),
        // The proxy serves every repository of the ledger, from wherever it runs.
        Some(Command::Proxy(args)) => {
            use crate::cli::ProxyCommand;
            return match args.command {
                None => crate::proxy::foreground(out).map(|()| Outcome::Done),
                Some(ProxyCommand::Start) => crate::proxy::start(out).map(|()| Outcome::Done),
                Some(ProxyCommand::Stop) => crate::proxy::stop(out).map(|()| Outcome::Done),
                Some(ProxyCommand::Trust { system, renew }) => {
                    crate::proxy::trust(out, system, renew).map(|()| Outcome::Done)
                }
                Some(ProxyCommand::Untrust { delete }) => {
                    crate::proxy::untrust(out, delete).map(|()| Outcome::Done)
                }
                Some(ProxyCommand::Status { json }) => {
                    crate::proxy::status(out, json).map(|running| {
                        if running {
                            Outcome::Done
                        } else {
                            Outcome::Exited(1)
                        }
                    })
                }
            };
        }
        Some(Command::Completions(args)) => {
            return completions::run(out, args).map(|()| Outcome::Done);
        }
        // Completion must never fail or print an error in the middle of a command line.
        Some(Command::Complete(args)) => {
            completions::candidates(out, &args.what);
            return Ok(Outcome::Done);
        }
        // Most checkouts are not a new worktree: they cost no more than this.
        Some(Command::Hook(crate::cli::HookArgs {
            command: crate::cli::HookCommand::Run { hook, args },
        })) if !crate::hooks::may_allocate(&hook, &args) => return Ok(Outcome::Done),
        Some(command) => command.canonical(),
        None => Command::Status(cli.status),
    };
    let is_hook = matches!(
        &command,
        Command::Hook(crate::cli::HookArgs {
            command: crate::cli::HookCommand::Run { .. }
        })
    );
    let machine_wide = match &command {
        Command::Check(_) | Command::Reserve(_) | Command::Unreserve(_) => true,
        Command::Status(a) => a.machine,
        _ => false,
    };
    let opened = Ctx::open();
    let mut ctx = match opened {
        Ok(ctx) => ctx,
        // These describe the whole machine: they need no repository.
        Err(crate::error::Error::NotARepo(_)) if machine_wide => Ctx::outside()?,
        Err(e) if is_hook => {
            out.warn(format!(
                "no ports were allocated (the checkout itself succeeded): {e}"
            ));
            return Ok(Outcome::Done);
        }
        Err(e) => return Err(e),
    };
    let mut result = run_in_repo(&mut ctx, command);
    if is_hook && let Err(e) = &result {
        // A hook never fails a checkout, and never holds it longer than the lock bound.
        ctx.out.warn(format!(
            "no ports were allocated (the checkout itself succeeded): {e}"
        ));
        result = Ok(Outcome::Done);
    }
    *out = std::mem::take(&mut ctx.out);
    result
}

fn run_in_repo(ctx: &mut Ctx, command: Command) -> Result<Outcome> {
    let done = |r: Result<()>| r.map(|()| Outcome::Done);
    match command {
        Command::Status(args) => done(status::run(ctx, args)),
        Command::Allocate(args) => done(allocate::run(ctx, args)),
        Command::Release(args) => done(release::run(ctx, args)),
        Command::Check(args) => check::run(ctx, args),
        Command::Available(args) => done(available::run(ctx, args)),
        Command::Get(args) => done(get::run(ctx, args)),
        Command::Env(args) => done(env::run(ctx, args)),
        Command::Prune(args) => done(prune::run(ctx, args)),
        Command::Stop(args) => done(stop::run(ctx, args)),
        Command::Doctor(args) => doctor::run(ctx, args),
        Command::Hook(args) => done(hook::run(ctx, args.command)),
        Command::Exec(args) => env::exec(ctx, args),
        Command::Wait(args) => done(wait::run(ctx, args)),
        Command::Lease(args) => done(lease::run(ctx, args)),
        Command::Reserve(args) => done(reserve::run(ctx, args)),
        Command::Unreserve(args) => done(unreserve::run(ctx, args)),
        // Run by `run` before a repository is opened.
        Command::Point(args) => done(point::run(ctx, args)),
        Command::Man(_)
        | Command::Completions(_)
        | Command::Complete(_)
        | Command::Mcp(_)
        | Command::Proxy(_) => Ok(Outcome::Done),
    }
}

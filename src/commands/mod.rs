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

use chrono::{DateTime, Utc};

use crate::cli::{Cli, Command};
use crate::error::{Family, Result};
use crate::output::{Out, use_color};
use crate::repo::Repo;
use crate::store::Store;

/// What every command that works on a repository needs.
pub struct Ctx {
    pub repo: Repo,
    pub store: Store,
    pub out: Out,
    pub now: DateTime<Utc>,
}

impl Ctx {
    pub fn open() -> Result<Ctx> {
        let repo = Repo::open()?;
        let store = Store::new(&repo.common_dir);
        let out = Out::new(use_color(repo.settings.color));
        Ok(Ctx {
            repo,
            store,
            out,
            now: Utc::now(),
        })
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
    // These two need no repository.
    match cli.command {
        Some(Command::Man(args)) => return man::run(out, args).map(|()| 0),
        Some(Command::Completions(args)) => return completions::run(out, args).map(|()| 0),
        _ => {}
    }
    let mut ctx = Ctx::open()?;
    let result = match cli.command {
        None => status::run(&mut ctx, cli.status),
        Some(Command::Status(args)) => status::run(&mut ctx, args),
        Some(Command::Allocate(args)) => allocate::run(&mut ctx, args),
        Some(Command::Release(args)) => release::run(&mut ctx, args),
        Some(Command::Check(args)) => check::run(&mut ctx, args),
        Some(Command::Available(args)) => available::run(&mut ctx, args),
        Some(Command::Get(args)) => get::run(&mut ctx, args),
        Some(Command::Env(args)) => env::run(&mut ctx, args),
        Some(Command::Prune(args)) => prune::run(&mut ctx, args),
        Some(Command::Hook(args)) => hook::run(&mut ctx, args.command),
        Some(Command::Exec(args)) => {
            let code = env::exec(&mut ctx, args);
            *out = std::mem::take(&mut ctx.out);
            return code;
        }
        Some(Command::Man(_) | Command::Completions(_)) => Ok(()),
    };
    *out = std::mem::take(&mut ctx.out);
    result.map(|()| 0)
}

//! `git ports env` and `git ports exec`: a worktree's ports as environment variables.

use std::collections::BTreeMap;
use std::process::Command;

use super::Ctx;
use crate::cli::{EnvArgs, EnvFormat, ExecArgs};
use crate::error::{Error, Result};

/// The variables of the worktree `query` names (or the current one), in service order. Names
/// are `[A-Za-z_][A-Za-z0-9_]*`: derived from validated service names, or validated when read
/// from config, so printing them unquoted cannot inject anything.
pub fn vars(ctx: &Ctx, query: Option<&str>) -> Result<Vec<(String, u16)>> {
    let wt = ctx.repo.target(query)?;
    let settings = &ctx.repo.settings_for(&wt)?;
    if let Some(e) = settings.env_problem() {
        return Err(e);
    }
    let registry = ctx.store.load()?;
    let mut ports: Vec<(&String, u16)> = registry
        .worktrees
        .get(&wt.key)
        .map(|e| e.ports.iter().map(|(s, a)| (s, a.port)).collect())
        .unwrap_or_default();
    ports.sort_by_key(|(s, _)| (settings.rank(s), s.to_string()));
    Ok(ports
        .into_iter()
        .map(|(s, p)| (settings.env_name(s), p))
        .collect())
}

pub fn run(ctx: &mut Ctx, args: EnvArgs) -> Result<()> {
    let vars = vars(ctx, args.worktree.as_deref())?;
    match args.format {
        EnvFormat::Shell => {
            for (name, port) in &vars {
                ctx.out.line(format!("export {name}={port}"));
            }
        }
        EnvFormat::Dotenv => {
            for (name, port) in &vars {
                ctx.out.line(format!("{name}={port}"));
            }
        }
        EnvFormat::Json => {
            let map: BTreeMap<&str, u16> = vars.iter().map(|(n, p)| (n.as_str(), *p)).collect();
            ctx.out.json(&map);
        }
    }
    Ok(())
}

/// Runs the command with the variables added; its exit status becomes ours (128 + the signal
/// when a signal ended it, as shells report it).
pub fn exec(ctx: &mut Ctx, args: ExecArgs) -> Result<i32> {
    let vars = vars(ctx, args.worktree.as_deref())?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Error::Usage("name a command to run after `--`".into()))?;
    let status = Command::new(program)
        .args(rest)
        .envs(vars.iter().map(|(n, p)| (n, p.to_string())))
        .status()
        .map_err(|source| Error::Spawn {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    if let Some(code) = status.code() {
        return Ok(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Ok(128 + sig);
        }
    }
    Ok(1)
}

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
    let mut vars: Vec<(String, u16)> = ports
        .into_iter()
        .map(|(s, p)| (settings.env_name(s), p))
        .collect();
    if settings.choice.align
        && let Some(k) = super::allocate::slot_of(&registry, settings, &wt.key)
            .and_then(|k| u16::try_from(k).ok())
    {
        vars.push((crate::config::ENV_SLOT.to_string(), k));
    }
    Ok(vars)
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

/// Hands the process over to the command with the variables added. First, a port of the
/// worktree already served by someone else refuses the start (unless `--force`), and one
/// served by this worktree's own server is mentioned.
pub fn exec(ctx: &mut Ctx, args: ExecArgs) -> Result<i32> {
    let vars = vars(ctx, args.worktree.as_deref())?;
    let wt = ctx.repo.target(args.worktree.as_deref())?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Error::Usage("name a command to run after `--`".into()))?;
    let busy: Vec<(u16, Option<std::path::PathBuf>)> = vars
        .iter()
        .map(|(_, p)| *p)
        .filter(|&p| crate::net::in_use(p))
        .map(|p| (p, Some(wt.path.clone())))
        .collect();
    if !busy.is_empty() {
        let owners = ctx.owners(&busy);
        for (port, _) in &busy {
            match owners.get(port) {
                Some(o) if o.is_own() => ctx
                    .out
                    .warn(format!("port {port} is already served by {}", o.describe())),
                other => {
                    let who = other.map_or_else(|| "another process".to_string(), |o| o.describe());
                    if !args.force {
                        return Err(Error::PortServedByOther { port: *port, who });
                    }
                    ctx.out.warn(format!(
                        "port {port} is already served by {who}; starting anyway"
                    ));
                }
            }
        }
    }
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .envs(vars.iter().map(|(n, p)| (n, p.to_string())));
    let spawn_error = |source| Error::Spawn {
        program: program.to_string_lossy().into_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Nothing of ours is printed after this point: say what there is to say now.
        for w in ctx.out.warnings.drain(..) {
            eprintln!("git-ports: warning: {}", crate::output::escape(&w));
        }
        let _ = crate::output::emit(&std::mem::take(&mut ctx.out.text));
        // Only returns if the command could not be started.
        Err(spawn_error(cmd.exec()))
    }
    #[cfg(not(unix))]
    {
        // No exec here: run it as a child and give back its status.
        let status = cmd.status().map_err(spawn_error)?;
        Ok(status.code().unwrap_or(1))
    }
}

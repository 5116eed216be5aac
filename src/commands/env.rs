//! `git ports env` and `git ports exec`: a worktree's ports as environment variables.

use std::collections::BTreeMap;
use std::process::Command;

use super::Ctx;
use crate::cli::{EnvArgs, EnvFormat, ExecArgs};
use crate::envfile::{self, Value, Var, lines};
use crate::error::{Error, Outcome, Result};
use crate::repo::Worktree;

/// The worktree `query` names (or the current one) and its variables; what is left out is
/// said as a warning.
pub fn vars(ctx: &Ctx, query: Option<&str>) -> Result<(Worktree, Vec<Var>)> {
    let wt = ctx.repo.target(query)?;
    let registry = ctx.store.load()?;
    let (vars, warnings) = envfile::vars_of(&ctx.repo, &wt, &registry, &ctx.hosts())?;
    ctx.out.warn_all(warnings);
    Ok((wt, vars))
}

/// [`vars`], with a port of each of `services` leased to this process (which the command
/// becomes) in place of the worktree's own: the variables and derived values the command
/// sees name the leased ports. The registry is not changed.
fn leased_vars(
    ctx: &Ctx,
    query: Option<&str>,
    services: &[String],
) -> Result<(Worktree, Vec<Var>)> {
    let wt = ctx.repo.target(query)?;
    let services = super::unique(services.iter().cloned());
    let holder = crate::lease::holder(Some(std::process::id()))?;
    let leased = ctx.lease(&wt, &services, &holder)?;
    let mut registry = ctx.store.load()?;
    for (service, port) in leased {
        let allocation = crate::registry::Allocation {
            port,
            allocated_at: ctx.now,
        };
        registry.insert(&wt.key, &wt.path, &service, allocation);
    }
    let (vars, warnings) = envfile::vars_of(&ctx.repo, &wt, &registry, &ctx.hosts())?;
    ctx.out.warn_all(warnings);
    Ok((wt, vars))
}

pub fn run(ctx: &mut Ctx, args: EnvArgs) -> Result<()> {
    if let Some(file) = &args.write {
        let format = args.format.unwrap_or(EnvFormat::Dotenv);
        if format == EnvFormat::Json {
            return Err(Error::Usage(
                "--write writes dotenv or shell lines, not JSON".into(),
            ));
        }
        let wt = ctx.repo.target(args.worktree.as_deref())?;
        let path = if file.is_absolute() {
            file.clone()
        } else {
            std::env::current_dir()
                .map(|d| d.join(file))
                .unwrap_or(file.clone())
        };
        // Written inside a change, from the registry as it stands under the lock.
        let (repo, out) = (&ctx.repo, &ctx.out);
        let ((), (changed, count)) = ctx.change(
            |_, _| Ok(()),
            |reg| {
                let (vars, warnings) = envfile::vars_of(repo, &wt, reg, &ctx.hosts())?;
                out.warn_all(warnings);
                let changed = envfile::write_one(repo, &wt, &path, &lines(&vars, format))?;
                Ok((changed, vars.len()))
            },
        )?;
        let tick = ctx.out.paint("✓", crate::output::Style::Good);
        ctx.out.line(format!(
            "{tick} {} {} ({} variable{})",
            if changed { "Wrote" } else { "Up to date:" },
            path.display(),
            count,
            if count == 1 { "" } else { "s" }
        ));
        return Ok(());
    }
    let (_, vars) = vars(ctx, args.worktree.as_deref())?;
    match args.format.unwrap_or(EnvFormat::Shell) {
        format @ (EnvFormat::Shell | EnvFormat::Dotenv) => {
            for l in lines(&vars, format) {
                ctx.out.exact(l);
            }
        }
        EnvFormat::Json => {
            let map: BTreeMap<&str, serde_json::Value> = vars
                .iter()
                .map(|v| {
                    let value = match &v.value {
                        Value::Port(n) | Value::Number(n) => serde_json::Value::from(*n),
                        Value::Text(t) => serde_json::Value::from(t.as_str()),
                    };
                    (v.name.as_str(), value)
                })
                .collect();
            ctx.out.json(&map);
        }
    }
    Ok(())
}

/// Hands the process over to the command with the variables added. First, a port of the
/// worktree already served by someone else refuses the start (unless `--force`), and one
/// served by this worktree's own server is mentioned.
pub fn exec(ctx: &mut Ctx, args: ExecArgs) -> Result<Outcome> {
    let (wt, vars) = if args.lease.is_empty() {
        vars(ctx, args.worktree.as_deref())?
    } else {
        leased_vars(ctx, args.worktree.as_deref(), &args.lease)?
    };
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Error::Usage("name a command to run after `--`".into()))?;
    let busy: Vec<(u16, Option<std::path::PathBuf>)> = vars
        .iter()
        .filter_map(|v| match v.value {
            Value::Port(p) => Some(p),
            Value::Number(_) | Value::Text(_) => None,
        })
        .filter(|&p| crate::net::in_use(p))
        .map(|p| (p, Some(wt.path.clone())))
        .collect();
    if !busy.is_empty() {
        let owners = ctx.owners(&busy);
        for (port, _) in &busy {
            match owners.get(port) {
                // The worktree's own server: what `exec -- npm test` expects; said on request.
                Some(o) if o.is_own() => {
                    if args.verbose {
                        ctx.out
                            .warn(format!("port {port} is already served by {}", o.describe()));
                    }
                }
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
        .envs(vars.iter().map(|v| (&v.name, v.value.text())));
    let spawn_error = |source| Error::Exec {
        program: program.to_string_lossy().into_owned(),
        source,
    };
    // Nothing of ours is printed after this point: say what there is to say now.
    ctx.out.say_warnings();
    let _ = crate::output::emit(&std::mem::take(&mut ctx.out.text));
    // Returns only once the command has ended where it runs as a child (Windows), or if it
    // could not be started.
    let code = crate::machine::hand_over(&mut cmd).map_err(spawn_error)?;
    Ok(Outcome::Exited(code))
}

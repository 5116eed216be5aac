//! `git ports prune`: release the ports of worktrees git no longer has.

use super::Ctx;
use crate::cli::PruneArgs;
use crate::error::Result;
use crate::output::Style;
use serde::Serialize;

use crate::policy::prune::{Pruned, prune, stale};

/// How long `prune --stop` lets a server end on SIGTERM before SIGKILL.
const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

pub fn run(ctx: &mut Ctx, args: PruneArgs) -> Result<()> {
    let repo = &ctx.repo;
    let mut pruned = if args.dry_run {
        stale(repo, &ctx.store.load()?)
    } else {
        ctx.update(|reg, _| Ok(prune(repo, reg)))?
    };
    // Servers the removed worktrees left running keep listening on the released ports.
    let ports: Vec<u16> = pruned.iter().map(|p| p.port).collect();
    let left = crate::owner::listeners(&ports);
    for p in &mut pruned {
        p.listener = left
            .get(&p.port)
            .and_then(|ls| crate::owner::left_in(ls, &p.path));
        if args.stop
            && let Some(o) = &p.listener
            && crate::stop::still_in(o, &p.path)
        {
            p.stopped = Some(crate::stop::stop_owner(o, GRACE));
        }
    }
    // The rest of each removed worktree's compose stack.
    let mut stack = Vec::new();
    if args.stop {
        let mut dirs: Vec<&std::path::Path> = pruned.iter().map(|p| p.path.as_path()).collect();
        dirs.sort();
        dirs.dedup();
        let done: Vec<&crate::owner::Owner> =
            pruned.iter().filter_map(|p| p.listener.as_ref()).collect();
        for d in dirs {
            stack.extend(crate::stop::rest_of_stack(d, &done, GRACE));
        }
    }
    if args.json {
        #[derive(Serialize)]
        struct Report<'a> {
            dry_run: bool,
            released: &'a [Pruned],
            containers: &'a [crate::stop::StoppedContainer],
        }
        ctx.out.json(&Report {
            dry_run: args.dry_run,
            released: &pruned,
            containers: &stack,
        });
        return Ok(());
    }
    let out = &mut ctx.out;
    if pruned.is_empty() {
        out.line("Nothing to prune: every worktree in the registry still exists.");
        return Ok(());
    }
    let verb = if args.dry_run {
        "Would release"
    } else {
        "Released"
    };
    let tick = out.paint("✓", Style::Good);
    for p in &pruned {
        let why = match p.reason {
            crate::repo::Gone::Removed => "worktree removed",
            crate::repo::Gone::Missing => "directory missing",
        };
        let mark = if args.dry_run { "-" } else { &tick };
        out.line(format!(
            "{mark} {verb} port {} ({}) of worktree '{}': {why}",
            p.port, p.service, p.worktree
        ));
        if let Some(o) = &p.listener {
            let line = match p.stopped {
                Some(e) => format!(
                    "  {}, left running by the removed worktree: {}",
                    o.process().unwrap_or_default(),
                    e.describe(GRACE)
                ),
                None => format!(
                    "  {} still listens on it, left running by the removed worktree: stop it with `git ports prune --stop` (or `{}`)",
                    o.process().unwrap_or_default(),
                    o.stop_by_hand()
                ),
            };
            out.line(line);
        }
    }
    for c in &stack {
        out.line(format!(
            "  {}, left running by a removed worktree: {}",
            c.container.describe(),
            c.ending.describe(GRACE)
        ));
    }
    Ok(())
}

//! `git ports point WORKTREE`: the repository's origin, `{repo}.localhost`, serves that
//! worktree from now on.

use serde::Serialize;

use super::Ctx;
use crate::cli::PointArgs;
use crate::error::{Error, Result};

#[derive(Serialize)]
struct Report {
    origin: String,
    worktree: String,
    path: String,
}

pub fn run(ctx: &mut Ctx, args: PointArgs) -> Result<()> {
    let wt = ctx.repo.target(args.worktree.as_deref())?;
    let repo_id = ctx.repo_id.clone();
    let repo = &ctx.repo;
    let key = wt.key.clone();
    let origin = ctx.change_of()?.on_ledger(
        |k| repo.display_name(k),
        crate::fault::Target::LedgerPoint,
        |registry, ledger| {
            if !registry.worktrees.contains_key(&key) {
                return Err(Error::Usage(format!(
                    "worktree '{}' holds no port to serve: run `git ports allocate {} {}` first",
                    wt.name,
                    repo.settings.host_service,
                    crate::output::worktree_arg(&wt.name)
                )));
            }
            let entry = ledger.names.repos.iter_mut().find(|r| r.repo == repo_id);
            let Some(entry) = entry else {
                return Err(Error::Usage("this repository has no name yet".into()));
            };
            // The main worktree is where an origin points when nothing says otherwise.
            entry.point = (key != crate::registry::MAIN_KEY).then(|| key.clone());
            Ok(crate::names::origin(&entry.label))
        },
    )?;
    if args.json {
        ctx.out.json(&Report {
            origin,
            worktree: wt.name.clone(),
            path: wt.path.display().to_string(),
        });
        return Ok(());
    }
    let tick = ctx.out.paint("✓", crate::output::Style::Good);
    ctx.out.line(format!(
        "{tick} {origin} now serves worktree '{}' ({})",
        wt.name,
        wt.path.display()
    ));
    Ok(())
}

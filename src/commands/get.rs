//! `git ports get SERVICE`: just the number, for `--port "$(git ports get web)"`.

use super::Ctx;
use crate::cli::GetArgs;
use crate::config::is_service_name;
use crate::error::{Error, Result};

pub fn run(ctx: &mut Ctx, args: GetArgs) -> Result<()> {
    if !is_service_name(&args.service) {
        return Err(Error::BadServiceName(args.service));
    }
    let wt = ctx.repo.target(args.worktree.as_deref())?;
    let registry = ctx.store.load()?;
    let port = registry
        .worktrees
        .get(&wt.key)
        .and_then(|e| e.ports.get(&args.service))
        .map(|a| a.port)
        .ok_or_else(|| ctx.repo.settings.not_held(&wt.name, &args.service))?;
    ctx.out.line(port.to_string());
    Ok(())
}

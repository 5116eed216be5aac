//! `git ports lease SERVICE…`: a port for one process, until it exits.

use serde::Serialize;

use super::Ctx;
use crate::cli::LeaseArgs;
use crate::error::Result;
use crate::lease::holder;

#[derive(Debug, Serialize)]
struct Report<'a> {
    worktree: &'a str,
    path: String,
    pid: u32,
    command: Option<String>,
    leases: Vec<Leased<'a>>,
}

#[derive(Debug, Serialize)]
struct Leased<'a> {
    service: &'a str,
    port: u16,
}

pub fn run(ctx: &mut Ctx, args: LeaseArgs) -> Result<()> {
    let services = super::unique(args.services);
    let wt = ctx.repo.target(args.worktree.as_deref())?;
    let holder = holder(args.pid)?;
    let ports = ctx.lease(&wt, &services, &holder)?;
    if args.json {
        ctx.out.json(&Report {
            worktree: &wt.name,
            path: wt.path.display().to_string(),
            pid: holder.pid,
            command: holder.command(),
            leases: ports
                .iter()
                .map(|(s, p)| Leased {
                    service: s,
                    port: *p,
                })
                .collect(),
        });
        return Ok(());
    }
    for (_, port) in ports {
        ctx.out.line(port.to_string());
    }
    Ok(())
}

//! `git ports available SERVICE`: a service's allocated ports, its free ones as ranges, and
//! the port allocation would choose next.

use serde::Serialize;

use super::Ctx;
use crate::allocator::{compress, format_runs};
use crate::cli::AvailableArgs;
use crate::error::Result;
use crate::policy::availability::{Availability, Taken};

#[derive(Debug, Serialize)]
struct Report {
    service: String,
    range: String,
    allocated: Vec<Held>,
    /// Free ports as inclusive `[start, end]` runs.
    free: Vec<[u16; 2]>,
    free_count: usize,
    /// The port `allocate` would choose now (it also skips ports in use), if any.
    next: Option<u16>,
}

#[derive(Debug, Serialize)]
struct Held {
    port: u16,
    /// The worktree's name, or `~/src/other (worktree)` for another repository's.
    worktree: String,
}

pub fn run(ctx: &mut Ctx, args: AvailableArgs) -> Result<()> {
    let svc = ctx.repo.settings.service(&args.service)?.clone();
    let registry = ctx.store.load()?;
    let elsewhere = ctx.elsewhere()?;
    let name_of = |k: &str| ctx.repo.display_name(k);
    let ports = Availability::new(&registry, &elsewhere, &ctx.repo.settings, &name_of);
    // Who holds a port: a worktree here, `~/src/other (worktree)` in another repository, or
    // what it is fenced off for.
    let holder = |p: u16| {
        ports.taken(p).map(|t| match t {
            Taken::Worktree(w) | Taken::Elsewhere(w) => w,
            Taken::Fenced(f) => f.describe(),
        })
    };
    let allocated: Vec<Held> = svc
        .range
        .iter()
        .filter_map(|p| holder(p).map(|worktree| Held { port: p, worktree }))
        .collect();
    let runs = compress(svc.range.iter().filter(|&p| holder(p).is_none()));
    let free_count = svc.range.len() - allocated.len();
    // What `allocate` would give this worktree now, by the same search (its memory, slots
    // and wishes), without writing anything; outside any worktree, the lowest free port.
    let next = match ctx.repo.target(None) {
        Ok(wt) => {
            let mut preview = registry.clone();
            crate::policy::allocate::allocate_one(
                &mut preview,
                &elsewhere,
                &ctx.repo,
                &wt,
                &svc.name,
                None,
                ctx.now,
            )
            .ok()
            .map(|a| a.port)
        }
        Err(_) => svc.range.iter().find(|&p| ports.free(p)),
    };
    let report = Report {
        service: svc.name.clone(),
        range: svc.range.to_string(),
        allocated,
        free: runs.iter().map(|&(a, b)| [a, b]).collect(),
        free_count,
        next,
    };
    if args.json {
        ctx.out.json(&report);
        return Ok(());
    }
    let out = &mut ctx.out;
    out.line(format!(
        "Available ports for service '{}' (range: {})",
        report.service, report.range
    ));
    out.blank();
    out.line(format!(
        "Currently allocated ({} ports):",
        report.allocated.len()
    ));
    for h in &report.allocated {
        out.line(format!("  {} → {}", h.port, h.worktree));
    }
    out.blank();
    out.line(format!(
        "Available ports ({} remaining):",
        report.free_count
    ));
    if runs.is_empty() {
        out.line("  none");
    } else {
        out.line(format!("  {}", format_runs(&runs)));
    }
    out.blank();
    match report.next {
        Some(p) => out.line(format!("Next suggested port: {p}")),
        None => out.line("Next suggested port: none (every free port is in use on this machine)"),
    }
    Ok(())
}

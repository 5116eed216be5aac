//! `git ports check PORT`: is a port free, who holds it, and is anything listening on it.

use serde::Serialize;

use super::Ctx;
use crate::cli::CheckArgs;
use crate::error::{Error, Result};
use crate::net;
use crate::output::{Style, timestamp};

#[derive(Debug, Serialize)]
struct Report {
    port: u16,
    /// True when no worktree holds the port.
    available: bool,
    /// The holder, when a worktree holds it.
    allocated_to: Option<Holder>,
    /// Services whose range contains the port, with their ranges.
    services: Vec<ServiceRange>,
    /// Something on this machine is bound to the port right now.
    listening: bool,
}

#[derive(Debug, Serialize)]
struct Holder {
    worktree: String,
    service: String,
    allocated_at: String,
}

#[derive(Debug, Serialize)]
struct ServiceRange {
    service: String,
    range: String,
}

pub fn run(ctx: &mut Ctx, args: CheckArgs) -> Result<()> {
    let port = args.port;
    let registry = ctx.store.load()?;
    let holder = registry.holder(port).map(|h| Holder {
        worktree: ctx.repo.display_name(h.worktree),
        service: h.service.to_string(),
        allocated_at: timestamp(&h.allocation.allocated_at),
    });
    let services: Vec<ServiceRange> = ctx
        .repo
        .settings
        .containing(port)
        .into_iter()
        .map(|s| ServiceRange {
            service: s.name.clone(),
            range: s.range.to_string(),
        })
        .collect();
    let listening = net::in_use(port);
    let taken = holder.as_ref().map(|h| {
        Error::Reported(Box::new(Error::PortTaken {
            port,
            worktree: h.worktree.clone(),
            service: h.service.clone(),
        }))
    });
    let report = Report {
        port,
        available: holder.is_none(),
        allocated_to: holder,
        services,
        listening,
    };
    if args.json {
        ctx.out.json(&report);
    } else {
        render(ctx, &report);
    }
    taken.map_or(Ok(()), Err)
}

fn render(ctx: &mut Ctx, r: &Report) {
    let out = &mut ctx.out;
    out.line(format!("Checking port {} availability", r.port));
    out.blank();
    match &r.allocated_to {
        None => {
            let word = out.paint("AVAILABLE", Style::Good);
            out.line(format!("Port {}: {word}", r.port));
            out.line("- Not allocated to any worktree");
        }
        Some(h) => {
            let word = out.paint("ALLOCATED", Style::Bad);
            out.line(format!("Port {}: {word}", r.port));
            out.line(format!(
                "- Allocated to worktree '{}' for service '{}' at {}",
                h.worktree, h.service, h.allocated_at
            ));
        }
    }
    if r.services.is_empty() {
        out.line("- Outside every service range");
    } else {
        let list: Vec<String> = r
            .services
            .iter()
            .map(|s| format!("{} ({})", s.service, s.range))
            .collect();
        out.line(format!("- Valid for services: {}", list.join(", ")));
    }
    if r.listening {
        out.line("- Something on this machine is listening on it now");
    } else {
        out.line("- Nothing on this machine is listening on it now");
    }
    out.blank();
    match (&r.allocated_to, r.listening) {
        (None, false) => out.line("This port can be allocated immediately."),
        (None, true) => out.line("Allocation skips this port while something is listening on it."),
        (Some(h), _) => out.line(format!(
            "Release it first with `git ports release {}` if '{}' no longer needs it.",
            r.port, h.worktree
        )),
    }
}

//! `git ports check PORT`: is a port free, who holds it (here or in another repository), and
//! is anything listening on it.

use serde::Serialize;

use super::Ctx;
use crate::cli::CheckArgs;
use crate::error::{Outcome, Result};
use crate::net;
use crate::output::{Style, timestamp};
use crate::owner::Owner;

#[derive(Debug, Serialize)]
struct Report {
    port: u16,
    /// True when no worktree, of this repository or another, holds the port.
    available: bool,
    /// The holder, when a worktree of this repository holds it.
    allocated_to: Option<Holder>,
    /// The holder, when another repository on this machine holds it.
    elsewhere: Option<Elsewhere>,
    /// Why no worktree is ever given it, if none is: `fenced off by ports.exclude`, `kept
    /// for git ports proxy (ports.proxyPort)`, `reserved (REASON)`.
    fenced: Option<String>,
    /// Another repository that holds it too, when a worktree of this one does: a conflict
    /// (`git ports doctor --fix` resolves it).
    conflict: Option<Elsewhere>,
    /// Services whose range contains the port, with their ranges.
    services: Vec<ServiceRange>,
    /// Something on this machine is bound to the port right now.
    listening: bool,
    /// The process listening, where the system tells: pid, command, working directory, and
    /// whose worktree that is (`owner`: self, worktree, repository or other).
    process: Option<Owner>,
}

#[derive(Debug, Serialize)]
struct Holder {
    worktree: String,
    service: String,
    allocated_at: String,
}

#[derive(Debug, Serialize)]
struct Elsewhere {
    repository: String,
    worktree: String,
    service: String,
}

#[derive(Debug, Serialize)]
struct ServiceRange {
    service: String,
    range: String,
}

pub fn run(ctx: &mut Ctx, args: CheckArgs) -> Result<Outcome> {
    let port = args.port;
    let registry = ctx.registry()?;
    let holder = registry.holder(port).map(|h| Holder {
        worktree: ctx.repo.display_name(h.worktree),
        service: h.service.to_string(),
        allocated_at: timestamp(&h.allocation.allocated_at),
    });
    let mut elsewhere = ctx.elsewhere()?;
    let fenced = {
        let name_of = |k: &str| ctx.repo.display_name(k);
        crate::policy::availability::Availability::new(
            &registry,
            &elsewhere,
            &ctx.repo.settings,
            &name_of,
        )
        .fence(port)
        .map(|f| f.describe())
    };
    let claim = if holder.is_none() {
        elsewhere.remove(&port)
    } else {
        None
    };
    let conflict = match (&holder, &ctx.ledger) {
        (Some(_), Some(l)) => l
            .load_for(&ctx.repo_id)?
            .conflicts(&ctx.repo_id, &registry)
            .remove(&port),
        _ => None,
    };
    let describe = |c: crate::ledger::Claim| Elsewhere {
        repository: crate::ledger::repo_dir(&c.repo).display().to_string(),
        worktree: c.name,
        service: c.service,
    };
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
    let holder_path = match &holder {
        Some(_) => registry
            .holder(port)
            .and_then(|h| registry.worktrees.get(h.worktree))
            .map(|e| e.path.clone()),
        None => claim.as_ref().map(|c| c.path.clone()),
    };
    let process = if listening {
        ctx.owners(&[(port, holder_path)]).remove(&port)
    } else {
        None
    };
    let taken = holder.is_some() || claim.is_some() || fenced.is_some();
    let report = Report {
        port,
        available: !taken,
        allocated_to: holder,
        elsewhere: claim.map(describe),
        fenced,
        conflict: conflict.map(describe),
        services,
        listening,
        process,
    };
    if args.json {
        ctx.out.json(&report);
    } else {
        render(ctx, &report);
    }
    Ok(if taken { Outcome::Held } else { Outcome::Done })
}

fn render(ctx: &mut Ctx, r: &Report) {
    let outside = ctx.outside;
    let out = &mut ctx.out;
    out.line(format!("Checking port {} availability", r.port));
    out.blank();
    match (&r.allocated_to, &r.elsewhere) {
        (None, None) if r.fenced.is_some() => {
            let word = out.paint("FENCED OFF", Style::Bad);
            out.line(format!("Port {}: {word}", r.port));
            out.line(format!(
                "- Never given to a worktree: it is {}",
                r.fenced.as_deref().unwrap_or_default()
            ));
        }
        (None, None) => {
            let word = out.paint("AVAILABLE", Style::Good);
            out.line(format!("Port {}: {word}", r.port));
            out.line("- Not allocated to any worktree");
        }
        (Some(h), _) => {
            let word = out.paint("ALLOCATED", Style::Bad);
            out.line(format!("Port {}: {word}", r.port));
            out.line(format!(
                "- Allocated to worktree '{}' for service '{}' at {}",
                h.worktree, h.service, h.allocated_at
            ));
            if let Some(c) = &r.conflict {
                let word = out.paint("CONFLICT", Style::Bad);
                out.line(format!(
                    "- {word}: also held by another repository: {} (worktree '{}', service '{}')",
                    c.repository, c.worktree, c.service
                ));
            }
        }
        (None, Some(e)) => {
            let word = out.paint("ALLOCATED ELSEWHERE", Style::Bad);
            out.line(format!("Port {}: {word}", r.port));
            out.line(format!(
                "- Held by another repository: {} (worktree '{}', service '{}')",
                e.repository, e.worktree, e.service
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
    match (&r.process, r.listening) {
        (Some(p), _) => {
            let holder = match (&r.allocated_to, &r.elsewhere) {
                (Some(h), _) => format!("worktree '{}'", h.worktree),
                (None, Some(e)) => format!(
                    "{} ({})",
                    crate::ledger::tilde(std::path::Path::new(&e.repository)),
                    e.worktree
                ),
                (None, None) => String::new(),
            };
            out.line(format!("- In use now by {}", p.describe_for(&holder)))
        }
        (None, true) => out.line("- In use now by another process"),
        (None, false) => out.line("- Nothing on this machine is listening on it now"),
    }
    out.blank();
    match (&r.allocated_to, &r.elsewhere, r.listening) {
        (None, None, _) if r.fenced.is_some() => {
            out.line("Allocation and leases in every repository skip this port.")
        }
        (None, None, false) => out.line("This port can be allocated immediately."),
        (None, None, true) => {
            out.line("Allocation skips this port while something is listening on it.")
        }
        (Some(_), _, _) if r.conflict.is_some() => out.line(
            "Two repositories hold this port: run `git ports doctor --fix` to give this one a fresh port.",
        ),
        (Some(h), _, _) => out.line(format!(
            "Release it first with `git ports release {}` if '{}' no longer needs it.",
            r.port, h.worktree
        )),
        // Outside any repository there is no "this repository" to speak of.
        (None, Some(_), _) if outside => {
            out.line("Allocation in any other repository on this machine skips this port.")
        }
        (None, Some(_), _) => out.line("Allocation in this repository skips this port."),
    }
}

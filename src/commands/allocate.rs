//! `git ports allocate`: give a worktree a port per service, the lowest one free.

use serde::Serialize;

use super::Ctx;
use crate::cli::AllocateArgs;
use crate::error::{Error, Result};
use crate::output::Style;
use crate::policy::allocate::{Allocated, allocate_all};
use crate::repo::Worktree;

#[derive(Debug, Serialize)]
struct Report<'a> {
    worktree: &'a str,
    path: String,
    allocations: &'a [Allocated],
}

/// The services worktree `wt`'s compose stack publishes a TCP host port for, each one git-ports
/// knows by that name; the stack's files as written where its model needs ports not yet
/// allocated.
fn compose_services(ctx: &Ctx, wt: &crate::repo::Worktree) -> Result<Vec<String>> {
    let settings = ctx.repo.settings_for(wt)?;
    let project = crate::compose::read(&wt.path, &settings.compose_files, &[])
        .map_err(Error::Usage)?
        .ok_or_else(|| {
            Error::Usage(format!(
                "worktree '{}' has no compose file ({}, or the files ports.composeFile names)",
                wt.name,
                crate::compose::FILES.join(", ")
            ))
        })?;
    let services = project.publishing();
    if services.is_empty() {
        return Err(Error::Usage(format!(
            "the compose stack of worktree '{}' publishes no host port",
            wt.name
        )));
    }
    if let Some(s) = services.iter().find(|s| settings.service(s).is_err()) {
        return Err(Error::Usage(format!(
            "compose service '{s}' publishes a host port, and git-ports has no service of that name: give it a range first (`git config ports.{s}.range START-END`)"
        )));
    }
    Ok(services)
}

pub fn run(ctx: &mut Ctx, args: AllocateArgs) -> Result<()> {
    let mut services = super::unique(args.services.into_iter().chain(args.service_flags));
    // The worktree is resolved once: with --compose its stack says which services there are.
    let mut target = None;
    if args.compose {
        let wt = ctx.repo.target(args.worktree.as_deref())?;
        let found = compose_services(ctx, &wt)?;
        target = Some(wt);
        for s in found {
            if !services.contains(&s) {
                services.push(s);
            }
        }
    }
    if services.is_empty() {
        return Err(Error::Usage(
            "name a service to allocate, such as `git ports allocate web`".into(),
        ));
    }
    if args.port.is_some() && services.len() != 1 {
        return Err(Error::Usage("--port takes exactly one service".into()));
    }
    for s in &services {
        let svc = ctx.repo.settings.service(s)?;
        // Overlapping ranges are allowed: every allocation checks the whole registry, so a
        // port is still never given out twice; the two services just share a pool.
        for other in ctx.repo.settings.overlapping(svc) {
            let msg = format!(
                "the range of '{}' ({}) overlaps that of '{}' ({}); they share those ports",
                svc.name, svc.range, other.name, other.range
            );
            ctx.out.warn(msg);
        }
    }
    let wt = match target {
        Some(wt) => wt,
        None => ctx.repo.target(args.worktree.as_deref())?,
    };
    let repo = &ctx.repo;
    let now = ctx.now;
    let mut results = ctx.update(|reg, elsewhere| {
        allocate_all(reg, elsewhere, repo, &wt, &services, args.port, now)
    })?;
    ctx.name_skipped(&mut results);

    if args.json {
        let path = wt.path.display().to_string();
        ctx.out.json(&Report {
            worktree: &wt.name,
            path,
            allocations: &results,
        });
        return Ok(());
    }
    render(ctx, &wt, &results);
    Ok(())
}

fn render(ctx: &mut Ctx, wt: &Worktree, results: &[Allocated]) {
    let out = &mut ctx.out;
    let tick = out.paint("✓", Style::Good);
    for (i, a) in results.iter().enumerate() {
        if i > 0 {
            out.blank();
        }
        if !a.new {
            out.line(format!(
                "{tick} Port {} is already allocated to worktree '{}' for service '{}'",
                a.port, wt.name, a.service
            ));
            continue;
        }
        out.line(format!(
            "Allocating port for service '{}' to worktree '{}'",
            a.service, wt.name
        ));
        out.blank();
        if let Some(k) = a.slot {
            out.line(format!(
                "Slot {k}: the same offset in every service's range"
            ));
        }
        if let (Some(by), true) = (&a.previously_held_by, a.skipped.is_empty()) {
            // Given back at once: no search to show.
            out.line(format!("Port {}: previously held by {by}", a.port));
            out.line(format!("Port {}: Available", a.port));
        } else if a.skipped.is_empty() && a.in_use {
            out.line(format!("Port {}: requested", a.port));
            let warn = out.paint("warning", Style::Warn);
            out.line(format!(
                "{warn}: something on this machine is listening on port {} now",
                a.port
            ));
        } else {
            out.line(format!(
                "Searching for available port in range: {}",
                a.range
            ));
            for s in &a.skipped {
                let by = match (&s.holder, &s.process) {
                    (Some(h), _) => h.clone(),
                    (None, Some(p)) => p.describe(),
                    (None, None) => "another process".into(),
                };
                if s.reason == crate::policy::allocate::SkipReason::Fenced {
                    let mut by = by.chars();
                    let first = by.next().map(|c| c.to_ascii_uppercase()).unwrap_or(' ');
                    out.line(format!("Port {}: {first}{}", s.port, by.as_str()));
                } else {
                    out.line(format!("Port {}: In use by {by}", s.port));
                }
            }
            out.line(format!("Port {}: Available", a.port));
        }
        out.blank();
        let before = super::held_before(a)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        out.line(format!(
            "{tick} Allocated port {} for service '{}'{before}",
            a.port, a.service
        ));
        out.line(format!(
            "{tick} Updated registry for worktree '{}'",
            wt.name
        ));
    }
    out.blank();
    out.line("Configuration:");
    out.line(format!("  Worktree: {}", wt.name));
    if let [a] = results {
        out.line(format!("  Service: {}", a.service));
        out.line(format!("  Port: {}", a.port));
    } else {
        out.line("  Ports:");
        for a in results {
            out.line(format!("    {}: {}", a.service, a.port));
        }
    }
    out.blank();
    out.line("To start service, run in worktree directory:");
    for a in results {
        let env = ctx.repo.settings.env_name(&a.service);
        let hint = match a.service.as_str() {
            "web" | "websocket" => format!("npm run dev -- --port {} --strictPort", a.port),
            "db" => format!("postgres -p {}", a.port),
            "redis" => format!("redis-server --port {}", a.port),
            _ => format!("{env}={} <your {} server>", a.port, a.service),
        };
        out.line(format!("  {hint}"));
    }
}

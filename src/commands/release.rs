//! `git ports release`: give ports back to the pool.

use serde::Serialize;

use super::Ctx;
use crate::cli::ReleaseArgs;
use crate::config::is_service_name;
use crate::error::{Error, Result};
use crate::output::{Style, timestamp};
use crate::policy::release::take;

/// One released allocation, or lease.
#[derive(Debug, Clone, Serialize)]
pub struct Released {
    pub port: u16,
    pub worktree: String,
    pub service: String,
    /// When it was allocated; absent for a lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated_at: Option<String>,
    /// For a lease ended early: the process it was for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_pid: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    released: &'a [Released],
}

pub fn run(ctx: &mut Ctx, args: ReleaseArgs) -> Result<()> {
    match &args.worktree {
        None => release_ports(ctx, &args.ports, args.json, args.forget),
        Some(w) => release_worktree(ctx, w, args.service.as_deref(), args.json, args.forget),
    }
}

/// Releases each port: an allocation of this repository's, or a lease made from it, which
/// ends early (its process runs on without the port). If any is neither, none is released.
pub fn release_ports(ctx: &mut Ctx, ports: &[u16], json: bool, forget: bool) -> Result<()> {
    let registry = ctx.store.load()?;
    let ledger = match &ctx.ledger {
        Some(l) => l.load_for(&ctx.repo_id)?,
        None => crate::ledger::Ledger::default(),
    };
    let mut leased = Vec::new();
    for &port in ports {
        if registry.holder(port).is_some() {
            continue;
        }
        match ledger.ports.get(&port) {
            Some(c) if c.lease.is_some() && c.repo == ctx.repo_id => leased.push(port),
            Some(c) if c.lease.is_some() => {
                return Err(Error::PortHeldElsewhere {
                    port,
                    holder: c.describe(),
                });
            }
            _ => return Err(Error::PortNotAllocated { port }),
        }
    }
    let mut released = Vec::new();
    if !leased.is_empty() {
        let repo = &ctx.repo;
        let repo_id = ctx.repo_id.clone();
        released = ctx.change_of()?.on_ledger(
            |k| repo.display_name(k),
            crate::fault::Target::LedgerLease,
            |_, ledger| {
                let mut ended = Vec::new();
                for port in &leased {
                    let Some(c) = ledger.ports.get(port) else {
                        // Its process ended meanwhile: nothing is left to release.
                        continue;
                    };
                    let Some(h) = c.lease.as_ref().filter(|_| c.repo == repo_id) else {
                        continue;
                    };
                    ended.push(Released {
                        port: *port,
                        worktree: c.name.clone(),
                        service: c.service.clone(),
                        allocated_at: None,
                        lease_pid: Some(h.pid),
                    });
                    ledger.ports.remove(port);
                }
                Ok(ended)
            },
        )?;
    }
    let repo = &ctx.repo;
    let held: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| !leased.contains(p))
        .collect();
    if !held.is_empty() {
        released.extend(ctx.update(|reg, _| {
            held.iter()
                .map(|&port| {
                    let (key, service, a) =
                        take(reg, repo, port, forget).ok_or(Error::PortNotAllocated { port })?;
                    Ok(Released {
                        port,
                        worktree: repo.display_name(&key),
                        service,
                        allocated_at: Some(timestamp(&a.allocated_at)),
                        lease_pid: None,
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?);
    }
    render(ctx, &released, json);
    Ok(())
}

/// Releases every port of a worktree, live or only remembered by the registry.
fn release_worktree(
    ctx: &mut Ctx,
    query: &str,
    service: Option<&str>,
    json: bool,
    forget: bool,
) -> Result<()> {
    if let Some(s) = service.filter(|s| !is_service_name(s)) {
        return Err(Error::BadServiceName(s.into()));
    }
    let repo = &ctx.repo;
    let mut name = query.to_string();
    let released = ctx.update(|reg, _| {
        // A worktree git no longer has is still known to the registry by its name.
        let key = match repo.resolve(query) {
            Ok(w) => w.key.clone(),
            Err(_) if reg.worktrees.contains_key(query) => query.to_string(),
            Err(e) => return Err(e),
        };
        name = repo.display_name(&key);
        let Some(entry) = reg.worktrees.get(&key) else {
            return Ok(Vec::new());
        };
        let ports: Vec<u16> = entry
            .ports
            .iter()
            .filter(|(s, _)| service.is_none_or(|want| want == s.as_str()))
            .map(|(_, a)| a.port)
            .collect();
        if let (Some(s), true) = (service, ports.is_empty()) {
            return Err(repo.settings.not_held(&name, s));
        }
        ports
            .into_iter()
            .map(|port| {
                let (k, service, a) =
                    take(reg, repo, port, forget).ok_or(Error::PortNotAllocated { port })?;
                Ok(Released {
                    port,
                    worktree: repo.display_name(&k),
                    service,
                    allocated_at: Some(timestamp(&a.allocated_at)),
                    lease_pid: None,
                })
            })
            .collect::<Result<Vec<_>>>()
    })?;
    if released.is_empty() && !json {
        if let Some(s) = service {
            return Err(ctx.repo.settings.not_held(&name, s));
        }
        ctx.out.line(format!(
            "Worktree '{name}' holds no ports: nothing to release."
        ));
        return Ok(());
    }
    render(ctx, &released, json);
    Ok(())
}

fn render(ctx: &mut Ctx, released: &[Released], json: bool) {
    let out = &mut ctx.out;
    if json {
        out.json(&Report { released });
        return;
    }
    let tick = out.paint("✓", Style::Good);
    for (i, r) in released.iter().enumerate() {
        if i > 0 {
            out.blank();
        }
        if let Some(pid) = r.lease_pid {
            out.line(format!(
                "{tick} Ended the lease of port {} ({}, leased from worktree '{}' for pid {pid}): it is free again",
                r.port, r.service, r.worktree
            ));
            continue;
        }
        out.line(format!("Releasing port {}", r.port));
        out.blank();
        out.line(format!("Port {} is currently allocated to:", r.port));
        out.line(format!("  Worktree: {}", r.worktree));
        out.line(format!("  Service: {}", r.service));
        out.line(format!(
            "  Allocated at: {}",
            r.allocated_at.as_deref().unwrap_or_default()
        ));
        out.blank();
        out.line(format!("{tick} Port {} released", r.port));
        out.line(format!(
            "{tick} Updated registry for worktree '{}'",
            r.worktree
        ));
        out.blank();
        out.line(format!("Port {} is now available for allocation.", r.port));
    }
}

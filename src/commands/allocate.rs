//! `git ports allocate`: give a worktree a port per service, the lowest one free.

use serde::Serialize;

use super::{Ctx, Elsewhere};
use crate::allocator::{Taken, lowest_free};
use crate::cli::{AllocateArgs, AvailableArgs, CheckArgs};
use crate::error::{Error, Result};
use crate::net;
use crate::output::{Style, timestamp};
use crate::registry::{Allocation, Registry};
use crate::repo::{Repo, Worktree};

/// One port the search passed over, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    pub port: u16,
    /// `worktree`: another worktree of this repository holds it; `repository`: a worktree of
    /// another repository on this machine does; `in_use`: something on this machine is bound
    /// to it.
    pub reason: &'static str,
    /// Who holds it, for `worktree` and `repository`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// For `in_use`: the process listening, where the system tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<crate::owner::Owner>,
}

/// The result for one service.
#[derive(Debug, Clone, Serialize)]
pub struct Allocated {
    pub service: String,
    pub port: u16,
    pub allocated_at: String,
    /// False when the worktree already held a port for the service and kept it.
    pub new: bool,
    pub range: String,
    pub skipped: Vec<Skip>,
    /// Set when --port asked for a port something on this machine is bound to.
    pub in_use: bool,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    worktree: &'a str,
    path: String,
    allocations: &'a [Allocated],
}

pub fn run(ctx: &mut Ctx, args: AllocateArgs) -> Result<()> {
    // The script's flag forms, for scripts written against port_allocate.py.
    if !args.release.is_empty() {
        return super::release::release_ports(ctx, &args.release, args.json);
    }
    if let Some(port) = args.check {
        return super::check::run(
            ctx,
            CheckArgs {
                port,
                json: args.json,
            },
        );
    }
    if let Some(service) = args.available {
        return super::available::run(
            ctx,
            AvailableArgs {
                service,
                json: args.json,
            },
        );
    }

    let mut services: Vec<String> = Vec::new();
    for s in args.services.into_iter().chain(args.service_flags) {
        if !services.contains(&s) {
            services.push(s);
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
    let wt = ctx.repo.target(args.worktree.as_deref())?;
    let repo = &ctx.repo;
    let now = ctx.now;
    let mut results = ctx.update(|reg, elsewhere| {
        services
            .iter()
            .map(|s| allocate_one(reg, elsewhere, repo, &wt, s, args.port, now))
            .collect::<Result<Vec<_>>>()
    })?;
    name_listeners(ctx, &mut results);

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

/// Allocates `service` to `wt` inside a locked update, skipping ports this registry holds,
/// ports other repositories hold and ports in use on this machine.
pub fn allocate_one(
    reg: &mut Registry,
    elsewhere: &Elsewhere,
    repo: &Repo,
    wt: &Worktree,
    service: &str,
    want: Option<u16>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Allocated> {
    let name_of = |k: &str| repo.display_name(k);
    let svc = repo.settings.service(service)?;
    let range = svc.range;
    let existing = reg
        .worktrees
        .get(&wt.key)
        .and_then(|e| e.ports.get(service))
        .cloned();
    if let Some(a) = existing {
        if want.is_some_and(|p| p != a.port) {
            return Err(Error::Usage(format!(
                "worktree '{}' already holds port {} for {service}; release it first",
                wt.name, a.port
            )));
        }
        return Ok(Allocated {
            service: service.into(),
            port: a.port,
            allocated_at: timestamp(&a.allocated_at),
            new: false,
            range: range.to_string(),
            skipped: Vec::new(),
            in_use: false,
        });
    }

    let (port, skipped, in_use) = match want {
        Some(port) => {
            if !range.contains(port) {
                return Err(Error::PortOutsideRange {
                    port,
                    service: service.into(),
                    range: range.to_string(),
                });
            }
            if let Some(h) = reg.holder(port) {
                return Err(Error::PortTaken {
                    port,
                    worktree: name_of(h.worktree),
                    service: h.service.into(),
                });
            }
            if let Some(c) = elsewhere.get(&port) {
                return Err(Error::PortHeldElsewhere {
                    port,
                    holder: c.describe(),
                });
            }
            (port, Vec::new(), net::in_use(port))
        }
        None => {
            let held = reg.by_port();
            let holder = |p: u16| match (held.get(&p), elsewhere.get(&p)) {
                (Some(h), _) => Some(("worktree", name_of(h.worktree))),
                (None, Some(c)) => Some(("repository", c.describe())),
                (None, None) => None,
            };
            let search = lowest_free(range, holder, net::in_use);
            let skipped = search
                .skipped
                .into_iter()
                .map(|(port, why)| match why {
                    Taken::Held((reason, by)) => Skip {
                        port,
                        reason,
                        holder: Some(by),
                        process: None,
                    },
                    Taken::InUse => Skip {
                        port,
                        reason: "in_use",
                        holder: None,
                        process: None,
                    },
                })
                .collect();
            let Some(port) = search.chosen else {
                return Err(Error::RangeExhausted {
                    service: service.into(),
                    range: range.to_string(),
                    held: range
                        .iter()
                        .filter(|p| held.contains_key(p) || elsewhere.contains_key(p))
                        .count(),
                    total: range.len(),
                });
            };
            (port, skipped, false)
        }
    };
    reg.insert(
        &wt.key,
        &wt.path,
        service,
        Allocation {
            port,
            allocated_at: now,
        },
    );
    Ok(Allocated {
        service: service.into(),
        port,
        allocated_at: timestamp(&now),
        new: true,
        range: range.to_string(),
        skipped,
        in_use,
    })
}

/// Names the processes on the ports the search skipped as in use, in the words every command
/// uses.
pub fn name_listeners(ctx: &Ctx, results: &mut [Allocated]) {
    let ports: Vec<(u16, Option<std::path::PathBuf>)> = results
        .iter()
        .flat_map(|a| a.skipped.iter())
        .filter(|s| s.reason == "in_use")
        .map(|s| (s.port, None))
        .collect();
    if ports.is_empty() {
        return;
    }
    let owners = ctx.owners(&ports);
    for s in results.iter_mut().flat_map(|a| a.skipped.iter_mut()) {
        if s.reason == "in_use" {
            s.process = owners.get(&s.port).cloned();
        }
    }
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
        if a.skipped.is_empty() && a.in_use {
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
                out.line(format!("Port {}: In use by {by}", s.port));
            }
            out.line(format!("Port {}: Available", a.port));
        }
        out.blank();
        out.line(format!(
            "{tick} Allocated port {} for service '{}'",
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
            "web" | "websocket" => format!("npm run dev -- --port {}", a.port),
            "db" => format!("postgres -p {}", a.port),
            "redis" => format!("redis-server --port {}", a.port),
            _ => format!("{env}={} <your {} server>", a.port, a.service),
        };
        out.line(format!("  {hint}"));
    }
}

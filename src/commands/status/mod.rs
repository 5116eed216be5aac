//! `git ports status`: who holds which port, on which branch, and whether it is running.
//! This file reads the rows and checks their health; `machine.rs` reads every repository the
//! ledger knows, `json.rs` and `render.rs` show them.

mod json;
mod leases;
mod machine;
mod render;

use json::to_json;
use machine::machine;
use render::*;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::Ctx;
use crate::cli::StatusArgs;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::ledger::{Ledger, repo_dir, tilde};
use crate::net::{self, Health};
use crate::output::{Out, Style, timestamp, with_age};
use crate::owner::Owner;
use crate::registry::{Allocation, Registry};
use crate::repo::Head;

/// One worktree of the report, live or stale.
struct Row {
    /// The repository, for the machine-wide view: an index into its list.
    group: usize,
    /// The registry key.
    key: String,
    name: String,
    branch: Option<String>,
    detached: bool,
    path: String,
    /// Why the worktree is stale, if it is: git no longer has it, or its directory is gone.
    stale: Option<crate::repo::Gone>,
    /// In service display order, each with its health once checked.
    ports: Vec<Port>,
    /// Ports another repository holds too, with who that is.
    also: BTreeMap<u16, String>,
    /// Who serves each running port, where the system tells.
    owners: BTreeMap<u16, Owner>,
    /// With `ports.align`: the offset all its ports share.
    slot: Option<usize>,
    /// Its host name, once it has one.
    host: Option<String>,
}

/// A service, its allocation, and its health once checked.
type Port = (String, Allocation, Option<Health>);

#[derive(Serialize, Default)]
struct Summary {
    running: usize,
    stopped: usize,
    errors: usize,
    /// Running ports served by a process outside the worktree that holds them.
    foreign: usize,
}

enum View {
    All,
    Worktree(String),
    Service(String),
}

pub fn run(ctx: &mut Ctx, args: StatusArgs) -> Result<()> {
    // A wrong value stops the commands that need it; status shows what it can, and says.
    for p in &ctx.repo.settings.problems {
        ctx.out.warn(p.error().to_string());
    }
    if args.machine {
        return machine(ctx, &args);
    }
    // The registry and the ledger (read once for everything the report takes from it). A
    // large registry means many worktrees: then both files (about half a megabyte of JSON
    // each at a thousand worktrees) are read and parsed on a thread of their own while this
    // one lists the worktrees. A small one is not worth a thread.
    let (store, ledger, repo_id) = (&ctx.store, ctx.ledger.as_ref(), &ctx.repo_id);
    let read = move || {
        let registry = store.load();
        let ledger = ledger.and_then(|l| l.load_for(repo_id).ok());
        (registry, ledger)
    };
    const LARGE: u64 = 128 * 1024;
    let (registry, ledger) = if std::fs::metadata(&store.path).is_ok_and(|m| m.len() > LARGE) {
        std::thread::scope(|scope| {
            let files = scope.spawn(read);
            ctx.repo.worktrees();
            match files.join() {
                Ok(read) => read,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    } else {
        read()
    };
    let registry = registry?;
    let hosts = ledger
        .as_ref()
        .map(|l| l.names.hosts_for(&ctx.repo_id))
        .unwrap_or_default();
    let mut rows = rows(ctx, &registry, &hosts);
    if ctx.repo.settings.choice.align {
        for r in &mut rows {
            r.slot = crate::policy::allocate::slot_of(&registry, &ctx.repo.settings, &r.key);
        }
    }
    let conflicts = ledger
        .as_ref()
        .map(|l| l.conflicts(&ctx.repo_id, &registry))
        .unwrap_or_default();
    for r in &mut rows {
        for (port, claim) in &conflicts {
            if r.ports.iter().any(|p| p.1.port == *port) {
                r.also.insert(*port, claim.describe());
            }
        }
    }
    let view = if let Some(q) = &args.worktree {
        // A removed worktree is still found by the name the registry knows it by.
        let name = match ctx.repo.resolve(q) {
            Ok(w) => w.name.clone(),
            Err(_) if rows.iter().any(|r| r.stale.is_some() && &r.name == q) => q.clone(),
            Err(e @ Error::AmbiguousWorktree { .. }) => return Err(Error::Usage(e.to_string())),
            Err(e) => return Err(e),
        };
        rows.retain(|r| r.name == name);
        View::Worktree(name)
    } else if let Some(s) = &args.service {
        let in_registry = registry.allocations().any(|h| h.service == s);
        if !in_registry {
            ctx.repo.settings.service(s)?;
        }
        for r in &mut rows {
            r.ports.retain(|(svc, _, _)| svc == s);
        }
        rows.retain(|r| !r.ports.is_empty());
        View::Service(s.clone())
    } else {
        View::All
    };

    let summary = args
        .health_check
        .then(|| check(ctx, &mut rows, args.timeout));
    let errors = summary.as_ref().map_or(0, |s| s.errors);
    let mut leases = leases::live(ctx, ledger.as_ref(), false);
    match &view {
        View::All => {}
        View::Worktree(name) => leases.retain(|l| &l.worktree == name),
        View::Service(s) => leases.retain(|l| &l.service == s),
    }
    let origin = origin(ctx, ledger.as_ref());
    if args.json {
        let json = to_json(ctx, rows, summary, leases, origin);
        ctx.out.json(&json);
    } else if registry.total() == 0 && matches!(view, View::All) && leases.is_empty() {
        ctx.out.line("No ports allocated yet.");
        ctx.out.line(
            "Allocate one with `git ports allocate web`, or run \
             `git ports hook install --services web` to allocate on every `git worktree add`.",
        );
    } else {
        let drift = if matches!(view, View::All) {
            crate::envfile::drifted(&ctx.repo, &registry, &hosts)
        } else {
            Vec::new()
        };
        // How many ports of a range nobody has: not this repository, another, a lease, or a
        // fence (the one answer allocation gives).
        let elsewhere = ledger
            .as_ref()
            .map(|l| l.elsewhere(&ctx.repo_id))
            .unwrap_or_default();
        let settings = ctx.repo.settings.clone();
        let names = |k: &str| ctx.repo.display_name(k);
        let ports = crate::policy::availability::Availability::new(
            &registry, &elsewhere, &settings, &names,
        );
        let free: Vec<(String, usize)> = settings
            .services
            .iter()
            .map(|s| (s.name.clone(), ports.unheld(s.range)))
            .collect();
        match &view {
            View::All => render_all(ctx, &rows, args.health_check, &free),
            View::Worktree(name) => render_worktree(ctx, name, &rows, args.health_check),
            View::Service(s) => render_service(ctx, s, &rows, &free),
        }
        leases::render(&mut ctx.out, &leases, false);
        if matches!(view, View::All) {
            render_names(ctx);
        }
        if let Some(s) = &summary {
            render_summary(&mut ctx.out, s);
        }
        if !drift.is_empty() {
            ctx.out.blank();
            for d in &drift {
                let what = d.drift.describe(&d.worktree);
                let line = if d.drift.writable() {
                    format!(
                        "Env file {} {what}: run `git ports env {} --write {}`.",
                        d.path.display(),
                        crate::output::worktree_arg(&d.worktree),
                        crate::output::shell_quote(&d.path.display().to_string())
                    )
                } else {
                    format!("Env file {} {what}.", d.path.display())
                };
                ctx.out.line(line);
            }
        }
    }
    if errors > 0 {
        Err(Error::HealthErrors(errors))
    } else {
        Ok(())
    }
}

/// Where this repository's origin points, once it has a name.
fn origin(ctx: &Ctx, ledger: Option<&Ledger>) -> Option<json::Origin> {
    let r = ledger?.names.repo(&ctx.repo_id)?;
    let key = r
        .point
        .clone()
        .unwrap_or_else(|| crate::registry::MAIN_KEY.to_string());
    Some(json::Origin {
        host: crate::names::origin(&r.label),
        worktree: ctx.repo.display_name(&key),
    })
}

/// The names the proxy serves for this repository, when it runs.
fn render_names(ctx: &mut Ctx) {
    let Some(ledger) = ctx.ledger.clone() else {
        return;
    };
    let Some(running) = crate::proxy::running(&ledger) else {
        return;
    };
    let here = tilde(&repo_dir(&ctx.repo_id));
    let names: Vec<crate::proxy::Served> = crate::proxy::served(&ledger, running.port)
        .into_iter()
        .filter(|n| n.repository == here)
        .collect();
    if names.is_empty() {
        return;
    }
    ctx.out.blank();
    ctx.out
        .line(format!("Through git ports proxy (port {}):", running.port));
    for n in names {
        let what = if n.origin {
            format!("origin, points at '{}'", n.worktree)
        } else {
            format!("'{}'", n.worktree)
        };
        ctx.out.line(format!("  {}  {what}", n.url));
    }
}

/// A worktree's ports in service display order: the configured order, then by name.
fn ports_of(settings: &Settings, registry: &Registry, key: &str) -> Vec<Port> {
    let mut ports: Vec<Port> = registry
        .worktrees
        .get(key)
        .map(|e| {
            e.ports
                .iter()
                .map(|(s, a)| (s.clone(), a.clone(), None))
                .collect()
        })
        .unwrap_or_default();
    ports.sort_by(|a, b| (settings.rank(&a.0), &a.0).cmp(&(settings.rank(&b.0), &b.0)));
    ports
}

/// The registry's worktrees in `git worktree list` order, then the stale ones by name.
fn rows(ctx: &Ctx, registry: &Registry, hosts: &crate::names::Hosts) -> Vec<Row> {
    let ports_of = |key: &str| ports_of(&ctx.repo.settings, registry, key);
    let mut rows: Vec<Row> = Vec::new();
    for w in ctx.repo.worktrees() {
        if !registry.worktrees.contains_key(&w.key) {
            continue;
        }
        rows.push(Row {
            group: 0,
            key: w.key.clone(),
            name: w.name.clone(),
            branch: w.head.branch().map(str::to_string),
            detached: matches!(w.head, Head::Detached(_)),
            path: w.path.display().to_string(),
            stale: (w.prunable && !w.locked).then_some(crate::repo::Gone::Missing),
            ports: ports_of(&w.key),
            also: BTreeMap::new(),
            owners: BTreeMap::new(),
            slot: None,
            host: hosts.get(&w.key).cloned(),
        });
    }
    for (key, entry) in &registry.worktrees {
        if ctx.repo.by_key(key).is_none() {
            rows.push(Row {
                group: 0,
                key: key.clone(),
                name: ctx.repo.display_name(key),
                branch: None,
                detached: false,
                path: entry.path.display().to_string(),
                stale: Some(crate::repo::Gone::Removed),
                ports: ports_of(key),
                also: BTreeMap::new(),
                owners: BTreeMap::new(),
                slot: None,
                host: hosts.get(key).cloned(),
            });
        }
    }
    rows
}

/// Checks every port of every live worktree at once; stale worktrees are never counted as
/// running, so they are not checked.
fn check(ctx: &Ctx, rows: &mut [Row], timeout: f64) -> Summary {
    let ports: Vec<u16> = rows
        .iter()
        .filter(|r| r.stale.is_none())
        .flat_map(|r| r.ports.iter().map(|p| p.1.port))
        .collect();
    let limit = Duration::from_secs_f64(timeout);
    let mut results = net::check_all(&ports, limit).into_iter();
    for r in rows.iter_mut().filter(|r| r.stale.is_none()) {
        for p in &mut r.ports {
            p.2 = Some(
                results
                    .next()
                    .unwrap_or(Health::Error("not checked".into())),
            );
        }
    }
    // Services that show they are up by answering HTTP (`ports.<service>.ready`).
    let settings = &ctx.repo.settings;
    let mut http: Vec<(&mut Health, u16, String)> = rows
        .iter_mut()
        .flat_map(|r| r.ports.iter_mut())
        .filter_map(
            |(service, a, h)| match (settings.ready(service), h.as_mut()) {
                (Ok(net::Ready::Http(path)), Some(h)) => Some((h, a.port, path)),
                (Err(e), Some(h)) => {
                    *h = Health::Error(e.to_string());
                    None
                }
                _ => None,
            },
        )
        .collect();
    net::confirm_http(&mut http, limit);
    let mut summary = Summary::default();
    for h in rows
        .iter()
        .flat_map(|r| r.ports.iter())
        .filter_map(|p| p.2.as_ref())
    {
        match h {
            Health::Running { .. } => summary.running += 1,
            Health::Stopped => summary.stopped += 1,
            Health::Error(_) => summary.errors += 1,
        }
    }
    // Servers a removed worktree left running: they still hold its ports, from a directory
    // that is gone.
    let stale_ports: Vec<u16> = rows
        .iter()
        .filter(|r| r.stale.is_some())
        .flat_map(|r| r.ports.iter().map(|p| p.1.port))
        .collect();
    if !stale_ports.is_empty() {
        let left = crate::owner::listeners(&stale_ports);
        for r in rows.iter_mut().filter(|r| r.stale.is_some()) {
            let dir = std::path::PathBuf::from(&r.path);
            for p in &r.ports {
                if let Some(o) = left
                    .get(&p.1.port)
                    .and_then(|ls| crate::owner::left_in(ls, &dir))
                {
                    r.owners.insert(p.1.port, o);
                }
            }
        }
    }
    // Who serves the running ports, each against the worktree that holds it.
    let running: Vec<u16> = rows
        .iter()
        .flat_map(|r| r.ports.iter())
        .filter(|p| matches!(p.2, Some(Health::Running { .. })))
        .map(|p| p.1.port)
        .collect();
    if running.is_empty() {
        return summary;
    }
    let found = crate::owner::listeners(&running);
    let places = if found.is_empty() {
        Vec::new()
    } else {
        ctx.places()
    };
    for r in rows.iter_mut() {
        for p in r
            .ports
            .iter()
            .filter(|p| matches!(p.2, Some(Health::Running { .. })))
        {
            // A listener the system does not name is never taken for the worktree's own.
            let o = match found.get(&p.1.port) {
                Some(ls) => Owner::of(ls, Some(std::path::Path::new(&r.path)), &places),
                None => Owner::unknown(),
            };
            if !o.is_own() {
                summary.foreign += 1;
            }
            r.owners.insert(p.1.port, o);
        }
    }
    summary
}

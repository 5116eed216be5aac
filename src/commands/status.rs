//! `git ports status`: who holds which port, on which branch, and whether it is running.

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
use crate::registry::{Allocation, MAIN_KEY, Registry};
use crate::repo::{Head, read_head};

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
}

/// A service, its allocation, and its health once checked.
type Port = (String, Allocation, Option<Health>);

#[derive(Serialize)]
struct Json {
    timestamp: String,
    total_allocations: usize,
    worktrees: Vec<JsonWorktree>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Summary>,
}

#[derive(Serialize)]
struct JsonWorktree {
    name: String,
    /// The checked-out branch; null when HEAD is detached or the worktree is stale.
    branch: Option<String>,
    detached: bool,
    path: String,
    stale: bool,
    /// With `ports.align`: the offset all its ports share, if they share one.
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<usize>,
    ports: BTreeMap<String, JsonPort>,
}

#[derive(Serialize)]
struct JsonPort {
    port: u16,
    allocated_at: String,
    /// `running`, `stopped`, `error`, or `stale` (not checked): only with --health-check.
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_time_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Another repository holds this port too (`~/src/app (main)`): a conflict that
    /// `git ports doctor --fix` resolves. Absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    also_held_by: Option<String>,
    /// With --health-check: who listens on the port (pid, command, cwd, and whose worktree
    /// that is), or null when nothing does or the system does not tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    listener: Option<Option<Owner>>,
}

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
    let registry = ctx.store.load()?;
    let mut rows = rows(ctx, &registry);
    if ctx.repo.settings.choice.align {
        for r in &mut rows {
            r.slot = crate::policy::allocate::slot_of(&registry, &ctx.repo.settings, &r.key);
        }
    }
    let conflicts = match &ctx.ledger {
        Some(l) => l
            .load_for(&ctx.repo_id)
            .map(|ledger| ledger.conflicts(&ctx.repo_id, &registry))
            .unwrap_or_default(),
        None => BTreeMap::new(),
    };
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
    if args.json {
        let json = to_json(ctx, rows, summary);
        ctx.out.json(&json);
    } else if registry.total() == 0 && matches!(view, View::All) {
        ctx.out.line("No ports allocated yet.");
        ctx.out.line(
            "Allocate one with `git ports allocate web`, or run \
             `git ports hook install --services web` to allocate on every `git worktree add`.",
        );
    } else {
        let drift = if matches!(view, View::All) {
            crate::envfile::drifted(&ctx.repo, &registry)
        } else {
            Vec::new()
        };
        match &view {
            View::All => render_all(ctx, &rows, args.health_check),
            View::Worktree(name) => render_worktree(ctx, name, &rows, args.health_check),
            View::Service(s) => render_service(ctx, s, &rows, &registry),
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
fn rows(ctx: &Ctx, registry: &Registry) -> Vec<Row> {
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
        });
    }
    for (key, entry) in &registry.worktrees {
        if ctx.repo.by_key(key).is_none() {
            rows.push(Row {
                group: 0,
                key: key.clone(),
                name: crate::registry::display_key(key),
                branch: None,
                detached: false,
                path: entry.path.display().to_string(),
                stale: Some(crate::repo::Gone::Removed),
                ports: ports_of(key),
                also: BTreeMap::new(),
                owners: BTreeMap::new(),
                slot: None,
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
    let mut results = net::check_all(&ports, Duration::from_secs_f64(timeout)).into_iter();
    let mut summary = Summary::default();
    for r in rows.iter_mut().filter(|r| r.stale.is_none()) {
        for p in &mut r.ports {
            let h = results
                .next()
                .unwrap_or(Health::Error("not checked".into()));
            match h {
                Health::Running { .. } => summary.running += 1,
                Health::Stopped => summary.stopped += 1,
                Health::Error(_) => summary.errors += 1,
            }
            p.2 = Some(h);
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
                Some(l) => Owner::of(l, Some(std::path::Path::new(&r.path)), &places),
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

fn to_json(ctx: &Ctx, rows: Vec<Row>, summary: Option<Summary>) -> Json {
    let checked = summary.is_some();
    let worktrees: Vec<JsonWorktree> = rows.into_iter().map(|r| json_row(r, checked)).collect();
    Json {
        timestamp: timestamp(&ctx.now),
        total_allocations: worktrees.iter().map(|w| w.ports.len()).sum(),
        worktrees,
        summary,
    }
}

fn json_row(r: Row, checked: bool) -> JsonWorktree {
    let also = r.also.clone();
    let owners = r.owners.clone();
    let port = |(service, a, h): Port| {
        let health = match (&h, checked) {
            (Some(h), _) => Some(h.word()),
            (None, true) => Some("stale"),
            (None, false) => None,
        };
        let (response_time_ms, error) = match h {
            Some(Health::Running { ms }) => (Some((ms * 100.0).round() / 100.0), None),
            Some(Health::Stopped) => (None, Some("connection refused".to_string())),
            Some(Health::Error(e)) => (None, Some(e)),
            None => (None, None),
        };
        let listener = checked.then(|| owners.get(&a.port).cloned());
        let p = JsonPort {
            listener,
            also_held_by: also.get(&a.port).cloned(),
            port: a.port,
            allocated_at: timestamp(&a.allocated_at),
            health,
            response_time_ms,
            error,
        };
        (service, p)
    };
    JsonWorktree {
        ports: r.ports.into_iter().map(port).collect(),
        name: r.name,
        branch: r.branch,
        detached: r.detached,
        path: r.path,
        stale: r.stale.is_some(),
        slot: r.slot,
    }
}

/// `--machine`: every repository the ledger knows of (and this one), each read from its own
/// registry, which is the truth for it.
fn machine(ctx: &mut Ctx, args: &StatusArgs) -> Result<()> {
    let ledger = match &ctx.ledger {
        Some(l) => l.load()?,
        None => Ledger::default(),
    };
    let mut repos: Vec<PathBuf> = ledger.ports.values().map(|c| c.repo.clone()).collect();
    if !ctx.outside {
        repos.push(ctx.repo_id.clone());
    }
    repos.sort();
    repos.dedup();
    let mut groups: Vec<PathBuf> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut git_heads: std::collections::HashMap<
        PathBuf,
        std::collections::HashMap<PathBuf, Head>,
    > = std::collections::HashMap::new();
    // Repositories that cannot be read now: their claims still reserve ports, so they are
    // listed, with why and which ports.
    let mut unreadable: Vec<(PathBuf, String, Vec<u16>)> = Vec::new();
    for repo in repos {
        let registry = if repo == ctx.repo_id {
            ctx.store.load()?
        } else {
            match crate::ledger::look(&repo) {
                crate::ledger::Seen::Registry(r) => r,
                crate::ledger::Seen::Unreadable(why) => {
                    let ports = ledger
                        .ports
                        .iter()
                        .filter(|(_, c)| c.repo == repo)
                        .map(|(p, _)| *p)
                        .collect();
                    unreadable.push((repo, why, ports));
                    continue;
                }
                crate::ledger::Seen::Gone => continue,
            }
        };
        if registry.worktrees.is_empty() {
            continue;
        }
        let group = groups.len();
        for (key, entry) in &registry.worktrees {
            // Read live: a worktree moved with `git worktree move` is where its admin files
            // say, not where the registry last saw it.
            let (head, name, path, stale, head_file) = if key == MAIN_KEY {
                let path = entry.path.clone();
                let gone = !path.exists();
                (
                    read_head(&repo.join("HEAD")),
                    crate::repo::basename(&path),
                    path,
                    gone.then_some(crate::repo::Gone::Missing),
                    repo.join("HEAD"),
                )
            } else {
                match crate::repo::linked_at(&repo, key) {
                    Some(w) => {
                        let head_file = repo
                            .join("worktrees")
                            .join(crate::registry::name_of_key(key).unwrap_or_default())
                            .join("HEAD");
                        let stale = (w.prunable && !w.locked).then_some(crate::repo::Gone::Missing);
                        (w.head, w.name, w.path, stale, head_file)
                    }
                    None => (
                        Head::Unknown,
                        crate::registry::display_key(key),
                        entry.path.clone(),
                        Some(crate::repo::Gone::Removed),
                        PathBuf::new(),
                    ),
                }
            };
            let head = if stale.is_none() && crate::repo::is_stub_head(&head_file) {
                let heads = git_heads
                    .entry(repo.clone())
                    .or_insert_with(|| crate::repo::heads_from_git(&repo));
                heads.get(&path).cloned().unwrap_or(Head::Unknown)
            } else {
                head
            };
            rows.push(Row {
                group,
                key: key.clone(),
                name,
                branch: stale
                    .is_none()
                    .then(|| head.branch().map(str::to_string))
                    .flatten(),
                detached: matches!(head, Head::Detached(_)),
                path: path.display().to_string(),
                stale,
                ports: ports_of(&ctx.repo.settings, &registry, key),
                also: BTreeMap::new(),
                owners: BTreeMap::new(),
                slot: None,
            });
        }
        groups.push(repo);
    }
    // A port two repositories' registries hold: each row names the other holder.
    let mut holders: BTreeMap<u16, Vec<(usize, String)>> = BTreeMap::new();
    for r in &rows {
        for p in &r.ports {
            let who = format!("{} ({})", tilde(&repo_dir(&groups[r.group])), r.name);
            holders.entry(p.1.port).or_default().push((r.group, who));
        }
    }
    for r in &mut rows {
        for p in &r.ports {
            if let Some(hs) = holders.get(&p.1.port)
                && let Some((_, who)) = hs.iter().find(|(g, _)| *g != r.group)
            {
                r.also.insert(p.1.port, who.clone());
            }
        }
    }
    let summary = args
        .health_check
        .then(|| check(ctx, &mut rows, args.timeout));
    let errors = summary.as_ref().map_or(0, |s| s.errors);
    if args.json {
        #[derive(Serialize)]
        struct MachineJson {
            timestamp: String,
            total_allocations: usize,
            repositories: Vec<JsonRepo>,
            /// Repositories the ledger names that cannot be read now, with the ports their
            /// claims keep reserved.
            #[serde(skip_serializing_if = "Vec::is_empty")]
            unreadable: Vec<JsonUnreadable>,
            #[serde(skip_serializing_if = "Option::is_none")]
            summary: Option<Summary>,
        }
        #[derive(Serialize)]
        struct JsonUnreadable {
            path: String,
            common_dir: String,
            reason: String,
            ports: Vec<u16>,
        }
        #[derive(Serialize)]
        struct JsonRepo {
            path: String,
            common_dir: String,
            worktrees: Vec<JsonWorktree>,
        }
        let checked = summary.is_some();
        let mut repositories: Vec<JsonRepo> = groups
            .iter()
            .map(|g| JsonRepo {
                path: repo_dir(g).display().to_string(),
                common_dir: g.display().to_string(),
                worktrees: Vec::new(),
            })
            .collect();
        let total = rows.iter().map(|r| r.ports.len()).sum();
        for r in rows {
            repositories[r.group].worktrees.push(json_row(r, checked));
        }
        let json = MachineJson {
            timestamp: timestamp(&ctx.now),
            total_allocations: total,
            repositories,
            unreadable: unreadable
                .iter()
                .map(|(g, why, ports)| JsonUnreadable {
                    path: repo_dir(g).display().to_string(),
                    common_dir: g.display().to_string(),
                    reason: why.clone(),
                    ports: ports.clone(),
                })
                .collect(),
            summary,
        };
        ctx.out.json(&json);
    } else {
        let out = &mut ctx.out;
        out.heading(if args.health_check {
            "Port Allocations on This Machine with Health Check"
        } else {
            "Port Allocations on This Machine"
        });
        for (g, repo) in groups.iter().enumerate() {
            out.blank();
            out.line(format!("{}:", tilde(&repo_dir(repo))));
            for r in rows.iter().filter(|r| r.group == g) {
                let h = heading_of(r);
                out.line(format!("  {h}"));
                for (s, a, health) in &r.ports {
                    let line = port_line(
                        out,
                        s,
                        a,
                        health.as_ref(),
                        r.stale.is_some() && args.health_check,
                        r.also.get(&a.port),
                        r.owners.get(&a.port),
                    );
                    out.line(format!("  {line}"));
                }
            }
        }
        for (repo, why, ports) in &unreadable {
            out.blank();
            out.line(format!("{}:", tilde(&repo_dir(repo))));
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            out.line(format!(
                "  cannot be read now ({why}); its claims keep port{} {} reserved",
                if ports.len() == 1 { "" } else { "s" },
                ports.join(", ")
            ));
        }
        let total: usize = rows.iter().map(|r| r.ports.len()).sum();
        out.blank();
        out.line(format!(
            "Total allocations: {total} port{} across {} worktree{} in {} repositor{}",
            if total == 1 { "" } else { "s" },
            rows.len(),
            if rows.len() == 1 { "" } else { "s" },
            groups.len(),
            if groups.len() == 1 { "y" } else { "ies" },
        ));
        conflict_hint(out, &rows);
        if let Some(s) = &summary {
            render_summary(out, s);
        }
    }
    if errors > 0 {
        Err(Error::HealthErrors(errors))
    } else {
        Ok(())
    }
}

const LABEL: usize = 11;

/// `  web:       8002    [RUNNING]  ✓  0.4 ms`
fn port_line(
    out: &Out,
    service: &str,
    a: &Allocation,
    h: Option<&Health>,
    stale: bool,
    also: Option<&String>,
    owner: Option<&Owner>,
) -> String {
    let line = match (h, owner) {
        // Served, but not by the worktree that holds it: the case to see at a glance.
        (Some(Health::Running { .. }), Some(o)) if !o.is_own() => {
            let label = format!("{service}:");
            let pad = " ".repeat(8usize.saturating_sub(a.port.to_string().len()));
            let word = out.paint("[FOREIGN]  ✗", Style::Bad);
            format!(
                "  {label:<LABEL$}{}{pad}{word}  served by {}",
                a.port,
                o.describe()
            )
        }
        (Some(Health::Running { .. }), Some(o)) => format!(
            "{}  {}",
            health_line(out, service, a, h, stale),
            o.process().unwrap_or_default()
        ),
        _ => health_line(out, service, a, h, stale),
    };
    match also {
        Some(who) => {
            let mark = out.paint(&format!("[CONFLICT: also held by {who}]"), Style::Bad);
            format!("{line}  {mark}")
        }
        None => line,
    }
}

fn health_line(
    out: &Out,
    service: &str,
    a: &Allocation,
    h: Option<&Health>,
    stale: bool,
) -> String {
    let label = format!("{service}:");
    let mut line = format!("  {label:<LABEL$}{}", a.port);
    let pad = " ".repeat(8usize.saturating_sub(a.port.to_string().len()));
    match h {
        Some(Health::Running { ms }) => {
            let w = out.paint("[RUNNING]  ✓", Style::Good);
            line += &format!("{pad}{w}  {ms:.1} ms");
        }
        Some(Health::Stopped) => line += &format!("{pad}{}", out.paint("[STOPPED]  ✗", Style::Bad)),
        Some(Health::Error(e)) => {
            line += &format!("{pad}{}  {e}", out.paint("[ERROR]    ✗", Style::Bad));
        }
        None if stale => line += &format!("{pad}{}", out.paint("[STALE]", Style::Warn)),
        None => {}
    }
    line
}

/// The branch as people read it; `None` when a stale worktree's is unknown.
fn branch_text(r: &Row) -> Option<String> {
    match (&r.branch, r.detached) {
        (Some(b), _) => Some(b.clone()),
        (None, true) => Some("(detached)".into()),
        (None, false) => None,
    }
}

fn heading_of(r: &Row) -> String {
    let head = match (&r.branch, r.detached) {
        (Some(b), _) => format!(" ({b})"),
        (None, true) => " (detached)".into(),
        (None, false) => String::new(),
    };
    let stale = r
        .stale
        .map(|why| format!(" [stale: {}]", why.describe()))
        .unwrap_or_default();
    let slot = r.slot.map(|k| format!(" [slot {k}]")).unwrap_or_default();
    format!("{}{head}{slot}{stale}:", r.name)
}

fn render_all(ctx: &mut Ctx, rows: &[Row], checked: bool) {
    let out = &mut ctx.out;
    out.heading(if checked {
        "Port Allocation Status with Health Check"
    } else {
        "Port Allocation Status"
    });
    for r in rows {
        out.blank();
        let h = heading_of(r);
        let h = if r.stale.is_some() {
            out.paint(&h, Style::Warn)
        } else {
            h
        };
        out.line(h);
        for (s, a, health) in &r.ports {
            let line = port_line(
                out,
                s,
                a,
                health.as_ref(),
                r.stale.is_some() && checked,
                r.also.get(&a.port),
                r.owners.get(&a.port),
            );
            out.line(line);
        }
    }
    out.blank();
    let total: usize = rows.iter().map(|r| r.ports.len()).sum();
    let wts = rows.len();
    out.line(format!(
        "Total allocations: {total} port{} across {wts} worktree{}",
        if total == 1 { "" } else { "s" },
        if wts == 1 { "" } else { "s" }
    ));
    let used: Vec<_> = ctx
        .repo
        .settings
        .services
        .iter()
        .filter(|s| rows.iter().any(|r| r.ports.iter().any(|p| p.0 == s.name)))
        .collect();
    if !used.is_empty() {
        out.line("Available capacity:");
        let width = used.iter().map(|s| s.name.len() + 1).max().unwrap_or(0);
        for s in used {
            let held = rows
                .iter()
                .flat_map(|r| r.ports.iter())
                .filter(|p| s.range.contains(p.1.port))
                .count();
            let label = format!("{}:", s.name);
            out.line(format!(
                "  {label:<width$} {}/{} ports free",
                s.range.len() - held,
                s.range.len()
            ));
        }
    }
    stale_hint(out, rows);
}

fn stale_hint(out: &mut Out, rows: &[Row]) {
    conflict_hint(out, rows);
    stale_only_hint(out, rows);
}

fn conflict_hint(out: &mut Out, rows: &[Row]) {
    let conflicts: usize = rows.iter().map(|r| r.also.len()).sum();
    if conflicts > 0 {
        out.blank();
        out.line(format!(
            "{conflicts} port{} held here {} held by another repository too: run `git ports doctor --fix` to move {}.",
            if conflicts == 1 { "" } else { "s" },
            if conflicts == 1 { "is" } else { "are" },
            if conflicts == 1 { "it" } else { "them" },
        ));
    }
}

fn stale_only_hint(out: &mut Out, rows: &[Row]) {
    let stale: usize = rows
        .iter()
        .filter(|r| r.stale.is_some())
        .map(|r| r.ports.len())
        .sum();
    if stale > 0 {
        out.blank();
        out.line(format!(
            "Stale worktrees hold {stale} port{}: run `git ports prune` to release them.",
            if stale == 1 { "" } else { "s" }
        ));
    }
}

fn render_worktree(ctx: &mut Ctx, name: &str, rows: &[Row], checked: bool) {
    let settings = &ctx.repo.settings;
    let out = &mut ctx.out;
    out.heading(&format!("Port Status for Worktree: {name}"));
    let Some(r) = rows.first() else {
        out.blank();
        out.line("No ports allocated to this worktree.");
        out.line(format!(
            "Allocate one with `git ports allocate web --worktree {}`.",
            crate::output::shell_quote(name)
        ));
        return;
    };
    out.line(format!(
        "Branch: {}",
        branch_text(r).unwrap_or_else(|| "(unknown)".into())
    ));
    out.line(format!("Path: {}", r.path));
    out.blank();
    out.line("Allocated Ports:");
    for (s, a, h) in &r.ports {
        let line = port_line(
            out,
            s,
            a,
            h.as_ref(),
            r.stale.is_some() && checked,
            r.also.get(&a.port),
            r.owners.get(&a.port),
        );
        out.line(line);
    }
    out.blank();
    out.line("Allocation Details:");
    for (i, (s, a, _)) in r.ports.iter().enumerate() {
        if i > 0 {
            out.blank();
        }
        out.line(format!("  Service: {s}"));
        out.line(format!("    Port: {}", a.port));
        out.line(format!(
            "    Allocated: {}",
            with_age(&a.allocated_at, &ctx.now)
        ));
        out.line(format!("    Range: {}", settings.range_text(s)));
    }
    stale_hint(out, rows);
}

fn render_service(ctx: &mut Ctx, service: &str, rows: &[Row], registry: &Registry) {
    let range = ctx.repo.settings.service(service).ok().map(|s| s.range);
    let out = &mut ctx.out;
    out.heading(&format!("Port Status for Service: {service}"));
    out.blank();
    let range_text = range.map_or_else(|| "unknown".to_string(), |r| r.to_string());
    out.line(format!("Allocated Ports (range {range_text}):"));
    let mut entries: Vec<(&Row, &Allocation, Option<&Health>)> = rows
        .iter()
        .flat_map(|r| r.ports.iter().map(move |p| (r, &p.1, p.2.as_ref())))
        .collect();
    entries.sort_by_key(|e| e.1.port);
    for (r, a, h) in &entries {
        out.blank();
        let mut line = format!("  {} → {}", a.port, r.name);
        if let Some(why) = r.stale {
            line += &out.paint(&format!(" [stale: {}]", why.describe()), Style::Warn);
        }
        if let Some(h) = h {
            let full = health_line(out, service, a, Some(h), false);
            let status = full
                .split_once(&a.port.to_string())
                .map(|x| x.1)
                .unwrap_or("");
            line += status.trim_end();
        }
        out.line(line);
        let branch = branch_text(r).unwrap_or_else(|| "(unknown)".into());
        out.line(format!("         Branch: {branch}"));
        out.line(format!(
            "         Created: {}",
            with_age(&a.allocated_at, &ctx.now)
        ));
    }
    if entries.is_empty() {
        out.line("  none");
    }
    if let Some(range) = range {
        let held = registry
            .allocations()
            .filter(|h| range.contains(h.allocation.port))
            .count();
        out.blank();
        out.line(format!("Service '{service}' usage:"));
        out.line(format!("  Allocated: {} ports", entries.len()));
        out.line(format!("  Available: {} ports", range.len() - held));
        out.line(format!(
            "  Utilization: {}%",
            (entries.len() * 100 + range.len() / 2) / range.len()
        ));
    }
    stale_hint(out, rows);
}

fn render_summary(out: &mut Out, s: &Summary) {
    out.blank();
    out.line("Health Summary:");
    let plural = |n: usize| if n == 1 { "service" } else { "services" };
    out.line(format!("  Running:  {} {}", s.running, plural(s.running)));
    out.line(format!("  Stopped:  {} {}", s.stopped, plural(s.stopped)));
    out.line(format!("  Errors:   {} {}", s.errors, plural(s.errors)));
    if s.foreign > 0 {
        out.line(format!(
            "  Foreign:  {} {} served by a process outside the worktree that holds {}",
            s.foreign,
            plural(s.foreign),
            if s.foreign == 1 { "it" } else { "them" }
        ));
    }
    out.blank();
    out.line("Note: STOPPED status means port is allocated but no service is responding.");
    out.line("      This is normal if you haven't started the development server yet.");
}

//! The text views of `status`: all worktrees, one worktree, one service, in the spec's layout.

use super::*;

pub(super) const LABEL: usize = 11;

/// `  web:       8002    [RUNNING]  ✓  0.4 ms`
pub(super) fn port_line(
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
        // A removed worktree's server, still running from its deleted directory.
        (None, Some(o)) if stale => format!(
            "{}  still served by {}, left running by the removed worktree: stop it with `git ports prune --stop` (or `{}`)",
            health_line(out, service, a, h, stale),
            o.process().unwrap_or_default(),
            o.stop_by_hand()
        ),
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

pub(super) fn health_line(
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
pub(super) fn branch_text(r: &Row) -> Option<String> {
    match (&r.branch, r.detached) {
        (Some(b), _) => Some(b.clone()),
        (None, true) => Some("(detached)".into()),
        (None, false) => None,
    }
}

pub(super) fn heading_of(r: &Row) -> String {
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

/// `free`: how many ports of each service's range nobody has.
pub(super) fn render_all(ctx: &mut Ctx, rows: &[Row], checked: bool, free: &[(String, usize)]) {
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
            let unheld = free
                .iter()
                .find(|(n, _)| *n == s.name)
                .map_or(0, |(_, f)| *f);
            let label = format!("{}:", s.name);
            out.line(format!(
                "  {label:<width$} {unheld}/{} ports free",
                s.range.len()
            ));
        }
    }
    stale_hint(out, rows);
}

pub(super) fn stale_hint(out: &mut Out, rows: &[Row]) {
    conflict_hint(out, rows);
    stale_only_hint(out, rows);
}

pub(super) fn conflict_hint(out: &mut Out, rows: &[Row]) {
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

pub(super) fn stale_only_hint(out: &mut Out, rows: &[Row]) {
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

pub(super) fn render_worktree(ctx: &mut Ctx, name: &str, rows: &[Row], checked: bool) {
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

pub(super) fn render_service(ctx: &mut Ctx, service: &str, rows: &[Row], free: &[(String, usize)]) {
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
            let full = port_line(out, service, a, Some(h), false, None, r.owners.get(&a.port));
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
        let unheld = free
            .iter()
            .find(|(n, _)| n == service)
            .map_or(0, |(_, f)| *f);
        out.blank();
        out.line(format!("Service '{service}' usage:"));
        out.line(format!("  Allocated: {} ports", entries.len()));
        out.line(format!("  Available: {unheld} ports"));
        out.line(format!(
            "  Utilization: {}%",
            (entries.len() * 100 + range.len() / 2) / range.len()
        ));
    }
    stale_hint(out, rows);
}

pub(super) fn render_summary(out: &mut Out, s: &Summary) {
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

//! `status --machine`: every repository the ledger knows of, each read from its own registry.

use super::json::*;
use super::*;

/// `--machine`: every repository the ledger knows of (and this one), each read from its own
/// registry, which is the truth for it.
pub(super) fn machine(ctx: &mut Ctx, args: &StatusArgs) -> Result<()> {
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
        let other = crate::repo::Other::new(&repo);
        for (key, entry) in &registry.worktrees {
            let w = other.worktree(key, &entry.path);
            let (head, name, path, stale) = (w.head, w.name, w.path, w.stale);
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
                host: ledger.names.host_of(&repo, key).map(str::to_string),
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
    let leases = super::leases::live(ctx, Some(&ledger), true);
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
            /// Live leases on this machine; absent when there are none.
            #[serde(skip_serializing_if = "Vec::is_empty")]
            leases: Vec<super::leases::LeaseRow>,
            /// Ports reserved machine-wide; absent when there are none.
            #[serde(skip_serializing_if = "Vec::is_empty")]
            reserved: Vec<JsonReserved>,
            #[serde(skip_serializing_if = "Option::is_none")]
            summary: Option<Summary>,
        }
        #[derive(Serialize)]
        struct JsonReserved {
            port: u16,
            reason: Option<String>,
            reserved_at: String,
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
            leases,
            reserved: ledger
                .reserved
                .iter()
                .map(|(p, r)| JsonReserved {
                    port: *p,
                    reason: r.reason.clone(),
                    reserved_at: timestamp(&r.at),
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
        super::leases::render(out, &leases, true);
        if !ledger.reserved.is_empty() {
            out.blank();
            out.line("Reserved (no repository, lease or proxy is given these):");
            for (p, r) in &ledger.reserved {
                let why = r.reason.as_deref().unwrap_or("(no reason given)");
                out.line(format!("  {p}  {why}, since {}", timestamp(&r.at)));
            }
        }
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

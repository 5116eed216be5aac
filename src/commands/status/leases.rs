//! The live leases status shows: ports leased to one process each (`git ports lease`).

use super::*;

/// A live lease, for people and for `--json`.
#[derive(Serialize, Clone)]
pub(super) struct LeaseRow {
    pub port: u16,
    pub service: String,
    pub pid: u32,
    /// The command line the process runs now.
    pub command: Option<String>,
    /// The worktree it was leased from, by name.
    pub worktree: String,
    /// The repository it was leased from: its top directory.
    pub repository: String,
    /// Why a lease whose process cannot be seen from here is kept; absent for a process
    /// seen running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
}

/// The live leases of this repository, or of every repository with `machine`.
pub(super) fn live(ctx: &Ctx, ledger: Option<&Ledger>, machine: bool) -> Vec<LeaseRow> {
    let Some(ledger) = ledger else {
        return Vec::new();
    };
    ledger
        .live_leases()
        .into_iter()
        .filter(|(_, c, _)| machine || c.repo == ctx.repo_id)
        .filter_map(|(port, c, life)| {
            let h = c.lease.as_ref()?;
            let (command, kept) = match life {
                crate::machine::Life::Alive(at) => (crate::machine::Identity::command_at(at), None),
                _ => (
                    None,
                    Some(format!(
                        "its process runs in a pid namespace this one cannot see into (pid:[{}]), so it is kept until a change made where it can be seen finds it gone",
                        h.pidns.unwrap_or_default()
                    )),
                ),
            };
            Some(LeaseRow {
                port,
                service: c.service.clone(),
                pid: h.pid,
                command,
                worktree: c.name.clone(),
                repository: repo_dir(&c.repo).display().to_string(),
                kept,
            })
        })
        .collect()
}

/// `Leases:` and a line per lease, after the table (`Out::line` escapes what came from disk).
pub(super) fn render(out: &mut Out, leases: &[LeaseRow], machine: bool) {
    if leases.is_empty() {
        return;
    }
    out.blank();
    out.line("Leases (one process each, freed when it exits):");
    let width = leases.iter().map(|l| l.service.len()).max().unwrap_or(0);
    for l in leases {
        let command = l
            .command
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let from = if machine {
            format!(
                "{} ({})",
                tilde(std::path::Path::new(&l.repository)),
                l.worktree
            )
        } else {
            l.worktree.clone()
        };
        out.line(format!(
            "  {:<width$}  {}  pid {}{command}, from {from}",
            l.service, l.port, l.pid
        ));
        if let Some(k) = &l.kept {
            out.line(format!("  {:<width$}  kept: {k}", ""));
        }
    }
}

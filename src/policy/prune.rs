//! Pruning: the allocations of worktrees git no longer has, released inside a change.

use serde::Serialize;

use crate::registry::Registry;
use crate::repo::{Gone, Repo};

/// One allocation prune releases (or would).
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    pub worktree: String,
    pub service: String,
    pub port: u16,
    /// `removed`: git no longer lists the worktree; `missing`: its directory is gone.
    pub reason: Gone,
    /// Where the worktree was, as the registry last saw it.
    #[serde(skip)]
    pub path: std::path::PathBuf,
    /// A process still listening on the port, left running by the removed worktree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<crate::owner::Owner>,
    /// With `prune --stop`: what came of stopping it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<crate::stop::Ending>,
}

/// The allocations of stale worktrees: git no longer has them, or their directory is gone and
/// they are not locked (a locked worktree may live on a drive that is not mounted). Asked of
/// the disk now, not of the worktree list read at startup: a worktree another process created
/// since then must not count as removed.
pub fn stale(repo: &Repo, registry: &Registry) -> Vec<Pruned> {
    let mut stale: Vec<Pruned> = registry
        .allocations()
        .filter_map(|h| {
            let reason = repo.gone(h.worktree)?;
            Some(Pruned {
                worktree: repo.display_name(h.worktree),
                service: h.service.to_string(),
                port: h.allocation.port,
                reason,
                path: registry
                    .worktrees
                    .get(h.worktree)
                    .map(|e| e.path.clone())
                    .unwrap_or_default(),
                listener: None,
                stopped: None,
            })
        })
        .collect();
    stale.sort_by(|a, b| (&a.worktree, a.port).cmp(&(&b.worktree, b.port)));
    stale
}

/// Removes the stale allocations from the registry, returning them. The ports stay
/// remembered for the worktree's name, so a worktree made again under it gets them back.
pub fn prune(repo: &Repo, registry: &mut Registry) -> Vec<Pruned> {
    let gone = stale(repo, registry);
    for p in &gone {
        if let Some((key, service, a)) = registry.remove_port(p.port)
            && repo.settings.choice.sticky
        {
            registry.remember_if_absent(
                &crate::registry::by_name(&key),
                &service,
                a.port,
                a.allocated_at,
            );
        }
    }
    gone
}

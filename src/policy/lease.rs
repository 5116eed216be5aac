//! Which ports a lease takes: for each service, the highest port of its lease range
//! (`ports.<service>.leaseRange`, else the service's range) that no worktree, repository or
//! other lease holds and nothing on this machine is bound to. Leases search from the top of
//! the range down, so the worktrees, which search from the bottom up, keep the low ports.

use std::collections::HashSet;

use super::availability::Availability;
use crate::error::Result;
use crate::ledger::{Claim, Elsewhere};
use crate::machine::Identity;
use crate::registry::Registry;
use crate::repo::{Repo, Worktree};

/// The leases of `services` for `holder`, made from worktree `wt`, as claims for the ledger.
pub fn pick(
    repo: &Repo,
    repo_id: &std::path::Path,
    wt: &Worktree,
    registry: &Registry,
    elsewhere: &Elsewhere,
    services: &[String],
    holder: &Identity,
) -> Result<Vec<(u16, Claim)>> {
    let mut taken: HashSet<u16> = HashSet::new();
    let mut leases = Vec::new();
    for service in services {
        let range = repo.settings.lease_range(service)?;
        let name_of = |k: &str| repo.display_name(k);
        let ports = Availability::new(registry, elsewhere, &repo.settings, &name_of);
        let Some(port) = range
            .iter()
            .rev()
            .find(|&p| !taken.contains(&p) && ports.free(p))
        else {
            return Err(ports.no_free_port(service, range, None));
        };
        taken.insert(port);
        leases.push((
            port,
            Claim {
                repo: repo_id.to_path_buf(),
                worktree: wt.key.clone(),
                name: wt.name.clone(),
                service: service.clone(),
                path: wt.path.clone(),
                lease: Some(holder.clone()),
            },
        ));
    }
    Ok(leases)
}

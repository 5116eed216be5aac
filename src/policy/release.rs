//! Releasing: a port given back to the pool inside a change, remembered for its worktree's
//! name and branch unless forgotten.

use crate::registry::{Allocation, Registry};
use crate::repo::Repo;

/// Removes the allocation of `port`. Its worktree's name and branch keep remembering it (so
/// the worktree made again gets it back), unless `forget`, which drops every memory of it.
pub fn take(
    reg: &mut Registry,
    repo: &Repo,
    port: u16,
    forget: bool,
) -> Option<(String, String, Allocation)> {
    let (key, service, a) = reg.remove_port(port)?;
    if forget {
        let keys: Vec<String> = reg
            .remembered
            .iter()
            .filter(|(_, m)| m.get(&service).is_some_and(|r| r.port == port))
            .map(|(k, _)| k.clone())
            .collect();
        reg.forget(&keys, Some(&service));
    } else if repo.settings.choice.sticky {
        for k in super::memory::keys_of_key(repo, &key) {
            reg.remember_if_absent(&k, &service, port, a.allocated_at);
        }
    }
    Some((key, service, a))
}

//! Sticky memory: the keys a worktree's ports are remembered under in the registry, its name
//! and the branch checked out in it, so a worktree made again, by name or on the branch, gets
//! its ports back.

use crate::registry::{by_branch, by_name, display_key};
use crate::repo::{Repo, Worktree};

/// The memory keys of a worktree: its name, and the branch checked out in it.
pub fn keys(repo: &Repo, wt: &Worktree) -> Vec<String> {
    let mut keys = vec![by_name(&wt.key)];
    if let Some(b) = repo.branch_of(wt) {
        keys.push(by_branch(&b));
    }
    keys
}

/// How people read a memory key: `feature-x`, or `branch feature/x`.
pub fn show(key: &str) -> String {
    match (key.strip_prefix("name:"), key.strip_prefix("branch:")) {
        (Some(k), _) => display_key(k),
        (_, Some(b)) => format!("branch {b}"),
        _ => key.to_string(),
    }
}

/// The memory keys of the worktree a registry key names, live or not: its name, and its
/// branch while git still has it.
pub fn keys_of_key(repo: &Repo, key: &str) -> Vec<String> {
    let mut keys = vec![by_name(key)];
    if let Some(b) = repo.by_key(key).and_then(|w| repo.branch_of(w)) {
        keys.push(by_branch(&b));
    }
    keys
}

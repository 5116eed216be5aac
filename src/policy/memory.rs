//! Sticky memory: the keys a worktree's ports are remembered under in the registry, its name
//! and the branch checked out in it, so a worktree made again, by name or on the branch, gets
//! its ports back.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::registry::{Registry, Remembered, by_branch, by_name, display_key};
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

/// How many names and branches the registry remembers ports for; the one used longest ago
/// is forgotten first.
pub const REMEMBER: usize = 512;

/// The memory rules: what is remembered, for how long, and what is given back.
impl Registry {
    /// Remembers that `keys` (a worktree's name, and its branch) held `port` for `service`,
    /// forgetting the memory used longest ago past [`REMEMBER`].
    pub fn remember(&mut self, keys: &[String], service: &str, port: u16, at: DateTime<Utc>) {
        for k in keys {
            self.remembered
                .entry(k.clone())
                .or_default()
                .insert(service.to_string(), Remembered { port, at });
        }
        self.evict();
    }

    /// Forgets the memories used longest ago past [`REMEMBER`], in one pass: however many a
    /// file holds (a registry written by hand, or by a build with another bound), the work is
    /// linear in its size.
    pub fn evict(&mut self) {
        let excess = self.remembered.len().saturating_sub(REMEMBER);
        if excess == 0 {
            return;
        }
        let mut by_age: Vec<(Option<DateTime<Utc>>, &String)> = self
            .remembered
            .iter()
            .map(|(k, m)| (m.values().map(|r| r.at).max(), k))
            .collect();
        by_age.select_nth_unstable(excess - 1);
        let oldest: HashSet<String> = by_age[..excess].iter().map(|(_, k)| (*k).clone()).collect();
        self.remembered.retain(|k, _| !oldest.contains(k));
    }

    /// Remembers `port` for `key` and `service` unless something is remembered there already
    /// (a registry written before memory existed learns its ports as they are released).
    pub fn remember_if_absent(&mut self, key: &str, service: &str, port: u16, at: DateTime<Utc>) {
        let known = self
            .remembered
            .get(key)
            .is_some_and(|m| m.contains_key(service));
        if !known {
            self.remember(&[key.to_string()], service, port, at);
        }
    }

    /// The port the first of `keys` that remembers one remembers for `service`, with that key.
    pub fn recall<'a>(&self, keys: &'a [String], service: &str) -> Option<(u16, &'a str)> {
        keys.iter().find_map(|k| {
            let r = self.remembered.get(k)?.get(service)?;
            Some((r.port, k.as_str()))
        })
    }

    /// Ports remembered for `service` by any key other than `keys`.
    pub fn remembered_by_others(&self, keys: &[String], service: &str) -> HashSet<u16> {
        self.remembered
            .iter()
            .filter(|(k, _)| !keys.contains(k))
            .filter_map(|(_, m)| m.get(service).map(|r| r.port))
            .collect()
    }

    /// Forgets what `keys` remember for `service` (every service when `None`).
    pub fn forget(&mut self, keys: &[String], service: Option<&str>) {
        for k in keys {
            if let Some(m) = self.remembered.get_mut(k) {
                match service {
                    Some(s) => {
                        m.remove(s);
                    }
                    None => m.clear(),
                }
                if m.is_empty() {
                    self.remembered.remove(k);
                }
            }
        }
    }
}

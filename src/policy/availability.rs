//! Whether a port may be handed out, and if not, who or what has it: the one answer that
//! allocation, leases, `available` and the status's capacity give. A port is taken when a
//! worktree of this repository holds it, when the ledger gives it to another repository or a
//! lease, or when it is fenced off (`ports.exclude`, the proxy's port, a machine-wide
//! reservation); and it is busy when something on this machine is bound to it.

use std::collections::HashMap;

use crate::allocator::PortRange;
use crate::config::{Fence, Settings};
use crate::error::Error;
use crate::ledger::Elsewhere;
use crate::registry::{Holder, Registry};

use super::allocate::SkipReason;

/// Who or what has a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A worktree of this repository, by name.
    Worktree(String),
    /// Another repository's worktree, or a lease: `~/src/other (main)`.
    Elsewhere(String),
    /// Nobody may have it.
    Fenced(Fence),
}

impl Taken {
    /// The reason a search gives for passing it over, and who has it as people read it.
    pub fn skip(&self) -> (SkipReason, String) {
        match self {
            Taken::Worktree(w) => (SkipReason::Worktree, w.clone()),
            Taken::Elsewhere(c) => (SkipReason::Repository, c.clone()),
            Taken::Fenced(f) => (SkipReason::Fenced, f.describe()),
        }
    }
}

/// What a registry, the ledger and the settings say of every port, at one moment.
pub struct Availability<'a> {
    held: HashMap<u16, Holder<'a>>,
    elsewhere: &'a Elsewhere,
    settings: &'a Settings,
    name_of: &'a dyn Fn(&str) -> String,
}

impl<'a> Availability<'a> {
    pub fn new(
        registry: &'a Registry,
        elsewhere: &'a Elsewhere,
        settings: &'a Settings,
        name_of: &'a dyn Fn(&str) -> String,
    ) -> Availability<'a> {
        Availability {
            held: registry.by_port(),
            elsewhere,
            settings,
            name_of,
        }
    }

    /// Why `port` is never handed out, if it is not.
    pub fn fence(&self, port: u16) -> Option<Fence> {
        if let Some(r) = self.elsewhere.reserved.get(&port) {
            return Some(Fence::Reserved(r.reason.clone()));
        }
        self.settings.fenced(port)
    }

    /// Who or what has `port`, if anyone.
    pub fn taken(&self, port: u16) -> Option<Taken> {
        if let Some(h) = self.held.get(&port) {
            return Some(Taken::Worktree((self.name_of)(h.worktree)));
        }
        if let Some(c) = self.elsewhere.get(&port) {
            return Some(Taken::Elsewhere(c.describe()));
        }
        self.fence(port).map(Taken::Fenced)
    }

    /// Whether `port` may be handed out now: nobody has it and nothing is bound to it.
    pub fn free(&self, port: u16) -> bool {
        self.taken(port).is_none() && !crate::net::in_use(port)
    }

    /// How many of `range`'s ports nobody has (some may be busy all the same).
    pub fn unheld(&self, range: PortRange) -> usize {
        range.iter().filter(|&p| self.taken(p).is_none()).count()
    }

    /// The error for a range with no port left for this search: how many are held, kept for
    /// the main worktree (`for_main`, a port nobody holds but this worktree may not take),
    /// fenced off, and in use.
    pub fn no_free_port(&self, service: &str, range: PortRange, for_main: Option<u16>) -> Error {
        let mut held = 0;
        let mut fenced = 0;
        for p in range.iter() {
            match self.taken(p) {
                Some(Taken::Fenced(_)) => fenced += 1,
                Some(_) => held += 1,
                None => {}
            }
        }
        let reserved = for_main
            .filter(|&p| self.taken(p).is_none())
            .map_or(0, |_| 1);
        Error::RangeExhausted {
            service: service.to_string(),
            range: range.to_string(),
            held,
            reserved,
            fenced,
            total: range.len(),
        }
    }
}

//! The allocation policy: which port a worktree gets for a service, inside a locked change.
//! The first free port of the service's range in an order made of the worktree's wishes: the
//! port or slot it held before (sticky memory), a shared slot (`ports.align`), a stable first
//! choice (`ports.stableFirst`), the main worktree's reserved port (`ports.reserveMain`).

use serde::Serialize;

use crate::allocator::{
    PortRange, Taken, Wishes, first_free, first_free_slot, fnv1a, order, port_order,
};
use crate::error::{Error, Result};
use crate::ledger::Elsewhere;
use crate::net;
use crate::output::timestamp;
use crate::registry::{Allocation, Registry};
use crate::repo::{Repo, Worktree};

use super::availability::{Availability, Taken as Held};
use super::memory;

/// Why the search passed over a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Another worktree of this repository holds it.
    Worktree,
    /// A worktree of another repository on this machine does.
    Repository,
    /// Something on this machine is bound to it.
    InUse,
    /// It is kept for something that is not a worktree (the proxy's port).
    Fenced,
}

/// One port the search passed over, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    pub port: u16,
    pub reason: SkipReason,
    /// Who holds it, for `worktree` and `repository`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// For `in_use`: the process listening, where the system tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<crate::owner::Owner>,
}

/// The result for one service.
#[derive(Debug, Clone, Serialize)]
pub struct Allocated {
    pub service: String,
    pub port: u16,
    pub allocated_at: String,
    /// False when the worktree already held a port for the service and kept it.
    pub new: bool,
    pub range: String,
    pub skipped: Vec<Skip>,
    /// Set when --port asked for a port something on this machine is bound to.
    pub in_use: bool,
    /// The worktree name or branch that held this port before, when it was given back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previously_held_by: Option<String>,
    /// The port the worktree's name or branch held before, when it could not be given back
    /// (the search says why, among `skipped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_before: Option<u16>,
    /// With `ports.align`: the offset shared by the worktree's services (port = start + slot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<usize>,
}

/// The slot of the worktree keyed `key`: the offset all its ports share in their services'
/// ranges, if they share one.
pub fn slot_of(reg: &Registry, settings: &crate::config::Settings, key: &str) -> Option<usize> {
    let entry = reg.worktrees.get(key)?;
    let mut offsets = entry.ports.iter().filter_map(|(s, a)| {
        let r = settings.service(s).ok()?.range;
        r.contains(a.port).then(|| usize::from(a.port - r.start))
    });
    let first = offsets.next()?;
    offsets.all(|k| k == first).then_some(first)
}

/// Offsets other worktrees hold, in any service's range: their slots, left to them.
fn slots_of_others(reg: &Registry, repo: &Repo, wt: &Worktree) -> std::collections::HashSet<usize> {
    reg.allocations()
        .filter(|h| h.worktree != wt.key)
        .filter_map(|h| {
            let r = repo.settings.service(h.service).ok()?.range;
            r.contains(h.allocation.port)
                .then(|| usize::from(h.allocation.port - r.start))
        })
        .collect()
}

/// The stable first choice of a worktree in `len` places: FNV-1a of the repository's
/// identity and the worktree's name.
fn hashed(repo: &Repo, wt: &Worktree, len: usize) -> usize {
    let text = format!("{}\0{}", repo.identity(), wt.key);
    usize::try_from(fnv1a(text.as_bytes()) % len.max(1) as u64).unwrap_or(0)
}

/// The wishes every search of `wt` has, over `len` places: where to start (slot 0 for the
/// main worktree with `ports.reserveMain`, a stable hash with `ports.stableFirst`) and what
/// to leave alone (slot 0 for the others, with `ports.reserveMain`).
fn wishes_of(repo: &Repo, wt: &Worktree, len: usize) -> Wishes {
    let choice = repo.settings.choice;
    Wishes {
        first: match (choice.stable_first, choice.reserve_main && wt.is_main) {
            (_, true) => Some(0),
            (true, false) => Some(hashed(repo, wt, len)),
            (false, false) => None,
        },
        reserved: (choice.reserve_main && !wt.is_main).then_some(0),
        ..Wishes::default()
    }
}

/// Allocates each service to `wt` inside a locked update. With `ports.align`, the services
/// the worktree does not hold yet share one slot when one is free in all of them; otherwise
/// (and as the fallback) each takes its own first free port.
pub fn allocate_all(
    reg: &mut Registry,
    elsewhere: &Elsewhere,
    repo: &Repo,
    wt: &Worktree,
    services: &[String],
    want: Option<u16>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Allocated>> {
    let keys = if repo.settings.choice.sticky {
        memory::keys(repo, wt)
    } else {
        Vec::new()
    };
    let search = Search {
        elsewhere,
        repo,
        wt,
        want,
        now,
        keys,
    };
    let slot = match want {
        None if repo.settings.choice.align => choose_slot(reg, &search, services)?,
        _ => None,
    };
    services
        .iter()
        .map(|s| allocate_with(reg, &search, s, slot))
        .collect()
}

/// What one allocation's searches share: who else holds what, the worktree, the port asked
/// for, the time, and the worktree's memory keys.
struct Search<'a> {
    elsewhere: &'a Elsewhere,
    repo: &'a Repo,
    wt: &'a Worktree,
    want: Option<u16>,
    now: chrono::DateTime<chrono::Utc>,
    keys: Vec<String>,
}

/// The slot for the services `wt` does not hold yet, if one is free in all of them.
fn choose_slot(reg: &Registry, search: &Search, services: &[String]) -> Result<Option<usize>> {
    let &Search {
        elsewhere,
        repo,
        wt,
        ref keys,
        ..
    } = search;
    let held = reg.worktrees.get(&wt.key);
    let new: Vec<&String> = services
        .iter()
        .filter(|s| held.is_none_or(|e| !e.ports.contains_key(*s)))
        .collect();
    if new.is_empty() {
        return Ok(None);
    }
    let ranges: Vec<PortRange> = new
        .iter()
        .map(|s| repo.settings.service(s).map(|x| x.range))
        .collect::<Result<_>>()?;
    let len = ranges.iter().map(PortRange::len).min().unwrap_or(0);
    let remembered = slot_of(reg, &repo.settings, &wt.key).or_else(|| {
        new.iter().zip(&ranges).find_map(|(s, r)| {
            let (port, _) = reg.recall(keys, s)?;
            r.contains(port).then(|| usize::from(port - r.start))
        })
    });
    let mut others = slots_of_others(reg, repo, wt);
    for (s, r) in new.iter().zip(&ranges) {
        others.extend(
            reg.remembered_by_others(keys, s)
                .into_iter()
                .filter(|p| r.contains(*p))
                .map(|p| usize::from(p - r.start)),
        );
    }
    let wishes = Wishes {
        remembered,
        others,
        ..wishes_of(repo, wt, len)
    };
    let name_of = |k: &str| repo.display_name(k);
    let ports = Availability::new(reg, elsewhere, &repo.settings, &name_of);
    Ok(first_free_slot(&ranges, order(len, &wishes), |p| {
        ports.free(p)
    }))
}

/// Allocates one service to `wt` (see [`allocate_all`]).
pub fn allocate_one(
    reg: &mut Registry,
    elsewhere: &Elsewhere,
    repo: &Repo,
    wt: &Worktree,
    service: &str,
    want: Option<u16>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Allocated> {
    let mut all = allocate_all(reg, elsewhere, repo, wt, &[service.to_string()], want, now)?;
    all.pop()
        .ok_or_else(|| Error::Usage(format!("nothing allocated for '{service}'")))
}

/// Allocates `service` to `wt`, skipping ports this registry holds, ports other repositories
/// hold and ports in use on this machine, trying them in the order the worktree's wishes give
/// (its remembered port or slot first; see [`crate::allocator::order`]).
fn allocate_with(
    reg: &mut Registry,
    search: &Search,
    service: &str,
    slot: Option<usize>,
) -> Result<Allocated> {
    let &Search {
        elsewhere,
        repo,
        wt,
        want,
        now,
        ref keys,
    } = search;
    let name_of = |k: &str| repo.display_name(k);
    let svc = repo.settings.service(service)?;
    let range = svc.range;
    let choice = repo.settings.choice;
    let existing = reg
        .worktrees
        .get(&wt.key)
        .and_then(|e| e.ports.get(service))
        .cloned();
    if let Some(a) = existing {
        if want.is_some_and(|p| p != a.port) {
            return Err(Error::Usage(format!(
                "worktree '{}' already holds port {} for {service}; release it first with `git ports release {}`",
                wt.name, a.port, a.port
            )));
        }
        return Ok(Allocated {
            service: service.into(),
            port: a.port,
            allocated_at: timestamp(&a.allocated_at),
            new: false,
            range: range.to_string(),
            skipped: Vec::new(),
            in_use: false,
            previously_held_by: None,
            held_before: None,
            slot: None,
        });
    }

    let recalled = reg
        .recall(keys, service)
        .filter(|(p, _)| range.contains(*p));
    let (port, skipped, in_use) = match want {
        Some(port) => {
            if !range.contains(port) {
                return Err(Error::PortOutsideRange {
                    port,
                    service: service.into(),
                    range: range.to_string(),
                });
            }
            if let Some(h) = reg.holder(port) {
                return Err(Error::PortTaken {
                    port,
                    worktree: name_of(h.worktree),
                    service: h.service.into(),
                });
            }
            let ports = Availability::new(reg, elsewhere, &repo.settings, &name_of);
            match ports.taken(port) {
                Some(Held::Elsewhere(holder)) => {
                    return Err(Error::PortHeldElsewhere { port, holder });
                }
                Some(Held::Fenced(fence)) => return Err(Error::PortFenced { port, fence }),
                Some(Held::Worktree(_)) | None => {}
            }
            (port, Vec::new(), net::in_use(port))
        }
        None => {
            let offset = |p: u16| usize::from(p - range.start);
            // An aligned worktree's slot, chosen for all its new services, comes first; a
            // later service tries the slot the worktree already has.
            let slot_wish = slot.or_else(|| {
                choice
                    .align
                    .then(|| slot_of(reg, &repo.settings, &wt.key))
                    .flatten()
            });
            // Ports others remember but nobody holds now are kept for them; ports held now are
            // skipped in their place anyway, and said so, as the spec's search shows them.
            let by_port = reg.by_port();
            let mut others: std::collections::HashSet<usize> = reg
                .remembered_by_others(keys, service)
                .into_iter()
                .filter(|p| range.contains(*p) && !by_port.contains_key(p))
                .map(offset)
                .collect();
            if choice.align {
                others.extend(slots_of_others(reg, repo, wt));
            }
            let wishes = Wishes {
                remembered: slot_wish.or(recalled.map(|(p, _)| offset(p))),
                others,
                ..wishes_of(repo, wt, range.len())
            };
            let ports = Availability::new(reg, elsewhere, &repo.settings, &name_of);
            let holder = |p: u16| ports.taken(p).map(|t| t.skip());
            let search = first_free(port_order(range, &wishes), holder, net::in_use);
            let skipped = search
                .skipped
                .into_iter()
                .map(|(port, why)| match why {
                    Taken::Held((reason, by)) => Skip {
                        port,
                        reason,
                        holder: Some(by),
                        process: None,
                    },
                    Taken::InUse => Skip {
                        port,
                        reason: SkipReason::InUse,
                        holder: None,
                        process: None,
                    },
                })
                .collect();
            let Some(port) = search.chosen else {
                let for_main = wishes.reserved.and_then(|k| range.iter().nth(k));
                return Err(ports.no_free_port(service, range, for_main));
            };
            (port, skipped, false)
        }
    };
    reg.insert(
        &wt.key,
        &wt.path,
        service,
        Allocation {
            port,
            allocated_at: now,
        },
    );
    if choice.sticky {
        reg.remember(keys, service, port, now);
    }
    let previously_held_by = recalled
        .filter(|(p, _)| *p == port)
        .map(|(_, k)| memory::show(k));
    let held_before = recalled
        .map(|(p, _)| p)
        .filter(|p| *p != port && skipped.iter().any(|s| s.port == *p));
    let slot = (choice.align && want.is_none())
        .then(|| slot_of(reg, &repo.settings, &wt.key))
        .flatten();
    Ok(Allocated {
        service: service.into(),
        port,
        allocated_at: timestamp(&now),
        new: true,
        range: range.to_string(),
        skipped,
        in_use,
        previously_held_by,
        held_before,
        slot,
    })
}

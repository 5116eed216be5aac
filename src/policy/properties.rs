//! Property tests of the allocation rules: random allocate, release and sticky sequences over
//! overlapping ranges never hold a port twice or outside its range.

use crate::allocator::{
    PortRange, Taken, Wishes, first_free, first_free_slot, lowest_free, order, port_order,
};
use crate::registry::{Allocation, Registry, by_name};
use chrono::{DateTime, Utc};
use proptest::prelude::*;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

proptest! {
        /// Random allocate/release sequences over overlapping ranges: no port is ever held
        /// twice, every port lies in its service's range, and each allocation takes the lowest
        /// port no worktree holds.
        #[test]
        fn allocation_invariants(ops in prop::collection::vec((any::<bool>(), 0usize..6, 0usize..3), 1..120)) {
            let services = [
                ("web", PortRange { start: 100, end: 119 }),
                ("api", PortRange { start: 110, end: 129 }),
                ("db", PortRange { start: 125, end: 127 }),
            ];
            let mut reg = Registry::default();
            for (allocate, w, s) in ops {
                let (service, range) = services[s];
                let wt = format!("wt{w}");
                let held_now = reg.worktrees.get(&wt).and_then(|e| e.ports.get(service)).map(|a| a.port);
                if allocate {
                    if held_now.is_some() {
                        continue;
                    }
                    let by_port = reg.by_port();
                    let search = lowest_free(range, |p| by_port.get(&p).map(|_| ()), |_| false);
                    let expected = range.iter().find(|p| reg.holder(*p).is_none());
                    prop_assert_eq!(search.chosen, expected);
                    prop_assert!(search.skipped.iter().all(|(p, t)| *t == Taken::Held(()) && reg.holder(*p).is_some()));
                    if let Some(port) = search.chosen {
                        reg.insert(&wt, std::path::Path::new("/p"), service, Allocation { port, allocated_at: at(0) });
                    }
                } else if let Some(port) = held_now {
                    prop_assert!(reg.remove_port(port).is_some());
                }
                prop_assert_eq!(reg.validate(), Ok(()));
                for h in reg.allocations() {
                    let range = services.iter().find(|(n, _)| *n == h.service).map(|x| x.1);
                    prop_assert!(range.is_some_and(|r| r.contains(h.allocation.port)));
                }
            }
        }

        /// The order wishes give is every offset once, never the reserved one.
        #[test]
        fn wishes_only_reorder(len in 1usize..300, remembered in prop::option::of(0usize..320), first in prop::option::of(any::<usize>()), others in prop::collection::hash_set(0usize..320, 0..40), reserved in prop::option::of(0usize..320)) {
            let w = Wishes { remembered, first, others, reserved };
            let mut got = order(len, &w);
            got.sort_unstable();
            let want: Vec<usize> = (0..len).filter(|k| Some(*k) != reserved).collect();
            prop_assert_eq!(got, want);
        }

        /// Sticky and aligned allocation over overlapping ranges, with releases in between:
        /// no port is ever held twice, every port lies in its service's range, and a slot's
        /// ports are distinct and free.
        #[test]
        fn sticky_and_aligned_allocation_invariants(ops in prop::collection::vec((0u8..3, 0usize..6, 0usize..3), 1..120)) {
            let services = [
                ("web", PortRange { start: 100, end: 119 }),
                ("api", PortRange { start: 110, end: 129 }),
                ("db", PortRange { start: 125, end: 127 }),
            ];
            let mut reg = Registry::default();
            for (op, w, s) in ops {
                let (service, range) = services[s];
                let wt = format!("wt{w}");
                let keys = vec![by_name(&wt)];
                let held_now = reg.worktrees.get(&wt).and_then(|e| e.ports.get(service)).map(|a| a.port);
                match (op, held_now) {
                    (0, None) => {
                        let by_port = reg.by_port();
                        let offset = |p: u16| usize::from(p - range.start);
                        let wishes = Wishes {
                            remembered: reg.recall(&keys, service).filter(|(p, _)| range.contains(*p)).map(|(p, _)| offset(p)),
                            first: Some(w * 7),
                            others: reg.remembered_by_others(&keys, service).into_iter().filter(|p| range.contains(*p)).map(offset).collect(),
                            reserved: (w != 0).then_some(0),
                        };
                        let search = first_free(port_order(range, &wishes), |p| by_port.get(&p).map(|_| ()), |_| false);
                        if let Some(port) = search.chosen {
                            prop_assert!(!by_port.contains_key(&port));
                            reg.insert(&wt, std::path::Path::new("/p"), service, Allocation { port, allocated_at: at(0) });
                            reg.remember(&keys, service, port, at(0));
                        }
                    }
                    (1, None) => {
                        let ranges: Vec<PortRange> = services.iter().map(|x| x.1).collect();
                        let by_port = reg.by_port();
                        if let Some(k) = first_free_slot(&ranges, 0..20, |p| !by_port.contains_key(&p)) {
                            let ports: Vec<u16> = ranges.iter().map(|r| r.start + k as u16).collect();
                            for (i, p) in ports.iter().enumerate() {
                                prop_assert!(ranges[i].contains(*p) && !by_port.contains_key(p) && !ports[..i].contains(p));
                            }
                        }
                    }
                    (_, Some(port)) => {
                        let (key, svc, a) = reg.remove_port(port).expect("held");
                        reg.remember_if_absent(&by_name(&key), &svc, a.port, a.allocated_at);
                    }
                    _ => {}
                }
                prop_assert_eq!(reg.validate(), Ok(()));
                prop_assert_eq!(Registry::parse(&reg.to_json().unwrap_or_default()), Ok(reg.clone()));
                for h in reg.allocations() {
                    let range = services.iter().find(|(n, _)| *n == h.service).map(|x| x.1);
                    prop_assert!(range.is_some_and(|r| r.contains(h.allocation.port)));
                }
            }
        }
}

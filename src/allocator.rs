//! Pure allocation rules: port ranges, the lowest-free choice and range compression.
//! No files, no git, no sockets: callers pass in what is taken.

use std::fmt;
use std::str::FromStr;

/// An inclusive range of ports, `start..=end`, never empty and never containing port 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn new(start: u16, end: u16) -> Result<Self, String> {
        if start == 0 {
            return Err("ports start at 1".into());
        }
        if start > end {
            return Err(format!("start {start} is above end {end}"));
        }
        Ok(PortRange { start, end })
    }

    /// How many ports the range holds (bounds are inclusive).
    #[allow(clippy::len_without_is_empty)] // a range is never empty
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = u16> {
        self.start..=self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .trim()
            .split_once('-')
            .ok_or_else(|| "expected START-END, such as 8000-8099".to_string())?;
        let bound = |t: &str| -> Result<u16, String> {
            let t = t.trim();
            let n: u32 = t
                .parse()
                .map_err(|_| format!("'{t}' is not a port number"))?;
            u16::try_from(n)
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{n} is outside 1-65535"))
        };
        PortRange::new(bound(a)?, bound(b)?)
    }
}

/// Parses a port given on the command line: a whole number from 1 to 65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("'{s}' is not a port: expected a whole number from 1 to 65535"))
}

/// Why the search passed over a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken<H> {
    /// Held in the registry, or by another repository: `H` says by whom.
    Held(H),
    /// Something on this machine is bound to it now.
    InUse,
}

/// The outcome of a search: the ports passed over in order, and the chosen one, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search<H> {
    pub skipped: Vec<(u16, Taken<H>)>,
    pub chosen: Option<u16>,
}

/// Chooses the lowest port of `range` that `held` does not claim and `in_use` does not report.
/// `in_use` is asked only about ports nobody holds, so a costly probe runs as little as it can.
pub fn lowest_free<H>(
    range: PortRange,
    held: impl FnMut(u16) -> Option<H>,
    in_use: impl FnMut(u16) -> bool,
) -> Search<H> {
    first_free(range.iter(), held, in_use)
}

/// What a worktree would like, beyond "lowest free": each wish only reorders the ports tried,
/// so the choice is still a port nobody holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wishes {
    /// The offset its name or branch held last time: tried first.
    pub remembered: Option<usize>,
    /// Where the search starts (a stable hash), wrapping round; else at offset 0.
    pub first: Option<usize>,
    /// Offsets other names or branches remember: tried only after every other one, so a
    /// remembered port stays free for its owner while the range has others.
    pub others: std::collections::HashSet<usize>,
    /// An offset this worktree may not take (the range's first, kept for the main worktree).
    pub reserved: Option<usize>,
}

/// The order in which allocation tries the offsets `0..len` (a range's ports, or the slots of
/// aligned ranges): the remembered one, then from `first` upward round the range, fresh ones
/// before the ones others remember; never the reserved one. Each offset appears once.
pub fn order(len: usize, w: &Wishes) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let start = w.first.map_or(0, |f| f % len);
    let allowed = |k: &usize| Some(*k) != w.reserved;
    let remembered = w.remembered.filter(|k| *k < len && allowed(k));
    let circle = (0..len)
        .map(|i| (start + i) % len)
        .filter(allowed)
        .filter(|k| Some(*k) != remembered);
    let (fresh, yielded): (Vec<usize>, Vec<usize>) = circle.partition(|k| !w.others.contains(k));
    remembered.into_iter().chain(fresh).chain(yielded).collect()
}

/// The ports of `range` in the order of [`order`].
pub fn port_order(range: PortRange, w: &Wishes) -> Vec<u16> {
    order(range.len(), w)
        .into_iter()
        .filter_map(|k| u16::try_from(usize::from(range.start) + k).ok())
        .collect()
}

/// The first slot `k` (in the order given) at which every range's `start + k` exists, the
/// ports are all different, and `free` says each is free: one offset shared by all of a
/// worktree's services.
pub fn first_free_slot(
    ranges: &[PortRange],
    order: impl IntoIterator<Item = usize>,
    mut free: impl FnMut(u16) -> bool,
) -> Option<usize> {
    order.into_iter().find(|&k| {
        let ports: Option<Vec<u16>> = ranges
            .iter()
            .map(|r| {
                (k < r.len())
                    .then(|| u16::try_from(usize::from(r.start) + k).ok())
                    .flatten()
            })
            .collect();
        let Some(ports) = ports else { return false };
        let distinct = ports
            .iter()
            .enumerate()
            .all(|(i, p)| !ports[..i].contains(p));
        distinct && ports.iter().all(|&p| free(p))
    })
}

/// FNV-1a, 64 bits: a hash whose output is fixed forever, so two clones on two machines
/// derive the same first choice from the same name.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Chooses the first port, in `order`, that `held` does not claim and `in_use` does not report.
pub fn first_free<H>(
    order: impl IntoIterator<Item = u16>,
    mut held: impl FnMut(u16) -> Option<H>,
    mut in_use: impl FnMut(u16) -> bool,
) -> Search<H> {
    let mut skipped = Vec::new();
    for port in order {
        if let Some(h) = held(port) {
            skipped.push((port, Taken::Held(h)));
        } else if in_use(port) {
            skipped.push((port, Taken::InUse));
        } else {
            return Search {
                skipped,
                chosen: Some(port),
            };
        }
    }
    Search {
        skipped,
        chosen: None,
    }
}

/// Compresses sorted ports into inclusive runs: `[1,2,3,5]` → `[(1,3),(5,5)]`.
pub fn compress(ports: impl IntoIterator<Item = u16>) -> Vec<(u16, u16)> {
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for p in ports {
        match runs.last_mut() {
            Some((_, end)) if u32::from(*end) + 1 == u32::from(p) => *end = p,
            _ => runs.push((p, p)),
        }
    }
    runs
}

/// Renders runs as `8004-8009, 8011, 8021-8049`.
pub fn format_runs(runs: &[(u16, u16)]) -> String {
    runs.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_reject() {
        assert_eq!(
            "8000-8099".parse::<PortRange>(),
            Ok(PortRange {
                start: 8000,
                end: 8099
            })
        );
        assert_eq!("8000-8099".parse::<PortRange>().map(|r| r.len()), Ok(100));
        assert_eq!("5432-5532".parse::<PortRange>().map(|r| r.len()), Ok(101));
        for bad in [
            "9000-8000",
            "0-10",
            "abc",
            "1-70000",
            "",
            "5-",
            "-5",
            "1-65536",
        ] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad} parsed");
        }
        assert!("1-65535".parse::<PortRange>().is_ok());
    }

    #[test]
    fn ports_parse_and_reject() {
        assert_eq!(parse_port("8000"), Ok(8000));
        for bad in ["0", "65536", "-1", "8000.5", "abc", "", " 80"] {
            assert!(parse_port(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn lowest_free_skips_held_then_in_use() {
        let range = PortRange::new(8000, 8004).unwrap_or(PortRange { start: 1, end: 1 });
        let s = lowest_free(range, |p| (p == 8000).then_some("a"), |p| p == 8001);
        assert_eq!(s.chosen, Some(8002));
        assert_eq!(
            s.skipped,
            vec![(8000, Taken::Held("a")), (8001, Taken::InUse)]
        );
        let full = lowest_free(range, Some, |_| false);
        assert_eq!(full.chosen, None);
        assert_eq!(full.skipped.len(), 5);
    }

    #[test]
    fn wishes_reorder_but_never_drop_a_port() {
        let others: std::collections::HashSet<usize> = [1, 2].into_iter().collect();
        let w = Wishes {
            remembered: Some(3),
            first: Some(6),
            others,
            reserved: Some(0),
        };
        assert_eq!(order(5, &w), vec![3, 4, 1, 2]);
        assert_eq!(order(3, &Wishes::default()), vec![0, 1, 2]);
        // FNV-1a's published test vectors: fixed forever.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let ranges = [
            PortRange {
                start: 8000,
                end: 8009,
            },
            PortRange {
                start: 9000,
                end: 9004,
            },
        ];
        let slot = first_free_slot(&ranges, [7, 2, 3], |p| p != 9002);
        assert_eq!(
            slot,
            Some(3),
            "7 is past the shorter range, 2 is taken in the second"
        );
    }

    #[test]
    fn compress_makes_runs() {
        let runs = compress([8004, 8005, 8006, 8011, 8020, 8021, 65535]);
        assert_eq!(
            runs,
            vec![(8004, 8006), (8011, 8011), (8020, 8021), (65535, 65535)]
        );
        assert_eq!(format_runs(&runs), "8004-8006, 8011, 8020-8021, 65535");
        assert!(compress([]).is_empty());
    }
}

//! Listening sockets and the processes that hold them, from the kernel's socket diagnostics
//! (`diag.rs`) or, where those cannot be asked, `/proc/net/tcp{,6}`, and every process's
//! `/proc/PID/fd`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::processes::{command, cwd};
use crate::machine::{Listener, Process};

/// A listening socket.
pub struct Row {
    pub port: u16,
    pub addr: IpAddr,
    pub uid: Option<u32>,
    pub inode: u64,
}

/// `0100007F` (IPv4) or 32 hex digits (IPv6) as the kernel prints them: each 32-bit word
/// in the machine's byte order.
fn address(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            // `::ffff:127.0.0.1` is an IPv4 address reached through an IPv6 socket.
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

/// The sockets in the LISTEN state on the given ports.
pub fn rows(ports: &[u16]) -> Vec<Row> {
    table(ports).unwrap_or_default()
}

/// [`rows`], or `None` where neither the kernel's diagnostics nor `/proc` can be read.
pub fn table(ports: &[u16]) -> Option<Vec<Row>> {
    super::diag::listening(ports).or_else(|| proc_rows(ports))
}

/// [`rows`] from `/proc/net/tcp{,6}` (0A is LISTEN). The kernel lists listening sockets
/// first, then every connection (walking a table that may have a million buckets):
/// reading stops at the first line that is not a listener, but even the first line after
/// the listeners costs a walk of the buckets up to it, and IPv6's table (often empty of
/// connections) a walk of them all: milliseconds. `None` without the IPv4 table; a
/// system without IPv6 has no IPv6 table.
pub(super) fn proc_rows(ports: &[u16]) -> Option<Vec<Row>> {
    use std::io::Read;
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let mut file = match fs::File::open(table) {
            Ok(f) => f,
            Err(_) if table.ends_with('6') => continue,
            Err(_) => return None,
        };
        let mut text: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = [0u8; 8192];
        let mut header = true;
        'read: loop {
            let n = match file.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            text.extend_from_slice(&chunk[..n]);
            while let Some(end) = text.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = text.drain(..=end).collect();
                if std::mem::take(&mut header) {
                    continue;
                }
                let line = String::from_utf8_lossy(&line);
                match parse(&line, ports) {
                    Line::Listener(s) => found.push(s),
                    Line::OtherPort => {}
                    Line::Connection => break 'read,
                }
            }
        }
    }
    Some(found)
}

enum Line {
    Listener(Row),
    OtherPort,
    /// Not a listener: the listeners are all read.
    Connection,
}

fn parse(line: &str, ports: &[u16]) -> Line {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (Some(local), Some(state), Some(uid), Some(inode)) =
        (f.get(1), f.get(3), f.get(7), f.get(9))
    else {
        return Line::OtherPort;
    };
    if *state != "0A" {
        return Line::Connection;
    }
    let Some((host, port)) = local.rsplit_once(':') else {
        return Line::OtherPort;
    };
    let Some(port) = u16::from_str_radix(port, 16)
        .ok()
        .filter(|p| ports.contains(p))
    else {
        return Line::OtherPort;
    };
    let (Some(addr), Ok(inode)) = (address(host), inode.parse::<u64>()) else {
        return Line::OtherPort;
    };
    Line::Listener(Row {
        port,
        addr,
        uid: uid.parse().ok(),
        inode,
    })
}

pub fn listens(pid: u32, port: u16) -> bool {
    let inodes: HashSet<u64> = rows(&[port]).iter().map(|s| s.inode).collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).ok().is_some_and(|t| {
            t.to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|i| inodes.contains(&i))
        })
    })
}

/// Every listener of `ports`, each with the process holding it, except those `skip` says
/// need none (found by one scan of every process's descriptors, which is most of the cost).
pub fn listeners(
    ports: &[u16],
    skip: &dyn Fn(u16, IpAddr, Option<u32>) -> bool,
) -> HashMap<u16, Vec<Listener>> {
    let sockets = rows(ports);
    let mut found: HashMap<u16, Vec<Listener>> = HashMap::new();
    if sockets.is_empty() {
        return found;
    }
    let wanted: HashSet<u64> = sockets
        .iter()
        .filter(|s| !skip(s.port, s.addr, s.uid))
        .map(|s| s.inode)
        .filter(|&i| i != 0)
        .collect();
    let mut holders: HashMap<u64, u32> = HashMap::new();
    if let Ok(procs) = fs::read_dir("/proc") {
        for proc in procs.flatten() {
            let Ok(pid) = proc.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(fds) = fs::read_dir(proc.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(target) = fs::read_link(fd.path()) else {
                    continue;
                };
                let inode = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok());
                if let Some(i) = inode.filter(|i| wanted.contains(i)) {
                    holders.entry(i).or_insert(pid);
                }
            }
            if holders.len() == wanted.len() {
                break;
            }
        }
    }
    let mut seen: HashMap<u32, Process> = HashMap::new();
    for s in sockets {
        let process = holders.get(&s.inode).map(|&pid| {
            seen.entry(pid)
                .or_insert_with(|| Process {
                    pid,
                    command: command(pid),
                    cwd: cwd(pid),
                })
                .clone()
        });
        found.entry(s.port).or_default().push(Listener {
            addr: s.addr,
            uid: s.uid,
            mine: s.uid.zip(super::my_uid()).map(|(a, b)| a == b),
            socket: s.inode,
            process,
            container: None,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_the_kernel_prints_them() {
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        assert_eq!(
            address(&format!("{lo:08X}")),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        let one = u32::from_ne_bytes([0, 0, 0, 1]);
        assert_eq!(
            address(&format!("000000000000000000000000{one:08X}")),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        let ffff = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
        assert_eq!(
            address(&format!("0000000000000000{ffff:08X}{lo:08X}")),
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(address("xyz"), None);
    }
}

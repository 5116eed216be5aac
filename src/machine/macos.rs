//! What macOS (and the BSDs) do their own way, beside `crates.rs`: signals, numeric users,
//! and the addresses a bind probe must try.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Sent, Signal};

pub const ASK: &str = "SIGTERM";

/// A socket bound to a specific address may share its port with one on the wildcard
/// address (BSD sockets with SO_REUSEADDR, which Rust's std sets): each is tried.
pub const PROBE: &[IpAddr] = &[
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// The binds find every listener on a loopback or wildcard address; the tables would show
/// only this user's sockets.
pub const PROBE_TABLES: bool = false;

pub fn uid(u: &sysinfo::Uid) -> Option<u32> {
    Some(**u)
}

pub fn signal(pid: u32, signal: Signal) -> Sent {
    super::send(
        pid,
        match signal {
            Signal::Ask => sysinfo::Signal::Term,
            Signal::End => sysinfo::Signal::Kill,
        },
    )
}

pub fn detach(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
}

pub fn hand_over(cmd: &mut std::process::Command) -> std::io::Result<i32> {
    use std::os::unix::process::CommandExt;
    Err(cmd.exec())
}

//! What Windows does its own way, beside `crates.rs`: no signals (a process is asked to
//! close, as `taskkill` without `/F` asks, and ended with TerminateProcess), users named by
//! SIDs rather than numbers, and sockets on the wildcard and a specific address sharing a
//! port unless one asked for exclusive use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use super::{Sent, Signal};

pub const ASK: &str = "the request to close";

/// Windows lets a listener on `127.0.0.1:P` stand beside one on `0.0.0.0:P`, and an IPv6
/// socket is IPv6 only: each of the four addresses is tried, and the TCP table is read too
/// (see `net::in_use`).
pub const PROBE: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// A listener on another specific address shares a port with every bind: the TCP tables,
/// which show every user's sockets, are read as well.
pub const PROBE_TABLES: bool = true;

/// Windows users are SIDs, not numbers.
pub fn uid(_u: &sysinfo::Uid) -> Option<u32> {
    None
}

pub fn signal(pid: u32, signal: Signal) -> Sent {
    match signal {
        Signal::End => super::send(pid, sysinfo::Signal::Kill),
        Signal::Ask => {
            if !super::alive(pid) {
                return Sent::Gone;
            }
            // `taskkill /PID N` posts WM_CLOSE to the process's windows; a console program
            // has none, and taskkill says it can only be ended.
            let asked = Command::new("taskkill")
                .args(["/PID", &pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match asked {
                Ok(s) if s.success() => Sent::Delivered,
                _ if !super::alive(pid) => Sent::Gone,
                _ => Sent::CannotAsk,
            }
        }
    }
}

pub fn detach(cmd: &mut Command) -> &mut Command {
    use std::os::windows::process::CommandExt;
    // CREATE_NEW_PROCESS_GROUP | DETACHED_PROCESS: no console of its starter to end with.
    cmd.creation_flags(0x0000_0200 | 0x0000_0008)
}

pub fn hand_over(cmd: &mut Command) -> std::io::Result<i32> {
    Ok(cmd.status()?.code().unwrap_or(1))
}

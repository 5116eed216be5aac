//! The machine on Linux, from `/proc`: `sockets.rs` (who listens, with the kernel's socket
//! diagnostics in `diag.rs`) and `processes.rs` (identity, user, program, directory,
//! parents).

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Listener, Sent, Signal, Socket};

mod diag;
mod processes;
mod sockets;

pub use processes::{
    Census, alive, caller, command_line, counted_here, cwd, identify, identify_self, program,
};

pub const ASK: &str = "SIGTERM";

pub const UNIDENTIFIABLE: &str =
    "this system shows no /proc to tell a process from a later one with its pid";

/// The addresses `machine::port_taken` binds.
pub const PROBE: &[IpAddr] = &[
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    IpAddr::V4(Ipv4Addr::LOCALHOST),
];

/// The binds find every listener: the tables need not be read.
pub const PROBE_TABLES: bool = false;

/// The user this process runs as (its effective uid, as `/proc/self` shows it).
pub fn my_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    static UID: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UID.get_or_init(|| fs::metadata("/proc/self").ok().map(|m| m.uid()))
}

pub fn same_user(pid: u32) -> Option<bool> {
    processes::same_user(pid)
}

pub fn listeners(
    ports: &[u16],
    skip: &dyn Fn(u16, std::net::IpAddr, Option<u32>) -> bool,
) -> HashMap<u16, Vec<Listener>> {
    sockets::listeners(ports, skip)
}

pub fn sockets(port: u16) -> Vec<Socket> {
    sockets::rows(&[port])
        .into_iter()
        .map(|s| Socket {
            addr: s.addr,
            uid: s.uid,
            socket: s.inode,
        })
        .collect()
}

pub fn listened(port: u16) -> Option<bool> {
    sockets::table(&[port]).map(|rows| !rows.is_empty())
}

pub fn listens(pid: u32, port: u16) -> bool {
    sockets::listens(pid, port)
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

/// Who holds the lock on `file`, from `/proc/locks`: `pid 123 (git-ports)`.
pub fn lock_holder(file: &fs::File) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let ino = file.metadata().ok()?.ino();
    let table = fs::read_to_string("/proc/locks").ok()?;
    for line in table.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // `1: FLOCK  ADVISORY  WRITE 12345 08:01:1234 0 EOF`; waiters have a `->`.
        if f.get(1) == Some(&"->") {
            continue;
        }
        let (Some(pid), Some(dev_ino)) = (f.get(4), f.get(5)) else {
            continue;
        };
        if dev_ino.rsplit(':').next() != Some(&ino.to_string()) {
            continue;
        }
        let comm = pid
            .parse::<u32>()
            .map(processes::command)
            .unwrap_or_default();
        let comm = comm.to_string_lossy();
        return Some(if comm.is_empty() {
            format!("pid {pid}")
        } else {
            format!("pid {pid} ({comm})")
        });
    }
    None
}

pub fn open_file_limit() -> Option<usize> {
    fs::read_to_string("/proc/self/limits").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
    })
}

pub fn detach(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
}

pub fn hand_over(cmd: &mut std::process::Command) -> std::io::Result<i32> {
    use std::os::unix::process::CommandExt;
    Err(cmd.exec())
}

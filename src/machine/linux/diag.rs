//! Listening sockets from the kernel's socket diagnostics (`NETLINK_SOCK_DIAG`, what `ss`
//! reads): asked for listeners only, the kernel walks its listening sockets and nothing
//! else. `/proc/net/tcp{,6}` walks every bucket of the connection table as well (262,144 on
//! a machine with 24 GiB), which takes milliseconds however few connections there are; the
//! proxy asks before each new server connection, so that cost was its tail latency.
//!
//! The messages are `struct nlmsghdr` followed by `struct inet_diag_req_v2` (asked) or
//! `struct inet_diag_msg` (answered), laid out as `linux/inet_diag.h` has them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType, netlink, sockopt};

use super::sockets::Row;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const TCP_LISTEN: u32 = 10;
const IPPROTO_TCP: u8 = 6;
const HEADER: usize = 16;
/// `struct inet_diag_msg`: family, state, timer, retransmits, the socket's identity (ports,
/// addresses, interface, cookie), expiry, queues, uid, inode.
const MESSAGE: usize = 72;

/// How long the kernel may take to answer one part of a dump.
const WAIT: Duration = Duration::from_secs(1);

/// The listening TCP sockets on `ports` of both families; `None` where the diagnostics
/// cannot be asked (no netlink here, a kernel without `inet_diag`), so the caller reads
/// `/proc` instead. A family the kernel does not have (IPv6 turned off) has no listeners.
pub fn listening(ports: &[u16]) -> Option<Vec<Row>> {
    let fd = rustix::net::socket(
        AddressFamily::NETLINK,
        SocketType::RAW,
        Some(netlink::SOCK_DIAG),
    )
    .ok()?;
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(WAIT)).ok()?;
    let mut found = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    for (seq, family) in [(1u32, AddressFamily::INET), (2, AddressFamily::INET6)] {
        rustix::net::send(&fd, &request(seq, family), SendFlags::empty()).ok()?;
        'dump: loop {
            let (got, _) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty()).ok()?;
            let mut rest = &buf[..got];
            while rest.len() >= HEADER {
                let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
                let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
                let at = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
                if len < HEADER || len > rest.len() {
                    return None;
                }
                if at == seq {
                    match kind {
                        NLMSG_DONE => break 'dump,
                        // Refused: for IPv6, a kernel without it; else nothing can be asked.
                        NLMSG_ERROR if family == AddressFamily::INET6 => break 'dump,
                        NLMSG_ERROR => return None,
                        SOCK_DIAG_BY_FAMILY => found.extend(row(&rest[HEADER..len], ports)),
                        _ => {}
                    }
                }
                rest = &rest[((len + 3) & !3).min(rest.len())..];
            }
        }
    }
    Some(found)
}

/// A dump of `family`'s TCP sockets in the LISTEN state.
fn request(seq: u32, family: AddressFamily) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER + 56);
    m.extend_from_slice(&((HEADER + 56) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(family.as_raw() as u8);
    m.push(IPPROTO_TCP);
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    m.resize(HEADER + 56, 0);
    m
}

/// One answered socket, if it listens on one of `ports`.
fn row(msg: &[u8], ports: &[u16]) -> Option<Row> {
    if msg.len() < MESSAGE || u32::from(msg[1]) != TCP_LISTEN {
        return None;
    }
    let port = u16::from_be_bytes([msg[4], msg[5]]);
    if !ports.contains(&port) {
        return None;
    }
    let src: [u8; 16] = msg[8..24].try_into().ok()?;
    let addr = match u16::from(msg[0]) {
        f if f == AddressFamily::INET.as_raw() => {
            IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3]))
        }
        f if f == AddressFamily::INET6.as_raw() => {
            let v6 = Ipv6Addr::from(src);
            // `::ffff:127.0.0.1` is an IPv4 address reached through an IPv6 socket.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    let word = |at: usize| msg[at..at + 4].try_into().ok().map(u32::from_ne_bytes);
    Some(Row {
        port,
        addr,
        uid: word(64),
        inode: u64::from(word(68)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn sorted(mut rows: Vec<Row>) -> Vec<(u16, IpAddr, Option<u32>, u64)> {
        let mut v: Vec<_> = rows
            .drain(..)
            .map(|r| (r.port, r.addr, r.uid, r.inode))
            .collect();
        v.sort();
        v
    }

    /// Real listeners of each family (IPv4, IPv6 loopback, the dual-stack wildcard) are read
    /// by the kernel's diagnostics exactly as `/proc` lists them: address, user and socket.
    #[test]
    fn the_diagnostics_read_what_proc_lists() {
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let mut held = vec![v4.local_addr().expect("address").port()];
        let v6 = TcpListener::bind("[::1]:0").ok();
        let any = TcpListener::bind("[::]:0").ok();
        held.extend(
            v6.iter()
                .chain(any.iter())
                .map(|l| l.local_addr().expect("address").port()),
        );
        // A connection on the first port: listed by neither as a listener.
        let _c = std::net::TcpStream::connect(v4.local_addr().expect("address")).expect("connect");
        let asked = sorted(listening(&held).expect("netlink socket diagnostics on this kernel"));
        let read = sorted(super::super::sockets::proc_rows(&held).expect("/proc/net/tcp"));
        assert_eq!(asked, read);
        assert_eq!(asked.len(), held.len(), "one listener a port: {asked:?}");
        assert!(asked.iter().any(|r| r.1 == IpAddr::V4(Ipv4Addr::LOCALHOST)));
        if v6.is_some() {
            assert!(asked.iter().any(|r| r.1 == IpAddr::V6(Ipv6Addr::LOCALHOST)));
        }
        // A port nobody listens on has no rows; other ports are left out.
        drop(v4);
        assert!(listening(&held[..1]).expect("asked again").is_empty());
    }
}

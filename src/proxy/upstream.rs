//! Which address of a port the proxy may connect to: only a listener that is this user's
//! and runs in the worktree that holds the port, never one of another user, worktree or
//! repository. A port any of whose listeners is not the worktree's own is refused whole, as
//! `status` calls it FOREIGN: a browser opening the name directly would reach that other
//! listener half of the time. The socket tables are read before every new connection (a
//! cheap read); the processes behind the sockets are looked up again when the sockets
//! change, and at least every [`RECHECK`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::owner::{self, Owner, Place};

use super::routes;

/// How long a verdict on the same sockets stands before the processes are looked at again
/// (a server of this user may have changed directory).
const RECHECK: Duration = Duration::from_secs(2);

/// Why the proxy does not connect.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// Nothing listens on the port.
    Nothing,
    /// Something that is not the worktree's own server listens on it.
    Foreign(Box<Owner>),
    /// The worktree's server listens, but on no loopback address.
    NotLoopback(IpAddr),
}

/// The sockets of a port as last judged, and the verdict.
struct Verdict {
    sockets: Vec<crate::machine::Socket>,
    holder: std::path::PathBuf,
    at: Instant,
    verdict: Result<IpAddr, Refusal>,
}

/// One thread's verdicts, by port.
#[derive(Default)]
pub struct Guard {
    verdicts: Mutex<HashMap<u16, Verdict>>,
}

/// The address to reach listeners `ls` at: IPv4 loopback where any listens on IPv4 (or on
/// every IPv4 address), else IPv6 loopback; the family the server itself chose.
fn address(ls: &[owner::Listener]) -> Result<IpAddr, Refusal> {
    let v4 = ls.iter().any(|l| match l.addr {
        IpAddr::V4(a) => a.is_loopback() || a.is_unspecified(),
        IpAddr::V6(_) => false,
    });
    let v6 = ls.iter().any(|l| match l.addr {
        IpAddr::V6(a) => a.is_loopback() || a.is_unspecified(),
        IpAddr::V4(_) => false,
    });
    match (v4, v6, ls.first()) {
        (true, _, _) => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        (false, true, _) => Ok(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        (false, false, Some(l)) => Err(Refusal::NotLoopback(l.addr)),
        (false, false, None) => Err(Refusal::Nothing),
    }
}

impl Guard {
    /// Where to connect for `port` of `place`, or why not.
    pub fn target(&self, port: u16, place: &routes::Place) -> Result<SocketAddr, Refusal> {
        let sockets = crate::machine::sockets(port);
        if sockets.is_empty() {
            return Err(Refusal::Nothing);
        }
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = verdicts.get(&port)
            && v.sockets == sockets
            && v.holder == place.path
            && v.at.elapsed() < RECHECK
        {
            return v.verdict.clone().map(|a| SocketAddr::new(a, port));
        }
        let ls = owner::listeners(&[port]).remove(&port).unwrap_or_default();
        let verdict = judge(&ls, place);
        if verdicts.len() >= 4096 {
            verdicts.clear();
        }
        verdicts.insert(
            port,
            Verdict {
                sockets,
                holder: place.path.clone(),
                at: Instant::now(),
                verdict: verdict.clone(),
            },
        );
        verdict.map(|a| SocketAddr::new(a, port))
    }
}

/// The verdict on listeners `ls` of a port `place` holds, by the rule `status` uses.
fn judge(ls: &[owner::Listener], place: &routes::Place) -> Result<IpAddr, Refusal> {
    if ls.is_empty() {
        return Err(Refusal::Nothing);
    }
    let places: Vec<Place> = std::iter::once(&place.path)
        .chain(place.nested.iter())
        .filter_map(|p| {
            Some(Place {
                path: std::fs::canonicalize(p).ok()?,
                worktree: String::new(),
                repository: None,
            })
        })
        .collect();
    let o = Owner::of(ls, Some(Path::new(&place.path)), &places);
    if !o.is_own() {
        return Err(Refusal::Foreign(Box::new(o)));
    }
    address(ls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(a: &str) -> owner::Listener {
        owner::Listener {
            addr: a.parse().expect("address"),
            uid: Some(0),
            mine: Some(true),
            socket: 1,
            process: None,
            container: None,
        }
    }

    #[test]
    fn the_family_the_server_chose_is_the_one_connected_to() {
        let v4: IpAddr = Ipv4Addr::LOCALHOST.into();
        let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
        assert_eq!(address(&[l("::1")]).ok(), Some(v6));
        assert_eq!(address(&[l("::")]).ok(), Some(v6));
        assert_eq!(address(&[l("127.0.0.1"), l("::1")]).ok(), Some(v4));
        assert_eq!(address(&[l("0.0.0.0")]).ok(), Some(v4));
        assert!(matches!(
            address(&[l("192.168.1.5")]),
            Err(Refusal::NotLoopback(_))
        ));
    }
}

//! Leases: a port for one process, machine-wide, gone when the process is.
//!
//! A lease records its holder's [`Identity`]: its pid, when it started, the boot and (on
//! Linux) the pid namespace, so a pid the system gives to a later process, in this boot or
//! the next, never inherits a lease, and a pid counted in a sandbox is never read as another
//! process's outside it. A holder that cannot be seen from here is kept: a port skipped
//! beats a port given twice. A zombie (exited, not yet reaped) is gone. How each OS tells
//! all this is `machine`'s.

use crate::error::{Error, Result};
use crate::machine::Identity;

/// The holder a lease for `pid` (or, without one, for the caller) is made to, or the error
/// that says why there is none.
pub fn holder(pid: Option<u32>) -> Result<Identity> {
    match pid {
        Some(p) => Identity::of(p).map_err(|r| Error::LeaseRefused {
            pid: p,
            reason: r.reason(),
        }),
        None => {
            let (p, found) = crate::machine::caller().ok_or(Error::NoLeaseHolder(
                "no process above this one would ever end",
            ))?;
            found.map_err(|r| Error::LeaseRefused {
                pid: p,
                reason: r.reason(),
            })
        }
    }
}

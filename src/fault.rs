//! Named crash points, for proving crash safety in tests. In debug builds, the variable
//! `GIT_PORTS_FAULT=<point>` makes the process abort at that point, as a SIGKILL or a power
//! cut would stop it, and `GIT_PORTS_FAULT=<point>:fail` makes the step fail with an I/O error
//! instead, as a full disk would. `GIT_PORTS_FAULT_TRACE=<file>` appends the name of every
//! point passed to that file, so a test can prove which points a command reaches. Release
//! builds compile every point to nothing.
//!
//! The points are one enum, used by the writers and by the tests alike: a point renamed or
//! added here is renamed or added in both.

use std::io;

/// The variable that names the point.
pub const ENV: &str = "GIT_PORTS_FAULT";
/// The variable that names the file every point passed is appended to.
pub const TRACE: &str = "GIT_PORTS_FAULT_TRACE";

/// The files a change writes. A change writes them in this order: new claims into the ledger,
/// then the registry, then the ledger without the released claims, then the env files of the
/// worktrees whose ports changed. A hook is written by `hook install` and `hook uninstall`; a
/// lease, `point`, and `reserve` or `unreserve` write the ledger alone, once. The proxy's
/// certificate authority is its key, then its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    LedgerClaim,
    Registry,
    LedgerRelease,
    EnvFile,
    Hook,
    LedgerLease,
    LedgerPoint,
    LedgerReserve,
    ProxyState,
    CaKey,
    CaCert,
}

/// The steps of writing one file: the temp file is created, its bytes written, synced, and
/// renamed over the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Create,
    Write,
    Sync,
    Rename,
    Renamed,
}

/// One crash point: a step of writing one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Point(pub Target, pub Step);

impl Target {
    pub const ALL: [Target; 11] = [
        Target::LedgerClaim,
        Target::Registry,
        Target::LedgerRelease,
        Target::EnvFile,
        Target::Hook,
        Target::LedgerLease,
        Target::LedgerPoint,
        Target::LedgerReserve,
        Target::ProxyState,
        Target::CaKey,
        Target::CaCert,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::LedgerClaim => "ledger.claim",
            Target::Registry => "registry",
            Target::LedgerRelease => "ledger.release",
            Target::EnvFile => "envfile",
            Target::Hook => "hook",
            Target::LedgerLease => "ledger.lease",
            Target::LedgerPoint => "ledger.point",
            Target::LedgerReserve => "ledger.reserve",
            Target::ProxyState => "proxy.state",
            Target::CaKey => "ca.key",
            Target::CaCert => "ca.cert",
        }
    }
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Create,
        Step::Write,
        Step::Sync,
        Step::Rename,
        Step::Renamed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Write => "write",
            Step::Sync => "sync",
            Step::Rename => "rename",
            Step::Renamed => "renamed",
        }
    }
}

impl Point {
    /// `<file>.<step>`, as `GIT_PORTS_FAULT` names it.
    pub fn name(self) -> String {
        format!("{}.{}", self.0.name(), self.1.name())
    }
}

/// Every point of the files in `targets`, in the order they are written.
pub fn points_of(targets: &[Target]) -> Vec<Point> {
    targets
        .iter()
        .flat_map(|&t| Step::ALL.iter().map(move |&s| Point(t, s)))
        .collect()
}

/// Every point there is.
pub fn all() -> Vec<Point> {
    points_of(&Target::ALL)
}

/// Passes `point`: records it, then aborts or fails there if the environment asks for it.
#[cfg(debug_assertions)]
pub fn point(point: Point) -> io::Result<()> {
    let name = point.name();
    if let Some(trace) = std::env::var_os(TRACE) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trace)
        {
            let _ = writeln!(f, "{name}");
        }
    }
    let Some(want) = std::env::var_os(ENV) else {
        return Ok(());
    };
    let want = want.to_string_lossy();
    for w in want.split(',') {
        let (p, fail) = match w.strip_suffix(":fail") {
            Some(p) => (p, true),
            None => (w, false),
        };
        if p == name {
            if fail {
                return Err(io::Error::other(format!("injected failure at {name}")));
            }
            std::process::abort();
        }
    }
    Ok(())
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_point: Point) -> io::Result<()> {
    Ok(())
}

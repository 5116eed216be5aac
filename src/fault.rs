//! Named crash points, for proving crash safety in tests. In debug builds, the variable
//! `GIT_PORTS_FAULT=<point>` makes the process abort at that point, as a SIGKILL or a power
//! cut would stop it, and `GIT_PORTS_FAULT=<point>:fail` makes the step fail with an I/O error
//! instead, as a full disk would. Release builds compile every point to nothing.

use std::io;

/// The variable that names the point.
pub const ENV: &str = "GIT_PORTS_FAULT";

/// The files a change writes, in the order it writes them: new claims into the ledger, then
/// the registry, then the ledger without the released claims.
pub const FILES: &[&str] = &["ledger.claim", "registry", "ledger.release"];

/// The steps of writing one file: the temp file is created, its bytes written, synced, and
/// renamed over the file.
pub const STEPS: &[&str] = &["create", "write", "sync", "rename", "renamed"];

/// Every point, `<file>.<step>`: the list the crash tests walk.
pub fn points() -> Vec<String> {
    FILES
        .iter()
        .flat_map(|f| STEPS.iter().map(move |s| format!("{f}.{s}")))
        .collect()
}

/// Passes point `name`: aborts or fails there if the environment asks for it.
#[cfg(debug_assertions)]
pub fn point(name: &str) -> io::Result<()> {
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
pub fn point(_name: &str) -> io::Result<()> {
    Ok(())
}

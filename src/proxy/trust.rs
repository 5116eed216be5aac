//! `git ports proxy trust` and `untrust`, and HTTPS in `proxy status`: the local authority
//! (`ca.rs`) made, and added to and removed from the places this user's browsers and tools
//! read trusted authorities from.
//!
//! - Linux and the BSDs: the NSS databases, with `certutil` (libnss3-tools): Chromium's
//!   `~/.pki/nssdb` (made when missing; also what many other programs read) and every
//!   Firefox profile's (`~/.mozilla/firefox/*`, and Snap's). The system store
//!   (`/usr/local/share/ca-certificates`, `update-ca-certificates`) only with `--system`,
//!   as root.
//! - macOS: the login keychain, trusted for SSL (`security add-trusted-cert`).
//! - Windows: the user's root store (`certutil -user -addstore Root`).
//!
//! What is trusted where is read back from those places, never kept in a file of ours that
//! could say otherwise: `proxy status` lists them, and `untrust` removes every authority of
//! git-ports' it finds (an older one too, after `--renew`).

#[cfg(all(unix, not(target_os = "macos")))]
use std::path::Path;
#[cfg(unix)]
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Serialize;

use super::Setup;
use super::ca::{self, Authority};
use crate::error::{Error, Result};
use crate::keys::KEY_HTTPS;
use crate::output::Out;

/// What each authority's nickname in an NSS database starts with.
#[cfg(all(unix, not(target_os = "macos")))]
const NICK_PREFIX: &str = "git-ports local CA";

/// One place an authority can be trusted.
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    /// `nss`, `system`, `keychain` or `windows`.
    pub kind: &'static str,
    /// The database, file or store.
    pub path: String,
    /// Who reads it.
    pub readers: &'static str,
    /// Whether this authority (by fingerprint) is trusted there now.
    pub trusted: bool,
}

/// The nickname of the authority with `fingerprint` in an NSS database.
#[cfg(all(unix, not(target_os = "macos")))]
fn nickname(fingerprint: &str) -> String {
    format!(
        "{NICK_PREFIX} {}",
        &fingerprint[..fingerprint.len().min(11)]
    )
}

/// Whether a listed nickname (`[TOKEN:]nickname`) is `nick`.
#[cfg(all(unix, not(target_os = "macos")))]
fn same_nick(listed: &str, nick: &str) -> bool {
    listed == nick || {
        // The nickname has colons of its own (the fingerprint's): strip the token's name.
        listed
            .find(NICK_PREFIX)
            .is_some_and(|i| &listed[i..] == nick)
    }
}

#[cfg(unix)]
fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The NSS databases of this user's browsers: Chromium's (also when it is not there yet, as
/// `trust` makes it) and each Firefox profile's that exists.
#[cfg(all(unix, not(target_os = "macos")))]
fn nss_databases() -> Vec<(PathBuf, &'static str)> {
    let Some(home) = home() else {
        return Vec::new();
    };
    let mut dbs = vec![(
        home.join(".pki/nssdb"),
        "Chromium, Chrome and other NSS programs",
    )];
    let chromium_snap = home.join("snap/chromium/current/.pki/nssdb");
    if chromium_snap.join("cert9.db").exists() {
        dbs.push((chromium_snap, "Chromium (Snap)"));
    }
    for profiles in [
        home.join(".mozilla/firefox"),
        home.join("snap/firefox/common/.mozilla/firefox"),
    ] {
        let Ok(entries) = std::fs::read_dir(&profiles) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("cert9.db").exists())
            .collect();
        found.sort();
        dbs.extend(found.into_iter().map(|p| (p, "Firefox")));
    }
    dbs
}

/// `program` on PATH.
#[cfg(all(unix, not(target_os = "macos")))]
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(all(unix, not(target_os = "macos")))]
const CERTUTIL_MISSING: &str = "certutil (NSS's tool, which adds an authority to the databases Chromium and Firefox read) is not installed: install it with `sudo apt-get install libnss3-tools` (Debian, Ubuntu), `sudo dnf install nss-tools` (Fedora) or `sudo pacman -S nss` (Arch)";

/// Runs `cmd`; its stdout, or an error naming what failed with its stderr.
fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Usage(format!("cannot {what}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        return Err(Error::Usage(format!(
            "cannot {what}: {}",
            if err.is_empty() { "it failed" } else { err }
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(all(unix, not(target_os = "macos")))]
fn sql(db: &Path) -> String {
    format!("sql:{}", db.display())
}

/// The nicknames of git-ports' authorities in an NSS database, as listed (with the token's
/// name before them, `NSS Certificate DB:…`, which `certutil -D` needs).
#[cfg(all(unix, not(target_os = "macos")))]
fn ours_in(certutil: &Path, db: &Path) -> Vec<String> {
    let Ok(out) = Command::new(certutil)
        .args(["-L", "-d", &sql(db)])
        .stdin(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // `[TOKEN:]nickname    C,,` (the token is `NSS Certificate DB` for a database's own
        // certificates): the trust flags are the last column.
        .filter(|l| l.contains(NICK_PREFIX))
        .filter_map(|l| l.trim_end().rsplit_once(char::is_whitespace))
        .map(|(nick, _)| nick.trim_end().to_string())
        .collect()
}

#[cfg(all(unix, not(target_os = "macos")))]
const SYSTEM_DIR: &str = "/usr/local/share/ca-certificates";

#[cfg(all(unix, not(target_os = "macos")))]
fn system_file() -> PathBuf {
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let safe: String = user
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Path::new(SYSTEM_DIR).join(format!("git-ports-{safe}.crt"))
}

/// Where the authority with `fingerprint` is trusted now, of the places `trust` adds it to.
pub fn places(authority: Option<&Authority>) -> Vec<Place> {
    let mut places = Vec::new();
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let nick = authority.map(|a| nickname(&a.fingerprint));
        let certutil = on_path("certutil");
        for (db, readers) in nss_databases() {
            if !db.join("cert9.db").exists() {
                continue;
            }
            let trusted = match (&certutil, &nick) {
                (Some(c), Some(n)) => ours_in(c, &db).iter().any(|o| same_nick(o, n)),
                _ => false,
            };
            places.push(Place {
                kind: "nss",
                path: db.display().to_string(),
                readers,
                trusted,
            });
        }
        let file = system_file();
        if file.exists() {
            let trusted = authority.is_some_and(|a| {
                std::fs::read_to_string(&a.cert_path).ok() == std::fs::read_to_string(&file).ok()
            });
            places.push(Place {
                kind: "system",
                path: file.display().to_string(),
                readers: "programs that read the system's store (curl, Node with --use-system-ca, Python)",
                trusted,
            });
        }
    }
    #[cfg(target_os = "macos")]
    if let Some(a) = authority {
        let trusted = Command::new("security")
            .args(["find-certificate", "-c", &ca::common_name(), "-Z"])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout).contains(&a.fingerprint.replace(':', ""))
            });
        places.push(Place {
            kind: "keychain",
            path: "login keychain".into(),
            readers: "Safari, Chrome and every macOS program",
            trusted,
        });
    }
    #[cfg(windows)]
    if let Some(a) = authority {
        let trusted = Command::new("certutil")
            .args(["-user", "-store", "Root", &ca::common_name()])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .to_ascii_uppercase()
                    .replace(' ', "")
                    .contains(&a.fingerprint.replace(':', ""))
            });
        places.push(Place {
            kind: "windows",
            path: "the user's Root store".into(),
            readers: "Edge, Chrome and every Windows program",
            trusted,
        });
    }
    let _ = authority;
    places
}

/// Adds `a` where this user's browsers look; `system` also to the system's store. Says each
/// place on `out`.
pub fn add(out: &mut Out, a: &Authority, system: bool) -> Result<()> {
    let cert = a.cert_path.display().to_string();
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let certutil = on_path("certutil").ok_or_else(|| {
            Error::Usage(format!(
                "{CERTUTIL_MISSING}; then run `git ports proxy trust` again (the authority is ready at {cert})"
            ))
        })?;
        let nick = nickname(&a.fingerprint);
        for (db, readers) in nss_databases() {
            if !db.join("cert9.db").exists() {
                std::fs::create_dir_all(&db).map_err(|source| Error::Io {
                    path: db.clone(),
                    action: "cannot create",
                    source,
                })?;
                run(
                    Command::new(&certutil).args(["-N", "-d", &sql(&db), "--empty-password"]),
                    &format!("create the NSS database {}", db.display()),
                )?;
            }
            // An older authority of ours (before --renew) goes: one is trusted at a time.
            for old in ours_in(&certutil, &db)
                .into_iter()
                .filter(|n| !same_nick(n, &nick))
            {
                let _ = run(
                    Command::new(&certutil).args(["-D", "-d", &sql(&db), "-n", &old]),
                    "remove an older authority",
                );
            }
            // `C,,`: trusted to issue servers' certificates, nothing else.
            run(
                Command::new(&certutil).args([
                    "-A",
                    "-d",
                    &sql(&db),
                    "-t",
                    "C,,",
                    "-n",
                    &nick,
                    "-i",
                    &cert,
                ]),
                &format!("add the authority to {}", db.display()),
            )?;
            out.line(format!("✓ Trusted in {} ({readers})", db.display()));
        }
        if system {
            let file = system_file();
            if crate::machine::my_uid() != Some(0) {
                return Err(Error::Usage(format!(
                    "the system's store needs root: run `sudo cp {} {} && sudo update-ca-certificates` (Debian, Ubuntu; Fedora: /etc/pki/ca-trust/source/anchors and `update-ca-trust`)",
                    crate::output::shell_quote(&cert),
                    file.display()
                )));
            }
            std::fs::copy(&a.cert_path, &file).map_err(|source| Error::Io {
                path: file.clone(),
                action: "cannot write",
                source,
            })?;
            run(
                &mut Command::new("update-ca-certificates"),
                "update the system's store",
            )?;
            out.line(format!(
                "✓ Trusted in the system's store ({})",
                file.display()
            ));
        }
    }
    #[cfg(target_os = "macos")]
    {
        let _ = system;
        let keychain = home()
            .map(|h| h.join("Library/Keychains/login.keychain-db"))
            .unwrap_or_default();
        run(
            Command::new("security").args([
                "add-trusted-cert",
                "-r",
                "trustRoot",
                "-p",
                "ssl",
                "-k",
                &keychain.display().to_string(),
                &cert,
            ]),
            "add the authority to the login keychain",
        )?;
        out.line("✓ Trusted in the login keychain (Safari, Chrome, every macOS program)");
    }
    #[cfg(windows)]
    {
        let _ = system;
        run(
            Command::new("certutil").args(["-user", "-addstore", "Root", &cert]),
            "add the authority to the user's Root store",
        )?;
        out.line("✓ Trusted in the user's Root store (Edge, Chrome, every Windows program)");
    }
    Ok(())
}

/// Removes every authority of git-ports' from the places [`add`] puts them; says each.
pub fn remove(out: &mut Out) -> Result<()> {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let dbs: Vec<_> = nss_databases()
            .into_iter()
            .filter(|(db, _)| db.join("cert9.db").exists())
            .collect();
        if !dbs.is_empty() {
            let certutil = on_path("certutil").ok_or_else(|| {
                Error::Usage(format!(
                    "{CERTUTIL_MISSING}; then run `git ports proxy untrust` again"
                ))
            })?;
            for (db, readers) in dbs {
                for nick in ours_in(&certutil, &db) {
                    run(
                        Command::new(&certutil).args(["-D", "-d", &sql(&db), "-n", &nick]),
                        &format!("remove the authority from {}", db.display()),
                    )?;
                    out.line(format!("✓ Removed from {} ({readers})", db.display()));
                }
            }
        }
        let file = system_file();
        if file.exists() {
            if crate::machine::my_uid() != Some(0) {
                return Err(Error::Usage(format!(
                    "the system's store needs root: run `sudo rm {} && sudo update-ca-certificates --fresh`",
                    file.display()
                )));
            }
            std::fs::remove_file(&file).map_err(|source| Error::Io {
                path: file.clone(),
                action: "cannot remove",
                source,
            })?;
            run(
                Command::new("update-ca-certificates").arg("--fresh"),
                "update the system's store",
            )?;
            out.line(format!(
                "✓ Removed from the system's store ({})",
                file.display()
            ));
        }
    }
    #[cfg(target_os = "macos")]
    {
        // Every certificate of that name, the trust settings with it.
        while Command::new("security")
            .args(["delete-certificate", "-t", "-c", &ca::common_name()])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
        {
            out.line("✓ Removed from the login keychain");
        }
    }
    #[cfg(windows)]
    {
        if Command::new("certutil")
            .args(["-user", "-delstore", "Root", &ca::common_name()])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
        {
            out.line("✓ Removed from the user's Root store");
        }
    }
    Ok(())
}

/// `git ports proxy trust`: makes the local certificate authority if there is none (or a new
/// one, with `renew`), then trusts it where this user's browsers look.
pub fn trust(out: &mut Out, system: bool, renew: bool) -> Result<()> {
    let setup = Setup::read()?;
    let dir = setup.dir();
    let now = chrono::Utc::now();
    let authority = {
        let lock = setup
            .ledger
            .lock(setup.lock_timeout, std::time::Instant::now())?;
        match ca::load(&dir, now) {
            Ok(Some(a)) if !renew => a,
            Ok(_) => ca::create(&dir, now, &lock)?,
            Err(e) if !renew => return Err(e.error(&ca::Files::in_dir(&dir))),
            // A key of someone else's is not replaced behind their back.
            Err(ca::Unusable::NotPrivate(e)) => return Err(e),
            Err(_) => ca::create(&dir, now, &lock)?,
        }
    };
    out.line(format!(
        "✓ Certificate authority {} (SHA-256 {}), valid until {}, for local names only",
        crate::output::shell_quote(&authority.cert_path.display().to_string()),
        authority.fingerprint,
        authority.not_after.format("%Y-%m-%d")
    ));
    add(out, &authority, system)?;
    let running = setup.running()?;
    let port = running.as_ref().map_or(setup.port, |s| s.port);
    out.line(format!(
        "HTTPS is on for the proxy's names (https://NAME.localhost:{port}/; plain http:// keeps working); browsers that were open see it once restarted. `git config --global {KEY_HTTPS} true` makes the URL variables say https"
    ));
    Ok(())
}

/// `git ports proxy untrust`: removes every authority of git-ports' from where `trust` adds
/// them; with `delete`, also the authority's files (the proxy then serves plain HTTP only).
pub fn untrust(out: &mut Out, delete: bool) -> Result<()> {
    let setup = Setup::read()?;
    remove(out)?;
    if delete {
        let files = ca::Files::in_dir(&setup.dir());
        let _lock = setup
            .ledger
            .lock(setup.lock_timeout, std::time::Instant::now())?;
        // The certificate first: without it the key is no authority, and the next `trust`
        // replaces it.
        for path in [&files.cert, &files.key] {
            match std::fs::remove_file(path) {
                Ok(()) => out.line(format!("✓ Deleted {}", path.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Io {
                        path: path.clone(),
                        action: "cannot remove",
                        source,
                    });
                }
            }
        }
    } else {
        out.line("The authority itself is kept (`git ports proxy untrust --delete` deletes it; the proxy then serves plain HTTP only)");
    }
    Ok(())
}

/// HTTPS as `proxy status` shows it.
#[derive(Serialize)]
pub(super) struct Https {
    /// An authority is there (the proxy serves HTTPS with it).
    pub(super) on: bool,
    pub(super) ca: Option<String>,
    pub(super) fingerprint: Option<String>,
    pub(super) valid_until: Option<String>,
    /// Why the stored authority cannot be used.
    pub(super) problem: Option<String>,
    pub(super) trusted: Vec<Place>,
}

pub(super) fn https(setup: &Setup) -> Https {
    let dir = setup.dir();
    let loaded = ca::load(&dir, chrono::Utc::now());
    let authority = loaded.as_ref().ok().and_then(Option::as_ref);
    Https {
        on: authority.is_some(),
        ca: authority.map(|a| a.cert_path.display().to_string()),
        fingerprint: authority.map(|a| a.fingerprint.clone()),
        valid_until: authority.map(|a| a.not_after.to_rfc3339()),
        trusted: places(authority),
        problem: loaded
            .err()
            .map(|e| e.error(&ca::Files::in_dir(&dir)).to_string()),
    }
}

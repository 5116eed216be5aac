//! Files on disk: an exclusive lock on a sidecar file around every read-modify-write, waited
//! for within a bound, and writes through a temp file, fsync and rename, so a file on disk is
//! always the old version or the new one, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{LOCK_SUFFIX, REGISTRY_FILE};
use crate::error::{Error, Result};
use crate::fault::{self, Point, Step, Target};
use crate::registry::Registry;

/// The largest registry or ledger git-ports reads: far beyond any real one (a thousand
/// worktrees with six services each is under a megabyte), and small enough that a damaged or
/// hostile file cannot stall a command or fill memory.
pub const MAX_FILE: u64 = 16 << 20;

/// How long a wait for a lock goes on before git-ports says what it waits for.
const WAIT_NOTICE: Duration = Duration::from_secs(1);

/// An exclusive lock, held until dropped. The kernel releases it when the process dies, so a
/// killed writer never leaves a stale lock behind.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

/// Why a lock could not be had.
#[derive(Debug)]
pub enum LockError {
    Io(io::Error),
    /// Another process held it for the whole time allowed: who, where the system tells.
    Timeout {
        secs: u64,
        holder: Option<String>,
    },
}

/// The lock file of `path`: `<path>.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    sidecar(path, LOCK_SUFFIX)
}

/// Opens the lock file, refusing a symlink: following one could create or lock a file
/// anywhere.
fn open_lock(path: &Path) -> io::Result<File> {
    let refuse = || io::Error::new(io::ErrorKind::InvalidInput, "the lock file is a symlink");
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(refuse());
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    #[cfg(unix)]
    {
        // A link swapped in between the check and the open: the file opened is not the one
        // the name now gives.
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (file.metadata()?, fs::symlink_metadata(path)?);
        if b.file_type().is_symlink() || (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return Err(refuse());
        }
    }
    Ok(file)
}

/// Takes the exclusive lock on `<path>.lock`, waiting for another holder until `timeout`
/// seconds after `start`: one deadline for every lock a command takes, so two locks never
/// make it wait twice as long. After a second of waiting it says on stderr what it waits
/// for, and for whom.
pub fn lock(path: &Path, timeout: f64, start: Instant) -> Result<Lock, LockError> {
    let lock_file = lock_path(path);
    let file = open_lock(&lock_file).map_err(LockError::Io)?;
    let limit = Duration::from_secs_f64(timeout.max(0.0));
    let mut told = false;
    let mut pause = Duration::from_millis(5);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock(file)),
            Err(fs::TryLockError::Error(e)) => return Err(LockError::Io(e)),
            Err(fs::TryLockError::WouldBlock) => {}
        }
        let waited = start.elapsed();
        if waited >= limit {
            return Err(LockError::Timeout {
                secs: limit.as_secs_f64().ceil() as u64,
                holder: holder(&file),
            });
        }
        if !told && waited >= WAIT_NOTICE {
            told = true;
            let who = holder(&file)
                .map(|h| format!(" held by {h}"))
                .unwrap_or_default();
            crate::output::notice(&format!(
                "waiting for the lock {}{who} (giving up after {}s)",
                lock_file.display(),
                limit.as_secs_f64()
            ));
        }
        std::thread::sleep(pause.min(limit.saturating_sub(waited)));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Who holds the lock on `file` (`pid 123 (git-ports)`), where the system tells.
pub fn holder(file: &File) -> Option<String> {
    crate::machine::lock_holder(file)
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// It is there, but not a file git-ports will read: the reason.
    Refused(String),
    Io(io::Error),
}

/// Reads the file, or `None` if there is none. A symlink is refused (replacing it on write
/// would silently detach it from what it points to), and so is a file over [`MAX_FILE`].
pub fn read_text(path: &Path) -> Result<Option<String>, ReadError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(ReadError::Refused(
                "is a symlink; git-ports keeps only a regular file here".into(),
            ));
        }
        Ok(m) if !m.is_file() => {
            return Err(ReadError::Refused("is not a regular file".into()));
        }
        Ok(m) if m.len() > MAX_FILE => {
            return Err(ReadError::Refused(format!(
                "is {} bytes, more than the {MAX_FILE} git-ports reads",
                m.len()
            )));
        }
        Ok(_) => {}
    }
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(ReadError::Refused(format!(
            "is more than the {MAX_FILE} bytes git-ports reads"
        )));
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        ReadError::Refused(format!(
            "is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Replaces `path` with `text` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory. `target` names the crash points on the way (see [`fault`]). The
/// caller holds the lock, so any temp file of ours still lying around belongs to a writer
/// that died, and is removed. A new file gets the mode git gives its own files (0666 less the
/// umask); an existing file keeps its mode.
pub fn write_atomic(path: &Path, text: &str, lock: &Lock, target: Target) -> io::Result<()> {
    write_atomic_mode(path, text, lock, target, None)
}

/// [`write_atomic`] with the file's mode set (Unix; a key's `0o600`) from the moment it is
/// created, whatever the file had.
pub fn write_atomic_mode(
    path: &Path,
    text: &str,
    _lock: &Lock,
    target: Target,
    mode: Option<u32>,
) -> io::Result<()> {
    let step = |s: Step| fault::point(Point(target, s));
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    remove_leftovers(dir, &prefix);
    let existing = fs::metadata(path).ok();
    if existing
        .as_ref()
        .is_some_and(|m| m.permissions().readonly())
    {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "file is read-only",
        ));
    }
    step(Step::Create)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(mode.unwrap_or(0o666)));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        // Exactly this mode, whatever the umask.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))?;
    }
    if let Some(m) = existing.as_ref().filter(|_| mode.is_none()) {
        tmp.as_file().set_permissions(m.permissions())?;
    }
    step(Step::Write)?;
    tmp.write_all(text.as_bytes())?;
    step(Step::Sync)?;
    tmp.as_file().sync_all()?;
    step(Step::Rename)?;
    replace(tmp, path)?;
    // Past the rename the new file is in place: a failure here changes nothing.
    let _ = step(Step::Renamed);
    if let Ok(d) = File::open(dir) {
        // Makes the rename itself durable; not every filesystem allows it, and the data is
        // already safe without it.
        let _ = d.sync_all();
    }
    Ok(())
}

/// How long a replacement waits for another program to let go of the file (Windows only).
pub const REPLACE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Puts `tmp` in place of `path` by rename. Windows refuses to replace a file another program
/// holds open without sharing its deletion (an editor, a virus scanner, a backup tool), for as
/// long as it holds it: the rename is tried again for [`REPLACE_WAIT`], and a refusal past
/// that says what it waited for. The old file stays whole throughout.
pub fn replace(tmp: tempfile::NamedTempFile, path: &Path) -> io::Result<()> {
    #[cfg(windows)]
    {
        let start = std::time::Instant::now();
        let mut tmp = tmp;
        loop {
            match tmp.persist(path) {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.error.kind() == io::ErrorKind::PermissionDenied
                        && start.elapsed() < REPLACE_WAIT =>
                {
                    tmp = e.file;
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(e) if e.error.kind() == io::ErrorKind::PermissionDenied => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "another program holds it open, and did not let go within {}s ({})",
                            REPLACE_WAIT.as_secs(),
                            e.error
                        ),
                    ));
                }
                Err(e) => return Err(e.error),
            }
        }
    }
    #[cfg(not(windows))]
    {
        tmp.persist(path).map(drop).map_err(|e| e.error)
    }
}

/// Removes the temp files `prefix*.tmp` in `dir`: left by a writer that died, since the
/// caller holds the lock every writer of them takes.
pub fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let n = entry.file_name();
        let n = n.to_string_lossy();
        if n.starts_with(prefix) && n.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The registry of one repository: `<common dir>/worktree-ports.json`.
#[derive(Debug, Clone)]
pub struct Store {
    pub path: PathBuf,
}

impl Store {
    pub fn new(common_dir: &Path) -> Self {
        Store {
            path: common_dir.join(REGISTRY_FILE),
        }
    }

    /// Reads the registry without locking: renames are atomic, so a reader sees a whole file.
    /// A missing file is an empty registry.
    pub fn load(&self) -> Result<Registry> {
        let corrupt = |reason| Error::RegistryCorrupt {
            path: self.path.clone(),
            reason,
        };
        match read_text(&self.path) {
            Ok(None) => Ok(Registry::default()),
            Ok(Some(t)) => Registry::parse(&t).map_err(corrupt),
            Err(ReadError::Refused(reason)) => Err(corrupt(reason)),
            Err(ReadError::Io(source)) => Err(Error::RegistryIo {
                path: self.path.clone(),
                action: "cannot read",
                source,
            }),
        }
    }

    pub fn lock(&self, timeout: f64, start: Instant) -> Result<Lock> {
        lock(&self.path, timeout, start).map_err(|e| match e {
            LockError::Io(source) => Error::RegistryIo {
                path: lock_path(&self.path),
                action: "cannot lock",
                source,
            },
            LockError::Timeout { secs, holder } => Error::LockTimeout {
                what: "registry",
                path: self.path.clone(),
                secs,
                holder,
            },
        })
    }

    /// Writes text already made from a registry (see [`Registry::to_json`]).
    pub fn save(&self, text: &str, guard: &Lock) -> Result<()> {
        write_atomic(&self.path, text, guard, Target::Registry).map_err(|source| {
            Error::RegistryIo {
                path: self.path.clone(),
                action: "cannot write",
                source,
            }
        })
    }
}

//! Loading and saving the registry: an exclusive lock on a sidecar file around every
//! read-modify-write, and writes through a temp file, fsync and rename, so the file on disk is
//! always the old version or the new one, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::{LOCK_SUFFIX, REGISTRY_FILE};
use crate::error::{Error, Result};
use crate::registry::Registry;

/// An exclusive lock, held until dropped. The kernel releases it when the process dies, so a
/// killed writer never leaves a stale lock behind.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

/// Takes the exclusive lock on `<path>.lock`, waiting for other writers.
pub fn lock(path: &Path) -> io::Result<Lock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(sidecar(path, LOCK_SUFFIX))?;
    file.lock()?;
    Ok(Lock(file))
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

/// Reads the file, or `None` if there is none. A symlink is refused: replacing it on write
/// would silently detach it from what it points to.
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
        Ok(_) => {}
    }
    let bytes = fs::read(path).map_err(ReadError::Io)?;
    String::from_utf8(bytes).map(Some).map_err(|e| {
        ReadError::Refused(format!(
            "is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Replaces `path` with `text` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory. The caller holds the lock, so any temp file of ours still lying
/// around belongs to a writer that died, and is removed.
pub fn write_atomic(path: &Path, text: &str, _lock: &Lock) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    remove_leftovers(dir, &prefix);
    if fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "file is read-only",
        ));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o644);
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode & 0o777))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = File::open(dir) {
        // Makes the rename itself durable; not every filesystem allows it, and the data is
        // already safe without it.
        let _ = d.sync_all();
    }
    Ok(())
}

fn remove_leftovers(dir: &Path, prefix: &str) {
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

    /// Locks, loads, lets `f` change the registry and writes it back if it changed. When `f`
    /// fails nothing is written.
    pub fn update<T>(&self, f: impl FnOnce(&mut Registry) -> Result<T>) -> Result<T> {
        let guard = self.lock()?;
        let mut registry = self.load()?;
        let before = registry.clone();
        let out = f(&mut registry)?;
        if registry != before {
            self.save(&registry, &guard)?;
        }
        Ok(out)
    }

    pub fn lock(&self) -> Result<Lock> {
        lock(&self.path).map_err(|source| Error::RegistryIo {
            path: self.path.clone(),
            action: "cannot lock",
            source,
        })
    }

    pub fn save(&self, registry: &Registry, guard: &Lock) -> Result<()> {
        write_atomic(&self.path, &registry.to_json(), guard).map_err(|source| Error::RegistryIo {
            path: self.path.clone(),
            action: "cannot write",
            source,
        })
    }
}

//! The user's own files that git-ports writes into (env files and hooks): the one reader and
//! writer for them, stricter than the one for git-ports' own registry.
//!
//! - Only a regular file is read, within [`MAX_FILE`]; a pipe, socket, device or directory
//!   is refused without being opened, so a secret manager's pipe is never drained or stalls.
//! - The file's directory is resolved first; with a boundary (the worktree, for env files), a
//!   directory that resolves outside it is refused.
//! - A symlink is written through to its target, and kept: when the target exists, is a
//!   regular file and (with a boundary) lies inside the boundary. A dangling link, or one
//!   that leaves the boundary, is refused; a link is never replaced by a copy.
//! - A new version goes to a temporary file, is synced and renamed over the old, keeping
//!   mode and owner; a read-only file, or one with other hard links (a rename would detach
//!   them), is refused. The temporary file is made in the staging directory when one is
//!   given on the same file system (a worktree's git dir), so a crash never leaves a copy of
//!   the file, secrets and all, in the worktree; leftovers of a writer that died are removed
//!   by the next write, which runs under the same lock.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::fault::{self, Point, Step, Target};
use crate::store::{MAX_FILE, remove_leftovers};

/// Why a file of the user's is not read or written: one line, without the file's name.
#[derive(Debug)]
pub enum Failure {
    Refused(String),
    Io(io::Error),
}

impl Failure {
    /// The error that says it of the file at `path`: refused (exit 5, one line), or an I/O
    /// error while writing.
    pub fn at(self, path: &Path) -> crate::error::Error {
        match self {
            Failure::Refused(reason) => crate::error::Error::UserFile {
                path: path.to_path_buf(),
                reason,
            },
            Failure::Io(source) => crate::error::Error::Unwritable {
                path: path.to_path_buf(),
                action: "cannot write",
                source,
            },
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    /// The owner (uid, gid), kept through a replacement.
    #[cfg(unix)]
    owner: Option<(u32, u32)>,
    nlink: u64,
}

/// A file of the user's, read.
#[derive(Debug)]
pub struct UserFile {
    /// The name as given.
    pub path: PathBuf,
    /// The file itself: `path` with its directory and a symlink resolved.
    pub real: PathBuf,
    /// Its bytes; `None` when there is no file yet.
    pub bytes: Option<Vec<u8>>,
    meta: Option<Meta>,
}

/// What kind of thing a path is, for the line that refuses it.
fn kind(t: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "named pipe";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "device";
        }
    }
    if t.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

fn inside(path: &Path, root: Option<&Path>) -> bool {
    root.is_none_or(|r| path.starts_with(r))
}

/// Reads the file at `path`, or finds there is none. With `within` (canonical), the file's
/// directory and a symlink's target must lie inside it.
pub fn open(path: &Path, within: Option<&Path>) -> Result<UserFile, Failure> {
    let name = path
        .file_name()
        .ok_or_else(|| Failure::Refused("names no file".into()))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = match fs::canonicalize(&parent) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Failure::Refused(format!(
                "is in a directory that does not exist ({})",
                parent.display()
            )));
        }
        Err(e) => return Err(Failure::Io(e)),
    };
    if !inside(&dir, within) {
        return Err(Failure::Refused(format!(
            "is outside the worktree: its directory resolves to {}",
            dir.display()
        )));
    }
    let mut real = dir.join(name);
    let mut meta = match fs::symlink_metadata(&real) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(UserFile {
                path: path.to_path_buf(),
                real,
                bytes: None,
                meta: None,
            });
        }
        Err(e) => return Err(Failure::Io(e)),
    };
    if meta.file_type().is_symlink() {
        let to = fs::read_link(&real).unwrap_or_default();
        let target = match fs::canonicalize(&real) {
            Ok(t) => t,
            Err(_) => {
                return Err(Failure::Refused(format!(
                    "is a symlink to {}, which does not exist; git-ports writes through a link only to an existing file",
                    to.display()
                )));
            }
        };
        if !inside(&target, within) {
            return Err(Failure::Refused(format!(
                "is a symlink to {}, outside the worktree; git-ports never writes through a link that leaves it",
                target.display()
            )));
        }
        real = target;
        meta = fs::symlink_metadata(&real)?;
    }
    if !meta.is_file() {
        return Err(Failure::Refused(format!(
            "is a {}, not a regular file; git-ports reads and writes only regular files",
            kind(meta.file_type())
        )));
    }
    if meta.len() > MAX_FILE {
        return Err(Failure::Refused(format!(
            "is {} bytes, more than the {MAX_FILE} git-ports reads",
            meta.len()
        )));
    }
    let bytes = read_regular(&real, &meta)?;
    Ok(UserFile {
        path: path.to_path_buf(),
        real,
        bytes: Some(bytes),
        meta: Some(meta_of(&meta)),
    })
}

#[cfg(unix)]
fn meta_of(m: &fs::Metadata) -> Meta {
    use std::os::unix::fs::MetadataExt;
    Meta {
        mode: m.mode() & 0o7777,
        owner: Some((m.uid(), m.gid())),
        nlink: m.nlink(),
    }
}

#[cfg(not(unix))]
fn meta_of(m: &fs::Metadata) -> Meta {
    Meta {
        mode: if m.permissions().readonly() {
            0o444
        } else {
            0o644
        },
        nlink: 1,
    }
}

/// Reads a file already seen to be regular, opened so that a pipe or a link swapped in since
/// can neither block nor be followed.
fn read_regular(path: &Path, seen: &fs::Metadata) -> Result<Vec<u8>, Failure> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    let file = options.open(path)?;
    let now = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if !now.is_file() || (now.dev(), now.ino()) != (seen.dev(), seen.ino()) {
            return Err(Failure::Refused(
                "changed while it was read; try again".into(),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (now, seen);
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(Failure::Refused(format!(
            "is more than the {MAX_FILE} bytes git-ports reads"
        )));
    }
    Ok(bytes)
}

/// The prefix of the temp files written beside `real`, and of those in a staging directory.
fn beside_prefix(real: &Path) -> String {
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.git-ports-")
}
const STAGE_PREFIX: &str = "git-ports-stage-";
const TMP_SUFFIX: &str = ".tmp";

fn same_device(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        matches!((fs::metadata(a), fs::metadata(b)), (Ok(x), Ok(y)) if x.dev() == y.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Temp files of git-ports left beside `path` (by a version that wrote them there): what a
/// worktree must never keep.
pub fn leftovers_beside(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), prefix) = (path.parent(), beside_prefix(path)) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            (n.starts_with(&prefix) || n.starts_with(".git-ports.")) && n.ends_with(TMP_SUFFIX)
        })
        .map(|e| e.path())
        .collect()
}

impl UserFile {
    /// Whether the file exists.
    pub fn exists(&self) -> bool {
        self.bytes.is_some()
    }

    /// The file's bytes, empty when there is none.
    pub fn text(&self) -> &[u8] {
        self.bytes.as_deref().unwrap_or_default()
    }

    /// Why the file may not be replaced, if it may not.
    pub fn refusal(&self) -> Option<String> {
        let m = self.meta?;
        if m.mode & 0o222 == 0 {
            return Some(
                "is read-only; git-ports does not write a file made read-only (chmod u+w lets it keep its block)"
                    .into(),
            );
        }
        if m.nlink > 1 {
            return Some(format!(
                "has {} hard links; replacing it would detach the other name(s) from it",
                m.nlink
            ));
        }
        None
    }

    /// Replaces the file with `bytes`, or creates it, with `mode` for a new file (the umask
    /// applies). The caller holds the lock that serializes writers of this file.
    pub fn replace(
        &self,
        bytes: &[u8],
        mode: u32,
        staging: Option<&Path>,
        target: Target,
    ) -> Result<(), Failure> {
        if let Some(why) = self.refusal() {
            return Err(Failure::Refused(why));
        }
        let step = |s: Step| fault::point(Point(target, s));
        let dir = self.real.parent().unwrap_or(Path::new("."));
        let (stage, prefix) = match staging.filter(|s| same_device(s, dir)) {
            Some(s) => (s, STAGE_PREFIX.to_string()),
            None => (dir, beside_prefix(&self.real)),
        };
        remove_leftovers(stage, &prefix);
        step(Step::Create)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(TMP_SUFFIX);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(mode));
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut tmp = builder.tempfile_in(stage)?;
        #[cfg(unix)]
        if let Some(m) = self.meta {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let mine = tmp.as_file().metadata()?;
            if let Some((uid, gid)) = m.owner
                && (mine.uid(), mine.gid()) != (uid, gid)
                && std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid)).is_err()
            {
                return Err(Failure::Refused(format!(
                    "belongs to uid {uid}; git-ports cannot give a new version the same owner"
                )));
            }
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(m.mode))?;
        }
        step(Step::Write)?;
        tmp.write_all(bytes)?;
        step(Step::Sync)?;
        tmp.as_file().sync_all()?;
        step(Step::Rename)?;
        crate::store::replace(tmp, &self.real)?;
        // Past the rename the new file is in place: a failure here changes nothing.
        let _ = step(Step::Renamed);
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Removes the file (a hook that held nothing but git-ports' block).
    pub fn remove(&self) -> io::Result<()> {
        fs::remove_file(&self.real)
    }
}

#[cfg(test)]
impl UserFile {
    /// A file that exists with `bytes`, for unit tests of what is made of its text.
    pub fn for_test(bytes: &[u8]) -> UserFile {
        UserFile {
            path: PathBuf::from("test"),
            real: PathBuf::from("test"),
            bytes: Some(bytes.to_vec()),
            meta: None,
        }
    }
}

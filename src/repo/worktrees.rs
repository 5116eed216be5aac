//! The worktrees, read from their admin files directly: HEAD, branch, path, whether gone.

use super::*;

/// What a worktree has checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// A branch, born or unborn: `feature/auth`.
    Branch(String),
    /// A detached HEAD at this commit.
    Detached(String),
    /// HEAD could not be read.
    Unknown,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Head::Branch(b) => f.write_str(b),
            Head::Detached(_) => f.write_str("(detached)"),
            Head::Unknown => f.write_str("(unknown)"),
        }
    }
}

/// Reads a HEAD file; `Unknown` if it cannot be read.
pub fn read_head(path: &Path) -> Head {
    read_trimmed(path).map_or(Head::Unknown, |t| Head::parse(&t))
}

/// The branch git's reftable backend writes into every HEAD file, so that older tools fail
/// instead of reading a wrong branch: the real HEAD lives in the reftable.
const REFTABLE_STUB: &str = "refs/heads/.invalid";

impl Head {
    pub fn parse(text: &str) -> Head {
        let t = text.trim();
        if let Some(r) = t.strip_prefix("ref:") {
            let r = r.trim();
            if r == REFTABLE_STUB {
                return Head::Unknown;
            }
            Head::Branch(r.strip_prefix("refs/heads/").unwrap_or(r).to_string())
        } else if !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit()) {
            Head::Detached(t.to_string())
        } else {
            Head::Unknown
        }
    }

    pub fn branch(&self) -> Option<&str> {
        match self {
            Head::Branch(b) => Some(b),
            _ => None,
        }
    }
}

/// Why a worktree the registry names is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gone {
    /// git no longer has it (`git worktree remove`, or `git worktree prune`).
    Removed,
    /// Its directory is gone, and it is not locked.
    Missing,
}

impl Gone {
    /// How a report says it.
    pub fn describe(self) -> &'static str {
        match self {
            Gone::Removed => "removed from git",
            Gone::Missing => "directory missing",
        }
    }
}

/// A worktree of the repository, as git's files describe it now.
#[derive(Debug, Clone)]
pub struct Worktree {
    /// The registry key: git's admin name (see [`key_of`]), or [`MAIN_KEY`] for the main
    /// worktree.
    pub key: String,
    /// What people call it: the admin name, or the main worktree's directory name; bytes that
    /// are not UTF-8 are shown as git shows them (`\377`).
    pub name: String,
    pub path: PathBuf,
    pub head: Head,
    pub is_main: bool,
    /// Locked with `git worktree lock`; asked only of a worktree whose directory is gone,
    /// the one case where it matters (a locked worktree keeps its ports).
    pub locked: bool,
    /// Its directory is gone: `git worktree prune` would remove it.
    pub prunable: bool,
}

/// Reads a small admin file (HEAD, gitdir) in as few system calls as it can: open, one read,
/// close. A short read of a regular file means its end; longer files fall back to reading on.
pub(super) fn read_bytes(path: &Path) -> Option<Vec<u8>> {
    read_file(fs::File::open(path).ok()?)
}

fn read_file(mut file: fs::File) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; 512];
    let n = file.read(&mut buf).ok()?;
    buf.truncate(n);
    if n == 512 {
        file.read_to_end(&mut buf).ok()?;
    }
    while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        buf.pop();
    }
    Some(buf)
}

/// A small admin file as text; bytes that are not UTF-8 (a branch named so) are shown as git
/// shows them.
pub(super) fn read_trimmed(path: &Path) -> Option<String> {
    Some(crate::bytes::show_bytes(&read_bytes(path)?))
}

/// Drops a trailing slash and `.` components, and folds `a/b/../c` lexically where `b` is a
/// real directory, as git's worktree paths for submodules need
/// (`…/.git/modules/sub/../../../sub`).
pub(super) fn strip_slash(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir
                if out.file_name().is_some()
                    && fs::symlink_metadata(&out).is_ok_and(|m| !m.file_type().is_symlink()) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

impl Repo {
    pub(super) fn heads_from_git(&self) -> &HashMap<PathBuf, Head> {
        self.reftable_heads
            .get_or_init(|| heads_from_git(&self.common_dir))
    }

    /// The worktree's HEAD: its file, or in a reftable repository what git says.
    pub(super) fn head_of(&self, w: &Worktree) -> Head {
        if !self.reftable {
            return w.head.clone();
        }
        let heads = self.heads_from_git();
        heads
            .get(&w.path)
            .or_else(|| {
                let real = fs::canonicalize(&w.path).ok()?;
                heads
                    .iter()
                    .find(|(p, _)| fs::canonicalize(p).ok() == Some(real.clone()))
                    .map(|x| x.1)
            })
            .cloned()
            .unwrap_or(Head::Unknown)
    }

    /// The branch checked out in `w`, asking git in a reftable repository.
    pub fn branch_of(&self, w: &Worktree) -> Option<String> {
        if !self.reftable || self.reftable_heads.get().is_some() || !w.path.is_dir() {
            return self.head_of(w).branch().map(str::to_string);
        }
        // One worktree's branch: ask it alone, not for the listing of all of them.
        let mut cmd = git_command(Some(&w.path));
        cmd.args(["symbolic-ref", "-q", "HEAD"]);
        let out = run_git(&mut cmd).ok().filter(|o| o.status.success())?;
        let r = crate::bytes::show_bytes(out.stdout.trim_ascii_end());
        Some(r.strip_prefix("refs/heads/").unwrap_or(&r).to_string())
    }

    pub(super) fn with_head(&self, mut w: Worktree) -> Worktree {
        if self.reftable {
            w.head = self.head_of(&w);
        }
        w
    }

    pub(super) fn listing(&self) -> &Listing {
        self.all.get_or_init(|| {
            let mut linked: Vec<Worktree> =
                linked_worktrees(&self.common_dir, &self.linked_names())
                    .into_iter()
                    .map(|w| self.with_head(w))
                    .collect();
            linked.sort_by(|a, b| a.path.cmp(&b.path));
            let main = self.main.iter().map(|m| self.with_head(m.clone()));
            let worktrees: Vec<Worktree> = main.chain(linked).collect();
            let by_key = worktrees
                .iter()
                .enumerate()
                .map(|(i, w)| (w.key.clone(), i))
                .collect();
            Listing { worktrees, by_key }
        })
    }

    /// Every worktree: main first, then linked ones by path, as `git worktree list` orders them.
    pub fn worktrees(&self) -> &[Worktree] {
        &self.listing().worktrees
    }

    /// The worktree the command runs in, or an error asking for `--worktree`. Its HEAD is
    /// the file's (in a reftable repository, [`Repo::worktrees`] has the real one): no
    /// command that works on the current worktree shows its branch.
    pub fn current(&self) -> Result<Worktree> {
        self.current.clone().ok_or(Error::NeedWorktree)
    }

    /// The main worktree, unless the repository is bare.
    pub fn main(&self) -> Option<&Worktree> {
        self.main.as_ref()
    }

    pub fn by_key(&self, key: &str) -> Option<&Worktree> {
        let listing = self.listing();
        listing.by_key.get(key).map(|&i| &listing.worktrees[i])
    }

    /// Whether the worktree of a registry key is gone, read from the disk now: removed when
    /// git no longer has it, missing when its directory is gone and it is not locked.
    pub fn gone(&self, key: &str) -> Option<Gone> {
        if key == MAIN_KEY {
            return self.bare.then_some(Gone::Removed);
        }
        let Some(name) = crate::registry::name_of_key(key) else {
            return Some(Gone::Removed);
        };
        let admin = self.common_dir.join("worktrees").join(&name);
        match fs::symlink_metadata(&admin) {
            Ok(m) if m.is_dir() => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Gone::Removed),
            // Cannot tell: a worktree is never taken for gone on a guess.
            _ => return None,
        }
        let w = linked_worktree(&self.common_dir, &name);
        (w.prunable && !w.locked).then_some(Gone::Missing)
    }

    /// The display name of a registry key, live or not: a linked worktree's name is its key;
    /// the main worktree's is its directory's name.
    pub fn display_name(&self, key: &str) -> String {
        match &self.main {
            Some(m) if key == MAIN_KEY => m.name.clone(),
            _ => crate::registry::display_key_of(&self.common_dir, key),
        }
    }

    /// The folders of <common dir>/worktrees/: the linked worktrees' admin names, as git
    /// lists them, whatever bytes they hold. libgit2's `Repository::worktrees` would stat
    /// three files in each first: at a thousand worktrees that alone costs more than reading
    /// what status needs.
    pub(super) fn linked_names(&self) -> Vec<OsString> {
        fs::read_dir(self.common_dir.join("worktrees"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
            .collect()
    }
}

/// Every worktree's HEAD as git reports it (`git worktree list`), by path: what a reftable
/// repository's stub HEAD files do not say.
pub fn heads_from_git(common_dir: &Path) -> HashMap<PathBuf, Head> {
    let mut cmd = git_command(Some(common_dir));
    cmd.arg("--git-dir")
        .arg(common_dir)
        .args(["worktree", "list", "--porcelain", "-z"]);
    let mut heads = HashMap::new();
    let Ok(out) = run_git(&mut cmd) else {
        return heads;
    };
    let mut path: Option<PathBuf> = None;
    for field in out.stdout.split(|&b| b == 0) {
        if let Some(p) = field.strip_prefix(b"worktree ") {
            path = Some(strip_slash(&path_from_bytes(p)));
        } else if let (Some(p), Some(b)) = (&path, field.strip_prefix(b"branch ")) {
            let b = crate::bytes::show_bytes(b);
            let b = b.strip_prefix("refs/heads/").unwrap_or(&b).to_string();
            heads.insert(p.clone(), Head::Branch(b));
        } else if let (Some(p), Some(h)) = (&path, field.strip_prefix(b"HEAD ")) {
            heads
                .entry(p.clone())
                .or_insert_with(|| Head::Detached(String::from_utf8_lossy(h).into()));
        }
    }
    heads
}

/// Whether a HEAD file is the reftable backend's stub.
pub fn is_stub_head(path: &Path) -> bool {
    read_trimmed(path).is_some_and(|t| t.trim() == format!("ref: {REFTABLE_STUB}"))
}

/// A linked worktree of the repository at `common_dir`, read from its admin files now: its
/// live path (after `git worktree move` too), HEAD and state. `None` for a key that names no
/// admin dir.
pub fn linked_at(common_dir: &Path, key: &str) -> Option<Worktree> {
    let name = crate::registry::name_of_key(key)?;
    common_dir
        .join("worktrees")
        .join(&name)
        .is_dir()
        .then(|| linked_worktree(common_dir, &name))
}

/// What people call a directory: its last component, shown as git shows odd bytes.
pub fn basename(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| crate::registry::display_key(&key_of(n)),
    )
}

/// Every linked worktree's entry, read on as many threads as there are cores once there are
/// enough of them to pay for the threads: each entry is three system calls on files of its
/// own (gitdir, the worktree's `.git`, HEAD), which the kernel serves side by side.
fn linked_worktrees(common_dir: &Path, names: &[OsString]) -> Vec<Worktree> {
    const PER_THREAD: usize = 64;
    // Asking for the cores reads the cgroup's files: only where threads could be used.
    let threads = match names.len() / PER_THREAD {
        0 | 1 => 1,
        most => std::thread::available_parallelism().map_or(1, |n| n.get().min(most).min(8)),
    };
    // Opening the directory costs two calls, which a few worktrees do not pay back.
    let dirs = match names.len() {
        0..=2 => AdminDirs::by_path(common_dir),
        _ => AdminDirs::open(common_dir),
    };
    let dirs = &dirs;
    if threads < 2 {
        return names.iter().map(|n| linked_worktree_in(dirs, n)).collect();
    }
    let chunk = names.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|n| linked_worktree_in(dirs, n))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(part) => part,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The directory of the linked worktrees' admin directories (`<common dir>/worktrees`), from
/// which a listing reads two small files per worktree. On Unix it is opened once and the files
/// are opened relative to it (`openat`): the kernel then walks two path components per file
/// instead of the whole absolute path, which at a thousand worktrees is most of an open's cost.
pub(super) struct AdminDirs {
    path: PathBuf,
    #[cfg(unix)]
    dir: Option<std::os::fd::OwnedFd>,
}

impl AdminDirs {
    /// Files read by their whole paths: for one worktree, where opening the directory first
    /// would cost a system call more.
    fn by_path(common_dir: &Path) -> AdminDirs {
        AdminDirs {
            path: common_dir.join("worktrees"),
            #[cfg(unix)]
            dir: None,
        }
    }

    fn open(common_dir: &Path) -> AdminDirs {
        #[cfg(unix)]
        {
            use rustix::fs::{Mode, OFlags};
            let mut dirs = AdminDirs::by_path(common_dir);
            dirs.dir = rustix::fs::open(
                &dirs.path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok();
            dirs
        }
        #[cfg(not(unix))]
        AdminDirs::by_path(common_dir)
    }

    /// A small file of worktree `name`'s admin directory, as [`read_bytes`] reads it.
    fn read(&self, name: &OsStr, file: &str) -> Option<Vec<u8>> {
        #[cfg(unix)]
        if let Some(dir) = &self.dir {
            use rustix::fs::{Mode, OFlags};
            let rel = Path::new(name).join(file);
            let fd = rustix::fs::openat(dir, &rel, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty());
            return read_file(fs::File::from(fd.ok()?));
        }
        read_bytes(&self.path.join(name).join(file))
    }
}

pub(super) fn linked_worktree(common_dir: &Path, name: &OsStr) -> Worktree {
    linked_worktree_in(&AdminDirs::by_path(common_dir), name)
}

fn linked_worktree_in(dirs: &AdminDirs, name: &OsStr) -> Worktree {
    let admin = dirs.path.join(name);
    let gitfile = dirs
        .read(name, "gitdir")
        .map(|g| admin.join(path_from_bytes(&g)));
    let path = gitfile
        .as_deref()
        .and_then(Path::parent)
        .map_or_else(|| admin.clone(), strip_slash);
    let prunable = gitfile.as_deref().is_none_or(
        |g| matches!(fs::symlink_metadata(g), Err(e) if e.kind() == std::io::ErrorKind::NotFound),
    );
    let head = dirs.read(name, "HEAD").map_or(Head::Unknown, |t| {
        Head::parse(&crate::bytes::show_bytes(&t))
    });
    let key = key_of(name);
    Worktree {
        name: crate::registry::display_key(&key),
        key,
        path,
        head,
        is_main: false,
        // Only a worktree whose directory is gone needs the lock asked about: one stat fewer
        // per worktree in every listing.
        locked: prunable && fs::symlink_metadata(admin.join("locked")).is_ok(),
        prunable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_forms() {
        assert_eq!(
            Head::parse("ref: refs/heads/feature/auth\n"),
            Head::Branch("feature/auth".into())
        );
        assert_eq!(Head::parse("0123abcd").to_string(), "(detached)");
        assert_eq!(Head::parse("garbage!"), Head::Unknown);
        assert_eq!(Head::parse("ref: refs/heads/.invalid"), Head::Unknown);
    }
}

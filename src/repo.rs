//! Everything git: opening the repository as git would, its common dir, and the worktrees,
//! read from their admin files directly (opening a libgit2 repository per worktree is slow).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::registry::MAIN_KEY;

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

impl Head {
    pub fn parse(text: &str) -> Head {
        let t = text.trim();
        if let Some(r) = t.strip_prefix("ref:") {
            let r = r.trim();
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

#[derive(Debug, Clone)]
pub struct Worktree {
    /// The registry key: git's admin name, or [`MAIN_KEY`] for the main worktree.
    pub key: String,
    /// What people call it: the admin name, or the main worktree's directory name.
    pub name: String,
    pub path: PathBuf,
    pub head: Head,
    pub is_main: bool,
    pub locked: bool,
    /// Its directory is gone: `git worktree prune` would remove it.
    pub prunable: bool,
}

pub struct Repo {
    pub git: git2::Repository,
    pub common_dir: PathBuf,
    /// The common repository is bare: there is no main worktree.
    pub bare: bool,
    pub settings: Settings,
    /// The configuration as it was read at open, for keys that are not settings of ours.
    pub config: git2::Config,
    /// The main worktree, unless the repository is bare.
    main: Option<Worktree>,
    /// The worktree the command runs in.
    current: Option<Worktree>,
    /// Every worktree, read on first use: commands that work on the current worktree alone
    /// never read the admin files of the others.
    all: OnceCell<Listing>,
}

struct Listing {
    /// Main first, then linked worktrees by path, as `git worktree list` orders them.
    worktrees: Vec<Worktree>,
    /// Registry key → index into `worktrees`.
    by_key: HashMap<String, usize>,
}

/// Reads a small admin file (HEAD, gitdir) in as few system calls as it can: open, one read,
/// close. A short read of a regular file means its end; longer files fall back to reading on.
fn read_trimmed(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut file = fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 512];
    let n = file.read(&mut buf).ok()?;
    buf.truncate(n);
    if n == 512 {
        file.read_to_end(&mut buf).ok()?;
    }
    let s = String::from_utf8(buf).ok()?;
    Some(s.trim_end_matches(['\n', '\r']).to_string())
}

fn strip_slash(p: &Path) -> PathBuf {
    p.components().collect()
}

impl Repo {
    /// Opens the repository the way git does for this process: GIT_DIR, GIT_WORK_TREE and the
    /// current directory, so hooks and `git --git-dir=… ports` find the right one.
    pub fn open() -> Result<Repo> {
        let git = git2::Repository::open_from_env().map_err(|e| {
            // "Not found" is the whole story; anything else (a broken .git) is worth showing.
            Error::NotARepo((e.code() != git2::ErrorCode::NotFound).then_some(e))
        })?;
        let config = git.config()?.snapshot()?;
        let settings = Settings::from_git(&config)?;
        let common_dir = strip_slash(git.commondir());
        let bare = git.is_bare() || config.get_bool("core.bare").unwrap_or(false);

        let main = (!bare).then(|| {
            let path = if git.is_worktree() {
                main_path(&common_dir, &config)
            } else {
                git.workdir()
                    .map(strip_slash)
                    .unwrap_or_else(|| main_path(&common_dir, &config))
            };
            Worktree {
                key: MAIN_KEY.to_string(),
                name: basename(&path),
                prunable: false,
                locked: false,
                is_main: true,
                head: read_head(&common_dir.join("HEAD")),
                path,
            }
        });
        let current = if git.is_worktree() {
            let admin = git
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            admin.map(|name| linked_worktree(&common_dir, &name))
        } else if git.is_bare() {
            None
        } else {
            main.clone()
        };
        Ok(Repo {
            git,
            common_dir,
            bare,
            settings,
            config,
            main,
            current,
            all: OnceCell::new(),
        })
    }

    fn listing(&self) -> &Listing {
        self.all.get_or_init(|| {
            let mut linked: Vec<Worktree> = self
                .linked_names()
                .iter()
                .map(|name| linked_worktree(&self.common_dir, name))
                .collect();
            linked.sort_by(|a, b| a.path.cmp(&b.path));
            let worktrees: Vec<Worktree> = self.main.iter().cloned().chain(linked).collect();
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

    /// The worktree the command runs in, or an error asking for `--worktree`.
    pub fn current(&self) -> Result<&Worktree> {
        self.current.as_ref().ok_or(Error::NeedWorktree)
    }

    pub fn by_key(&self, key: &str) -> Option<&Worktree> {
        let listing = self.listing();
        listing.by_key.get(key).map(|&i| &listing.worktrees[i])
    }

    /// Whether the worktree of a registry key is gone, read from the disk now: `removed` when
    /// git no longer has it, `missing` when its directory is gone and it is not locked.
    pub fn gone(&self, key: &str) -> Option<&'static str> {
        if key == MAIN_KEY {
            return self.bare.then_some("removed");
        }
        let w = linked_worktree(&self.common_dir, key);
        if !self.common_dir.join("worktrees").join(key).is_dir() {
            Some("removed")
        } else if w.prunable && !w.locked {
            Some("missing")
        } else {
            None
        }
    }

    /// The display name of a registry key, live or not: a linked worktree's name is its key;
    /// the main worktree's is its directory's name.
    pub fn display_name(&self, key: &str) -> String {
        match &self.main {
            Some(m) if key == MAIN_KEY => m.name.clone(),
            _ => key.to_string(),
        }
    }

    /// `--worktree X` if given, else the current worktree.
    pub fn target(&self, query: Option<&str>) -> Result<Worktree> {
        match query {
            Some(q) => self.resolve(q),
            None => self.current().cloned(),
        }
    }

    /// Finds the worktree a user means by `query`: its name, a path (absolute or relative to
    /// the current directory, to it or inside it), or the branch checked out in it. A query
    /// that matches more than one worktree, in any of these ways, is ambiguous.
    pub fn resolve(&self, query: &str) -> Result<Worktree> {
        let mut found: Vec<Worktree> = Vec::new();
        let mut add = |w: Worktree| {
            if !found.iter().any(|f| f.key == w.key) {
                found.push(w);
            }
        };
        let matches = |name: &str, head: &Head| name == query || head.branch() == Some(query);
        if let Some(listing) = self.all.get() {
            for w in listing
                .worktrees
                .iter()
                .filter(|w| matches(&w.name, &w.head))
            {
                add(w.clone());
            }
        } else {
            // Names and branches need one HEAD read per worktree, not the whole listing.
            if let Some(m) = self.main.as_ref().filter(|m| matches(&m.name, &m.head)) {
                add(m.clone());
            }
            for name in self.linked_names() {
                let head = read_head(&self.common_dir.join("worktrees").join(&name).join("HEAD"));
                if matches(&name, &head) {
                    add(linked_worktree(&self.common_dir, &name));
                }
            }
        }
        if let Ok(p) = fs::canonicalize(query) {
            let deepest = self
                .worktrees()
                .iter()
                .filter_map(|w| {
                    let root = fs::canonicalize(&w.path).ok()?;
                    p.starts_with(&root).then(|| (root.components().count(), w))
                })
                .max_by_key(|(depth, _)| *depth);
            if let Some((_, w)) = deepest {
                add(w.clone());
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::WorktreeNotFound {
                query: query.to_string(),
                known: self.worktrees().iter().map(|w| w.name.clone()).collect(),
            }),
            _ => Err(Error::AmbiguousWorktree {
                query: query.to_string(),
                candidates: found
                    .iter()
                    .map(|w| format!("{} ({})", w.name, w.path.display()))
                    .collect(),
            }),
        }
    }

    /// The folders of <common dir>/worktrees/: the linked worktrees' admin names, as git
    /// lists them. libgit2's `Repository::worktrees` would stat three files in each first: at
    /// a thousand worktrees that alone costs more than reading what status needs.
    fn linked_names(&self) -> Vec<String> {
        fs::read_dir(self.common_dir.join("worktrees"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }
}

fn basename(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The main worktree of a non-bare repository: `core.worktree`, else the common dir's parent.
fn main_path(common_dir: &Path, config: &git2::Config) -> PathBuf {
    if let Ok(wt) = config.get_path("core.worktree") {
        return strip_slash(&common_dir.join(wt));
    }
    common_dir
        .parent()
        .map_or_else(|| common_dir.to_path_buf(), Path::to_path_buf)
}

fn linked_worktree(common_dir: &Path, name: &str) -> Worktree {
    let admin = common_dir.join("worktrees").join(name);
    let gitfile = read_trimmed(&admin.join("gitdir")).map(|g| admin.join(g));
    let path = gitfile
        .as_deref()
        .and_then(Path::parent)
        .map_or_else(|| admin.clone(), strip_slash);
    let prunable = gitfile
        .as_deref()
        .is_none_or(|g| fs::symlink_metadata(g).is_err());
    let head = read_trimmed(&admin.join("HEAD")).map_or(Head::Unknown, |t| Head::parse(&t));
    Worktree {
        key: name.to_string(),
        name: name.to_string(),
        path,
        head,
        is_main: false,
        locked: fs::symlink_metadata(admin.join("locked")).is_ok(),
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
    }
}

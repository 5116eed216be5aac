//! Everything git: opening the repository as git would, its common dir, its configuration,
//! and the worktrees, read from their admin files directly (opening a repository per worktree
//! is slow).
//!
//! Two backends find the repository, and callers never learn which ran: libgit2 where it can
//! open it (in-process, the fast path), and the git CLI where it cannot (SHA-256 objects,
//! reftable refs, extensions libgit2 does not know, ownership checks). git is always present,
//! since git is what runs `git ports`. The configuration always comes from `git config`, so
//! every channel git offers (`git -c`, `GIT_CONFIG_PARAMETERS`, `GIT_CONFIG_COUNT`, includes,
//! worktree config) applies exactly as it does for git itself.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::registry::{MAIN_KEY, Registry, key_of};

mod gitconfig;
mod other;
mod process;
mod resolve;
mod worktrees;

pub use gitconfig::GitConfig;
pub use other::{Other, OtherWorktree};
use process::{git_command, git_failure, run_git};
pub use process::{in_other_repository, is_tracked, path_from_bytes};
pub use worktrees::{
    Gone, Head, Worktree, basename, heads_from_git, is_stub_head, linked_at, read_head,
};
use worktrees::{linked_worktree, strip_slash};

/// Where the repository is, whichever backend found it.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// This worktree's git dir: the common dir, or `<common dir>/worktrees/<name>`.
    git_dir: PathBuf,
    common_dir: PathBuf,
    /// The top of the worktree the command runs in, if it runs in one.
    work_tree: Option<PathBuf>,
    /// The common repository is bare.
    bare: bool,
}

impl Layout {
    fn is_linked(&self) -> bool {
        self.git_dir != self.common_dir
    }

    /// libgit2: in-process, for the repositories it can open; with the configuration when
    /// libgit2 can read it as git would.
    fn from_libgit2() -> std::result::Result<(Layout, Option<GitConfig>), git2::Error> {
        let git = git2::Repository::open_from_env()?;
        let layout = Layout {
            git_dir: strip_slash(git.path()),
            common_dir: strip_slash(git.commondir()),
            work_tree: git.workdir().map(strip_slash),
            bare: git.is_bare(),
        };
        Ok((layout, GitConfig::from_libgit2(Some(&git))))
    }

    /// The git CLI, for everything else git can open: one `git rev-parse`. Outside a work
    /// tree `--show-toplevel` fails after printing the rest, which is all there is to know.
    fn from_cli() -> Result<Layout> {
        let mut cmd = git_command(None);
        cmd.args([
            "rev-parse",
            "--path-format=absolute",
            "--git-dir",
            "--git-common-dir",
            "--is-bare-repository",
            "--is-inside-work-tree",
            "--show-toplevel",
        ]);
        let out = run_git(&mut cmd)?;
        let lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
        let (git_dir, common_dir, bare, inside, top) = match lines[..] {
            [g, c, b, i, t, ..] if out.status.success() => (g, c, b, i, Some(t)),
            [g, c, b, i @ b"false", ..] => (g, c, b, i, None),
            _ => return Err(git_failure(&out.stderr)),
        };
        let work_tree = top
            .filter(|t| inside == b"true" && !t.is_empty())
            .map(path_from_bytes);
        Ok(Layout {
            git_dir: strip_slash(&path_from_bytes(git_dir)),
            common_dir: strip_slash(&path_from_bytes(common_dir)),
            work_tree,
            bare: bare == b"true",
        })
    }
}

pub struct Repo {
    pub common_dir: PathBuf,
    /// The common repository is bare: there is no main worktree.
    pub bare: bool,
    /// Refs live in a reftable: HEAD files are stubs, so branches are asked of git.
    pub reftable: bool,
    pub settings: Settings,
    /// The configuration as it was read at open, for keys that are not settings of ours.
    pub config: GitConfig,
    /// The main worktree, unless the repository is bare.
    main: Option<Worktree>,
    /// The worktree the command runs in.
    current: Option<Worktree>,
    /// Every worktree, read on first use: commands that work on the current worktree alone
    /// never read the admin files of the others.
    all: OnceCell<Listing>,
    /// Branches by worktree path, from `git worktree list`, in a reftable repository.
    reftable_heads: OnceCell<HashMap<PathBuf, Head>>,
}

pub(super) struct Listing {
    /// Main first, then linked worktrees by path, as `git worktree list` orders them.
    worktrees: Vec<Worktree>,
    /// Registry key → index into `worktrees`.
    by_key: HashMap<String, usize>,
}
impl Repo {
    /// No repository: for the commands that describe the whole machine (`status --machine`,
    /// `check`) run outside any. Settings come from the global and system config.
    pub fn outside() -> Result<Repo> {
        let config = match GitConfig::from_libgit2(None) {
            Some(c) => c,
            None => GitConfig::read(None)?,
        };
        Ok(Repo {
            common_dir: PathBuf::new(),
            bare: true,
            reftable: false,
            settings: Settings::from_entries(config.entries()),
            config,
            main: None,
            current: None,
            all: OnceCell::new(),
            reftable_heads: OnceCell::new(),
        })
    }

    /// Opens the repository the way git does for this process: GIT_DIR, GIT_WORK_TREE and the
    /// current directory, so hooks and `git --git-dir=… ports` find the right one.
    pub fn open() -> Result<Repo> {
        let (layout, config) = match Layout::from_libgit2() {
            Ok(found) => found,
            // libgit2 cannot open every repository git can (reftable, SHA-256, extensions,
            // ownership): git itself decides, and its words are the error. Where there is no
            // git to ask, libgit2's words are.
            Err(refused) => match Layout::from_cli() {
                Ok(layout) => {
                    let config = GitConfig::from_files(&layout.common_dir, &layout.git_dir);
                    (layout, config)
                }
                Err(Error::Spawn { .. }) => return Err(without_git(&refused)),
                Err(e) => return Err(e),
            },
        };
        let config = match config {
            Some(c) => c,
            None => GitConfig::read(None)?,
        };
        let settings = Settings::from_entries(config.entries());
        let common_dir = layout.common_dir.clone();
        let bare = layout.bare || config.get_bool("core.bare").unwrap_or(false);
        let reftable = config
            .get("extensions.refstorage")
            .is_some_and(|v| v.eq_ignore_ascii_case("reftable"));

        let main = (!bare).then(|| {
            let path = match (&layout.work_tree, layout.is_linked()) {
                (Some(top), false) => top.clone(),
                _ => main_path(&common_dir, &config),
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
        let current = if layout.is_linked() {
            layout
                .git_dir
                .file_name()
                .map(|name| linked_worktree(&common_dir, name))
        } else if layout.work_tree.is_none() && layout.bare {
            None
        } else {
            main.clone()
        };
        Ok(Repo {
            common_dir,
            bare,
            reftable,
            settings,
            config,
            main,
            current,
            all: OnceCell::new(),
            reftable_heads: OnceCell::new(),
        })
    }

    /// The main worktree's path is only a guess from a linked worktree when the common dir is
    /// not `<main>/.git` (`git init --separate-git-dir`): a path the registry recorded from
    /// the main worktree itself wins over the guess, and is never replaced by one.
    pub fn remember_main(&mut self, registry: &Registry) {
        if self.main_path_known() {
            return;
        }
        let Some(main) = &mut self.main else { return };
        if let Some(e) = registry.worktrees.get(MAIN_KEY) {
            main.path = e.path.clone();
            main.name = basename(&main.path);
        }
    }

    /// Whether the main worktree's path is known, rather than guessed.
    pub fn main_path_known(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.is_main)
            || self.common_dir.file_name() == Some(OsStr::new(".git"))
            || self.config.get("core.worktree").is_some()
    }

    /// What names the repository on every machine, for stable hashes: the URL of `origin`,
    /// else the main worktree's directory name.
    pub fn identity(&self) -> String {
        self.config.get("remote.origin.url").unwrap_or_else(|| {
            self.main
                .as_ref()
                .map_or_else(|| basename(&self.common_dir), |m| m.name.clone())
        })
    }

    /// The configuration as the worktree `w` sees it. With `extensions.worktreeConfig`, each
    /// worktree may set keys of its own in `config.worktree`: a command aimed at another
    /// worktree with `--worktree` uses that worktree's settings, as git would if run there.
    pub fn settings_for(&self, w: &Worktree) -> Result<Settings> {
        let per_worktree = self
            .config
            .get_bool("extensions.worktreeconfig")
            .unwrap_or(false);
        let here = self.current.as_ref().is_some_and(|c| c.key == w.key);
        if !per_worktree || here || !w.path.is_dir() {
            return Ok(self.settings.clone());
        }
        Ok(Settings::from_entries(
            GitConfig::read(Some(&w.path))?.entries(),
        ))
    }

    /// The git dir of worktree `w`: the common dir for the main worktree, else its admin dir
    /// (`<common dir>/worktrees/<name>`). Files staged there are never part of the worktree.
    pub fn admin_dir(&self, w: &Worktree) -> PathBuf {
        match crate::registry::name_of_key(&w.key).filter(|_| !w.is_main) {
            Some(name) => self.common_dir.join("worktrees").join(name),
            None => self.common_dir.clone(),
        }
    }

    /// Sets a multi-valued key in the repository's own config file to exactly `values`:
    /// through libgit2, which writes git's format, else (a file libgit2 cannot parse) through
    /// `git config`. A failure is the config file's: it cannot be written (git's words say
    /// why).
    pub fn set_local(&self, key: &str, values: &[String]) -> Result<()> {
        let file = self.common_dir.join("config");
        let by_libgit2 = || -> std::result::Result<(), git2::Error> {
            let mut config = git2::Config::open(&file)?;
            match config.remove_multivar(key, ".*") {
                Err(e) if e.code() != git2::ErrorCode::NotFound => return Err(e),
                _ => {}
            }
            for v in values.iter().filter(|v| !v.is_empty()) {
                // A pattern no value set here matches (none is empty): each is added.
                config.set_multivar(key, "^$", v)?;
            }
            if values.iter().any(String::is_empty) {
                return Err(git2::Error::from_str("an empty value"));
            }
            Ok(())
        };
        if by_libgit2().is_ok() {
            return Ok(());
        }
        let mut unset = git_command(None);
        unset
            .arg("config")
            .arg("--file")
            .arg(&file)
            .args(["--unset-all", key]);
        run_git(&mut unset)?;
        for v in values {
            let mut add = git_command(None);
            add.arg("config")
                .arg("--file")
                .arg(&file)
                .args(["--add", key, v]);
            let out = run_git(&mut add)?;
            if !out.status.success() {
                let words = String::from_utf8_lossy(&out.stderr).trim().to_string();
                return Err(Error::Unwritable {
                    path: file,
                    action: "cannot write",
                    source: std::io::Error::other(words),
                });
            }
        }
        Ok(())
    }
}

/// The main worktree of a non-bare repository: `core.worktree`, else the common dir's parent.
/// Why libgit2 could not open the repository, when git is not there to decide instead.
fn without_git(refused: &git2::Error) -> Error {
    match refused.code() {
        git2::ErrorCode::NotFound => Error::NotARepo(None),
        // libgit2 names the path as git's safe.directory wants it: `repository path '…' is
        // not owned by current user`.
        git2::ErrorCode::Owner => Error::Ownership {
            message: refused.message().to_string(),
            fix: refused
                .message()
                .split('\'')
                .nth(1)
                .map(|p| format!("git config --global --add safe.directory {p}")),
        },
        _ => Error::GitSays(format!(
            "{} (and git, which could open it, is not on PATH)",
            refused.message()
        )),
    }
}

fn main_path(common_dir: &Path, config: &GitConfig) -> PathBuf {
    if let Some(wt) = config.get_path("core.worktree") {
        return strip_slash(&common_dir.join(wt));
    }
    if common_dir.file_name() == Some(OsStr::new(".git")) {
        return common_dir
            .parent()
            .map_or_else(|| common_dir.to_path_buf(), Path::to_path_buf);
    }
    // `git init --separate-git-dir`: nothing on disk names the main worktree; git itself
    // shows the git dir, and so do we until the main worktree says where it is.
    common_dir.to_path_buf()
}

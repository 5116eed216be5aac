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

/// The configuration as git reads it for this process, in git's order: later entries win.
#[derive(Debug, Clone, Default)]
pub struct GitConfig {
    /// (key as git prints it: section and name in lower case, subsection as written; value,
    /// `None` for a key without `=`).
    entries: Vec<(String, Option<Vec<u8>>)>,
}

/// Folds a key to the form `git config --list` prints: section and name in lower case.
fn fold_key(key: &str) -> String {
    match (key.find('.'), key.rfind('.')) {
        (Some(a), Some(b)) if a < b => format!(
            "{}{}{}",
            key[..a].to_ascii_lowercase(),
            &key[a..b],
            key[b..].to_ascii_lowercase()
        ),
        _ => key.to_ascii_lowercase(),
    }
}

impl GitConfig {
    /// Parses `git config --list -z`: `key\nvalue\0`, or `key\0` for a key without a value.
    pub fn parse(bytes: &[u8]) -> GitConfig {
        let entries = bytes
            .split(|&b| b == 0)
            .filter(|e| !e.is_empty())
            .map(|e| match e.iter().position(|&b| b == b'\n') {
                Some(i) => (
                    String::from_utf8_lossy(&e[..i]).into_owned(),
                    Some(e[i + 1..].to_vec()),
                ),
                None => (String::from_utf8_lossy(e).into_owned(), None),
            })
            .collect();
        GitConfig { entries }
    }

    /// Reads the configuration as git would for a command run in `dir` (or here, with this
    /// process's environment, when `None`).
    pub fn read(dir: Option<&Path>) -> Result<GitConfig> {
        let mut cmd = git_command(dir);
        cmd.args(["config", "--list", "-z"]);
        let out = run_git(&mut cmd)?;
        // `git config --list` fails only for unreadable files; it prints nothing and exits 0
        // when there is no config at all.
        if !out.status.success() {
            return Err(git_failure(&out.stderr));
        }
        Ok(GitConfig::parse(&out.stdout))
    }

    /// The configuration libgit2 reads for `git`, with what git adds on the command line
    /// (`GIT_CONFIG_COUNT`, then `GIT_CONFIG_PARAMETERS`, which is how `git -c` reaches a
    /// subcommand) on top, in git's order of precedence. `None` where libgit2 cannot stand in
    /// for git: when the environment names config files libgit2 does not look at
    /// (`GIT_CONFIG_GLOBAL`, `GIT_CONFIG_SYSTEM`, `GIT_CONFIG_NOSYSTEM`), or on any error.
    fn from_libgit2(git: &git2::Repository) -> Option<GitConfig> {
        const FILES: [&str; 3] = [
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_SYSTEM",
            "GIT_CONFIG_NOSYSTEM",
        ];
        if FILES.iter().any(|v| std::env::var_os(v).is_some()) {
            return None;
        }
        let config = git.config().ok()?.snapshot().ok()?;
        let mut entries: Vec<(i32, String, Option<Vec<u8>>)> = Vec::new();
        let mut iter = config
            .entries(Some(r"^(ports|color|core|extensions|remote)\."))
            .ok()?;
        while let Some(e) = iter.next() {
            let e = e.ok()?;
            let level = e.level() as i32;
            let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
            let value = e.has_value().then(|| e.value_bytes().to_vec());
            entries.push((level, name, value));
        }
        // libgit2 lists the most local file first; git's order is the reverse, file by file.
        entries.sort_by_key(|(level, _, _)| *level);
        let mut config = GitConfig {
            entries: entries.into_iter().map(|(_, k, v)| (k, v)).collect(),
        };
        config.entries.extend(command_line_config()?);
        Some(config)
    }

    /// Every entry, in git's order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// The last value of `key`, as git's `--get` gives it.
    pub fn get(&self, key: &str) -> Option<String> {
        self.get_bytes(key)
            .map(|v| String::from_utf8_lossy(v.unwrap_or(b"true")).into_owned())
    }

    fn get_bytes(&self, key: &str) -> Option<Option<&[u8]>> {
        let key = fold_key(key);
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_deref())
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)
            .and_then(|v| crate::config::parse_bool(v.trim()))
    }

    /// A path value, with `~/` expanded as git's `--type=path` does.
    pub fn get_path(&self, key: &str) -> Option<PathBuf> {
        let v = self.get_bytes(key)??;
        if v.is_empty() {
            return None;
        }
        let p = path_from_bytes(v);
        if let Ok(rest) = p.strip_prefix("~")
            && let Some(home) = std::env::var_os("HOME")
        {
            return Some(PathBuf::from(home).join(rest));
        }
        Some(p)
    }
}

/// What git passes to a subcommand as configuration from its command line: the
/// `GIT_CONFIG_COUNT` pairs, then `GIT_CONFIG_PARAMETERS` (`git -c`), later ones winning.
/// `None` when either is malformed: then git itself is asked.
fn command_line_config() -> Option<Vec<(String, Option<Vec<u8>>)>> {
    let mut out = Vec::new();
    if let Some(n) = std::env::var_os("GIT_CONFIG_COUNT") {
        let n: usize = n.to_str()?.trim().parse().ok()?;
        for i in 0..n {
            let key = std::env::var(format!("GIT_CONFIG_KEY_{i}")).ok()?;
            let value = std::env::var_os(format!("GIT_CONFIG_VALUE_{i}"))?;
            out.push((fold_key(&key), Some(crate::registry::os_bytes(&value))));
        }
    }
    if let Some(p) = std::env::var_os("GIT_CONFIG_PARAMETERS") {
        out.extend(parse_parameters(&crate::registry::os_bytes(&p))?);
    }
    Some(out)
}

/// Parses `GIT_CONFIG_PARAMETERS` as git writes it: single-quoted words (a `'` inside is
/// `'\''`), either `'key'='value'` or, from older gits, `'key=value'`; a key alone is true.
fn parse_parameters(text: &[u8]) -> Option<Vec<(String, Option<Vec<u8>>)>> {
    /// One quoted word from `i`; returns it and where it ends.
    fn word(t: &[u8], mut i: usize) -> Option<(Vec<u8>, usize)> {
        let mut w = Vec::new();
        if t.get(i) != Some(&b'\'') {
            return None;
        }
        i += 1;
        loop {
            match t.get(i)? {
                b'\'' => {
                    i += 1;
                    // `'\''`: a quote, and the word goes on.
                    if t.get(i) == Some(&b'\\')
                        && t.get(i + 1) == Some(&b'\'')
                        && t.get(i + 2) == Some(&b'\'')
                    {
                        w.push(b'\'');
                        i += 3;
                        continue;
                    }
                    return Some((w, i));
                }
                &b => {
                    w.push(b);
                    i += 1;
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while text.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if i >= text.len() {
            return Some(out);
        }
        let (key, end) = word(text, i)?;
        i = end;
        if text.get(i) == Some(&b'=') {
            let (value, end) = word(text, i + 1)?;
            i = end;
            out.push((fold_key(&String::from_utf8_lossy(&key)), Some(value)));
        } else {
            match key.iter().position(|&b| b == b'=') {
                Some(eq) => out.push((
                    fold_key(&String::from_utf8_lossy(&key[..eq])),
                    Some(key[eq + 1..].to_vec()),
                )),
                None => out.push((fold_key(&String::from_utf8_lossy(&key)), None)),
            }
        }
    }
}

/// Bytes git printed, as a path: exact on Unix, where paths are bytes.
pub fn path_from_bytes(b: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(OsStr::from_bytes(b))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(b).into_owned())
    }
}

/// A git command for `dir` (with git's own discovery there), or for this process as it is.
fn git_command(dir: Option<&Path>) -> Command {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        // Another worktree: the variables git set for this process name this one.
        for v in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_COMMON_DIR",
            "GIT_INDEX_FILE",
        ] {
            cmd.env_remove(v);
        }
        cmd.current_dir(d);
    }
    cmd
}

fn run_git(cmd: &mut Command) -> Result<std::process::Output> {
    cmd.stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: "git".into(),
            source,
        })
}

/// git's own words for a failure: its `fatal:` line, and for an ownership refusal the fix.
fn git_failure(stderr: &[u8]) -> Error {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("fatal: "))
        .or_else(|| lines.iter().position(|l| !l.trim().is_empty()));
    // git continues a fatal message on lines indented with a tab (the extension's name).
    let fatal = match start {
        Some(i) => std::iter::once(lines[i].trim_start_matches("fatal: "))
            .chain(
                lines[i + 1..]
                    .iter()
                    .take_while(|l| l.starts_with('\t'))
                    .copied(),
            )
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" "),
        None => "git failed".to_string(),
    };
    if fatal.contains("dubious ownership") {
        let fix = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("git config --global --add safe.directory"))
            .map(str::to_string);
        return Error::Ownership {
            message: fatal,
            fix,
        };
    }
    if fatal.starts_with("not a git repository") {
        // git's words add nothing to ours.
        return Error::NotARepo(None);
    }
    Error::GitSays(fatal)
}

/// Where the repository is, whichever backend found it.
#[derive(Debug, Clone)]
struct Layout {
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
        Ok((layout, GitConfig::from_libgit2(&git)))
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

struct Listing {
    /// Main first, then linked worktrees by path, as `git worktree list` orders them.
    worktrees: Vec<Worktree>,
    /// Registry key → index into `worktrees`.
    by_key: HashMap<String, usize>,
}

/// Reads a small admin file (HEAD, gitdir) in as few system calls as it can: open, one read,
/// close. A short read of a regular file means its end; longer files fall back to reading on.
fn read_bytes(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut file = fs::File::open(path).ok()?;
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
fn read_trimmed(path: &Path) -> Option<String> {
    Some(crate::registry::show_bytes(&read_bytes(path)?))
}

/// Drops a trailing slash and `.` components, and folds `a/b/../c` lexically where `b` is a
/// real directory, as git's worktree paths for submodules need
/// (`…/.git/modules/sub/../../../sub`).
fn strip_slash(p: &Path) -> PathBuf {
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
    /// No repository: for the commands that describe the whole machine (`status --machine`,
    /// `check`) run outside any. Settings come from the global and system config.
    pub fn outside() -> Result<Repo> {
        let config = GitConfig::read(None)?;
        Ok(Repo {
            common_dir: PathBuf::new(),
            bare: true,
            reftable: false,
            settings: Settings::from_git(&config),
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
            // ownership): git itself decides, and its words are the error.
            Err(_) => (Layout::from_cli()?, None),
        };
        let config = match config {
            Some(c) => c,
            None => GitConfig::read(None)?,
        };
        let settings = Settings::from_git(&config);
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

    fn heads_from_git(&self) -> &HashMap<PathBuf, Head> {
        self.reftable_heads
            .get_or_init(|| heads_from_git(&self.common_dir))
    }

    /// The worktree's HEAD: its file, or in a reftable repository what git says.
    fn head_of(&self, w: &Worktree) -> Head {
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
        let r = crate::registry::show_bytes(out.stdout.trim_ascii_end());
        Some(r.strip_prefix("refs/heads/").unwrap_or(&r).to_string())
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

    fn with_head(&self, mut w: Worktree) -> Worktree {
        if self.reftable {
            w.head = self.head_of(&w);
        }
        w
    }

    fn listing(&self) -> &Listing {
        self.all.get_or_init(|| {
            let mut linked: Vec<Worktree> = self
                .linked_names()
                .iter()
                .map(|name| self.with_head(linked_worktree(&self.common_dir, name)))
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
            _ => crate::registry::display_key(key),
        }
    }

    /// `--worktree X` if given, else the current worktree.
    pub fn target(&self, query: Option<&str>) -> Result<Worktree> {
        match query {
            Some(q) => self.resolve(q),
            None => self.current(),
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
        if self.all.get().is_some() || self.reftable {
            for w in self
                .worktrees()
                .iter()
                .filter(|w| matches(&w.name, &w.head))
            {
                add(w.clone());
            }
        } else if let Some(w) = self.by_name_alone(query) {
            add(w);
        } else {
            // Names and branches need one HEAD read per worktree, not the whole listing.
            if let Some(m) = self.main.as_ref().filter(|m| matches(&m.name, &m.head)) {
                add(m.clone());
            }
            for name in self.linked_names() {
                let head = read_head(&self.common_dir.join("worktrees").join(&name).join("HEAD"));
                if matches(&crate::registry::display_key(&key_of(&name)), &head) {
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

    /// The worktree named `query`, found without reading every worktree's HEAD, when no branch
    /// has that name (so no other worktree can match it by branch). An unborn branch (a
    /// worktree made with `--orphan`, before its first commit) has no ref yet: a name that
    /// matches nothing here goes on to the full comparison, which reads HEADs and finds it.
    fn by_name_alone(&self, query: &str) -> Option<Worktree> {
        if self.branch_may_exist(query) {
            return None;
        }
        let main = self.main.as_ref().filter(|m| m.name == query);
        let linked = crate::registry::name_of_key(query)
            .filter(|n| self.common_dir.join("worktrees").join(n).is_dir())
            .map(|n| linked_worktree(&self.common_dir, &n));
        match (main, linked) {
            (Some(m), None) => Some(m.clone()),
            (None, Some(l)) => Some(l),
            // Both, or neither: the full comparison says which, or that it is ambiguous.
            _ => None,
        }
    }

    /// Whether a branch called `name` may exist, read from the files backend's refs: a loose
    /// ref, or a line of `packed-refs`. When in doubt (a file that cannot be read, a name no
    /// ref can have) it says yes, and names and branches are then compared one by one.
    fn branch_may_exist(&self, name: &str) -> bool {
        if self.reftable || name.is_empty() || name.contains("..") || name.starts_with('/') {
            return true;
        }
        let refs = self.common_dir.join("refs/heads").join(name);
        match fs::symlink_metadata(&refs) {
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return true,
        }
        let packed = match fs::read(self.common_dir.join("packed-refs")) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(_) => return true,
        };
        let wanted = format!(" refs/heads/{name}");
        packed
            .split(|&b| b == b'\n')
            .any(|l| l.ends_with(wanted.as_bytes()))
    }

    /// The folders of <common dir>/worktrees/: the linked worktrees' admin names, as git
    /// lists them, whatever bytes they hold. libgit2's `Repository::worktrees` would stat
    /// three files in each first: at a thousand worktrees that alone costs more than reading
    /// what status needs.
    fn linked_names(&self) -> Vec<OsString> {
        fs::read_dir(self.common_dir.join("worktrees"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
            .collect()
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
        Ok(Settings::from_git(&GitConfig::read(Some(&w.path))?))
    }

    /// The git dir of worktree `w`: the common dir for the main worktree, else its admin dir
    /// (`<common dir>/worktrees/<name>`). Files staged there are never part of the worktree.
    pub fn admin_dir(&self, w: &Worktree) -> PathBuf {
        match crate::registry::name_of_key(&w.key).filter(|_| !w.is_main) {
            Some(name) => self.common_dir.join("worktrees").join(name),
            None => self.common_dir.clone(),
        }
    }

    /// Sets a multi-valued key in the repository's own config file to exactly `values`.
    pub fn set_local(&self, key: &str, values: &[String]) -> Result<()> {
        let file = self.common_dir.join("config");
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
                return Err(git_failure(&out.stderr));
            }
        }
        Ok(())
    }
}

/// Whether git tracks the file at `path`, asked of the worktree at `worktree`. The name is a
/// literal pathspec: `*.env` names that file, not every file the glob matches.
pub fn is_tracked(worktree: &Path, path: &Path) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    let dir = if dir.is_dir() { dir } else { worktree };
    let mut cmd = git_command(Some(dir));
    cmd.args(["--literal-pathspecs", "ls-files", "--error-unmatch", "--"])
        .arg(name)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
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
            let b = crate::registry::show_bytes(b);
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

/// The main worktree of a non-bare repository: `core.worktree`, else the common dir's parent.
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

fn linked_worktree(common_dir: &Path, name: &OsStr) -> Worktree {
    let admin = common_dir.join("worktrees").join(name);
    let gitfile = read_bytes(&admin.join("gitdir")).map(|g| admin.join(path_from_bytes(&g)));
    let path = gitfile
        .as_deref()
        .and_then(Path::parent)
        .map_or_else(|| admin.clone(), strip_slash);
    let prunable = gitfile.as_deref().is_none_or(
        |g| matches!(fs::symlink_metadata(g), Err(e) if e.kind() == std::io::ErrorKind::NotFound),
    );
    let head = read_trimmed(&admin.join("HEAD")).map_or(Head::Unknown, |t| Head::parse(&t));
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

    #[test]
    fn command_line_parameters_parse_like_git() {
        let got = parse_parameters(
            b"'ports.web.range'='7000-7099' 'core.bare' 'Ports.X.Env=A'  'a.b'='it'\\''s'",
        );
        assert_eq!(
            got,
            Some(vec![
                ("ports.web.range".into(), Some(b"7000-7099".to_vec())),
                ("core.bare".into(), None),
                ("ports.X.env".into(), Some(b"A".to_vec())),
                ("a.b".into(), Some(b"it's".to_vec())),
            ])
        );
        assert_eq!(parse_parameters(b"'unterminated"), None);
        assert_eq!(parse_parameters(b"bare"), None);
    }

    #[test]
    fn config_list_parses_like_git() {
        let c = GitConfig::parse(b"core.bare\nfalse\0ports.web.range\n8000-8099\0ports.flag\0ports.web.range\n7000-7099\0");
        assert_eq!(c.get("ports.web.range").as_deref(), Some("7000-7099"));
        assert_eq!(c.get("PORTS.web.RANGE").as_deref(), Some("7000-7099"));
        assert_eq!(c.get("ports.WEB.range"), None);
        assert_eq!(c.get_bool("core.bare"), Some(false));
        assert_eq!(c.get_bool("ports.flag"), Some(true));
        assert_eq!(c.get("ports.none"), None);
        assert_eq!(fold_key("Remote.Origin.URL"), "remote.Origin.url");
    }
}

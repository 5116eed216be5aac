//! git's configuration as git reads it for this process: libgit2's snapshot, `git config
//! --list -z` where libgit2 cannot read a file, and the command-line channels on top.

use super::*;

/// The configuration as git reads it for this process, in git's order: later entries win.
#[derive(Debug, Clone, Default)]
pub struct GitConfig {
    /// (key as git prints it: section and name in lower case, subsection as written; value,
    /// `None` for a key without `=`; where it is set, an index into `origins`).
    entries: Vec<(String, Option<Vec<u8>>, usize)>,
    /// Where entries are set, as people know the place: a file's path, or the command line.
    origins: Vec<String>,
}

/// What git calls the command line as a place config comes from.
const COMMAND_LINE: &str = "the command line (git -c)";

/// Folds a key to the form `git config --list` prints: section and name in lower case.
pub(super) fn fold_key(key: &str) -> String {
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
    /// The index of `origin` in the table of places, added if new.
    fn origin(&mut self, origin: &str) -> usize {
        match self.origins.iter().position(|o| o == origin) {
            Some(i) => i,
            None => {
                self.origins.push(origin.to_string());
                self.origins.len() - 1
            }
        }
    }

    /// Parses `git config --list -z --show-origin`: for each entry, where it is set
    /// (`file:PATH`, `command line:`), then `key\nvalue`, or `key` for a key without a value,
    /// each ended by a NUL.
    /// Relative file names are git's, relative to `base`, the directory it ran in.
    pub fn parse(bytes: &[u8], base: &Path) -> GitConfig {
        let mut config = GitConfig::default();
        let mut fields = bytes.split(|&b| b == 0);
        while let Some(origin) = fields.next() {
            let Some(e) = fields.next() else { break };
            if e.is_empty() {
                continue;
            }
            let origin = String::from_utf8_lossy(origin);
            let place = match origin.split_once(':') {
                Some(("file", path)) => base.join(path).display().to_string(),
                Some(("command line", _)) => COMMAND_LINE.to_string(),
                _ => origin.into_owned(),
            };
            let at = config.origin(&place);
            let entry = match e.iter().position(|&b| b == b'\n') {
                Some(i) => (
                    String::from_utf8_lossy(&e[..i]).into_owned(),
                    Some(e[i + 1..].to_vec()),
                    at,
                ),
                None => (String::from_utf8_lossy(e).into_owned(), None, at),
            };
            config.entries.push(entry);
        }
        config
    }

    /// Reads the configuration as git would for a command run in `dir` (or here, with this
    /// process's environment, when `None`).
    pub fn read(dir: Option<&Path>) -> Result<GitConfig> {
        let mut cmd = git_command(dir);
        cmd.args(["config", "--list", "-z", "--show-origin"]);
        let out = run_git(&mut cmd)?;
        // `git config --list` fails only for unreadable files; it prints nothing and exits 0
        // when there is no config at all.
        if !out.status.success() {
            return Err(git_failure(&out.stderr));
        }
        let base = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_dir().unwrap_or_default(),
        };
        Ok(GitConfig::parse(&out.stdout, &base))
    }

    /// The configuration git reads for this process, through libgit2 (no git process): the
    /// repository's own files when `git` is given, and the user's and the system's as git
    /// picks them, `GIT_CONFIG_GLOBAL`, `GIT_CONFIG_SYSTEM` and `GIT_CONFIG_NOSYSTEM` included
    /// (which libgit2 does not read itself: the files are opened here), with what git adds on
    /// the command line (`GIT_CONFIG_COUNT`, then `GIT_CONFIG_PARAMETERS`, which is how
    /// `git -c` reaches a subcommand) on top, in git's order of precedence. `None` where
    /// libgit2 cannot stand in for git: files with `includeIf` opened here (whose conditions
    /// need git), or any error.
    pub(super) fn from_libgit2(git: Option<&git2::Repository>) -> Option<GitConfig> {
        let set = |v: &str| std::env::var_os(v).is_some();
        let by_hand = git.is_none()
            || [
                "GIT_CONFIG_GLOBAL",
                "GIT_CONFIG_SYSTEM",
                "GIT_CONFIG_NOSYSTEM",
            ]
            .iter()
            .any(|v| set(v));
        let own = match git {
            Some(g) if !by_hand => Some(g.config().ok()?.snapshot().ok()?),
            _ => None,
        };
        let dirs = git.map(|g| (g.commondir().to_path_buf(), g.path().to_path_buf()));
        GitConfig::in_process(own, dirs.as_ref().map(|(c, g)| (c.as_path(), g.as_path())))
    }

    /// The configuration of a repository libgit2 cannot open (SHA-256 objects, reftable
    /// refs: its files are still config files libgit2 reads), from its common and git dirs
    /// as git gave them; `None` where libgit2 cannot stand in for git (conditional includes).
    pub(super) fn from_files(common_dir: &Path, git_dir: &Path) -> Option<GitConfig> {
        GitConfig::in_process(None, Some((common_dir, git_dir)))
    }

    /// `own`: libgit2's snapshot of an opened repository's configuration; else the files are
    /// opened here, as git picks them, for the repository whose dirs are `dirs`.
    fn in_process(own: Option<git2::Config>, dirs: Option<(&Path, &Path)>) -> Option<GitConfig> {
        let config = match own {
            Some(c) => c,
            None => {
                let mut c = git_files(dirs)?;
                // libgit2 follows a file's `include.path` itself, relative to the file and
                // with `~/`, as git does; a conditional include (`includeIf "gitdir:…"`,
                // `onbranch:`, `hasconfig:`) it can judge only for a repository it opened, so
                // a file opened here that has one is git's to read.
                if c.entries(Some(r"^includeif\.")).ok()?.next().is_some() {
                    return None;
                }
                c.snapshot().ok()?
            }
        };
        let mut entries: Vec<(i32, git2::ConfigLevel, String, Option<Vec<u8>>)> = Vec::new();
        let mut iter = config
            .entries(Some(r"^(ports|color|core|extensions|remote)\."))
            .ok()?;
        while let Some(e) = iter.next() {
            let e = e.ok()?;
            let level = e.level();
            let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
            let value = e.has_value().then(|| e.value_bytes().to_vec());
            entries.push((level as i32, level, name, value));
        }
        // libgit2 lists the most local file first; git's order is the reverse, file by file.
        entries.sort_by_key(|(rank, ..)| *rank);
        let mut config = GitConfig::default();
        for (_, level, key, value) in entries {
            let at = config.origin(&level_place(dirs, level));
            config.entries.push((key, value, at));
        }
        let at = config.origin(COMMAND_LINE);
        config
            .entries
            .extend(command_line_config()?.into_iter().map(|(k, v)| (k, v, at)));
        Some(config)
    }

    /// Every entry, in git's order, with where it is set.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Option<&[u8]>, Option<&str>)> {
        self.entries.iter().map(|(k, v, at)| {
            (
                k.as_str(),
                v.as_deref(),
                self.origins.get(*at).map(String::as_str),
            )
        })
    }

    /// The last value of `key`, as git's `--get` gives it.
    pub fn get(&self, key: &str) -> Option<String> {
        self.get_bytes(key)
            .map(|v| String::from_utf8_lossy(v.unwrap_or(b"true")).into_owned())
    }

    pub(super) fn get_bytes(&self, key: &str) -> Option<Option<&[u8]>> {
        let key = fold_key(key);
        self.entries
            .iter()
            .rev()
            .find(|(k, ..)| *k == key)
            .map(|(_, v, _)| v.as_deref())
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

/// The user's global config file as git picks it: `GIT_CONFIG_GLOBAL` (empty: none), else
/// `~/.gitconfig`.
fn global_file() -> Option<PathBuf> {
    match std::env::var_os("GIT_CONFIG_GLOBAL") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => git2::Config::find_global().ok(),
    }
}

/// The system's config file as git picks it: none with `GIT_CONFIG_NOSYSTEM`, else
/// `GIT_CONFIG_SYSTEM`, else git's own.
fn system_file() -> Option<PathBuf> {
    // As git's own environment booleans: empty is false (a config value left empty is true).
    let off = std::env::var("GIT_CONFIG_NOSYSTEM").ok().is_some_and(|v| {
        let v = v.trim();
        !v.is_empty() && crate::config::parse_bool(v).unwrap_or(true)
    });
    if off {
        return None;
    }
    match std::env::var_os("GIT_CONFIG_SYSTEM") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => git2::Config::find_system().ok(),
    }
}

/// git's config files for this process, opened one by one: the system's, the user's (XDG,
/// then the global file, unless `GIT_CONFIG_GLOBAL` names another), and the repository's
/// and its worktree's, where they exist.
fn git_files(dirs: Option<(&Path, &Path)>) -> Option<git2::Config> {
    use git2::ConfigLevel;
    let mut c = git2::Config::new().ok()?;
    fn add(c: &mut git2::Config, path: Option<PathBuf>, level: ConfigLevel) -> Option<()> {
        match path.filter(|p| p.is_file()) {
            Some(p) => c.add_file(&p, level, false).ok(),
            None => Some(()),
        }
    }
    add(&mut c, system_file(), ConfigLevel::System)?;
    if std::env::var_os("GIT_CONFIG_GLOBAL").is_none() {
        add(&mut c, git2::Config::find_xdg().ok(), ConfigLevel::XDG)?;
    }
    add(&mut c, global_file(), ConfigLevel::Global)?;
    if let Some((common, git_dir)) = dirs {
        add(&mut c, Some(common.join("config")), ConfigLevel::Local)?;
        let worktree_config = c
            .snapshot()
            .ok()
            .and_then(|s| s.get_bool("extensions.worktreeconfig").ok())
            .unwrap_or(false);
        if worktree_config {
            add(
                &mut c,
                Some(git_dir.join("config.worktree")),
                ConfigLevel::Worktree,
            )?;
        }
    }
    Some(c)
}

/// The file of a config level, as git would name it where the entry came from.
fn level_place(dirs: Option<(&Path, &Path)>, level: git2::ConfigLevel) -> String {
    use git2::ConfigLevel;
    let found = match level {
        ConfigLevel::Local => dirs.map(|(c, _)| c.join("config")),
        ConfigLevel::Worktree => dirs.map(|(_, g)| g.join("config.worktree")),
        ConfigLevel::Global => global_file(),
        ConfigLevel::XDG => git2::Config::find_xdg().ok(),
        ConfigLevel::System => system_file(),
        ConfigLevel::ProgramData | ConfigLevel::App | ConfigLevel::Highest => None,
    };
    found.map_or_else(|| "git's config".to_string(), |p| p.display().to_string())
}

/// What git passes to a subcommand as configuration from its command line: the
/// `GIT_CONFIG_COUNT` pairs, then `GIT_CONFIG_PARAMETERS` (`git -c`), later ones winning.
/// `None` when either is malformed: then git itself is asked.
pub(super) fn command_line_config() -> Option<Vec<(String, Option<Vec<u8>>)>> {
    let mut out = Vec::new();
    if let Some(n) = std::env::var_os("GIT_CONFIG_COUNT") {
        let n: usize = n.to_str()?.trim().parse().ok()?;
        for i in 0..n {
            let key = std::env::var(format!("GIT_CONFIG_KEY_{i}")).ok()?;
            let value = std::env::var_os(format!("GIT_CONFIG_VALUE_{i}"))?;
            out.push((fold_key(&key), Some(crate::bytes::os_bytes(&value))));
        }
    }
    if let Some(p) = std::env::var_os("GIT_CONFIG_PARAMETERS") {
        out.extend(parse_parameters(&crate::bytes::os_bytes(&p))?);
    }
    Some(out)
}

/// Parses `GIT_CONFIG_PARAMETERS` as git writes it: single-quoted words (a `'` inside is
/// `'\''`), either `'key'='value'` or, from older gits, `'key=value'`; a key alone is true.
pub(super) fn parse_parameters(text: &[u8]) -> Option<Vec<(String, Option<Vec<u8>>)>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = GitConfig::parse(b"file:.git/config\0core.bare\nfalse\0file:/h/.gitconfig\0ports.web.range\n8000-8099\0file:.git/config\0ports.flag\0command line:\0ports.web.range\n7000-7099\0", Path::new("/src/app"));
        let origins: Vec<Option<&str>> = c.entries().map(|e| e.2).collect();
        // A relative file is joined to the worktree as the OS joins paths.
        let local = Path::new("/src/app").join(".git/config");
        let local = local.display().to_string();
        assert_eq!(
            origins,
            [
                Some(local.as_str()),
                Some("/h/.gitconfig"),
                Some(local.as_str()),
                Some(COMMAND_LINE)
            ]
        );
        assert_eq!(c.get("ports.web.range").as_deref(), Some("7000-7099"));
        assert_eq!(c.get("PORTS.web.RANGE").as_deref(), Some("7000-7099"));
        assert_eq!(c.get("ports.WEB.range"), None);
        assert_eq!(c.get_bool("core.bare"), Some(false));
        assert_eq!(c.get_bool("ports.flag"), Some(true));
        assert_eq!(c.get("ports.none"), None);
        assert_eq!(fold_key("Remote.Origin.URL"), "remote.Origin.url");
    }
}

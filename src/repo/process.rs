//! Running git itself: a command for a directory, its output, and git's own words when it
//! fails; and the questions only git can answer (is this file tracked).

use super::*;

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
/// Makes `cmd` find its repository from its own directory: the variables git set for this
/// process (in a hook, say) name this one.
pub fn in_other_repository(cmd: &mut Command) -> &mut Command {
    for v in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_COMMON_DIR",
        "GIT_INDEX_FILE",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

pub(super) fn git_command(dir: Option<&Path>) -> Command {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        in_other_repository(&mut cmd).current_dir(d);
    }
    cmd
}

pub(super) fn run_git(cmd: &mut Command) -> Result<std::process::Output> {
    cmd.stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: "git".into(),
            source,
        })
}

/// git's own words for a failure: its `fatal:` line, and for an ownership refusal the fix.
pub(super) fn git_failure(stderr: &[u8]) -> Error {
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

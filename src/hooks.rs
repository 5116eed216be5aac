//! The post-checkout hook file: where git looks for it, what kind of script it is, and the
//! marked block git-ports keeps in it (see `block.rs`), placed right after the shebang so an
//! `exit` in the user's own lines cannot skip it, replaced in place on re-install and removed
//! exactly on uninstall. The user's lines are never touched, and the file is written through
//! the same writer as env files (`userfile.rs`): a failed or killed install or uninstall
//! leaves it byte for byte as it was.

use std::path::{Path, PathBuf};

use crate::block::{self, Span};
use crate::repo::Repo;
use crate::userfile::{self, Failure, UserFile};

pub const HOOK: &str = "post-checkout";
/// What the block runs: git-ports itself, which is on PATH wherever `git ports` works (git
/// also puts its exec path on PATH for hooks), sparing one git process per checkout.
const RUN_LINE: &str = "git-ports hook run post-checkout \"$@\"";
/// The block's first line in a hook file that `hook install` created: `uninstall` removes
/// such a file whole when nothing else was added to it. A file the user had is never removed.
const CREATED: &str = "# This file was created by `git ports hook install`.";

/// The block's body.
fn body(created: bool) -> Vec<String> {
    let mut b = Vec::new();
    if created {
        b.push(CREATED.to_string());
    }
    b.push(
        "# Allocates ports to each new worktree (`git ports hook install`); never fails a checkout."
            .into(),
    );
    b.push(format!(
        "{RUN_LINE} || echo \"git-ports: warning: no ports were allocated (the checkout itself succeeded)\" >&2"
    ));
    b
}

/// Where git looks for hooks, as git does: `core.hooksPath`, which when relative is read
/// from the root of the worktree where the git command runs (for `git worktree add`, the one
/// you add from; so each worktree has its own copy), else `<common dir>/hooks`, shared by
/// every worktree.
pub struct HooksDir {
    pub dir: PathBuf,
    /// `core.hooksPath` as written, when it is relative.
    pub relative: Option<PathBuf>,
}

pub fn hooks_dir(repo: &Repo) -> HooksDir {
    match repo.config.get_path("core.hooksPath") {
        Some(p) if p.is_absolute() => HooksDir {
            dir: p,
            relative: None,
        },
        Some(p) => {
            let current = repo.current().ok();
            let base = current.map_or(repo.common_dir.clone(), |w| w.path);
            HooksDir {
                dir: base.join(&p),
                relative: Some(p),
            }
        }
        None => HooksDir {
            dir: repo.common_dir.join("hooks"),
            relative: None,
        },
    }
}

/// The file to put the block in. A hook manager that regenerates its hooks directory
/// (husky's `.husky/_`, rewritten on every `npm install`) would drop the block: it goes in
/// the file the manager runs for the user instead (`.husky/post-checkout`).
pub fn hook_file(dir: &Path) -> (PathBuf, Option<&'static str>) {
    let generated = dir.file_name().is_some_and(|n| n == "_")
        && (dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == ".husky")
            || dir.join("h").is_file()
            || dir.join("husky.sh").is_file());
    match dir.parent() {
        Some(parent) if generated => (parent.join(HOOK), Some("husky")),
        _ => (dir.join(HOOK), None),
    }
}

/// The interpreter a hook's shebang names, if it has one: `python3` for
/// `#!/usr/bin/env python3`.
fn interpreter(text: &[u8]) -> Option<String> {
    let first = block::lines(text).first().copied().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let interp = first.trim().strip_prefix("#!")?;
    let mut words = interp.split_whitespace();
    let mut prog = words.next().unwrap_or("");
    if prog.ends_with("/env") {
        prog = words.find(|w| !w.starts_with('-')).unwrap_or("");
    }
    Some(prog.rsplit('/').next().unwrap_or("").to_string())
}

/// A shell script, as git runs it: a shell shebang, or none at all (git runs a hook without
/// one with `sh`).
pub fn is_shell(text: &[u8]) -> bool {
    match interpreter(text) {
        None => true,
        Some(name) => matches!(
            name.as_str(),
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "mksh"
        ),
    }
}

/// The line to add by hand to a hook in another language, in that language.
pub fn line_for(text: &[u8]) -> String {
    let name = interpreter(text).unwrap_or_default();
    let args = HOOK;
    if name.starts_with("python") {
        format!(
            "import subprocess, sys; subprocess.call([\"git\", \"ports\", \"hook\", \"run\", \"{args}\", *sys.argv[1:]])"
        )
    } else if name.starts_with("node") {
        format!(
            "require(\"child_process\").spawnSync(\"git\", [\"ports\", \"hook\", \"run\", \"{args}\", ...process.argv.slice(2)], {{ stdio: \"inherit\" }});"
        )
    } else if name.starts_with("perl") {
        format!("system(\"git\", \"ports\", \"hook\", \"run\", \"{args}\", @ARGV);")
    } else if name.starts_with("ruby") {
        format!("system(\"git\", \"ports\", \"hook\", \"run\", \"{args}\", *ARGV)")
    } else {
        format!("a call of `git ports hook run {args}` with the hook's three arguments")
    }
}

/// Whether a hook in another language already holds the line [`line_for`] gives for it.
fn has_hand_line(text: &[u8]) -> bool {
    let want = line_for(text);
    block::lines(text)
        .iter()
        .any(|l| String::from_utf8_lossy(l).trim() == want)
}

/// How the hook file stands.
#[derive(Debug)]
pub enum State {
    /// No file.
    Absent,
    /// git-ports' block is in it.
    Block { span: Span, created: bool },
    /// A hook in another language that calls `git ports hook run` itself.
    ByHand,
    /// A shell script without the block: it can be added.
    Shell,
    /// A hook in another language without the call: the line to add to it by hand.
    Foreign { line: String },
    /// Its markers are broken: the line numbers.
    Broken(String),
}

/// The hook file, read, and how it stands.
pub struct Hook {
    pub file: UserFile,
    pub state: State,
}

/// Reads the hook file at `path`. A symlinked hook is written through to its target when
/// the target exists; a dangling link, a pipe or a directory is refused.
pub fn read(path: &Path) -> Result<Hook, Failure> {
    let file = userfile::open(path, None)?;
    let state = match &file.bytes {
        None => State::Absent,
        Some(text) => match block::find(text) {
            Err(why) => State::Broken(why),
            Ok(Some(span)) => State::Block {
                span,
                created: block::body(text, span).first().map(String::as_str) == Some(CREATED),
            },
            Ok(None) if is_shell(text) => State::Shell,
            Ok(None) if has_hand_line(text) => State::ByHand,
            Ok(None) => State::Foreign {
                line: line_for(text),
            },
        },
    };
    Ok(Hook { file, state })
}

/// The hook file's bytes with the block in it: replaced in place, after the shebang, or as a
/// new file of its own.
pub fn with_block(hook: &Hook) -> Vec<u8> {
    let text = hook.file.text();
    let eol = block::eol(text);
    match hook.state {
        State::Block { span, created } => {
            block::replace(text, span, &block::render(&body(created), eol))
        }
        State::Absent => {
            let mut b = b"#!/bin/sh\n".to_vec();
            b.extend(block::render(&body(true), "\n"));
            b
        }
        _ => {
            let at = usize::from(text.starts_with(b"#!"));
            block::insert(text, at, &block::render(&body(false), eol))
        }
    }
}

/// What uninstall leaves: the file without the block, or `None` when the file was created by
/// `hook install` and holds nothing else of the user's.
pub fn without_block(text: &[u8], span: Span, created: bool) -> Option<Vec<u8>> {
    let rest = block::remove(text, span);
    let empty = rest.iter().all(u8::is_ascii_whitespace) || rest == b"#!/bin/sh\n";
    (!(created && empty)).then_some(rest)
}

/// Whether the hook git runs here calls git-ports, where that hook is, whether git will run
/// it, and `core.hooksPath` when it is relative.
pub fn installed(repo: &Repo) -> (bool, PathBuf, bool, Option<PathBuf>) {
    let hooks = hooks_dir(repo);
    let (path, manager) = hook_file(&hooks.dir);
    let found = read(&path).is_ok_and(|h| matches!(h.state, State::Block { .. } | State::ByHand));
    let runs = found && (manager.is_some() || is_executable(&path));
    (found, path, runs, hooks.relative)
}

pub fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.exists()
    }
}

/// Whether a hook run may be for a new worktree, from its arguments alone: git runs
/// post-checkout with (old HEAD, new HEAD, 1 for a branch checkout), and `git worktree add`
/// gives the null id as old HEAD. Anything else returns before the repository is opened.
pub fn may_allocate(hook: &str, args: &[String]) -> bool {
    let [old, _new, flag] = args else {
        return false;
    };
    hook == HOOK && !old.is_empty() && old.bytes().all(|b| b == b'0') && flag == "1"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(text: &str) -> Hook {
        let file = UserFile::for_test(text.as_bytes());
        let state = match block::find(file.text()) {
            Ok(Some(span)) => State::Block {
                span,
                created: false,
            },
            _ => State::Shell,
        };
        Hook { file, state }
    }

    #[test]
    fn block_goes_after_the_shebang_and_comes_out_exactly() {
        let user = "#!/bin/bash\necho hi\nexit 0\n";
        let installed = with_block(&hook(user));
        let text = String::from_utf8_lossy(&installed).into_owned();
        assert!(
            text.starts_with(&format!("#!/bin/bash\n{}\n", block::BEGIN)),
            "{text}"
        );
        assert_eq!(with_block(&hook(&text)), installed);
        let span = block::find(&installed).ok().flatten();
        let Some(span) = span else {
            panic!("no block in {text}");
        };
        assert_eq!(
            without_block(&installed, span, false),
            Some(user.as_bytes().to_vec())
        );
        // No shebang: the block goes first, and uninstall gives the file back as it was.
        let bare = "echo hi\n";
        let with = with_block(&hook(bare));
        let span = block::find(&with)
            .ok()
            .flatten()
            .map_or(Span { begin: 0, end: 0 }, |s| s);
        assert_eq!(
            without_block(&with, span, false),
            Some(bare.as_bytes().to_vec())
        );
        // The user's own empty hook stays, empty.
        assert_eq!(
            without_block(&with_block(&hook("")), Span { begin: 0, end: 3 }, false),
            Some(Vec::new())
        );
    }

    #[test]
    fn shells() {
        for ok in [
            "#!/bin/sh\n",
            "#!/usr/bin/env bash\n",
            "#!/bin/zsh -e\n",
            "",
            "echo no shebang: git runs it with sh\n",
        ] {
            assert!(is_shell(ok.as_bytes()), "{ok}");
        }
        for bad in ["#!/usr/bin/env python3\n", "#!/usr/bin/perl\n"] {
            assert!(!is_shell(bad.as_bytes()), "{bad}");
        }
    }
}

//! `git ports hook`: the post-checkout hook that allocates ports on `git worktree add`.
//!
//! The hook is a marked block in the post-checkout file, placed right after the shebang so an
//! `exit` in the user's own lines cannot skip it, replaced in place on re-install and removed
//! exactly on uninstall. The user's lines are never touched.

use std::fs;
use std::path::{Path, PathBuf};

use super::Ctx;
use super::allocate::allocate_all;
use super::prune::prune;
use crate::cli::HookCommand;
use crate::config::KEY_AUTO_ALLOCATE;
use crate::error::{Error, Result};
use crate::output::Style;

pub const BEGIN: &str = "# >>> git-ports >>>";
pub const END: &str = "# <<< git-ports <<<";
const HOOK: &str = "post-checkout";
/// What the block runs: git-ports itself, which is on PATH wherever `git ports` works (git
/// also puts its exec path on PATH for hooks), sparing one git process per checkout.
const RUN_LINE: &str = "git-ports hook run post-checkout \"$@\"";

fn block() -> String {
    format!(
        "{BEGIN}\n\
         # Allocates ports to each new worktree (`git ports hook install`); never fails a checkout.\n\
         {RUN_LINE} || echo \"git-ports: warning: no ports were allocated (the checkout itself succeeded)\" >&2\n\
         {END}\n"
    )
}

pub fn run(ctx: &mut Ctx, command: HookCommand) -> Result<()> {
    match command {
        HookCommand::Install { services } => install(ctx, services),
        HookCommand::Uninstall => uninstall(ctx),
        HookCommand::Status => status(ctx),
        HookCommand::Run { hook, args } => run_hook(ctx, &hook, &args),
    }
}

/// Where git looks for hooks, as git does: `core.hooksPath`, which when relative is read
/// from the root of the worktree where the git command runs (for `git worktree add`, the one
/// you add from; so each worktree has its own copy), else `<common dir>/hooks`, shared by
/// every worktree.
struct HooksDir {
    dir: PathBuf,
    /// `core.hooksPath` as written, when it is relative.
    relative: Option<PathBuf>,
}

fn hooks_dir(ctx: &Ctx) -> HooksDir {
    match ctx.repo.config.get_path("core.hooksPath") {
        Some(p) if p.is_absolute() => HooksDir {
            dir: p,
            relative: None,
        },
        Some(p) => {
            let current = ctx.repo.current().ok();
            let base = current.map_or(ctx.repo.common_dir.clone(), |w| w.path);
            HooksDir {
                dir: base.join(&p),
                relative: Some(p),
            }
        }
        None => HooksDir {
            dir: ctx.repo.common_dir.join("hooks"),
            relative: None,
        },
    }
}

/// The file to put the block in. A hook manager that regenerates its hooks directory
/// (husky's `.husky/_`, rewritten on every `npm install`) would drop the block: it goes in
/// the file the manager runs for the user instead (`.husky/post-checkout`).
fn hook_file(dir: &Path) -> (PathBuf, Option<&'static str>) {
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

/// The line to add by hand to a hook in another language, in that language.
fn line_for(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    let args = "post-checkout";
    if first.contains("python") {
        format!(
            "import subprocess, sys; subprocess.call([\"git\", \"ports\", \"hook\", \"run\", \"{args}\", *sys.argv[1:]])"
        )
    } else if first.contains("node") {
        format!(
            "require(\"child_process\").spawnSync(\"git\", [\"ports\", \"hook\", \"run\", \"{args}\", ...process.argv.slice(2)], {{ stdio: \"inherit\" }});"
        )
    } else if first.contains("perl") {
        format!("system(\"git\", \"ports\", \"hook\", \"run\", \"{args}\", @ARGV);")
    } else if first.contains("ruby") {
        format!("system(\"git\", \"ports\", \"hook\", \"run\", \"{args}\", *ARGV)")
    } else {
        format!("a call of `git ports hook run {args}` with the hook's three arguments")
    }
}

fn hook_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Hook {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A shell script: a shell shebang, or an empty file.
fn is_shell(text: &str) -> bool {
    let first = text.lines().next().unwrap_or("").trim();
    if text.trim().is_empty() {
        return true;
    }
    let Some(interp) = first.strip_prefix("#!") else {
        return false;
    };
    let mut words = interp.split_whitespace();
    let mut prog = words.next().unwrap_or("");
    if prog.ends_with("/env") {
        prog = words.find(|w| !w.starts_with('-')).unwrap_or("");
    }
    let name = prog.rsplit('/').next().unwrap_or("");
    matches!(
        name,
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "mksh"
    )
}

/// Splits out our block: (text before, block present, text after).
fn split_block(text: &str) -> Option<(&str, &str)> {
    let start = text.find(BEGIN)?;
    let end_rel = text[start..].find(END)?;
    let mut end = start + end_rel + END.len();
    if text[end..].starts_with('\n') {
        end += 1;
    }
    Some((&text[..start], &text[end..]))
}

fn with_block(text: &str) -> String {
    if let Some((before, after)) = split_block(text) {
        return format!("{before}{}{after}", block());
    }
    match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("#!") => format!("{first}\n{}{rest}", block()),
        _ if text.trim().is_empty() => format!("#!/bin/sh\n{}", block()),
        _ => format!("{}{text}", block()),
    }
}

fn install(ctx: &mut Ctx, services: Vec<String>) -> Result<()> {
    for s in &services {
        ctx.repo.settings.service(s)?;
    }
    let hooks = hooks_dir(ctx);
    let (path, manager) = hook_file(&hooks.dir);
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(hooks.dir.clone());
    let existing = match fs::read(&path) {
        Ok(bytes) => Some(String::from_utf8(bytes).map_err(|_| {
            hook_error(
                &path,
                "is not a text file; add a call of `git ports hook run post-checkout` with the hook's three arguments to it by hand".to_string(),
            )
        })?),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            None
        }
        Err(e) => {
            return Err(Error::Io {
                path,
                action: "cannot read",
                source: e,
            });
        }
    };
    if let Some(text) = &existing
        && split_block(text).is_none()
        && !is_shell(text)
        && manager.is_none()
    {
        return Err(hook_error(
            &path,
            format!(
                "is not a shell script; add this to it by hand: {}",
                line_for(text)
            ),
        ));
    }

    let mut services = services;
    if services.is_empty() && ctx.repo.settings.auto_allocate.is_empty() {
        services.push("web".into());
    }
    fs::create_dir_all(&dir).map_err(|source| Error::Unwritable {
        path: dir.clone(),
        action: "cannot create",
        source,
    })?;
    let text = with_block(existing.as_deref().unwrap_or(""));
    let write_err = |source| Error::Unwritable {
        path: path.clone(),
        action: "cannot write",
        source,
    };
    fs::write(&path, &text).map_err(write_err)?;
    if !services.is_empty() {
        ctx.repo
            .set_local(KEY_AUTO_ALLOCATE, &services)
            .map_err(|e| match e {
                Error::GitSays(m) => Error::Unwritable {
                    path: ctx.repo.common_dir.join("config"),
                    action: "cannot write",
                    source: std::io::Error::other(m),
                },
                e => e,
            })?;
        ctx.repo.settings.auto_allocate = services;
    }
    #[cfg(unix)]
    if existing.is_none() && manager.is_none() {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(write_err)?;
    }
    let tick = ctx.out.paint("✓", Style::Good);
    let verb = match &existing {
        None => "Created",
        Some(t) if split_block(t).is_some() => "Updated",
        Some(_) => "Added git-ports to",
    };
    ctx.out.line(format!(
        "{tick} {verb} post-checkout hook {}",
        path.display()
    ));
    ctx.out.line(format!(
        "{tick} New worktrees get: {} ({KEY_AUTO_ALLOCATE})",
        ctx.repo.settings.auto_allocate.join(", ")
    ));
    if let Some(m) = manager {
        ctx.out.line(format!(
            "Note: {} is generated by {m}; the block went in {}, which {m} runs.",
            hooks.dir.display(),
            path.display()
        ));
        if hooks.relative.is_some() {
            let abs = hooks.dir.display().to_string();
            ctx.out.line(format!(
                "Note: {m}'s generated directory is not committed, so a new worktree runs no \
                 hook until {m} is installed in it. To allocate on `git worktree add`, let every \
                 worktree run this one's hooks: git config core.hooksPath {}",
                crate::output::shell_quote(&abs)
            ));
        }
    }
    if let (Some(rel), None) = (&hooks.relative, manager) {
        ctx.out.line(format!(
            "Note: core.hooksPath is relative ({}): git runs the copy in the worktree where the \
             git command runs (for `git worktree add`, the one you add from). Commit {} so that \
             every worktree has it.",
            rel.display(),
            path.display()
        ));
    }
    if manager.is_none() && !is_executable(&path) {
        let warn = ctx.out.paint("warning", Style::Warn);
        ctx.out.line(format!(
            "{warn}: the hook is not executable, so git will not run it: chmod +x {}",
            crate::output::shell_quote(&path.display().to_string())
        ));
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.exists()
    }
}

fn uninstall(ctx: &mut Ctx) -> Result<()> {
    let (path, _) = hook_file(&hooks_dir(ctx).dir);
    let text = fs::read_to_string(&path).unwrap_or_default();
    let Some((before, after)) = split_block(&text) else {
        ctx.out.line(format!(
            "The git-ports hook is not installed in {}.",
            path.display()
        ));
        return Ok(());
    };
    let rest = format!("{before}{after}");
    let only_shebang = rest
        .lines()
        .all(|l| l.trim().is_empty() || (l.starts_with("#!") && rest.starts_with(l)));
    let tick = ctx.out.paint("✓", Style::Good);
    if only_shebang {
        fs::remove_file(&path).map_err(|source| Error::Io {
            path: path.clone(),
            action: "cannot remove",
            source,
        })?;
        ctx.out.line(format!(
            "{tick} Removed {} (nothing else was in it)",
            path.display()
        ));
    } else {
        fs::write(&path, rest).map_err(|source| Error::Io {
            path: path.clone(),
            action: "cannot write",
            source,
        })?;
        ctx.out.line(format!(
            "{tick} Removed the git-ports block from {}; your own lines are kept",
            path.display()
        ));
    }
    Ok(())
}

/// Whether the block is in the hook git runs here, where that hook is, whether git will run
/// it, and `core.hooksPath` when it is relative.
pub fn installed(ctx: &Ctx) -> (bool, PathBuf, bool, Option<PathBuf>) {
    let hooks = hooks_dir(ctx);
    let (path, manager) = hook_file(&hooks.dir);
    let found = fs::read_to_string(&path).is_ok_and(|t| split_block(&t).is_some());
    let runs = found && (manager.is_some() || is_executable(&path));
    (found, path, runs, hooks.relative)
}

fn status(ctx: &mut Ctx) -> Result<()> {
    let (installed, path, runs, relative) = installed(ctx);
    let services = &ctx.repo.settings.auto_allocate;
    let out = &mut ctx.out;
    if installed {
        out.line(format!("Hook: installed in {}", path.display()));
    } else {
        out.line(format!(
            "Hook: not installed (it would go in {})",
            path.display()
        ));
    }
    if services.is_empty() {
        out.line(format!("Services: none ({KEY_AUTO_ALLOCATE} is not set)"));
    } else {
        out.line(format!(
            "Services: {} ({KEY_AUTO_ALLOCATE})",
            services.join(", ")
        ));
    }
    if installed && !runs {
        out.line("Warning: the hook is not executable, so git does not run it.");
    }
    if let Some(rel) = relative {
        out.line(format!(
            "Note: core.hooksPath is relative ({}): git runs the copy in the worktree where \
             the git command runs, so the block must be committed to reach every worktree.",
            rel.display()
        ));
    }
    Ok(())
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

/// Allocates for a worktree that `git worktree add` just created. `git clone` and a checkout
/// from an unborn branch give the same arguments, but in the main worktree: only a linked
/// worktree is new. Stale worktrees are pruned first, so their ports are handed out again.
fn run_hook(ctx: &mut Ctx, hook: &str, args: &[String]) -> Result<()> {
    if !may_allocate(hook, args) {
        return Ok(());
    }
    let wt = ctx.repo.current()?;
    if wt.is_main {
        return Ok(());
    }
    if let Some(e) = ctx.repo.settings.problem(KEY_AUTO_ALLOCATE) {
        return Err(e);
    }
    if ctx.repo.settings.auto_allocate.is_empty() {
        return Ok(());
    }
    let services = ctx.repo.settings.auto_allocate.clone();
    let repo = &ctx.repo;
    let now = ctx.now;
    let (pruned, allocated) = ctx.update(|reg, elsewhere| {
        let pruned = prune(repo, reg);
        let allocated = allocate_all(reg, elsewhere, repo, &wt, &services, None, now)?;
        Ok((pruned, allocated))
    })?;
    for p in pruned {
        ctx.out.line(format!(
            "git-ports: released port {} ({}) of removed worktree '{}'",
            p.port, p.service, p.worktree
        ));
    }
    super::env::sync_files(ctx, std::slice::from_ref(&wt.key));
    for a in allocated {
        let again = a
            .previously_held_by
            .as_ref()
            .map(|by| format!(" (previously held by {by})"))
            .unwrap_or_default();
        ctx.out.line(format!(
            "git-ports: {} port {} for worktree '{}'{again}",
            a.service, a.port, wt.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_goes_after_the_shebang_and_comes_out_exactly() {
        let user = "#!/bin/bash\necho hi\nexit 0\n";
        let installed = with_block(user);
        assert!(
            installed.starts_with(&format!("#!/bin/bash\n{BEGIN}\n")),
            "{installed}"
        );
        assert_eq!(with_block(&installed), installed);
        let (before, after) = split_block(&installed).unwrap_or(("", ""));
        assert_eq!(format!("{before}{after}"), user);
        assert!(with_block("").starts_with("#!/bin/sh\n"));
    }

    #[test]
    fn shells() {
        for ok in [
            "#!/bin/sh\n",
            "#!/usr/bin/env bash\n",
            "#!/bin/zsh -e\n",
            "",
        ] {
            assert!(is_shell(ok), "{ok}");
        }
        for bad in ["#!/usr/bin/env python3\n", "#!/usr/bin/perl\n", "echo hi\n"] {
            assert!(!is_shell(bad), "{bad}");
        }
    }
}

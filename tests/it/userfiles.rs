//! The user's own files: env files and hooks are never damaged, detached, copied out of the
//! worktree or left half-written. Each numbered case of the issue that found them is here.
//!
//! Ports: this module takes 29000-29099.

use std::fs;
#[cfg(unix)]
use std::os::unix::fs::{MetadataExt, PermissionsExt};
#[cfg(unix)]
use std::path::Path;
#[cfg(unix)]
use std::time::{Duration, Instant};

use crate::promise::env_files_agree;
#[cfg(unix)]
use crate::promise::leftovers;
#[cfg(unix)]
use crate::support::Run;
use crate::support::{Env, Repo, same, scrub, seen};

const BEGIN: &str = "# >>> git-ports >>>";
const END: &str = "# <<< git-ports <<<";
const HEADER: &str = "# Written by git ports; these lines are replaced when the ports change.";

fn block(lines: &str) -> String {
    format!("{BEGIN}\n{HEADER}\n{lines}{END}\n")
}

/// The header of a file written with `env --write` that no `ports.envFile` names: nothing
/// rewrites it, and it says so.
const BY_HAND: &str = "# Written by `git ports env --write`; run it again when the ports change.";

fn by_hand(lines: &str) -> String {
    format!("{BEGIN}\n{BY_HAND}\n{lines}{END}\n")
}

fn app(env: &Env, base: u16) -> Repo<'_> {
    let repo = env.repo("app");
    // The blocks without host names: these tests are about the files, not their variables.
    repo.git(["config", "ports.hostVars", "false"]);
    repo.range("web", base, base + 4);
    repo.range("api", base + 5, base + 9);
    repo
}

fn broken_markers_are_refused_with_their_line_numbers_and_nothing_is_written() {
    let env = Env::new();
    let repo = app(&env, 29000);
    repo.run(["allocate", "web"]).ok();
    let file = repo.dir.join(".env.local");
    // 1. A start marker whose end line was deleted by hand: the user's lines after it are
    // never taken for the block, however often the ports change.
    let unterminated =
        format!("{BEGIN}\nWEB_PORT=29000\nDATABASE_URL=postgres://x\nSTRIPE_KEY=sk_live_1\n");
    let nested = format!("{BEGIN}\nA=1\n{BEGIN}\nSECRET=2\n{END}\n");
    let two = format!("{}KEEP=1\n{}", block("WEB_PORT=1\n"), block("WEB_PORT=2\n"));
    let stray = format!("KEEP=1\n{END}\n");
    for (text, why) in [
        (
            &unterminated,
            "line 1 opens a git-ports block that no line closes",
        ),
        (
            &nested,
            "line 1 opens a git-ports block and line 3 opens another before it is closed",
        ),
        (&two, "it holds two git-ports blocks (lines 1-4 and 6-9)"),
        (&stray, "line 2 closes a git-ports block that no line opens"),
    ] {
        fs::write(&file, text).expect("write");
        for _ in 0..2 {
            let run = repo.run(["env", "--write", ".env.local"]);
            same(
                &seen(&run, &env),
                &format!(
                    "--- stderr\ngit-ports: [TMP]/app/.env.local: {why}; nothing was written (mend the markers by hand)\n--- exit 5\n"
                ),
            );
            repo.run(["allocate", "api"]).ok();
            repo.run(["release", "-w", ".", "--service", "api"]).ok();
        }
        assert_eq!(&fs::read_to_string(&file).expect("read"), text);
    }
    // 2. Two blocks in a ports.envFile file: status and doctor say so, with the lines.
    fs::write(&file, &two).expect("write");
    repo.git(["config", "ports.envFile", ".env.local"]);
    let status = repo.run(["status"]);
    assert!(
        scrub(&status.ok().stdout, &env).ends_with(
            "Env file [TMP]/app/.env.local cannot be kept in step: it holds two git-ports blocks (lines 1-4 and 6-9).\n"
        ),
        "{}",
        status.stdout
    );
    let doctor = repo.run(["doctor"]);
    doctor.code(4);
    assert!(
        scrub(&doctor.stdout, &env).contains(
            "PROBLEM env-file    [TMP]/app/.env.local cannot be kept in step: it holds two git-ports blocks (lines 1-4 and 6-9)\n"
        ),
        "{}",
        doctor.stdout
    );
    // A change warns about it and leaves the file alone.
    let run = repo.run(["allocate", "api"]);
    run.ok();
    assert!(
        scrub(&run.stderr, &env).contains("git-ports: warning: [TMP]/app/.env.local cannot be kept in step: it holds two git-ports blocks (lines 1-4 and 6-9)\n"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read_to_string(&file).expect("read"), two);
    // A comment that quotes the marker text is the user's line, kept whole.
    let quoted = format!("# our block starts with '{BEGIN}'\nKEEP=1\n");
    fs::write(&file, &quoted).expect("write");
    repo.run(["env", "--write", ".env.local"]).ok();
    same(
        &fs::read_to_string(&file).expect("read"),
        &format!(
            "{quoted}{}",
            block(
                "WEB_PORT=29000\nAPI_PORT=29005\nWEB_URL=http://localhost:29000\nAPI_URL=http://localhost:29005\n"
            )
        ),
    );
}

/// Runs git-ports with a bound: a command that blocks (on a pipe, say) fails the test instead
/// of hanging it.
#[cfg(unix)]
fn bounded(env: &Env, dir: &Path, args: &[&str]) -> Run {
    let mut child = env
        .cmd(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("git-ports {args:?} blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().expect("output"))
}

#[cfg(unix)]
fn a_named_pipe_is_never_opened_and_never_replaced() {
    let env = Env::new();
    let repo = app(&env, 29010);
    repo.git(["config", "ports.envFile", ".env"]);
    let fifo = repo.dir.join(".env");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // 3. status, doctor and allocate answer at once; the pipe stays a pipe.
    let run = bounded(&env, &repo.dir, &["allocate", "web"]);
    run.ok();
    same(
        &scrub(&run.stderr, &env),
        "git-ports: warning: [TMP]/app/.env cannot be kept in step: it is a named pipe, not a regular file; git-ports reads and writes only regular files\n",
    );
    bounded(&env, &repo.dir, &["status"]).ok();
    let doctor = bounded(&env, &repo.dir, &["doctor"]);
    doctor.code(4);
    assert!(
        doctor
            .stdout
            .contains("is a named pipe, not a regular file"),
        "{}",
        doctor.stdout
    );
    // With a writer on the pipe (a secret manager serving it), nothing reads it either.
    let writer = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("echo SECRET=1 > '{}'", fifo.display()))
        .spawn()
        .expect("writer");
    bounded(&env, &repo.dir, &["allocate", "api"]).ok();
    let run = bounded(&env, &repo.dir, &["env", "--write", ".env"]);
    run.code(5);
    assert!(
        fs::symlink_metadata(&fifo)
            .expect("still there")
            .file_type()
            .is_fifo_like(),
        "the pipe was replaced"
    );
    let mut writer = writer;
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(leftovers(env.root()).is_empty());
}

#[cfg(unix)]
trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

#[cfg(unix)]
impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

#[cfg(unix)]
fn symlinks_are_written_through_inside_the_worktree_and_refused_outside() {
    let env = Env::new();
    let repo = app(&env, 29020);
    repo.run(["allocate", "web"]).ok();
    let wt = &repo.dir;
    // 4. A link to a file inside the worktree: the target gets the block, the link stays.
    fs::create_dir_all(wt.join("config")).expect("mkdir");
    fs::write(wt.join("config/shared.env"), "A=1\n").expect("write");
    std::os::unix::fs::symlink("config/shared.env", wt.join(".env.local")).expect("link");
    repo.run(["env", "--write", ".env.local"]).ok();
    assert!(
        fs::symlink_metadata(wt.join(".env.local"))
            .expect("link")
            .file_type()
            .is_symlink()
    );
    same(
        &fs::read_to_string(wt.join("config/shared.env")).expect("read"),
        &format!(
            "A=1\n{}",
            by_hand("WEB_PORT=29020\nWEB_URL=http://localhost:29020\n")
        ),
    );
    // A link to a file outside the worktree (~/.bashrc) is refused: nothing is copied in,
    // nothing written out there.
    let bashrc = env.path("home/.bashrc");
    fs::write(&bashrc, "export PS1=x\n").expect("write");
    std::os::unix::fs::symlink(&bashrc, wt.join("out.env")).expect("link");
    let run = repo.run(["env", "--write", "out.env"]);
    same(
        &seen(&run, &env),
        "--- stderr\ngit-ports: [TMP]/app/out.env: is a symlink to [TMP]/home/.bashrc, outside the worktree; git-ports never writes through a link that leaves it\n--- exit 5\n",
    );
    assert_eq!(fs::read_to_string(&bashrc).expect("read"), "export PS1=x\n");
    assert!(
        fs::symlink_metadata(wt.join("out.env"))
            .expect("link")
            .file_type()
            .is_symlink()
    );
    // A dangling link is refused and kept.
    std::os::unix::fs::symlink("nowhere.env", wt.join("dangling.env")).expect("link");
    let run = repo.run(["env", "--write", "dangling.env"]);
    same(
        &seen(&run, &env),
        "--- stderr\ngit-ports: [TMP]/app/dangling.env: is a symlink to nowhere.env, which does not exist; git-ports writes through a link only to an existing file\n--- exit 5\n",
    );
    assert!(!wt.join("nowhere.env").exists());
    // 5. A directory that resolves outside the worktree (a committed `config -> /some/dir`).
    let outside = env.path("some-dir");
    fs::create_dir_all(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, wt.join("cfg")).expect("link");
    repo.git(["config", "ports.envFile", "cfg/.env.local"]);
    let run = repo.run(["allocate", "api"]);
    run.ok();
    same(
        &scrub(&run.stderr, &env),
        "git-ports: warning: [TMP]/app/cfg/.env.local cannot be kept in step: it is outside the worktree: its directory resolves to [TMP]/some-dir\n",
    );
    let run = repo.run(["env", "--write", "cfg/.env.local"]);
    run.code(5);
    assert_eq!(fs::read_dir(&outside).expect("dir").count(), 0);
}

#[cfg(unix)]
fn mode_owner_line_endings_and_read_only_files_are_honoured() {
    let env = Env::new();
    let repo = app(&env, 29030);
    repo.run(["allocate", "web"]).ok();
    let file = repo.dir.join(".env.local");
    // 9. Read-only: refused in one line, untouched.
    fs::write(&file, "A=1\n").expect("write");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).expect("chmod");
    let run = repo.run(["env", "--write", ".env.local"]);
    same(
        &seen(&run, &env),
        "--- stderr\ngit-ports: [TMP]/app/.env.local: is read-only; git-ports does not write a file made read-only (chmod u+w lets it keep its block)\n--- exit 5\n",
    );
    assert_eq!(fs::read_to_string(&file).expect("read"), "A=1\n");
    // Mode and owner are kept (the suite runs as root, so another owner can be given).
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).expect("chmod");
    let chown = std::process::Command::new("chown")
        .arg("12345:23456")
        .arg(&file)
        .status()
        .expect("chown");
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    repo.run(["env", "--write", ".env.local"]).ok();
    let m = fs::metadata(&file).expect("meta");
    assert_eq!(m.mode() & 0o7777, 0o640);
    if root {
        assert!(chown.success());
        assert_eq!((m.uid(), m.gid()), (12345, 23456));
    } else {
        crate::support::skip_part(
            "a file of another owner",
            "not root: such a file cannot be made here",
        );
    }
    // A hard link is refused: a rename would detach it.
    let file2 = repo.dir.join("linked.env");
    fs::write(&file2, "B=1\n").expect("write");
    fs::hard_link(&file2, repo.dir.join("other-name.env")).expect("link");
    let run = repo.run(["env", "--write", "linked.env"]);
    same(
        &seen(&run, &env),
        "--- stderr\ngit-ports: [TMP]/app/linked.env: has 2 hard links; replacing it would detach the other name(s) from it\n--- exit 5\n",
    );
    // CRLF files get a CRLF block.
    let crlf = repo.dir.join("crlf.env");
    fs::write(&crlf, "A=1\r\nB=2\r\n").expect("write");
    repo.run(["env", "--write", "crlf.env"]).ok();
    same(
        &fs::read_to_string(&crlf).expect("read"),
        &format!(
            "A=1\r\nB=2\r\n{BEGIN}\r\n{BY_HAND}\r\nWEB_PORT=29030\r\nWEB_URL=http://localhost:29030\r\n{END}\r\n"
        ),
    );
    // And it stays CRLF when the ports change.
    repo.run(["allocate", "api"]).ok();
    repo.run(["env", "--write", "crlf.env"]).ok();
    same(
        &fs::read_to_string(&crlf).expect("read"),
        &format!(
            "A=1\r\nB=2\r\n{BEGIN}\r\n{BY_HAND}\r\nWEB_PORT=29030\r\nAPI_PORT=29035\r\nWEB_URL=http://localhost:29030\r\nAPI_URL=http://localhost:29035\r\n{END}\r\n"
        ),
    );
}

fn two_changes_at_once_in_one_worktree_never_lose_a_port_in_its_env_file() {
    let env = Env::new();
    let repo = app(&env, 29040);
    repo.git(["config", "ports.envFile", ".env.local"]);
    let wt = repo.worktree("wt", "wt");
    // 8. Each round: two allocations in parallel in one worktree, then the file must hold
    // both ports, read independently of git-ports.
    for _ in 0..6 {
        let children = vec![
            crate::robust::spawn(&env, &wt, &["allocate", "web"]),
            crate::robust::spawn(&env, &wt, &["allocate", "api"]),
        ];
        for out in crate::robust::finish(children) {
            assert!(out.status.success(), "{out:?}");
        }
        let commons = vec![repo.dir.join(".git")];
        env_files_agree(&commons).expect("env files agree");
        env.run(&wt, ["release", "-w", "."]).ok();
        env_files_agree(&commons).expect("env files agree");
    }
}

fn doctor_fix_rewrites_the_env_files_of_the_worktrees_it_moves() {
    let env = Env::new();
    let a = env.repo("a");
    // The block without host names: this test is about the file, not its variables.
    a.git(["config", "ports.hostVars", "false"]);
    a.range("web", 29050, 29054);
    a.git(["config", "ports.envFile", ".env.local"]);
    a.run(["allocate", "web"]).ok();
    // A copy of the repository holds the same port: a conflict.
    let copy = env.path("b");
    crate::support::copy_all(&a.dir, &copy);
    same(
        &fs::read_to_string(copy.join(".env.local")).expect("copied"),
        &block("WEB_PORT=29050\nWEB_URL=http://localhost:29050\n"),
    );
    let fix = env.run(&copy, ["doctor", "--fix"]);
    fix.ok();
    // The copy's port moved, and its env file says where.
    same(
        &fs::read_to_string(copy.join(".env.local")).expect("read"),
        &block("WEB_PORT=29051\nWEB_URL=http://localhost:29051\n"),
    );
    env.run(&copy, ["doctor"]).ok();
}

#[cfg(unix)]
fn hooks_are_read_as_git_runs_them() {
    let env = Env::new();
    let repo = app(&env, 29060);
    let hooks = repo.dir.join(".git/hooks");
    fs::create_dir_all(&hooks).expect("mkdir");
    let hook = hooks.join("post-checkout");
    let write_hook = |text: &str| {
        let _ = fs::remove_file(&hook);
        fs::write(&hook, text).expect("write");
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    // 10. No shebang: git runs it with sh, so it is a shell script; uninstall gives it back.
    let plain = "echo plain-hook-ran >> \"$(git rev-parse --git-common-dir)/ran\"\n";
    write_hook(plain);
    repo.run(["hook", "install", "--services", "web"]).ok();
    let add = repo.add_worktree("wt", "wt");
    add.ok();
    assert!(
        add.stderr
            .contains("git-ports: web port 29060 for worktree 'wt'"),
        "{add:?}"
    );
    assert_eq!(
        fs::read_to_string(repo.dir.join(".git/ran")).expect("the user's lines ran"),
        "plain-hook-ran\n"
    );
    repo.run(["hook", "uninstall"]).ok();
    assert_eq!(fs::read_to_string(&hook).expect("kept"), plain);
    // The user's own empty hook, and a shebang-only one, are kept by uninstall.
    for own in ["", "#!/bin/sh\n"] {
        write_hook(own);
        repo.run(["hook", "install"]).ok();
        repo.run(["hook", "uninstall"]).ok();
        assert_eq!(fs::read_to_string(&hook).expect("kept"), own);
    }
    // A file git-ports created is removed whole.
    fs::remove_file(&hook).expect("rm");
    repo.run(["hook", "install"]).ok();
    repo.run(["hook", "uninstall"]).ok();
    assert!(!hook.exists());
    // A dangling symlinked hook: refused, and no target is created anywhere.
    let target = env.path("elsewhere/post-checkout");
    std::os::unix::fs::symlink(&target, &hook).expect("link");
    let run = repo.run(["hook", "install"]);
    same(
        &seen(&run, &env),
        "--- stderr\ngit-ports: [TMP]/app/.git/hooks/post-checkout: is a symlink to [TMP]/elsewhere/post-checkout, which does not exist; git-ports writes through a link only to an existing file\n--- exit 5\n",
    );
    assert!(!target.exists() && !target.parent().is_some_and(Path::exists));
    fs::remove_file(&hook).expect("rm");
    // A Python hook holding the line install told the user to add counts as installed.
    let py = "#!/usr/bin/env python3\nprint('hi')\n";
    write_hook(py);
    let refused = repo.run(["hook", "install"]);
    refused.code(1);
    let line = refused
        .stderr
        .split("add this to it by hand: ")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(line.starts_with("import subprocess"), "{}", refused.stderr);
    // doctor's fix for it is that line, not the install that refuses it.
    let doctor = repo.run(["doctor"]);
    assert!(
        doctor
            .stdout
            .contains(&format!("fix: add this line to {}: {line}", hook.display())),
        "{}",
        doctor.stdout
    );
    write_hook(&format!("{py}{line}\n"));
    let st = repo.run(["hook", "status"]);
    assert!(
        scrub(&st.ok().stdout, &env)
            .starts_with("Hook: installed in [TMP]/app/.git/hooks/post-checkout\n"),
        "{}",
        st.stdout
    );
    let doctor = repo.run(["doctor"]);
    assert!(doctor.stdout.contains("ok      hook "), "{}", doctor.stdout);
    repo.run(["hook", "install"]).ok();
    assert_eq!(
        fs::read_to_string(&hook).expect("kept"),
        format!("{py}{line}\n")
    );
}

fn a_name_is_a_literal_path_never_a_glob() {
    let env = Env::new();
    let repo = app(&env, 29070);
    repo.run(["allocate", "web"]).ok();
    fs::write(repo.dir.join("example.env"), "A=1\n").expect("write");
    repo.git(["add", "example.env"]);
    repo.git(["commit", "-q", "-m", "example"]);
    // 11. `*.env` names a file called `*.env`, untracked: written, not refused as tracked.
    let run = repo.run(["env", "--write", "*.env"]);
    run.ok();
    same(
        &fs::read_to_string(repo.dir.join("*.env")).expect("written"),
        &by_hand("WEB_PORT=29070\nWEB_URL=http://localhost:29070\n"),
    );
    assert_eq!(
        fs::read_to_string(repo.dir.join("example.env")).expect("read"),
        "A=1\n"
    );
}

include!(concat!(env!("OUT_DIR"), "/it_userfiles.rs"));

//! Every channel git reads configuration through gives git-ports the value `git config --get`
//! gives, and git-ports reads them all itself: no `git` process is started (counted by a
//! `git` on PATH that logs each start before it runs the real one).
//!
//! Ports: this module takes 20500-20599.

use std::path::{Path, PathBuf};

use crate::support::{Env, Run};

/// A directory whose `git` logs every start to `log`, then runs the real git.
fn counting_git(env: &Env) -> (PathBuf, PathBuf) {
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("git"))
        .find(|p| p.is_file())
        .expect("git on PATH");
    let dir = env.path("counting-bin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let log = env.path("git-starts.log");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
        log.display(),
        real.display()
    );
    let git = dir.join("git");
    std::fs::write(&git, script).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    (dir, log)
}

/// `git-ports available web --json` in `dir` with `vars`, through the counting git: the
/// range it read, and the git starts it caused.
fn range_and_starts(env: &Env, dir: &Path, vars: &[(&str, &str)]) -> (String, String) {
    let (bin, log) = counting_git(env);
    let _ = std::fs::remove_file(&log);
    let mut cmd = env.cmd(dir);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(dirs).expect("PATH"));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let run = Run::from(
        cmd.args(["available", "web", "--json"])
            .output()
            .expect("run"),
    );
    run.ok();
    let range = run.json()["range"].as_str().unwrap_or_default().to_string();
    (range, std::fs::read_to_string(&log).unwrap_or_default())
}

/// What `git config --get ports.web.range` says in `dir` with `vars`.
fn git_says(env: &Env, dir: &Path, vars: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new("git");
    cmd.current_dir(dir);
    env.isolate(&mut cmd);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["config", "--get", "ports.web.range"])
        .output()
        .expect("git config");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// No git was started for configuration. In a repository libgit2 cannot open (SHA-256 and
/// reftable, under `GIT_PORTS_TEST_GIT3`) git is asked for the layout and the branches (which
/// only git can read there), never for the configuration; elsewhere git is not started at all.
#[track_caller]
fn assert_no_git(starts: &str, channel: &str) {
    match crate::support::git3() {
        false => assert_eq!(starts, "", "{channel}: git-ports started git"),
        true => assert!(
            !starts.lines().any(|l| l.starts_with("config")),
            "{channel}: git-ports asked git for its configuration: {starts}"
        ),
    }
}

/// A channel's name, the variables that set it, and the range git reads through it.
type Channel<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

fn every_config_channel_is_read_as_git_reads_it_without_a_git_process() {
    let env = Env::new();
    let repo = env.repo("app");
    let global = env.path("elsewhere.gitconfig");
    let system = env.path("system.gitconfig");
    std::fs::write(&global, "[ports \"web\"]\n\trange = 20510-20519\n").expect("write");
    std::fs::write(&system, "[ports \"web\"]\n\trange = 20520-20529\n").expect("write");
    // A global file that includes another, by a path relative to itself, as dotfile
    // repositories do.
    let including = env.path("including.gitconfig");
    std::fs::create_dir_all(env.path("dotfiles")).expect("mkdir");
    std::fs::write(
        env.path("dotfiles/ports.gitconfig"),
        "[ports \"web\"]\n\trange = 20560-20569\n",
    )
    .expect("write");
    std::fs::write(&including, "[include]\n\tpath = dotfiles/ports.gitconfig\n").expect("write");
    let inc = including.to_str().expect("utf-8");
    let (g, s) = (
        global.to_str().expect("utf-8"),
        system.to_str().expect("utf-8"),
    );
    let channels: Vec<Channel> = vec![
        (
            "GIT_CONFIG_GLOBAL",
            vec![("GIT_CONFIG_GLOBAL", g)],
            "20510-20519",
        ),
        (
            "GIT_CONFIG_GLOBAL with include.path",
            vec![("GIT_CONFIG_GLOBAL", inc)],
            "20560-20569",
        ),
        (
            "GIT_CONFIG_SYSTEM",
            vec![("GIT_CONFIG_SYSTEM", s), ("GIT_CONFIG_NOSYSTEM", "")],
            "20520-20529",
        ),
        (
            "GIT_CONFIG_NOSYSTEM",
            vec![("GIT_CONFIG_SYSTEM", s), ("GIT_CONFIG_NOSYSTEM", "1")],
            "",
        ),
        (
            "GIT_CONFIG_COUNT",
            vec![
                ("GIT_CONFIG_GLOBAL", g),
                ("GIT_CONFIG_COUNT", "1"),
                ("GIT_CONFIG_KEY_0", "ports.web.range"),
                ("GIT_CONFIG_VALUE_0", "20530-20539"),
            ],
            "20530-20539",
        ),
        (
            "GIT_CONFIG_PARAMETERS (git -c)",
            vec![
                ("GIT_CONFIG_COUNT", "1"),
                ("GIT_CONFIG_KEY_0", "ports.web.range"),
                ("GIT_CONFIG_VALUE_0", "20530-20539"),
                ("GIT_CONFIG_PARAMETERS", "'ports.web.range'='20540-20549'"),
            ],
            "20540-20549",
        ),
    ];
    for (name, vars, want) in &channels {
        let git = git_says(&env, &repo.dir, vars);
        assert_eq!(git, *want, "{name}: git itself");
        let (got, starts) = range_and_starts(&env, &repo.dir, vars);
        // With nothing set, the service's default range.
        let want = if want.is_empty() { "8000-8099" } else { want };
        assert_eq!(got, want, "{name}");
        assert_no_git(&starts, name);
    }
    // The repository's own file beats the global one, as in git.
    repo.git(["config", "ports.web.range", "20550-20559"]);
    let vars = [("GIT_CONFIG_GLOBAL", g)];
    assert_eq!(git_says(&env, &repo.dir, &vars), "20550-20559");
    let (got, starts) = range_and_starts(&env, &repo.dir, &vars);
    assert_eq!(got, "20550-20559");
    assert_no_git(&starts, "the repository's file");
}

include!(concat!(env!("OUT_DIR"), "/it_channels.rs"));

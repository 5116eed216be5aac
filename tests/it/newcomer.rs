//! The first five minutes: the errors a newcomer meets first say what is missing, the
//! possible values or the likely typo, in one line and a hint; help is there; a sticky port
//! that cannot be given back says why.
//!
//! Ports: this module takes 29200-29299.

use crate::support::{Env, same, scrub, seen};

fn usage_errors_keep_what_is_missing_the_values_and_the_suggestion() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("storybook", 29260, 29269);
    let cases: &[(&[&str], &str)] = &[
        (
            &["get"],
            "git-ports: missing <SERVICE>\nhint: name a service: web, api, db, redis, grpc, websocket, storybook (see `git ports get -h`)\n",
        ),
        (
            &["release"],
            "git-ports: missing <PORT>...\nhint: name the ports to release, or release all of a worktree's with `git ports release --worktree WORKTREE`\n",
        ),
        (
            &["stauts"],
            "git-ports: unrecognized subcommand 'stauts'; did you mean 'status'?\nhint: see `git ports -h`\n",
        ),
        (
            &["env", "--format", "yaml"],
            "git-ports: invalid value 'yaml' for '--format <FORMAT>' (possible values: shell, dotenv, json)\nhint: see `git ports env -h`\n",
        ),
        (
            &["completions", "tcsh"],
            "git-ports: invalid value 'tcsh' for '<SHELL>' (possible values: bash, zsh, fish, powershell)\nhint: see `git ports completions -h`\n",
        ),
        (
            &["allocate", "web", "--prot", "8001"],
            "git-ports: unexpected argument '--prot' found; did you mean '--port'?\nhint: see `git ports allocate -h`\n",
        ),
        (
            &["exec", "sh", "-c", "echo hi"],
            "git-ports: unexpected argument 'sh' found\nhint: the command goes after `--`: git ports exec -- COMMAND [ARG]...\n",
        ),
    ];
    for (args, want) in cases {
        let run = repo.run(*args);
        same(
            &seen(&run, &env),
            &format!("--- stderr\n{want}--- exit 1\n"),
        );
    }
    // Asking for another port for a service the worktree holds: the command that frees it.
    repo.range("web", 29250, 29259);
    repo.run(["allocate", "web"]).ok();
    same(
        &seen(&repo.run(["allocate", "web", "--port", "29255"]), &env),
        "--- stderr\ngit-ports: worktree 'app' already holds port 29250 for web; release it first with `git ports release 29250`\n--- exit 1\n",
    );
}

fn help_is_a_command_and_dash_h_is_short() {
    let env = Env::new();
    let repo = env.repo("app");
    let help = repo.run(["help"]);
    help.ok();
    assert!(
        help.stdout
            .starts_with("Hand out collision-free development-server ports to git worktrees\n"),
        "{}",
        help.stdout
    );
    let sub = repo.run(["help", "allocate"]);
    sub.ok();
    assert!(
        sub.stdout.starts_with("Allocate ports to a worktree\n"),
        "{}",
        sub.stdout
    );
    let short = repo.run(["get", "-h"]);
    short.ok();
    same(
        short.stdout.lines().next().unwrap_or(""),
        "Print the port a worktree holds for a service",
    );
}

fn every_command_that_takes_a_service_says_unknown_service() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29200, 29209);
    repo.run(["allocate", "web"]).ok();
    let want = "--- stderr\ngit-ports: unknown service 'wbe'\nhint: did you mean 'web'? known services: web, api, db, redis, grpc, websocket; add one with `git config ports.<service>.range START-END`\n--- exit 1\n";
    for args in [
        &["get", "wbe"][..],
        &["wait", "wbe"],
        &["allocate", "wbe"],
        &["release", "-w", "app", "--service", "wbe"],
    ] {
        same(&seen(&repo.run(args), &env), want);
    }
    // A known service the worktree holds no port for is still that.
    same(
        &seen(&repo.run(["get", "api"]), &env),
        "--- stderr\ngit-ports: worktree 'app' holds no port for service 'api'\nhint: allocate one with `git ports allocate api --worktree app`\n--- exit 2\n",
    );
}

fn a_sticky_port_that_is_busy_says_who_has_it() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29210, 29219);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web"]).ok();
    env.run(&wt, ["release", "-w", "."]).ok();
    // Someone listens on the port the worktree held before.
    let _server = crate::support::listen_in(&repo.dir, 29210);
    let run = env.run(&wt, ["allocate", "web"]);
    run.ok();
    let out = crate::support::scrub_self(&run.stdout);
    assert!(
        out.contains(
            "✓ Allocated port 29211 for service 'web' (29210, held before, is in use by [THIS TEST]"
        ) || out.contains(
            "✓ Allocated port 29211 for service 'web' (29210, held before, is in use by pid "
        ),
        "{out}"
    );
    let json = env.run(&wt, ["allocate", "web", "--json"]).ok().json();
    assert_eq!(json["allocations"][0]["port"], 29211, "{json}");
}

fn hook_install_names_the_worktrees_that_hold_no_ports_yet() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29220, 29229);
    repo.worktree("wt1", "wt1");
    let run = repo.run(["hook", "install", "--services", "web"]);
    run.ok();
    assert!(
        run.stdout.contains(
            "Note: 1 existing worktree holds no ports yet (wt1); the hook allocates only for new ones. Now: git ports allocate web --worktree wt1\n"
        ),
        "{}",
        run.stdout
    );
}

fn hook_uninstall_all_removes_the_block_in_every_repository_the_ledger_knows() {
    let env = Env::new();
    let a = env.repo("a");
    let b = env.repo("b");
    for (r, base) in [(&a, 29230), (&b, 29240)] {
        r.range("web", base, base + 9);
        r.run(["hook", "install", "--services", "web"]).ok();
        r.run(["allocate", "web"]).ok();
    }
    let run = a.run(["hook", "uninstall", "--all"]);
    run.ok();
    for r in [&a, &b] {
        assert!(
            !r.dir.join(".git/hooks/post-checkout").exists(),
            "{}",
            run.stdout
        );
    }
    assert!(
        scrub(&run.stdout, &env).starts_with(
            "[TMP]/b: ✓ Removed [TMP]/b/.git/hooks/post-checkout (nothing else was in it)\n"
        ),
        "{}",
        run.stdout
    );
}

fn servers_a_removed_worktree_left_running_are_named_with_how_to_stop_them() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29250, 29259);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web"]).ok();
    let server = crate::support::listen_in(&wt, 29250);
    repo.git([
        "worktree",
        "remove",
        "--force",
        wt.to_str().unwrap_or_default(),
    ]);
    let status = repo.run(["status", "--health-check"]);
    let pid = server.id();
    assert!(
        status
            .stdout
            .contains(&format!("[STALE]  still served by pid {pid} ("))
            && status.stdout.contains(&format!(
                "), left running by the removed worktree: stop it with `git ports prune --stop` (or `kill {pid}`)"
            )),
        "{}",
        status.stdout
    );
    let prune = repo.run(["prune"]);
    prune.ok();
    assert!(
        prune.stdout.contains(&format!(
            "✓ Released port 29250 (web) of worktree 'wt': worktree removed\n  pid {pid} ("
        )) && prune.stdout.contains(&format!(
            "still listens on it, left running by the removed worktree: stop it with `git ports prune --stop` (or `kill {pid}`)\n"
        )),
        "{}",
        prune.stdout
    );
}

fn readiness_by_http_tells_a_stopped_server_from_a_running_one() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29260, 29269);
    repo.run(["allocate", "web"]).ok();
    let mut server = std::process::Command::new("python3")
        .args(["-m", "http.server", "29260", "--bind", "127.0.0.1"])
        .current_dir(&repo.dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 http.server");
    crate::support::wait_listening(29260, true);
    repo.git(["config", "ports.web.ready", "http"]);
    let up = repo.run(["wait", "web", "--timeout", "10"]);
    up.ok();
    same(&up.stdout, "✓ web (29260) answers HTTP (/)\n");
    // Stopped by a signal (as a job at a terminal is by SIGTTIN), the kernel still accepts
    // its connections: only an HTTP answer tells.
    let pid = server.id().to_string();
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status();
    assert!(stop.is_ok_and(|s| s.success()));
    // With the default, a connection is all it takes: what tcp readiness can tell.
    repo.git(["config", "--unset", "ports.web.ready"]);
    let tcp = repo.run(["status", "--health-check", "--timeout", "0.5"]);
    tcp.ok();
    assert!(tcp.stdout.contains("[RUNNING]"), "{}", tcp.stdout);
    repo.git(["config", "ports.web.ready", "http"]);
    let status = repo.run(["status", "--health-check", "--timeout", "0.5"]);
    status.code(4);
    assert!(
        status
            .stdout
            .contains("[ERROR]    ✗  accepts connections but gave no HTTP answer within 0.5s"),
        "{}",
        status.stdout
    );
    repo.run(["wait", "web", "--timeout", "1"]).code(4);
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    let _ = server.kill();
    let _ = server.wait();
    // A value that is not a readiness is refused, naming the key.
    repo.git(["config", "ports.web.ready", "ftp"]);
    let bad = repo.run(["wait", "web"]);
    bad.code(1);
    assert!(
        bad.stderr
            .contains(&format!("config ports.web.ready: expected tcp, http or http:/PATH (got 'ftp', set in {}/.git/config)", repo.dir.display())),
        "{}",
        bad.stderr
    );
}

/// The words a shell's own completion offers for `line`, with git-ports' script installed
/// where the README says. `None` when the shell is not here (loudly; a failure in CI).
fn shell_completes(env: &Env, dir: &std::path::Path, shell: &str, line: &str) -> Option<String> {
    if std::process::Command::new(shell)
        .arg("--version")
        .output()
        .is_err()
    {
        crate::support::skip_part(
            &format!("completion through {shell}"),
            &format!("{shell} is not installed (apt-get install {shell})"),
        );
        return None;
    }
    let home = env.path("home");
    let script = match shell {
        "fish" => {
            let conf = home.join(".config/fish/conf.d");
            std::fs::create_dir_all(&conf).expect("mkdir");
            let text = env.run(dir, ["completions", "fish"]).ok().stdout.clone();
            std::fs::write(conf.join("git-ports.fish"), text).expect("write");
            format!("complete -C {}", crate::support::quote(line))
        }
        _ => {
            let fpath = home.join(".zfunc");
            std::fs::create_dir_all(&fpath).expect("mkdir");
            let text = env.run(dir, ["completions", "zsh"]).ok().stdout.clone();
            std::fs::write(fpath.join("_git-ports"), text).expect("write");
            // zsh completes only inside its line editor: drive one through a pseudo-terminal
            // and read what it lists.
            format!(
                r#"zmodload zsh/zpty
zpty -b z 'zsh -f -i'
zpty -w z 'PS1="%% "; fpath=({fpath} $fpath); autoload -Uz compinit; compinit -u -D; zstyle ":completion:*" menu no; LISTMAX=10000; print READY'
out=""
for i in {{1..100}}; do zpty -r -t z chunk && out+=$chunk; [[ $out == *READY* ]] && break; sleep 0.05; done
zpty -w -n z {line}$'\t'
out=""
for i in {{1..40}}; do sleep 0.05; while zpty -r -t z chunk; do out+=$chunk; done; done
print -r -- "$out"
zpty -d z"#,
                fpath = fpath.display(),
                line = crate::support::quote(line),
            )
        }
    };
    let mut cmd = std::process::Command::new(shell);
    if shell == "zsh" {
        cmd.arg("-f");
    }
    cmd.arg("-c").arg(&script).current_dir(dir);
    env.isolate(&mut cmd);
    let out = cmd.output().expect("shell");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn zsh_and_fish_complete_worktrees_branches_services_and_commands() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.worktree("wt-one", "feature-one");
    for shell in ["fish", "zsh"] {
        let Some(subs) = shell_completes(&env, &repo.dir, shell, "git ports ") else {
            continue;
        };
        assert!(
            subs.contains("allocate") && subs.contains("status"),
            "{shell}: {subs}"
        );
        assert!(
            !subs.contains("What shell completion offers"),
            "{shell}: {subs}"
        );
        let wts = shell_completes(&env, &repo.dir, shell, "git ports allocate --worktree ")
            .unwrap_or_default();
        assert!(
            wts.contains("wt-one") && wts.contains("feature-one") && wts.contains("app"),
            "{shell}: {wts}"
        );
        let services =
            shell_completes(&env, &repo.dir, shell, "git ports get ").unwrap_or_default();
        assert!(
            services.contains("websocket") && services.contains("redis"),
            "{shell}: {services}"
        );
        let flags =
            shell_completes(&env, &repo.dir, shell, "git ports allocate --").unwrap_or_default();
        assert!(
            flags.contains("--port") && !flags.contains("--release") && !flags.contains("--check"),
            "{shell}: {flags}"
        );
        let command =
            shell_completes(&env, &repo.dir, shell, "git ports exec -- ech").unwrap_or_default();
        assert!(command.contains("echo"), "{shell}: {command}");
    }
}

fn doctor_fix_writes_the_env_files_it_finds_out_of_step() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29270, 29279);
    repo.git(["config", "ports.envFile", ".env.local"]);
    repo.run(["allocate", "web"]).ok();
    let file = repo.dir.join(".env.local");
    let good = std::fs::read_to_string(&file).expect("written");
    std::fs::write(&file, good.replace("WEB_PORT=29270", "WEB_PORT=1")).expect("edit");
    let fix = repo.run(["doctor", "--fix", "--json"]).ok().json();
    assert_eq!(fix["fixed"], 1, "{fix}");
    assert_eq!(fix["problems"], 0, "{fix}");
    same(&std::fs::read_to_string(&file).expect("read"), &good);
}

/// The README's test command, with a tool missing: the test that needs it is counted as
/// not run, never as passed, and the summary says which and why.
fn the_test_command_says_what_did_not_run_and_why() {
    let exe = std::env::current_exe().expect("the test binary");
    let test = "proxy::the_proxy_routes_names_live_and_says_what_is_wrong";
    let out = std::process::Command::new(exe)
        .args(["--exact", test])
        // Neither node nor curl is found on this PATH.
        .env("PATH", "/nonexistent")
        .env_remove("CI")
        .output()
        .expect("run the tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("running "))
        .map(|l| l.split("; finished in").next().unwrap_or(l))
        .collect();
    same(
        &summary.join("\n"),
        &format!(
            "test {test} ... ignored\ntest result: ok. 0 passed; 0 failed; 1 ignored; {} filtered out\n1 test did not run here (counted as ignored, not as passed):\n  {test}: needs node and curl",
            crate::harness_count() - 1
        ),
    );
    assert_eq!(out.status.code(), Some(0));
}

/// The hook workflow leaves the main worktree without a port: its origin's page names it by
/// its name and gives commands that work pasted into any terminal; `status` and `proxy
/// status` never show the main worktree's internal key.
fn the_origin_of_a_main_worktree_without_ports_says_what_to_paste() {
    if !crate::proxy::have("curl") {
        crate::support::skip("needs curl");
    }
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29280, 29284);
    let fx = repo.worktree("fx", "fx");
    env.run(&fx, ["allocate", "web"]).ok();
    let _proxy = crate::proxy::proxy(&env, 29299);
    let (code, body) = crate::proxy::curl(&["http://shop.localhost:29299/"]);
    assert_eq!(code, 502);
    same(
        &scrub(&body, &env),
        "git ports proxy: worktree 'shop' of [TMP]/shop holds no port for web: run `git -C [TMP]/shop ports allocate web`, or point shop.localhost at a worktree that holds one: `git -C [TMP]/shop ports point WORKTREE`\n",
    );
    let st = env.run(env.root(), ["proxy", "status"]).stdout.clone();
    assert!(
        scrub(&st, &env).contains("  http://shop.localhost:29299 (origin) → 'shop', which holds no port for web, [TMP]/shop\n"),
        "{st}"
    );
    assert!(!st.contains("'/'"), "{st}");
    let status = repo.run(["status"]).stdout.clone();
    assert!(
        status.contains("http://shop.localhost:29299  origin, points at 'shop'\n"),
        "{status}"
    );
    // Each command works as pasted, from anywhere.
    let command = |n: usize| body.split('`').nth(n).unwrap_or_default().to_string();
    let (allocate, point) = (command(1), command(3).replace("WORKTREE", "fx"));
    env.sh(env.root(), &point).ok();
    let (code, page) = crate::proxy::curl(&["http://shop.localhost:29299/"]);
    assert_eq!(code, 502);
    assert!(page.contains("(web of worktree 'fx' in "), "{page}");
    env.sh(env.root(), &allocate).ok();
    repo.run(["point", "shop"]).ok();
    let (code, page) = crate::proxy::curl(&["http://shop.localhost:29299/"]);
    assert_eq!(code, 502);
    assert!(
        page.contains("(web of worktree 'shop' in ") && page.contains(": nothing listens on it"),
        "{page}"
    );
}

/// A typo in a key is named with the key meant, and a wrong value says which file holds it,
/// so a user with a global and a repository value mends the right one.
fn a_typo_in_a_key_is_named_and_a_bad_value_says_where_it_is_set() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.git(["config", "ports.db.rnage", "29290-29291"]);
    repo.git(["config", "ports.stikcy", "false"]);
    let doctor = repo.run(["doctor"]);
    doctor.code(4);
    let text = scrub(&doctor.stdout, &env);
    for want in [
        "PROBLEM config      config ports.db.rnage: git-ports has no such key (did you mean ports.db.range?), set in [TMP]/app/.git/config\n                    fix: git config --file [TMP]/app/.git/config --unset ports.db.rnage && git config --file [TMP]/app/.git/config ports.db.range 29290-29291\n",
        "PROBLEM config      config ports.stikcy: git-ports has no such key (did you mean ports.sticky?), set in [TMP]/app/.git/config\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // The fix, pasted, is the key meant.
    let fix = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("fix: git config --file"))
        .map(|rest| format!("git config --file{rest}"))
        .expect("a fix")
        .replace("[TMP]", &env.root().display().to_string());
    env.sh(&repo.dir, &fix).ok();
    assert_eq!(repo.git(["config", "ports.db.range"]).trim(), "29290-29291");
    // A wrong value set globally says so, beside a good one in the repository.
    repo.git(["config", "--unset", "ports.stikcy"]);
    env.git(
        env.root(),
        ["config", "--global", "ports.web.range", "8000-70000"],
    );
    let run = repo.run(["allocate", "web"]);
    same(
        &seen(&run, &env),
        "--- stderr\ngit-ports: config ports.web.range: 70000 is outside 1-65535 (got '8000-70000', set in [TMP]/gitconfig)\n--- exit 1\n",
    );
}

/// The fish completion file left in conf.d after git-ports is uninstalled says nothing on
/// TAB.
fn a_fish_completion_file_left_behind_is_silent() {
    if std::process::Command::new("fish")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::support::skip("fish is not installed (apt-get install fish)");
    }
    let env = Env::new();
    let file = env.path("git-ports.fish");
    std::fs::write(
        &file,
        env.run(env.root(), ["completions", "fish"])
            .ok()
            .stdout
            .as_bytes(),
    )
    .expect("write");
    let out = std::process::Command::new("fish")
        .args([
            "-c",
            &format!(
                "source {}; complete -C 'git ports allocate '; complete -C 'git-ports get --worktree '",
                file.display()
            ),
        ])
        // git, but no git-ports.
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", env.path("home"))
        .output()
        .expect("fish");
    same(&String::from_utf8_lossy(&out.stderr), "");
}

/// Names read naturally in the common layouts: a sibling folder named after the repository,
/// `.worktrees/NAME` and `.claude/worktrees/NAME` inside it.
fn names_read_naturally_in_the_common_layouts() {
    let env = Env::new();
    let repo = env.repo("webapp");
    repo.range("web", 29270, 29279);
    repo.git(["config", "ports.compose", "true"]);
    let alpha = repo.worktree("webapp-alpha", "alpha");
    let beta = repo.worktree("webapp/.worktrees/beta", "beta");
    let gamma = repo.worktree("webapp/.claude/worktrees/gamma", "gamma");
    for (dir, host, project) in [
        (&alpha, "alpha.webapp.localhost", "webapp-alpha"),
        (&beta, "beta.webapp.localhost", "webapp-beta"),
        (&gamma, "gamma.webapp.localhost", "webapp-gamma"),
    ] {
        env.run(dir, ["allocate", "web"]).ok();
        let vars = env.run(dir, ["env", "--format", "json"]).ok().json();
        assert_eq!(vars["WEB_PUBLIC_HOST"], host, "{vars}");
        assert_eq!(vars["COMPOSE_PROJECT_NAME"], project, "{vars}");
    }
}

include!(concat!(env!("OUT_DIR"), "/it_newcomer.rs"));

//! What a coding agent needs beyond ports: stopping the servers a worktree runs, and only
//! those, and the ones a removed worktree left behind.
//!
//! Ports: this module takes 29300-29399.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::{Env, listen_in, same, wait_listening};

/// A python3 server listening on `port` from `dir`; with `stubborn`, it ignores SIGTERM.
fn python_server(dir: &Path, port: u16, stubborn: bool) -> Child {
    let ignore = if stubborn {
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    } else {
        ""
    };
    let code = format!(
        "import signal,socket,time\n{ignore}s=socket.socket()\ns.bind(('127.0.0.1',{port}))\ns.listen()\ntime.sleep(60)"
    );
    let child = Command::new("python3")
        .args(["-c", &code])
        .current_dir(dir)
        .stdin(Stdio::null())
        .spawn()
        .expect("python3");
    wait_listening(port, true);
    child
}

fn stop_stops_this_worktrees_servers_and_nobody_elses() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29300, 29309);
    repo.range("api", 29310, 29319);
    repo.range("db", 29320, 29329);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web", "api", "db"]).ok();
    // web: this worktree's own server; api: one that ignores SIGTERM; db: a server of the
    // main worktree sitting on this worktree's port.
    let mut own = python_server(&wt, 29300, false);
    let mut stubborn = python_server(&wt, 29310, true);
    let _other = listen_in(&repo.dir, 29320);
    let run = env.run(&wt, ["stop", "--grace", "0.5"]);
    run.ok();
    let text = run
        .stdout
        .replace(&own.id().to_string(), "OWN")
        .replace(&stubborn.id().to_string(), "STUBBORN");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[0], "web (29300): pid OWN (python3): stopped",
        "{text}"
    );
    assert_eq!(
        lines[1], "api (29310): pid STUBBORN (python3): ignored SIGTERM for 0.5s: killed",
        "{text}"
    );
    assert!(
        lines[2].starts_with("db (29320): left alone: served by pid ")
            && lines[2].ends_with(" in worktree 'app'"),
        "{text}"
    );
    assert!(
        own.try_wait().expect("wait").is_some(),
        "web's server ended"
    );
    assert!(
        stubborn.try_wait().expect("wait").is_some(),
        "api's server ended"
    );
    wait_listening(29320, true);
    // Nothing left to stop: said, per port.
    let again = env.run(&wt, ["stop", "web"]);
    again.ok();
    same(&again.stdout, "web (29300): nothing listens on it\n");
    // A typo of a service is an unknown service.
    env.run(&wt, ["stop", "wbe"]).code(1);
}

fn prune_stop_stops_what_a_removed_worktree_left_running() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29330, 29339);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web"]).ok();
    let mut server = python_server(&wt, 29330, false);
    repo.git([
        "worktree",
        "remove",
        "--force",
        wt.to_str().unwrap_or_default(),
    ]);
    let run = repo.run(["prune", "--stop"]);
    run.ok();
    same(
        &run.stdout.replace(&server.id().to_string(), "PID"),
        "✓ Released port 29330 (web) of worktree 'wt': worktree removed\n  pid PID (python3), left running by the removed worktree: stopped\n",
    );
    assert!(server.try_wait().expect("wait").is_some(), "it ended");
}

/// Claude Code makes its worktrees inside the main worktree (`.claude/worktrees/NAME`) and
/// writes an absolute `core.hooksPath` into each one's own config.
fn claude_code_worktrees_get_their_ports_from_the_hook_and_keep_their_own_servers() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29340, 29349);
    // A husky-style hooks directory, committed, as many projects have it.
    repo.git(["config", "core.hooksPath", ".husky"]);
    repo.run(["hook", "install", "--services", "web"]).ok();
    repo.git(["add", ".husky"]);
    repo.git(["commit", "-q", "-m", "hooks"]);
    repo.run(["allocate", "web"]).ok();
    let add = |from: &Path, name: &str| {
        let run = env.git_run(
            from,
            [
                "worktree",
                "add",
                repo.dir
                    .join(".claude/worktrees")
                    .join(name)
                    .to_str()
                    .unwrap_or(""),
                "-b",
                name,
            ],
        );
        run.ok();
        let wt = repo.dir.join(".claude/worktrees").join(name);
        // What Claude Code writes into the worktree's own config.
        env.git(&wt, ["config", "extensions.worktreeConfig", "true"]);
        let hooks = repo.dir.join(".husky");
        env.git(
            &wt,
            [
                "config",
                "--worktree",
                "core.hooksPath",
                hooks.to_str().unwrap_or(""),
            ],
        );
        wt
    };
    let a = add(&repo.dir, "agent-a");
    same(&env.run(&a, ["get", "web"]).stdout, "29341\n");
    // A worktree made from inside another: git runs the hook the absolute path names.
    let b = add(&a, "agent-b");
    same(&env.run(&b, ["get", "web"]).stdout, "29342\n");
    let status = env.run(&b, ["hook", "status"]);
    status.ok();
    let hook = repo.dir.join(".husky/post-checkout");
    assert!(
        status
            .stdout
            .starts_with(&format!("Hook: installed in {}\n", hook.display())),
        "{}",
        status.stdout
    );
    env.run(&b, ["doctor"]).ok();
    // Nested in the main worktree, a server of agent-a is agent-a's own, not the main
    // worktree's, and `stop` in the main worktree leaves it alone.
    let _on_main_port = listen_in(&a, 29340);
    let _own = listen_in(&a, 29341);
    let json = repo.run(["status", "--health-check", "--json"]).json();
    let row = |name: &str| {
        json["worktrees"]
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["name"] == name).cloned())
            .unwrap_or_default()
    };
    assert_eq!(
        row("agent-a")["ports"]["web"]["listener"]["owner"],
        "self",
        "{json:#}"
    );
    assert_eq!(
        row("app")["ports"]["web"]["listener"]["owner"],
        "worktree",
        "{json:#}"
    );
    assert_eq!(
        row("app")["ports"]["web"]["listener"]["worktree"],
        "agent-a"
    );
    let stop = repo.run(["stop", "web"]);
    stop.ok();
    assert!(stop.stdout.contains("left alone"), "{}", stop.stdout);
    wait_listening(29340, true);
}

/// A server of another user in this worktree is never stopped, root or not.
#[cfg(unix)]
fn stop_never_stops_another_users_server() {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if !root {
        crate::support::skip("only root can start a process as another user here");
    }
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29360, 29369);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web"]).ok();
    // A program the other user can run: the system's own, not one under root's home.
    let (program, code) = if Path::new("/usr/bin/python3").exists() {
        (
            "/usr/bin/python3",
            "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',29360))\ns.listen()\ntime.sleep(60)",
        )
    } else {
        (
            "/usr/bin/node",
            "require('net').createServer().listen(29360, '127.0.0.1'); setTimeout(() => {}, 60000)",
        )
    };
    let flag = if program.ends_with("node") {
        "-e"
    } else {
        "-c"
    };
    let mut theirs = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            program,
            flag,
            code,
        ])
        .current_dir(&wt)
        .stdin(Stdio::null())
        .spawn()
        .expect("setpriv");
    wait_listening(29360, true);
    let run = env.run(&wt, ["stop", "--grace", "0.5"]);
    run.ok();
    let said = run.stdout.replace(&theirs.id().to_string(), "PID");
    assert!(
        said.starts_with("web (29360): left alone: pid PID (")
            && said.ends_with(") runs as another user\n"),
        "{said}"
    );
    assert!(theirs.try_wait().expect("wait").is_none(), "it still runs");
    let _ = theirs.kill();
    let _ = theirs.wait();
}

include!(concat!(env!("OUT_DIR"), "/it_agents.rs"));

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

#[test]
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

#[test]
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

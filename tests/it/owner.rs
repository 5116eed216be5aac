//! Who is on my port: listeners started by the tests in a worktree of this repository, of
//! another repository, and in no worktree, each named for what it is; `exec` that becomes its
//! command; `wait` for a server that comes up late, or never.

#[cfg(unix)]
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::promise::run_with;
use crate::support::{Env, listen_in};
#[cfg(unix)]
use crate::support::{LISTEN, wait_listening};

fn status_check_and_allocate_name_who_serves_each_port() {
    if !std::path::Path::new("/proc/net/tcp").exists() {
        crate::support::skip("no /proc here");
    }
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 28000, 28009);
    repo.range("api", 28010, 28019);
    let a = repo.worktree("wt-a", "a");
    let b = repo.worktree("wt-b", "b");
    env.run(&a, ["allocate", "web", "api"]).ok();
    env.run(&b, ["allocate", "web", "api"]).ok();
    let other = env.repo("other");
    other.range("web", 28020, 28029);
    other.run(["allocate", "web"]).ok();
    let elsewhere = env.path("unrelated");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");

    let own = listen_in(&a, 28000); // wt-a's web, by wt-a
    let sibling = listen_in(&b, 28010); // wt-a's api, by wt-b
    let foreign = listen_in(&other.dir, 28001); // wt-b's web, by another repository
    let stray = listen_in(&elsewhere, 28011); // wt-b's api, by no worktree

    let status = repo.run(["status", "--health-check"]);
    status.ok();
    let text = &status.stdout;
    let pid = |c: &crate::support::Server| c.id();
    for want in [
        "  web:       28000   [RUNNING]  ✓  ".to_string(),
        format!("ms  pid {} (", pid(&own)),
        format!(
            "  api:       28010   [FOREIGN]  ✗  served by pid {} (",
            pid(&sibling)
        ),
        ") in worktree 'wt-b'\n".to_string(),
        format!(
            "  web:       28001   [FOREIGN]  ✗  served by pid {} (",
            pid(&foreign)
        ),
        format!("in {} (other)\n", env.path("other").display()),
        format!(
            "  api:       28011   [FOREIGN]  ✗  served by pid {} (",
            pid(&stray)
        ),
        format!("in {}, not a known worktree\n", elsewhere.display()),
        "  Foreign:  3 services served by a process outside the worktree that holds them\n".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
    }
    let json = repo.run(["status", "--health-check", "--json"]).ok().json();
    let port = |w: usize, s: &str| json["worktrees"][w]["ports"][s]["listener"].clone();
    assert_eq!(port(0, "web")["owner"], "self");
    assert_eq!(port(0, "web")["pid"], pid(&own));
    assert_eq!(port(0, "web")["cwd"], a.to_str().unwrap_or(""));
    assert_eq!(port(0, "api")["owner"], "worktree");
    assert_eq!(port(0, "api")["worktree"], "wt-b");
    assert_eq!(port(1, "web")["owner"], "repository");
    assert_eq!(port(1, "web")["worktree"], "other");
    assert_eq!(port(1, "api")["owner"], "other");
    assert_eq!(port(1, "api")["worktree"], serde_json::Value::Null);
    // A port nothing listens on has a null listener.
    repo.run(["allocate", "web"]).ok();
    let json = repo.run(["status", "--health-check", "--json"]).ok().json();
    assert_eq!(
        json["worktrees"][0]["ports"]["web"]["listener"],
        serde_json::Value::Null
    );

    // check names the holder's own server as the holder's, in the repository or outside it.
    for (dir, holder) in [
        (repo.dir.clone(), "worktree 'wt-a'".to_string()),
        (
            env.root().to_path_buf(),
            format!("{} (wt-a)", repo.dir.display()),
        ),
    ] {
        let check = env.run(&dir, ["check", "28000"]);
        assert!(
            check
                .stdout
                .contains(&format!("), the server of {holder}, which holds it\n"))
                && !check.stdout.contains("this worktree's own"),
            "{}",
            check.stdout
        );
    }
    // check and allocate use the same words.
    let check = repo.run(["check", "28010"]);
    assert!(
        check
            .stdout
            .contains(&format!("- In use now by pid {} (", pid(&sibling)))
            && check.stdout.contains(") in worktree 'wt-b'\n"),
        "{}",
        check.stdout
    );
    let free_port_listener = listen_in(&b, 28003);
    let c = repo.worktree("wt-c", "c");
    let alloc = env.run(&c, ["allocate", "web"]);
    alloc.ok();
    assert!(
        alloc.stdout.contains(&format!(
            "Port 28003: In use by pid {} (",
            pid(&free_port_listener)
        )) && alloc.stdout.contains(") in worktree 'wt-b'\n"),
        "{}",
        alloc.stdout
    );
}

/// `git-ports exec` in `dir`, with the listener helper's port set, as a child to watch.
#[cfg(unix)]
fn exec_child(env: &Env, dir: &std::path::Path, port: u16, args: &[&str]) -> std::process::Child {
    let mut cmd = env.cmd(dir);
    cmd.args(args)
        .env(LISTEN, port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn exec")
}

#[cfg(unix)]
fn exec_becomes_the_command_and_refuses_a_port_served_by_someone_else() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 28100, 28109);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web"]).ok();
    // Same pid: the command is git-ports' process, not its child.
    let child = exec_child(&env, &wt, 28100, &["exec", "--", "sh", "-c", "echo $$"]);
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string());

    // A server started through exec stops on SIGTERM to that pid: nothing is left behind.
    let exe = std::env::current_exe().expect("exe");
    let exe = exe.to_str().unwrap_or("");
    // With GIT_PORTS_TEST_LISTEN set, this test binary is the listener.
    let server_args = ["exec", "--", exe];
    let mut server = exec_child(&env, &wt, 28100, &server_args);
    // Killed if the test fails before the SIGTERM below.
    struct Reap(u32);
    impl Drop for Reap {
        fn drop(&mut self) {
            // Already ended, as it should be by now: kill's complaint is no news.
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    let _reap = Reap(server.id());
    wait_listening(28100, true);
    // Its own server already listens: exec goes on, saying so only with --verbose (it is
    // what `exec -- npm test` expects).
    let quiet = run_with(&env, &wt, &["exec", "--", "true"], &[]);
    quiet.ok();
    assert_eq!(quiet.stderr, "");
    let again = run_with(&env, &wt, &["exec", "--verbose", "--", "true"], &[]);
    again.ok();
    assert!(
        again
            .stderr
            .contains("port 28100 is already served by pid ")
            && again.stderr.contains("this worktree's own server"),
        "{}",
        again.stderr
    );
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(term.is_ok_and(|s| s.success()));
    let status = server.wait().expect("wait");
    assert!(!status.success(), "ended by the signal");
    wait_listening(28100, false);

    // Served by a process in no worktree: refused with one line naming it, exit 4.
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let stray = listen_in(&elsewhere, 28100);
    let refused = run_with(&env, &wt, &["exec", "--", "sh", "-c", "echo started"], &[]);
    refused.code(4);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    let first = refused.stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with(&format!(
            "git-ports: port 28100 is already served by pid {} (",
            stray.id()
        )) && first.ends_with(&format!("in {}, not a known worktree", elsewhere.display())),
        "{}",
        refused.stderr
    );
    // --force goes ahead.
    let forced = run_with(
        &env,
        &wt,
        &["exec", "--force", "--", "sh", "-c", "echo started"],
        &[],
    );
    forced.ok();
    assert_eq!(forced.stdout, "started\n");
    drop(stray);
}

fn wait_returns_when_a_late_server_comes_up_and_fails_when_none_does() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 28200, 28209);
    repo.range("api", 28210, 28219);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web", "api"]).ok();
    // Nothing ever listens: exit 4, naming what never came up and what each was waited for
    // (web answering HTTP, as ports.web.ready says).
    repo.git(["config", "ports.web.ready", "http"]);
    let none = run_with(&env, &wt, &["wait", "--timeout", "1.5"], &[]);
    none.code(4);
    assert!(
        none.stderr.contains(
            "git-ports: waiting for web (28200) to answer HTTP, api (28210) to accept connections (up to 1.5s)"
        ) && none.stderr.contains(
            "git-ports: gave up after 1.5s: web (28200) never answered HTTP, api (28210) never accepted a connection\nhint: start the server first (`git ports exec -- COMMAND &`, in the worktree), or wait longer with --timeout SECONDS\n"
        ),
        "{}",
        none.stderr
    );
    repo.git(["config", "--unset", "ports.web.ready"]);
    // A server that starts late: wait returns once it accepts.
    let dir = wt.clone();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        listen_in(&dir, 28200)
    });
    let run = run_with(&env, &wt, &["wait", "web", "--timeout", "30"], &[]);
    let server = late.join().expect("listener thread");
    run.ok();
    assert_eq!(run.stdout, "✓ web (28200) accepts connections\n");
    drop(server);
    // A service the worktree does not hold is an error of its own.
    run_with(&env, &wt, &["wait", "db", "--timeout", "1"], &[]).code(2);
}

include!(concat!(env!("OUT_DIR"), "/it_owner.rs"));

//! `status`: the views, stale worktrees, health checks against real listeners, JSON, exit codes.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::{Env, Repo, same, scrub, scrub_self, silent_listener};

/// Three worktrees holding six ports in ranges of their own: wt-review (web, api),
/// wt-auth (web, api, db), wt-leak (web), allocated in that order. git lists them by path.
fn three_worktrees(env: &Env, base: u16) -> Repo<'_> {
    let repo = env.repo("app");
    repo.range("web", base, base + 9);
    repo.range("api", base + 10, base + 19);
    repo.range("db", base + 20, base + 29);
    let review = repo.worktree("wt-review", "feature/auth");
    let auth = repo.worktree("wt-auth", "feature/authentication");
    let leak = repo.worktree("wt-leak", "bugfix/memory-leak");
    env.run(&review, ["allocate", "web", "api"]).ok();
    env.run(&auth, ["allocate", "web", "api", "db"]).ok();
    env.run(&leak, ["allocate", "web"]).ok();
    repo
}

fn done_when_health_check_sees_two_running_and_four_stopped() {
    let env = Env::new();
    let repo = three_worktrees(&env, 22000);
    // wt-review's web on IPv4, wt-auth's api on IPv6 only.
    let v4 = TcpListener::bind("127.0.0.1:22000").expect("bind v4");
    let v6 = TcpListener::bind("[::1]:22011").ok();
    let v6_running = v6.is_some();

    // The listeners are this test's, in no worktree: running, but not their holders' servers.
    let run = repo.run(["status", "--all", "--health-check"]);
    run.ok();
    let text = scrub_self(&run.stdout);
    assert!(
        text.starts_with(
            "Port Allocation Status with Health Check\n========================================\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\nwt-review (feature/auth):\n  web:       22000   [FOREIGN]  ✗  served by [THIS TEST]\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  api:       22010   [STOPPED]  ✗\n"),
        "{text}"
    );
    assert!(
        text.contains("\nwt-auth (feature/authentication):\n"),
        "{text}"
    );
    assert!(
        text.contains("\nwt-leak (bugfix/memory-leak):\n  web:       22002   [STOPPED]  ✗\n"),
        "{text}"
    );
    if v6_running {
        assert!(
            text.contains("\n  api:       22011   [FOREIGN]  ✗  served by [THIS TEST]\n"),
            "{text}"
        );
        assert!(text.contains("Health Summary:\n  Running:  2 services\n  Stopped:  4 services\n  Errors:   0 services\n  Foreign:  2 services served by a process outside the worktree that holds them\n"), "{text}");
    }
    assert!(text.ends_with("Note: STOPPED status means port is allocated but no service is responding.\n      This is normal if you haven't started the development server yet.\n"), "{text}");

    let j = repo
        .run(["status", "--all", "--health-check", "--json"])
        .ok()
        .json();
    let running = if v6_running { 2 } else { 1 };
    assert_eq!(
        j["summary"],
        serde_json::json!({"running": running, "stopped": 6 - running, "errors": 0, "foreign": running})
    );
    assert_eq!(j["total_allocations"], 6);
    let review = &j["worktrees"][2];
    assert_eq!(review["name"], "wt-review");
    assert_eq!(review["branch"], "feature/auth");
    assert_eq!(review["stale"], false);
    assert_eq!(
        scrub(review["path"].as_str().unwrap_or_default(), &env),
        "[TMP]/wt-review"
    );
    assert_eq!(review["ports"]["web"]["port"], 22000);
    assert_eq!(review["ports"]["web"]["health"], "running");
    assert!(
        review["ports"]["web"]["response_time_ms"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0)
    );
    assert_eq!(review["ports"]["api"]["health"], "stopped");
    assert_eq!(review["ports"]["api"]["error"], "connection refused");
    assert!(review["ports"]["api"].get("response_time_ms").is_none());
    assert_eq!(
        scrub(
            review["ports"]["api"]["allocated_at"]
                .as_str()
                .unwrap_or_default(),
            &env
        ),
        "[TIME]"
    );
    assert_eq!(
        scrub(j["timestamp"].as_str().unwrap_or_default(), &env),
        "[TIME]"
    );
    let names: Vec<_> = j["worktrees"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec!["wt-auth", "wt-leak", "wt-review"]
            .into_iter()
            .map(serde_json::Value::from)
            .collect::<Vec<_>>()
    );

    repo.run(["status", "--worktree", "nope"]).code(3);
    drop((v4, v6));
}

fn all_view_without_health_check() {
    let env = Env::new();
    let repo = three_worktrees(&env, 22100);
    let run = repo.run(["status"]);
    run.ok();
    same(
        &run.stdout,
        "Port Allocation Status
======================

wt-auth (feature/authentication):
  web:       22101
  api:       22111
  db:        22120

wt-leak (bugfix/memory-leak):
  web:       22102

wt-review (feature/auth):
  web:       22100
  api:       22110

Total allocations: 6 ports across 3 worktrees
Available capacity:
  web: 7/10 ports free
  api: 8/10 ports free
  db:  9/10 ports free
",
    );
    // Plain `git ports` means the same.
    same(&repo.run(Vec::<&str>::new()).ok().stdout, &run.stdout);
    // JSON without --health-check has neither health nor summary.
    let j = repo.run(["status", "--json"]).ok().json();
    assert!(j.get("summary").is_none());
    assert!(j["worktrees"][0]["ports"]["web"].get("health").is_none());
}

fn worktree_and_service_views() {
    let env = Env::new();
    let repo = three_worktrees(&env, 22200);
    let run = repo.run(["status", "--worktree", "feature/authentication"]);
    run.ok();
    same(
        &scrub(&run.stdout, &env),
        "Port Status for Worktree: wt-auth
=================================
Branch: feature/authentication
Path: [TMP]/wt-auth

Allocated Ports:
  web:       22201
  api:       22211
  db:        22220

Allocation Details:
  Service: web
    Port: 22201
    Allocated: [TIME] (just now)
    Range: 22200-22209

  Service: api
    Port: 22211
    Allocated: [TIME] (just now)
    Range: 22210-22219

  Service: db
    Port: 22220
    Allocated: [TIME] (just now)
    Range: 22220-22229
",
    );
    let run = repo.run(["status", "--service", "web"]);
    run.ok();
    same(
        &scrub(&run.stdout, &env),
        "Port Status for Service: web
============================

Allocated Ports (range 22200-22209):

  22200 → wt-review
         Branch: feature/auth
         Created: [TIME] (just now)

  22201 → wt-auth
         Branch: feature/authentication
         Created: [TIME] (just now)

  22202 → wt-leak
         Branch: bugfix/memory-leak
         Created: [TIME] (just now)

Service 'web' usage:
  Allocated: 3 ports
  Available: 7 ports
  Utilization: 30%
",
    );
    let j = repo
        .run(["status", "--service", "db", "--json"])
        .ok()
        .json();
    assert_eq!(j["total_allocations"], 1);
    assert_eq!(j["worktrees"][0]["name"], "wt-auth");
    assert_eq!(
        j["worktrees"][0]["ports"].as_object().map(|m| m.len()),
        Some(1)
    );
    let j = repo
        .run(["status", "--worktree", "wt-leak", "--json"])
        .ok()
        .json();
    assert_eq!(j["worktrees"].as_array().map(Vec::len), Some(1));
    assert_eq!(j["worktrees"][0]["ports"]["web"]["port"], 22202);
}

fn detached_head_is_shown() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 22300, 22309);
    let det = repo.detached_worktree("det");
    env.run(&det, ["allocate", "web"]).ok();
    let run = repo.run(["status"]);
    assert!(
        run.ok()
            .stdout
            .contains("\ndet (detached):\n  web:       22300\n"),
        "{}",
        run.stdout
    );
    let j = repo.run(["status", "--json"]).ok().json();
    assert_eq!(j["worktrees"][0]["branch"], serde_json::Value::Null);
    assert_eq!(j["worktrees"][0]["detached"], true);
}

fn removed_and_deleted_worktrees_are_stale_never_running() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 22400, 22409);
    let gone = repo.worktree("gone", "g");
    let deleted = repo.worktree("deleted", "d");
    env.run(&gone, ["allocate", "web"]).ok();
    env.run(&deleted, ["allocate", "web"]).ok();
    repo.git(["worktree", "remove", gone.to_str().unwrap_or_default()]);
    std::fs::remove_dir_all(&deleted).expect("rm -rf");
    // Something listens on the stale ports: still not counted as running.
    let l1 = TcpListener::bind("127.0.0.1:22400").expect("bind");
    let l2 = TcpListener::bind("127.0.0.1:22401").expect("bind");
    let run = repo.run(["status", "--health-check"]);
    run.ok();
    let text = run.stdout.clone();
    assert!(
        text.contains("\ndeleted (d) [stale: directory missing]:\n  web:       22401   [STALE]\n"),
        "{text}"
    );
    assert!(
        text.contains("\ngone [stale: removed from git]:\n  web:       22400   [STALE]\n"),
        "{text}"
    );
    assert!(text.contains("Running:  0 services"), "{text}");
    assert!(
        text.contains("Stale worktrees hold 2 ports: run `git ports prune` to release them.\n"),
        "{text}"
    );
    let j = repo.run(["status", "--health-check", "--json"]).ok().json();
    assert_eq!(j["worktrees"][1]["name"], "gone");
    assert_eq!(j["worktrees"][1]["stale"], true);
    assert_eq!(j["worktrees"][1]["ports"]["web"]["health"], "stale");
    assert_eq!(j["summary"]["running"], 0);
    // A removed worktree is still found by name.
    repo.run(["status", "--worktree", "gone"]).ok();
    drop((l1, l2));
}

fn no_registry_yet() {
    let env = Env::new();
    let repo = env.repo("app");
    let run = repo.run(["status"]);
    run.ok();
    assert!(
        run.stdout.starts_with("No ports allocated yet.\n"),
        "{}",
        run.stdout
    );
    let j = repo.run(["status", "--json"]).ok().json();
    assert_eq!(j["total_allocations"], 0);
    assert_eq!(j["worktrees"], serde_json::json!([]));
    // Nor after every port was released.
    repo.range("web", 22800, 22809);
    repo.run(["allocate", "web"]).ok();
    repo.run(["release", "22800"]).ok();
    assert!(
        repo.run(["status"])
            .ok()
            .stdout
            .starts_with("No ports allocated yet.\n")
    );
}

fn exit_codes_of_the_status_table() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 22500, 22509);
    repo.run(["allocate", "web"]).ok();
    repo.run(["status", "--timeout", "abc"]).code(1);
    repo.run(["status", "--service", "Web"]).code(1);
    repo.run(["status", "--service", "nosuch"]).code(1);
    repo.run(["status", "--worktree", "nosuch"]).code(3);
    std::fs::write(repo.registry_path(), "[]").expect("write");
    let run = repo.run(["status"]);
    run.code(2);
    assert!(
        run.stderr.starts_with("git-ports: registry "),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(repo.registry_path()).expect("read"),
        "[]"
    );
}

fn never_answering_ports_are_checked_concurrently() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 22600, 22629);
    let mut held = Vec::new();
    for port in 22600..22630 {
        let wt = repo.worktree(&format!("w{port}"), &format!("b{port}"));
        env.run(&wt, ["allocate", "web", "--port", &port.to_string()])
            .ok();
        match silent_listener(port) {
            Some(l) => held.push(l),
            None => {
                crate::support::skip("cannot make a never-answering listener here");
            }
        }
    }
    let start = Instant::now();
    let run = repo.run(["status", "--health-check", "--timeout", "1", "--json"]);
    let took = start.elapsed();
    run.code(4);
    assert_eq!(run.json()["summary"]["errors"], 30, "{}", run.stdout);
    assert!(
        run.stderr.contains("health check met 30 error(s)"),
        "{}",
        run.stderr
    );
    assert!(
        took < Duration::from_secs(10),
        "30 silent ports took {took:?}"
    );
    drop(held);
}

fn colour_only_when_asked_or_on_a_terminal() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 22700, 22709);
    repo.run(["allocate", "web"]).ok();
    let run = |no_color: bool| {
        let mut cmd = env.cmd(&repo.dir);
        cmd.arg("status")
            .arg("--health-check")
            .env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("run");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Piped: plain.
    assert!(!run(false).contains('\x1b'));
    repo.git(["config", "color.ports", "always"]);
    let coloured = run(false);
    assert!(
        coloured.contains("\x1b[31m[STOPPED]  ✗\x1b[0m"),
        "{coloured}"
    );
    assert!(!run(true).contains('\x1b'), "NO_COLOR wins");
    repo.git(["config", "color.ports", "never"]);
    repo.git(["config", "color.ui", "always"]);
    assert!(
        !run(false).contains('\x1b'),
        "color.ports wins over color.ui"
    );
    repo.git(["config", "--unset", "color.ports"]);
    assert!(run(false).contains('\x1b'), "color.ui always");
}

include!(concat!(env!("OUT_DIR"), "/it_status.rs"));

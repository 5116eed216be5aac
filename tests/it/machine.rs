//! The machine-wide ledger: no port handed out twice across repositories.

use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Env, same, scrub};

fn two_repositories_never_share_a_port_and_a_deleted_one_gives_its_port_back() {
    let env = Env::new();
    let a = env.repo("a");
    let b = env.repo("b");
    a.range("web", 24000, 24009);
    b.range("web", 24000, 24009);
    a.run(["allocate", "web"]).ok();
    let run = b.run(["allocate", "web"]);
    run.ok();
    assert!(
        scrub(&run.stdout, &env)
            .contains("Port 24000: In use by [TMP]/a (a)\nPort 24001: Available\n"),
        "{}",
        run.stdout
    );
    let j = b.run(["allocate", "web", "--json"]).ok().json();
    assert_eq!(j["allocations"][0]["port"], 24001);

    // check and available see the other repository's port.
    let check = b.run(["check", "24000"]);
    check.code(4);
    assert!(
        scrub(&check.stdout, &env)
            .contains("- Held by another repository: [TMP]/a (worktree 'a', service 'web')"),
        "{}",
        check.stdout
    );
    assert!(
        b.run(["available", "web"])
            .ok()
            .stdout
            .contains("  24000 → ")
    );

    // The machine view groups by repository.
    let m = b.run(["status", "--machine"]);
    same(
        &scrub(&m.ok().stdout, &env),
        "Port Allocations on This Machine
================================

[TMP]/a:
  a (main):
    web:       24000

[TMP]/b:
  b (main):
    web:       24001

Total allocations: 2 ports across 2 worktrees in 2 repositories
",
    );
    let mj = a
        .run(["status", "--machine", "--json", "--health-check"])
        .ok()
        .json();
    assert_eq!(mj["total_allocations"], 2);
    assert_eq!(
        scrub(
            mj["repositories"][1]["path"].as_str().unwrap_or_default(),
            &env
        ),
        "[TMP]/b"
    );
    assert_eq!(
        mj["repositories"][1]["worktrees"][0]["ports"]["web"]["health"],
        "stopped"
    );
    assert_eq!(mj["summary"]["stopped"], 2);

    // Delete repository a: its claim is dropped when met, and b can have 24000.
    std::fs::remove_dir_all(&a.dir).expect("rm -rf a");
    let wt = b.worktree("b-second", "second");
    let j = env.run(&wt, ["allocate", "web", "--json"]).ok().json();
    assert_eq!(j["allocations"][0]["port"], 24000);
    let ledger: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.path("ports-home/ledger.json")).expect("ledger"),
    )
    .expect("json");
    let repos: Vec<String> = ledger["ports"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, c)| scrub(c["repo"].as_str().unwrap_or_default(), &env))
        .collect();
    assert_eq!(repos, vec!["[TMP]/b/.git", "[TMP]/b/.git"]);
    // Releasing updates the ledger too.
    b.run(["release", "24001"]).ok();
    let ledger = std::fs::read_to_string(env.path("ports-home/ledger.json")).expect("ledger");
    assert!(!ledger.contains("\"24001\""), "{ledger}");
}

fn spawn_alloc(env: &Env, dir: &std::path::Path) -> Child {
    env.cmd(dir)
        .args(["allocate", "web", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn parallel_allocation_in_two_repositories_gives_distinct_ports_without_deadlock() {
    let env = Env::new();
    let a = env.repo("a");
    let b = env.repo("b");
    let mut dirs = Vec::new();
    for (name, repo) in [("a", &a), ("b", &b)] {
        repo.range("web", 24100, 24199);
        for i in 0..6 {
            dirs.push(repo.worktree(&format!("{name}{i}"), &format!("{name}{i}")));
        }
    }
    let children: Vec<Child> = dirs.iter().map(|d| spawn_alloc(&env, d)).collect();
    let start = Instant::now();
    let mut ports = Vec::new();
    for mut c in children {
        loop {
            if c.try_wait().expect("wait").is_some() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "deadlock: allocation did not finish"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = c.wait_with_output().expect("output");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        ports.push(j["allocations"][0]["port"].as_u64().unwrap_or(0));
    }
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 12, "{ports:?}");
}

fn a_corrupt_ledger_is_reported_and_left_alone() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 24200, 24209);
    let ledger = env.path("ports-home/ledger.json");
    std::fs::write(&ledger, "{\"version\": 1, \"ports\": ").expect("write");
    let run = repo.run(["allocate", "web"]);
    run.code(5);
    assert!(
        run.stderr.starts_with("git-ports: ledger ")
            && run.stderr.contains("ledger.json: EOF while parsing"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&ledger).expect("read"),
        "{\"version\": 1, \"ports\": "
    );
    assert!(!repo.registry_path().exists());
}

fn check_names_the_listening_process() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 24300, 24309);
    let listener = TcpListener::bind("127.0.0.1:24305").expect("bind");
    let j = repo.run(["check", "24305", "--json"]).ok().json();
    assert_eq!(j["listening"], true);
    if std::path::Path::new("/proc/net/tcp").exists() {
        assert_eq!(j["process"]["pid"], std::process::id());
        assert_eq!(j["process"]["owner"], "other");
        let text = repo.run(["check", "24305"]).ok().stdout.clone();
        assert!(
            crate::support::scrub_self(&text).contains("- In use now by [THIS TEST]\n"),
            "{text}"
        );
    }
    drop(listener);
}

fn opting_out_keeps_a_repository_out_of_the_ledger() {
    let env = Env::new();
    let a = env.repo("a");
    let b = env.repo("b");
    a.range("web", 24400, 24409);
    b.range("web", 24400, 24409);
    b.git(["config", "ports.machineWide", "false"]);
    a.run(["allocate", "web"]).ok();
    // b still skips a's port, but records nothing in the ledger.
    assert_eq!(
        b.run(["allocate", "web", "--json"]).ok().json()["allocations"][0]["port"],
        24401
    );
    let ledger = std::fs::read_to_string(env.path("ports-home/ledger.json")).expect("ledger");
    assert!(!ledger.contains("24401"), "{ledger}");
    // A repository that opts out later takes its claims out at its next change.
    a.git(["config", "ports.machineWide", "false"]);
    a.run(["allocate", "api"]).ok();
    let ledger = std::fs::read_to_string(env.path("ports-home/ledger.json")).expect("ledger");
    assert!(!ledger.contains("24400"), "{ledger}");
}

include!(concat!(env!("OUT_DIR"), "/it_machine.rs"));

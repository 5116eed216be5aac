//! `allocate`, `release`, `check`, `available`: the spec's examples, exit codes, worktree
//! addressing and repository shapes.

use std::net::TcpListener;
use std::process::Stdio;

use crate::support::{Env, same, scrub, scrub_self};

fn spec_example_1_allocate_skips_held_and_in_use_ports() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21000, 21009);
    let auth = repo.worktree("feature-auth-system", "feature/authentication");
    let leak = repo.worktree("bugfix-memory-leak", "bugfix/memory-leak");
    let review = repo.worktree("review-GH-42", "feature/auth");
    env.run(&auth, ["allocate", "web"]).ok();
    env.run(&leak, ["allocate", "web"]).ok();
    // Something outside git-ports holds 21002 on IPv4 only.
    let listener = TcpListener::bind("127.0.0.1:21002").expect("bind");
    let run = env.run(
        &repo.dir,
        ["allocate", "--service", "web", "--worktree", "review-GH-42"],
    );
    run.ok();
    same(
        &scrub_self(&run.stdout),
        "Allocating port for service 'web' to worktree 'review-GH-42'

Searching for available port in range: 21000-21009
Port 21000: In use by feature-auth-system
Port 21001: In use by bugfix-memory-leak
Port 21002: In use by [THIS TEST]
Port 21003: Available

✓ Allocated port 21003 for service 'web'
✓ Updated registry for worktree 'review-GH-42'

Configuration:
  Worktree: review-GH-42
  Service: web
  Port: 21003

To start service, run in worktree directory:
  npm run dev -- --port 21003 --strictPort
",
    );
    drop(listener);
    let reg = repo.registry();
    assert_eq!(reg["version"], 2);
    assert_eq!(
        reg["worktrees"]["review-GH-42"]["ports"]["web"]["port"],
        21003
    );
    let path = reg["worktrees"]["review-GH-42"]["path"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(scrub(path, &env), "[TMP]/review-GH-42");
    let _ = review;
}

fn a_server_listening_only_on_ipv6_loopback_is_skipped() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21010, 21019);
    let Ok(listener) = TcpListener::bind("[::1]:21010") else {
        crate::support::skip("no IPv6 loopback here");
    };
    let run = repo.run(["allocate", "web", "--json"]);
    run.ok();
    let j = run.json();
    assert_eq!(j["allocations"][0]["port"], 21011);
    assert_eq!(j["allocations"][0]["skipped"][0]["port"], 21010);
    assert_eq!(j["allocations"][0]["skipped"][0]["reason"], "in_use");
    drop(listener);
}

fn done_when_two_worktrees_then_idempotent_check_release() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21020, 21029);
    let a = repo.worktree("wt-a", "a");
    let b = repo.worktree("wt-b", "b");
    let first = env.run(&a, ["allocate", "web", "--json"]);
    assert_eq!(first.ok().json()["allocations"][0]["port"], 21020);
    let second = env.run(&b, ["allocate", "web", "--json"]);
    assert_eq!(second.ok().json()["allocations"][0]["port"], 21021);

    let before = std::fs::read(repo.registry_path()).expect("registry");
    let again = env.run(&a, ["allocate", "web"]);
    again.ok();
    assert!(
        again.stdout.starts_with(
            "✓ Port 21020 is already allocated to worktree 'wt-a' for service 'web'\n"
        ),
        "{}",
        again.stdout
    );
    assert_eq!(
        std::fs::read(repo.registry_path()).expect("registry"),
        before
    );

    repo.run(["check", "21020"]).code(4);
    repo.run(["release", "21020"]).ok();
    repo.run(["check", "21020"]).ok();
}

fn spec_example_2_release_and_3_check() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21030, 21039);
    let review = repo.worktree("review-GH-42", "review");
    env.run(&review, ["allocate", "web"]).ok();
    let run = repo.run(["release", "21030"]);
    run.ok();
    same(
        &scrub(&run.stdout, &env),
        "Releasing port 21030

Port 21030 is currently allocated to:
  Worktree: review-GH-42
  Service: web
  Allocated at: [TIME]

✓ Port 21030 released
✓ Updated registry for worktree 'review-GH-42'

Port 21030 is now available for allocation.
",
    );
    let check = repo.run(["check", "21035"]);
    check.ok();
    same(
        &check.stdout,
        "Checking port 21035 availability

Port 21035: AVAILABLE
- Not allocated to any worktree
- Valid for services: web (21030-21039)
- Nothing on this machine is listening on it now

This port can be allocated immediately.
",
    );
    // Releasing what nobody holds names the port.
    let again = repo.run(["release", "21030"]);
    again.code(1);
    assert_eq!(again.stderr, "git-ports: port 21030 is not allocated\n");
}

fn spec_example_4_available_compresses_free_ranges() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21100, 21199);
    for (i, port) in [21100, 21101, 21102, 21103, 21110, 21120, 21150]
        .iter()
        .enumerate()
    {
        let wt = repo.worktree(&format!("wt{i}"), &format!("b{i}"));
        env.run(&wt, ["allocate", "web", "--port", &port.to_string()])
            .ok();
    }
    let run = repo.run(["available", "web"]);
    run.ok();
    same(
        &run.stdout,
        "Available ports for service 'web' (range: 21100-21199)

Currently allocated (7 ports):
  21100 → wt0
  21101 → wt1
  21102 → wt2
  21103 → wt3
  21110 → wt4
  21120 → wt5
  21150 → wt6

Available ports (93 remaining):
  21104-21109, 21111-21119, 21121-21149, 21151-21199

Next suggested port: 21104
",
    );
    let j = repo
        .run(["allocate", "--available", "web", "--json"])
        .ok()
        .json();
    assert_eq!(j["free_count"], 93);
    assert_eq!(j["free"][0], serde_json::json!([21104, 21109]));
    assert_eq!(j["next"], 21104);
    assert_eq!(j["allocated"][6]["worktree"], "wt6");
}

fn spec_example_5_several_services_in_one_worktree() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21200, 21209);
    repo.range("api", 21210, 21219);
    repo.range("db", 21220, 21229);
    repo.worktree("feature-fullstack", "fullstack");
    for s in ["web", "api", "db"] {
        repo.run([
            "allocate",
            "--service",
            s,
            "--worktree",
            "feature-fullstack",
        ])
        .ok();
    }
    let ports = &repo.registry()["worktrees"]["feature-fullstack"]["ports"];
    assert_eq!(ports["web"]["port"], 21200);
    assert_eq!(ports["api"]["port"], 21210);
    assert_eq!(ports["db"]["port"], 21220);
    // One call with several services does the same, and repeats keep the ports.
    let j = repo
        .run([
            "allocate",
            "web",
            "api",
            "db",
            "-w",
            "feature-fullstack",
            "--json",
        ])
        .ok()
        .json();
    let got: Vec<_> = j["allocations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| (a["port"].clone(), a["new"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (21200.into(), false.into()),
            (21210.into(), false.into()),
            (21220.into(), false.into())
        ]
    );
}

fn exit_codes_of_the_allocate_table() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21300, 21301);
    let a = repo.worktree("wt-a", "a");
    let b = repo.worktree("wt-b", "b");
    let c = repo.worktree("wt-c", "c");
    // 1: invalid arguments, clap's included; help and version stay 0.
    for args in [
        vec!["allocate", "nosuch"],
        vec!["allocate", "Web"],
        vec!["allocate"],
        vec!["allocate", "web", "--port", "0"],
        vec!["allocate", "web", "--port", "65536"],
        vec!["allocate", "web", "--port", "8000.5"],
        vec!["allocate", "web", "--port", "abc"],
        vec!["check", "-1"],
        vec!["frobnicate"],
        vec!["allocate", "web", "api", "--port", "21300"],
    ] {
        let run = repo.run(&args);
        run.code(1);
        assert_eq!(
            run.stderr
                .lines()
                .filter(|l| l.starts_with("git-ports: "))
                .count(),
            1,
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    repo.run(["--help"]).ok();
    repo.run(["allocate", "--help"]).ok();
    repo.run(["--version"]).ok();
    // 1: a port outside the service's range.
    let out = repo.run(["allocate", "web", "--port", "22000"]);
    out.code(1);
    assert_eq!(
        out.stderr,
        "git-ports: port 22000 is outside the range of service 'web' (21300-21301)\n"
    );
    // 2: worktree not found, and not a repository.
    repo.run(["allocate", "web", "--worktree", "nope"]).code(2);
    let outside = env.run(env.root(), ["allocate", "web"]);
    outside.code(2);
    assert_eq!(
        outside.stderr,
        "git-ports: not inside a git repository\nhint: run git ports inside a repository or one of its worktrees\n"
    );
    // 4: a port another worktree holds.
    env.run(&a, ["allocate", "web"]).ok();
    let taken = env.run(&b, ["allocate", "web", "--port", "21300"]);
    taken.code(4);
    assert_eq!(
        taken.stderr,
        "git-ports: port 21300 is already allocated to worktree 'wt-a' (service 'web')\n"
    );
    // 3: the range is exhausted.
    env.run(&b, ["allocate", "web"]).ok();
    let full = env.run(&c, ["allocate", "web"]);
    full.code(3);
    assert!(
        full.stderr.starts_with(
            "git-ports: no free port for service 'web' in 21300-21301: 2 of 2 are held"
        ),
        "{}",
        full.stderr
    );
    // 5: a corrupt registry, left byte for byte.
    let path = repo.registry_path();
    std::fs::write(&path, "{\n  \"version\": 1,\n  \"worktrees\": {\n").expect("write");
    let before = std::fs::read(&path).expect("read");
    let corrupt = env.run(&c, ["allocate", "web"]);
    corrupt.code(5);
    assert!(
        corrupt
            .stderr
            .contains("worktree-ports.json: EOF while parsing an object at line 4 column 0"),
        "{}",
        corrupt.stderr
    );
    assert_eq!(std::fs::read(&path).expect("read"), before);
    repo.run(["release", "21300"]).code(5);
    repo.run(["status"]).code(2);
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

fn a_malformed_range_in_config_names_the_key() {
    let env = Env::new();
    let repo = env.repo("app");
    for bad in ["9000-8000", "0-10", "abc", "1-70000"] {
        repo.git(["config", "ports.web.range", bad]);
        let run = repo.run(["allocate", "web"]);
        run.code(1);
        assert!(
            run.stderr
                .starts_with("git-ports: config ports.web.range: "),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!(
                "(got '{bad}', set in {}/.git/config)",
                repo.dir.display()
            )),
            "{}",
            run.stderr
        );
    }
    // Global config is read too.
    repo.git(["config", "--unset", "ports.web.range"]);
    repo.git(["config", "--global", "ports.storybook.range", "21400-21409"]);
    assert_eq!(
        repo.run(["allocate", "storybook", "--json"]).ok().json()["allocations"][0]["port"],
        21400
    );
}

fn worktree_addressed_by_name_path_relative_path_and_branch() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21500, 21509);
    let wt = repo.worktree("feature-x", "feature/auth");
    std::fs::create_dir_all(wt.join("src/deep")).expect("mkdir");
    let cases: Vec<(std::path::PathBuf, String)> = vec![
        (repo.dir.clone(), "feature-x".into()),
        (repo.dir.clone(), wt.to_string_lossy().into_owned()),
        (repo.dir.clone(), "../feature-x".into()),
        (repo.dir.clone(), "feature/auth".into()),
        (wt.join("src/deep"), "../..".into()),
    ];
    for (dir, query) in cases {
        let j = env
            .run(&dir, ["allocate", "web", "--worktree", &query, "--json"])
            .ok()
            .json();
        assert_eq!(j["worktree"], "feature-x", "{query}");
        assert_eq!(j["allocations"][0]["port"], 21500, "{query}");
    }
    // The main worktree by its directory's name; the current one from a subdirectory.
    assert_eq!(
        repo.run(["allocate", "web", "-w", "app", "--json"])
            .ok()
            .json()["allocations"][0]["port"],
        21501
    );
    let sub = env
        .run(&wt.join("src/deep"), ["allocate", "web", "--json"])
        .ok()
        .json();
    assert_eq!(sub["worktree"], "feature-x");
    assert_eq!(sub["allocations"][0]["new"], false);
    // Not found lists the known worktrees.
    let none = repo.run(["allocate", "web", "-w", "nope"]);
    none.code(2);
    assert_eq!(
        none.stderr,
        "git-ports: no worktree matches 'nope'\nhint: known worktrees: app, feature-x\n"
    );
}

fn an_ambiguous_worktree_names_the_candidates() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.worktree("one", "two");
    repo.worktree("two", "three");
    let run = repo.run(["allocate", "web", "-w", "two"]);
    run.code(2);
    let s = scrub(&run.stderr, &env);
    assert_eq!(
        s,
        "git-ports: 'two' matches more than one worktree: one ([TMP]/one), two ([TMP]/two)\n"
    );
}

/// A name is found without reading every worktree's HEAD only when no branch has it: packed
/// refs and unborn branches still make it ambiguous, or found by branch.
fn names_and_branches_resolve_whatever_holds_the_ref() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.worktree("one", "two");
    repo.worktree("two", "three");
    repo.git(["pack-refs", "--all"]);
    assert!(!repo.dir.join(".git/refs/heads/two").exists());
    let run = repo.run(["get", "web", "-w", "two"]);
    run.code(2);
    assert!(
        run.stderr.contains("'two' matches more than one worktree"),
        "{}",
        run.stderr
    );
    // A name no branch has: found by name alone.
    repo.run(["allocate", "web", "-w", "one"]).ok();
    // An unborn branch has no ref yet; its worktree is still found by it.
    let orphan = env.path("orphan");
    repo.git([
        "worktree",
        "add",
        "-q",
        "--orphan",
        "-b",
        "fresh",
        orphan.to_str().unwrap_or(""),
    ]);
    let json = repo
        .run(["allocate", "web", "-w", "fresh", "--json"])
        .ok()
        .json();
    assert_eq!(json["worktree"], "orphan");
}

fn duplicate_basenames_get_git_admin_names() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21510, 21519);
    std::fs::create_dir_all(env.path("x")).expect("mkdir");
    repo.worktree("dup", "d1");
    repo.worktree("x/dup", "d2");
    let j = env
        .run(&env.path("x/dup"), ["allocate", "web", "--json"])
        .ok()
        .json();
    assert_eq!(j["worktree"], "dup1");
    // The admin name survives `git worktree move`.
    repo.git([
        "worktree",
        "move",
        env.path("x/dup").to_str().unwrap_or_default(),
        env.path("moved").to_str().unwrap_or_default(),
    ]);
    let j = env
        .run(&env.path("moved"), ["allocate", "web", "--json"])
        .ok()
        .json();
    assert_eq!(
        (j["worktree"].clone(), j["allocations"][0]["new"].clone()),
        ("dup1".into(), false.into())
    );
}

fn bare_repository_with_linked_worktrees() {
    let env = Env::new();
    let bare = env.bare_repo("bare");
    env.git(&bare, ["config", "ports.web.range", "21520-21529"]);
    let wt = env.path("bare-wt");
    env.git(
        &bare,
        [
            "worktree",
            "add",
            "-q",
            wt.to_str().unwrap_or_default(),
            "-b",
            "topic",
        ],
    );
    let j = env.run(&wt, ["allocate", "web", "--json"]).ok().json();
    assert_eq!(j["worktree"], "bare-wt");
    assert!(bare.join("worktree-ports.json").exists());
    // Outside any worktree, a command that needs one asks for --worktree.
    let run = env.run(&bare, ["allocate", "web"]);
    run.code(1);
    assert_eq!(
        run.stderr,
        "git-ports: this repository is bare and the current directory is not inside a worktree\nhint: name one with --worktree\n"
    );
    assert_eq!(
        env.run(&bare, ["allocate", "web", "-w", "topic", "--json"])
            .ok()
            .json()["allocations"][0]["new"],
        false
    );
}

fn detached_head_and_git_dir_set_as_in_a_hook() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21530, 21539);
    let det = repo.detached_worktree("det");
    assert_eq!(
        env.run(&det, ["allocate", "web", "--json"]).ok().json()["worktree"],
        "det"
    );
    // A hook runs at the top of the worktree with GIT_DIR=.git; from elsewhere GIT_DIR wins.
    let out = env
        .cmd(env.root())
        .env("GIT_DIR", repo.dir.join(".git"))
        .env("GIT_WORK_TREE", &repo.dir)
        .args(["allocate", "web", "--json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (j["worktree"].clone(), j["allocations"][0]["port"].clone()),
        ("app".into(), 21531.into())
    );
}

fn script_flag_forms_keep_working() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21540, 21549);
    repo.worktree("wt", "b");
    repo.run(["allocate", "--service", "web", "--worktree", "wt"])
        .ok();
    repo.run(["allocate", "--check", "21540"]).code(4);
    let avail = repo.run(["allocate", "--available", "web"]);
    assert!(
        avail.ok().stdout.contains("  21540 → wt\n"),
        "{}",
        avail.stdout
    );
    repo.run(["allocate", "--release", "21540"]).ok();
    repo.run(["allocate", "--check", "21540"]).ok();
    repo.run(["allocate", "--release", "21540"]).code(1);
}

fn release_by_worktree_and_service() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21550, 21559);
    repo.range("api", 21560, 21569);
    repo.worktree("wt", "b");
    repo.run(["allocate", "web", "api", "-w", "wt"]).ok();
    let j = repo
        .run(["release", "--worktree", "wt", "--service", "api", "--json"])
        .ok()
        .json();
    assert_eq!(j["released"][0]["port"], 21560);
    repo.run(["release", "--worktree", "wt", "--service", "api"])
        .code(2);
    repo.run(["release", "--worktree", "wt"]).ok();
    assert_eq!(repo.registry()["worktrees"], serde_json::json!({}));
}

fn a_closed_stdout_is_not_an_error() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 21570, 21579);
    let mut child = env
        .cmd(&repo.dir)
        .args(["available", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{:?}", out);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

include!(concat!(env!("OUT_DIR"), "/it_allocate.rs"));

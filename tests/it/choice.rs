//! How a port is chosen: a worktree made again gets its ports back (by name or branch), one
//! offset for all services with `ports.align`, the same first choice on every machine with
//! `ports.stableFirst`, the main worktree's first port with `ports.reserveMain`, and version 1
//! registries read without loss.

use std::fs;

use crate::promise::run_with;
use crate::support::{Env, Repo};

fn get(env: &Env, dir: &std::path::Path, service: &str) -> String {
    env.run(dir, ["get", service])
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn a_worktree_made_again_gets_its_ports_back() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 28300, 28309);
    repo.range("api", 28310, 28319);
    repo.run(["hook", "install", "--services", "web,api"]).ok();
    repo.add_worktree("a", "a").ok();
    repo.add_worktree("fx", "feature-x").ok();
    repo.add_worktree("b", "b").ok();
    let fx = env.path("fx");
    let (web, api) = (get(&env, &fx, "web"), get(&env, &fx, "api"));
    assert_eq!((web.as_str(), api.as_str()), ("28301", "28311"));
    // Removed; others are made meanwhile, and take fresh ports, not feature-x's.
    repo.git(["worktree", "remove", fx.to_str().unwrap_or("")]);
    repo.run(["prune"]).ok();
    repo.add_worktree("c", "c").ok();
    assert_eq!(get(&env, &env.path("c"), "web"), "28303");
    // The same name again: the same ports, and the hook says so.
    let again = repo.add_worktree("fx", "feature-x-2");
    again.ok();
    assert!(
        again
            .stderr
            .contains("git-ports: web port 28301 for worktree 'fx' (previously held by fx)"),
        "{again:?}"
    );
    assert_eq!(get(&env, &fx, "api"), "28311");
    // The same branch under another name: its ports back too.
    repo.git(["worktree", "remove", fx.to_str().unwrap_or("")]);
    repo.run(["prune"]).ok();
    let renamed = repo.add_worktree_branch("fx-renamed", "feature-x");
    renamed.ok();
    let renamed_dir = env.path("fx-renamed");
    let alloc = env.run(&renamed_dir, ["allocate", "web", "--json"]);
    assert_eq!(alloc.json()["allocations"][0]["port"], 28301);
    assert_eq!(alloc.json()["allocations"][0]["new"], false);
    assert_eq!(get(&env, &renamed_dir, "api"), "28311");
}

fn a_remembered_port_that_is_taken_falls_back_to_lowest_free_and_forget_forgets() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 28320, 28329);
    let fx = repo.worktree("fx", "fx");
    env.run(&fx, ["allocate", "web"]).ok();
    assert_eq!(get(&env, &fx, "web"), "28320");
    env.run(&fx, ["release", "-w", "fx"]).ok();
    // Another worktree asks for a port: 28320 is kept for fx while the range has others.
    let other = repo.worktree("other", "other");
    env.run(&other, ["allocate", "web"]).ok();
    assert_eq!(get(&env, &other, "web"), "28321");
    // fx gets it back; then, taken by someone else, fx falls back to the lowest free.
    let alloc = env.run(&fx, ["allocate", "web"]);
    assert!(
        alloc.stdout.contains("Port 28320: previously held by fx\n"),
        "{}",
        alloc.stdout
    );
    env.run(&fx, ["release", "-w", "fx"]).ok();
    env.run(&other, ["allocate", "web", "--port", "28320", "-w", "main"])
        .code(0);
    env.run(&fx, ["allocate", "web"]).ok();
    assert_eq!(get(&env, &fx, "web"), "28322");
    // --forget: nothing is kept for it any more.
    env.run(&fx, ["release", "--forget", "-w", "fx"]).ok();
    let reg = repo.registry();
    assert!(
        !reg["remembered"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, m)| m["web"]["port"] == 28322),
        "{reg}"
    );
}

fn aligned_slots_share_one_offset_across_services() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 28500, 28509);
    repo.range("api", 28510, 28519);
    repo.range("db", 28520, 28529);
    repo.git(["config", "ports.align", "true"]);
    let a = repo.worktree("a", "a");
    env.run(&a, ["allocate", "web"]).ok();
    let b = repo.worktree("b", "b");
    // Slot 0 is a's (it holds web there), so b takes slot 1 in all three.
    let alloc = env
        .run(&b, ["allocate", "web", "api", "--json"])
        .ok()
        .json();
    assert_eq!(alloc["allocations"][0]["slot"], 1);
    assert_eq!(
        (get(&env, &b, "web"), get(&env, &b, "api")),
        ("28501".into(), "28511".into())
    );
    // A later service takes the same slot.
    env.run(&b, ["allocate", "db"]).ok();
    assert_eq!(get(&env, &b, "db"), "28521");
    // Exported and shown.
    assert!(
        env.run(&b, ["env"])
            .ok()
            .stdout
            .contains("export GIT_PORTS_SLOT=1\n")
    );
    assert!(
        repo.run(["status"])
            .ok()
            .stdout
            .contains("b (b) [slot 1]:\n")
    );
    // When the slot is taken in the later service, the documented fallback: the lowest free
    // port at an offset no other worktree uses.
    let c = repo.worktree("c", "c");
    env.run(&c, ["allocate", "web"]).ok();
    assert_eq!(get(&env, &c, "web"), "28502");
    let d = repo.worktree("d", "d");
    env.run(&d, ["allocate", "api", "--port", "28512"]).ok();
    env.run(&c, ["allocate", "api"]).ok();
    assert_eq!(get(&env, &c, "api"), "28513");
    assert!(!repo.run(["status"]).ok().stdout.contains("c (c) [slot"));
}

fn the_stable_first_choice_is_the_same_in_two_fresh_clones() {
    let env = Env::new();
    let src = env.repo("src");
    let url = src.dir.to_str().unwrap_or("").to_string();
    let mut picks = Vec::new();
    for machine in ["m1", "m2"] {
        let dir = env.path(&format!("{machine}/app"));
        fs::create_dir_all(env.path(machine)).expect("mkdir");
        env.git(&env.path(machine), ["clone", "-q", &url, "app"]);
        let clone = Repo { env: &env, dir };
        clone.range("web", 28600, 28699);
        // The same origin on both machines, and one that does not depend on the temp dir's
        // random name (a random name hashes to the lowest port one run in a hundred).
        clone.git([
            "remote",
            "set-url",
            "origin",
            "https://example.com/shop.git",
        ]);
        clone.git(["config", "ports.stableFirst", "true"]);
        let wt = clone.worktree(&format!("{machine}/feature-x"), "feature-x");
        // Each "machine" has its own ledger, as two machines would.
        let home = env.path(&format!("{machine}/ports-home"));
        let run = run_with(
            &env,
            &wt,
            &["allocate", "web"],
            &[("GIT_PORTS_HOME", home.to_str().unwrap_or(""))],
        );
        run.ok();
        picks.push(run_with(&env, &wt, &["get", "web"], &[]).stdout);
    }
    assert_eq!(picks[0], picks[1]);
    assert_ne!(
        picks[0], "28600\n",
        "a hash, not the lowest port (this name hashes elsewhere)"
    );
}

fn the_main_worktree_keeps_the_first_port() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 28700, 28709);
    repo.git(["config", "ports.reserveMain", "true"]);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web"]).ok();
    assert_eq!(get(&env, &wt, "web"), "28701");
    repo.run(["allocate", "web"]).ok();
    assert_eq!(get(&env, &repo.dir, "web"), "28700");
}

fn a_version_1_registry_is_read_and_migrated_without_loss() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 28400, 28409);
    repo.range("api", 28410, 28419);
    let fx = repo.worktree("app-feature-x", "feature-x");
    fs::rename(env.path("app-feature-x"), env.path("feature-x-dir")).ok();
    repo.git([
        "worktree",
        "repair",
        env.path("feature-x-dir").to_str().unwrap_or(""),
    ]);
    let _ = fx;
    let v1 = include_str!("../fixtures/registry-v1.json")
        .replace("\"feature-x\": {", "\"app-feature-x\": {");
    fs::write(repo.registry_path(), &v1).expect("write v1");
    let before: serde_json::Value = serde_json::from_str(&v1).expect("json");
    // Read as it is.
    let json = repo.run(["status", "--json"]).ok().json();
    assert_eq!(json["total_allocations"], 3);
    // The next change (of another worktree) writes version 2, with every allocation as it was.
    let other = repo.worktree("other", "other");
    env.run(&other, ["allocate", "web"]).ok();
    let after = repo.registry();
    assert_eq!(after["version"], 2);
    for (key, entry) in before["worktrees"].as_object().expect("worktrees") {
        for (service, a) in entry["ports"].as_object().expect("ports") {
            assert_eq!(
                after["worktrees"][key]["ports"][service], *a,
                "{key} {service}"
            );
        }
        assert_eq!(after["worktrees"][key]["path"], entry["path"]);
    }
    // A version this build does not know is still refused.
    fs::write(
        repo.registry_path(),
        v1.replace("\"version\": 1", "\"version\": 3"),
    )
    .expect("write");
    repo.run(["allocate", "api"]).code(5);
}

include!(concat!(env!("OUT_DIR"), "/it_choice.rs"));

//! The promise: never one port for two holders, whatever crashes, fails, races or holds a
//! lock; and names from disk, whatever bytes they hold, never lose their ports.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use git_ports::ledger::Ledger;
use git_ports::registry::Registry;

use crate::robust::{finish, spawn};
use crate::support::{Env, Repo, Run};

/// Runs git-ports in `dir` with extra variables.
pub fn run_with(env: &Env, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut cmd = env.cmd(dir);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("run git-ports"))
}

pub fn ledger_path(env: &Env) -> PathBuf {
    env.path("ports-home/ledger.json")
}

/// Checks the promise by reading the files: every registry and the ledger parse, no port is
/// held by two repositories, and every port a registry holds is claimed for that repository
/// in the ledger. `commons` are the repositories' common dirs.
pub fn promise_holds(env: &Env, commons: &[PathBuf]) -> Result<(), String> {
    let ledger = match fs::read_to_string(ledger_path(env)) {
        Ok(t) => Ledger::parse(&t).map_err(|e| format!("ledger: {e}"))?,
        Err(_) => Ledger::default(),
    };
    let mut owner: HashMap<u16, PathBuf> = HashMap::new();
    for common in commons {
        let id = fs::canonicalize(common).map_err(|e| e.to_string())?;
        let registry = match fs::read_to_string(common.join("worktree-ports.json")) {
            Ok(t) => Registry::parse(&t).map_err(|e| format!("{}: {e}", common.display()))?,
            Err(_) => Registry::default(),
        };
        for h in registry.allocations() {
            let port = h.allocation.port;
            if let Some(other) = owner.insert(port, id.clone()) {
                return Err(format!(
                    "port {port} is held by {} and {}",
                    other.display(),
                    id.display()
                ));
            }
            match ledger.ports.get(&port) {
                Some(c) if c.repo == id => {}
                other => {
                    return Err(format!(
                        "port {port} of {} is not claimed for it: {other:?}",
                        id.display()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn common(repo: &Repo) -> PathBuf {
    repo.dir.join(".git")
}

#[cfg(unix)]
fn os(bytes: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes)
}

/// A repository whose directory name is not UTF-8.
#[cfg(unix)]
fn odd_repo(env: &Env) -> Repo<'_> {
    let dir = env.root().join(os(b"caf\xe9"));
    fs::create_dir_all(&dir).expect("mkdir");
    env.git(&dir, ["init", "-q", "-b", "main"]);
    env.git(&dir, ["commit", "-q", "--allow-empty", "-m", "init"]);
    Repo { env, dir }
}

#[cfg(unix)]
#[test]
fn a_repository_whose_path_is_not_utf8_keeps_the_ledger_whole() {
    let env = Env::new();
    let odd = odd_repo(&env);
    odd.range("web", 27100, 27109);
    run_with(&env, &odd.dir, &["allocate", "web"], &[]).ok();
    let text = fs::read_to_string(ledger_path(&env)).expect("ledger");
    let ledger = Ledger::parse(&text).expect("the ledger parses");
    let claim = ledger.ports.get(&27100).expect("claimed");
    assert_eq!(claim.repo, fs::canonicalize(common(&odd)).expect("canon"));
    // Every other repository goes on working, and never gets the same port.
    let other = env.repo("other");
    other.range("web", 27100, 27109);
    other.run(["allocate", "web"]).ok();
    other.run(["check", "27100"]).code(4);
    promise_holds(&env, &[common(&odd), common(&other)]).expect("promise");
    let status = run_with(&env, &odd.dir, &["status"], &[]);
    status.ok();
    assert!(
        status.stdout.contains("caf\\351 (main):"),
        "{}",
        status.stdout
    );
}

#[cfg(unix)]
#[test]
fn a_worktree_whose_name_is_not_utf8_keeps_its_ports() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27110, 27119);
    repo.run(["hook", "install", "--services", "web"]).ok();
    let odd = env.root().join(os(b"wt-\xff"));
    env.git(&repo.dir, [os(b"worktree"), os(b"add"), odd.as_os_str()]);
    let held = run_with(&env, &odd, &["get", "web"], &[]);
    held.ok();
    let port = held.stdout.trim().to_string();
    // Another worktree's hook prunes first: the live odd one is not taken for removed.
    repo.add_worktree("next", "next").ok();
    run_with(&env, &odd, &["get", "web"], &[]).ok();
    assert_eq!(
        run_with(&env, &odd, &["get", "web"], &[]).stdout.trim(),
        port
    );
    let status = repo.run(["status"]);
    status.ok();
    assert!(status.stdout.contains("wt-\\377"), "{}", status.stdout);
    assert!(!status.stdout.contains("stale"), "{}", status.stdout);
    repo.run(["prune", "--dry-run"])
        .ok()
        .stdout
        .contains("Nothing to prune")
        .then_some(())
        .expect("nothing to prune");
    let next = env.path("next");
    assert_ne!(
        run_with(&env, &next, &["get", "web"], &[]).stdout.trim(),
        port
    );
    // Removed for real, it is pruned like any other.
    env.git(&repo.dir, [os(b"worktree"), os(b"remove"), odd.as_os_str()]);
    let pruned = repo.run(["prune"]);
    pruned.ok();
    assert!(pruned.stdout.contains("wt-\\377"), "{}", pruned.stdout);
}

/// Two repositories sharing the ledger, each with a worktree holding a port, and a third
/// worktree without one: the ground every crash case starts from.
struct Scene<'a> {
    env: &'a Env,
    a: Repo<'a>,
    b: Repo<'a>,
}

impl<'a> Scene<'a> {
    fn new(env: &'a Env, base: u16) -> Scene<'a> {
        let a = env.repo("a");
        let b = env.repo("b");
        for r in [&a, &b] {
            r.range("web", base, base + 9);
            r.range("api", base + 10, base + 19);
            r.run(["hook", "install", "--services", "web"]).ok();
        }
        a.add_worktree("a1", "a1").ok();
        b.add_worktree("b1", "b1").ok();
        a.worktree("a2", "a2");
        Scene { env, a, b }
    }

    fn commons(&self) -> Vec<PathBuf> {
        vec![common(&self.a), common(&self.b)]
    }

    fn holds(&self) {
        promise_holds(self.env, &self.commons()).expect("the promise holds");
    }
}

/// Runs `command` (allocate, release, prune or the hook, each in the first repository) with the fault variable set; returns what it gave.
fn change(s: &Scene, command: &str, fault: &str) -> Run {
    let vars = [("GIT_PORTS_FAULT", fault)];
    match command {
        "allocate" => run_with(s.env, &s.env.path("a2"), &["allocate", "web", "api"], &vars),
        "release" => run_with(s.env, &s.env.path("a1"), &["release", "-w", "a1"], &vars),
        "prune" => {
            s.a.git([
                "worktree",
                "remove",
                "--force",
                s.env.path("a1").to_str().unwrap_or(""),
            ]);
            run_with(s.env, &s.a.dir, &["prune"], &vars)
        }
        _ => {
            let mut cmd = std::process::Command::new("git");
            cmd.args(["worktree", "add", "-q"])
                .arg(s.env.path("a3"))
                .args(["-b", "a3"])
                .current_dir(&s.a.dir);
            s.env.isolate(&mut cmd);
            cmd.env("GIT_PORTS_FAULT", fault);
            Run::from(cmd.output().expect("git worktree add"))
        }
    }
}

/// After a crash or a failure at `point` in `command`: every file parses, no port has two
/// holders, every holding is claimed, and the next command of each repository succeeds.
fn crash_case(command: &str, base: u16) {
    for point in git_ports::fault::points() {
        for fail in [false, true] {
            let env = Env::new();
            let s = Scene::new(&env, base);
            let fault = if fail {
                format!("{point}:fail")
            } else {
                point.clone()
            };
            let run = change(&s, command, &fault);
            if command == "hook" {
                // A crashed or failed hook never fails the checkout.
                run.ok();
            } else if fail && run.code != 0 {
                assert_eq!(run.code, 5, "{command} at {fault}: {run:?}");
                assert_eq!(
                    run.stderr
                        .lines()
                        .filter(|l| l.starts_with("git-ports: "))
                        .count(),
                    1,
                    "{command} at {fault}: {run:?}"
                );
            }
            if let Err(e) = promise_holds(&env, &s.commons()) {
                panic!("{command} at {fault}: {e}\n{run:?}");
            }
            // The next change of each repository succeeds and keeps the promise.
            s.a.run(["allocate", "api"]).ok();
            s.b.run(["allocate", "api"]).ok();
            s.holds();
        }
    }
}

#[test]
fn crash_at_every_point_of_allocate() {
    crash_case("allocate", 27200);
}

#[test]
fn crash_at_every_point_of_release() {
    crash_case("release", 27220);
}

#[test]
fn crash_at_every_point_of_prune() {
    crash_case("prune", 27240);
}

#[test]
fn crash_at_every_point_of_the_hook() {
    crash_case("hook", 27260);
}

#[test]
fn a_failed_ledger_write_changes_nothing_and_says_so() {
    let env = Env::new();
    let s = Scene::new(&env, 27280);
    let ledger = ledger_path(&env);
    let registry = common(&s.a).join("worktree-ports.json");
    let (l0, r0) = (
        fs::read(&ledger).expect("l"),
        fs::read(&registry).expect("r"),
    );
    // A read-only ledger: git-ports refuses to replace it, and so changes nothing at all.
    let mut perms = fs::metadata(&ledger).expect("meta").permissions();
    perms.set_readonly(true);
    fs::set_permissions(&ledger, perms.clone()).expect("chmod");
    let run = run_with(&env, &env.path("a2"), &["allocate", "api"], &[]);
    run.code(5);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert_eq!(fs::read(&ledger).expect("l"), l0);
    assert_eq!(fs::read(&registry).expect("r"), r0);
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&ledger, perms).expect("chmod");
    // A full disk at the registry: the claim made first is harmless and healed later.
    let run = run_with(
        &env,
        &env.path("a2"),
        &["allocate", "api"],
        &[("GIT_PORTS_FAULT", "registry.write:fail")],
    );
    run.code(5);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert_eq!(fs::read(&registry).expect("r"), r0);
    s.holds();
    // The other repository is never given a port the first one holds.
    s.b.run(["allocate", "api"]).ok();
    run_with(&env, &env.path("a2"), &["allocate", "api"], &[]).ok();
    s.holds();
}

/// A small random number generator: the storm's seed is printed, so a failure can be
/// replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn a_storm_of_parallel_changes_and_sigkills_over_two_repositories() {
    let env = Env::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("storm seed: {seed}");
    let mut rng = Rng(seed);
    let repos = [env.repo("a"), env.repo("b")];
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (i, r) in repos.iter().enumerate() {
        // Overlapping ranges: the two repositories compete for the same ports.
        r.range("web", 27300, 27311);
        r.range("api", 27306, 27317);
        for w in 0..3 {
            dirs.push(r.worktree(&format!("r{i}w{w}"), &format!("r{i}b{w}")));
        }
    }
    let commons: Vec<PathBuf> = repos.iter().map(common).collect();
    let ops: &[&[&str]] = &[
        &["allocate", "web"],
        &["allocate", "api"],
        &["allocate", "web", "api"],
        &["release", "-w", "."],
        &["prune"],
    ];
    let start = Instant::now();
    for round in 0..12 {
        let mut children = Vec::new();
        for _ in 0..8 {
            let dir = &dirs[rng.below(dirs.len() as u64) as usize];
            let op = ops[rng.below(ops.len() as u64) as usize];
            children.push(spawn(&env, dir, op));
        }
        std::thread::sleep(Duration::from_millis(rng.below(25)));
        for c in children.iter_mut() {
            if rng.below(3) == 0 {
                let _ = c.kill();
            }
        }
        finish(children);
        if let Err(e) = promise_holds(&env, &commons) {
            panic!("round {round} (seed {seed}): {e}");
        }
    }
    eprintln!("storm took {:?}", start.elapsed());
    // After the storm every repository still works.
    for d in &dirs {
        let run = run_with(&env, d, &["status"], &[]);
        run.ok();
    }
}

//! The promise: never one port for two holders, whatever crashes, fails, races or holds a
//! lock; and names from disk, whatever bytes they hold, never lose their ports.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use git_ports::fault::{self, Point, Target};
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

/// Temp files of git-ports anywhere in the test's directory outside a git dir: a worktree
/// must never keep one (it may hold a copy of an env file, secrets and all).
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() && name != ".git" && !name.ends_with(".git") && name != "ports-home" {
            found.extend(leftovers(&e.path()));
        } else if t.is_file() && name.contains("git-ports") && name.ends_with(".tmp") {
            found.push(e.path());
        }
    }
    found
}

/// Checks every `.env.local` of the worktrees a registry names: its block holds exactly the
/// `SERVICE_PORT=port` lines of the ports the worktree holds (none for a worktree that holds
/// none), read independently of git-ports.
pub fn env_files_agree(commons: &[PathBuf]) -> Result<(), String> {
    for common in commons {
        let registry = match fs::read_to_string(common.join("worktree-ports.json")) {
            Ok(t) => Registry::parse(&t).map_err(|e| format!("{}: {e}", common.display()))?,
            Err(_) => continue,
        };
        for (key, entry) in &registry.worktrees {
            // The worktree at that path is the one its `.git` names: a `git worktree add`
            // killed half-way can leave a second admin dir that names the same path.
            let owner = match fs::read_to_string(entry.path.join(".git")) {
                Ok(t) => t
                    .trim()
                    .rsplit('/')
                    .next()
                    .map(str::to_string)
                    .unwrap_or_default(),
                Err(_) => "/".to_string(),
            };
            if owner != *key && !(key == "/" && entry.path.join(".git").is_dir()) {
                continue;
            }
            let file = entry.path.join(".env.local");
            let Ok(text) = fs::read_to_string(&file) else {
                if entry.ports.is_empty() || !entry.path.is_dir() {
                    continue;
                }
                return Err(format!("{} is missing", file.display()));
            };
            let mut inside = false;
            let mut got: Vec<String> = Vec::new();
            for l in text.lines() {
                match l {
                    "# >>> git-ports >>>" => inside = true,
                    "# <<< git-ports <<<" => inside = false,
                    l if inside && l.split_once('=').is_some_and(|(k, _)| k.ends_with("_PORT")) => {
                        got.push(l.to_string())
                    }
                    _ => {}
                }
            }
            got.sort();
            let mut want: Vec<String> = entry
                .ports
                .iter()
                .map(|(s, a)| format!("{}_PORT={}", s.to_uppercase(), a.port))
                .collect();
            want.sort();
            if got != want {
                return Err(format!(
                    "{} holds {got:?}, the registry {want:?}",
                    file.display()
                ));
            }
        }
    }
    Ok(())
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
                // The repository's own claim; a lease on a registry's port is a second holder.
                Some(c) if c.repo == id && c.lease.is_none() => {}
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

/// The user's own post-checkout hook in the scene's repositories.
const USER_HOOK: &str = "#!/bin/sh\necho user-hook\n";

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
            r.git(["config", "ports.envFile", ".env.local"]);
            // The user's own hook, which install and uninstall must keep byte for byte.
            crate::support::write_hook(&r.dir.join(".git/hooks/post-checkout"), USER_HOOK);
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

/// Runs `command` (allocate, release, prune, the hook, or installing and uninstalling it,
/// each in the first repository) with extra variables; returns what it gave.
fn change(s: &Scene, command: &str, vars: &[(&str, &str)]) -> Run {
    match command {
        "allocate" => run_with(s.env, &s.env.path("a2"), &["allocate", "web", "api"], vars),
        "release" => run_with(s.env, &s.env.path("a1"), &["release", "-w", "a1"], vars),
        "prune" => {
            s.a.git([
                "worktree",
                "remove",
                "--force",
                s.env.path("a1").to_str().unwrap_or(""),
            ]);
            run_with(s.env, &s.a.dir, &["prune"], vars)
        }
        "install" => {
            s.a.run(["hook", "uninstall"]).ok();
            run_with(
                s.env,
                &s.a.dir,
                &["hook", "install", "--services", "web"],
                vars,
            )
        }
        "uninstall" => run_with(s.env, &s.a.dir, &["hook", "uninstall"], vars),
        // The origin pointed at a worktree: the ledger alone.
        "point" => run_with(s.env, &s.a.dir, &["point", "a1"], vars),
        // A machine-wide reservation, and giving it back: the ledger alone.
        "reserve" => run_with(
            s.env,
            s.env.root(),
            &["reserve", "27499", "--reason", "x"],
            vars,
        ),
        "unreserve" => {
            s.a.run(["reserve", "27498"]).ok();
            run_with(s.env, s.env.root(), &["unreserve", "27498"], vars)
        }
        // A lease for this test's own process, which outlives every walk.
        "lease" => run_with(
            s.env,
            &s.env.path("a2"),
            &["lease", "web", "--pid", &std::process::id().to_string()],
            vars,
        ),
        _ => {
            let mut cmd = std::process::Command::new("git");
            cmd.args(["worktree", "add", "-q"])
                .arg(s.env.path("a3"))
                .args(["-b", "a3"])
                .current_dir(&s.a.dir);
            s.env.isolate(&mut cmd);
            for (k, v) in vars {
                cmd.env(k, v);
            }
            Run::from(cmd.output().expect("git worktree add"))
        }
    }
}

/// The points a run passed, from its trace file.
fn reached(trace: &Path) -> Vec<String> {
    fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// After a crash or a failure at each point of the files `command` writes: every file
/// parses, no port has two holders, every holding is claimed, no temp file is left in a
/// worktree, the hook is whole, and the next command of each repository succeeds and brings
/// every env file in step. First a clean run proves the command reaches exactly these
/// points, and each faulted run proves its point fired.
fn crash_case(command: &str, base: u16, writes: &[Target]) {
    let names = |ps: Vec<Point>| -> Vec<String> { ps.into_iter().map(Point::name).collect() };
    let want = names(fault::points_of(writes));
    {
        let env = Env::new();
        let s = Scene::new(&env, base);
        let trace = env.path("trace");
        let run = change(&s, command, &[(fault::TRACE, trace.to_str().unwrap_or(""))]);
        run.ok();
        assert_eq!(
            reached(&trace),
            want,
            "the points {command} passes: {run:?}"
        );
    }
    for point in fault::points_of(writes) {
        for fail in [false, true] {
            let env = Env::new();
            let s = Scene::new(&env, base);
            let hook = s.a.dir.join(".git/hooks/post-checkout");
            let installed = fs::read(&hook).expect("hook");
            let fault = if fail {
                format!("{}:fail", point.name())
            } else {
                point.name()
            };
            let trace = env.path("trace");
            let run = change(
                &s,
                command,
                &[
                    (fault::ENV, &fault),
                    (fault::TRACE, trace.to_str().unwrap_or("")),
                ],
            );
            // An abort stops at the point; a failure there may be one the command goes on
            // from (past a rename, the new file is in place).
            let passed = reached(&trace);
            let fired = if fail {
                passed.contains(&point.name())
            } else {
                passed.last() == Some(&point.name())
            };
            assert!(
                fired,
                "{command} at {fault} never reached it: {passed:?} {run:?}"
            );
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
            let left = leftovers(env.root());
            assert!(left.is_empty(), "{command} at {fault} left {left:?}");
            if point.0 == Target::Hook {
                // The hook is the old one or the new one, whole, never in between.
                let now = fs::read(&hook).unwrap_or_default();
                let whole = now == installed || now == USER_HOOK.as_bytes();
                assert!(
                    whole,
                    "{command} at {fault}: {}",
                    String::from_utf8_lossy(&now)
                );
                if fail && run.code != 0 {
                    let before = if command == "install" {
                        USER_HOOK.as_bytes()
                    } else {
                        &installed
                    };
                    assert_eq!(now, before, "{command} at {fault}");
                }
            }
            // The next change of each repository succeeds, keeps the promise and mends the
            // env files a crash left behind.
            s.a.run(["allocate", "api"]).ok();
            s.b.run(["allocate", "api"]).ok();
            s.holds();
            if let Err(e) = env_files_agree(&s.commons()) {
                panic!("{command} at {fault}, after the next change: {e}");
            }
        }
    }
}

fn crash_at_every_point_of_allocate() {
    crash_case(
        "allocate",
        27200,
        &[Target::LedgerClaim, Target::Registry, Target::EnvFile],
    );
}

fn crash_at_every_point_of_release() {
    crash_case(
        "release",
        27220,
        &[Target::Registry, Target::LedgerRelease, Target::EnvFile],
    );
}

fn crash_at_every_point_of_prune() {
    crash_case("prune", 27240, &[Target::Registry, Target::LedgerRelease]);
}

fn crash_at_every_point_of_the_hook() {
    crash_case(
        "hook",
        27260,
        &[Target::LedgerClaim, Target::Registry, Target::EnvFile],
    );
}

fn crash_at_every_point_of_pointing_the_origin() {
    crash_case("point", 27480, &[Target::LedgerPoint]);
}

fn crash_at_every_point_of_a_lease() {
    crash_case("lease", 27440, &[Target::LedgerLease]);
}

fn crash_at_every_point_of_a_reservation() {
    crash_case("reserve", 27460, &[Target::LedgerReserve]);
    crash_case("unreserve", 27460, &[Target::LedgerReserve]);
}

fn crash_at_every_point_of_hook_install_and_uninstall() {
    crash_case("install", 27400, &[Target::Hook]);
    crash_case("uninstall", 27420, &[Target::Hook]);
}

/// Every point there is belongs to some walk above: a point added to the code and to no
/// walk fails here.
fn every_crash_point_is_walked() {
    let walked = [
        Target::LedgerClaim,
        Target::Registry,
        Target::LedgerRelease,
        Target::EnvFile,
        Target::Hook,
        Target::LedgerLease,
        Target::LedgerPoint,
        Target::LedgerReserve,
        // Walked in proxy.rs: a state file half-written never blocks the next start.
        Target::ProxyState,
        // Walked in https.rs: none or a whole authority, its key private.
        Target::CaKey,
        Target::CaCert,
    ];
    assert_eq!(fault::all(), fault::points_of(&walked));
}

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

/// What a leased run of the storm does: notes its port, and holds it a moment.
const LEASED: &str = "echo \"$WEB_PORT\" >> \"$GIT_PORTS_HOME/../leased.log\"; sleep 0.1";

/// The ports the ledger leases, with their pids.
fn live_lease_claims(env: &Env) -> Vec<(u16, u32)> {
    let text = fs::read_to_string(ledger_path(env)).unwrap_or_default();
    let ledger = Ledger::parse(&text).unwrap_or_default();
    ledger
        .ports
        .iter()
        .filter_map(|(p, c)| Some((*p, c.lease.as_ref()?.pid)))
        .collect()
}

/// Every name the ledger gives, with the port its registry gives it for the default
/// service (web), or `None` when the worktree holds none: where the proxy must send it.
fn names_and_ports(env: &Env) -> Vec<(String, Option<u16>)> {
    let text = fs::read_to_string(ledger_path(env)).unwrap_or_default();
    let Ok(ledger) = Ledger::parse(&text) else {
        return Vec::new();
    };
    let port_of = |repo: &Path, key: &str| {
        let text = fs::read_to_string(repo.join("worktree-ports.json")).unwrap_or_default();
        let registry = Registry::parse(&text).unwrap_or_default();
        registry
            .worktrees
            .get(key)
            .and_then(|e| e.ports.get("web"))
            .map(|a| a.port)
    };
    let mut out: Vec<(String, Option<u16>)> = ledger
        .names
        .hosts
        .iter()
        .map(|(h, c)| (h.clone(), port_of(&c.repo, &c.worktree)))
        .collect();
    for r in &ledger.names.repos {
        let key = r.point.clone().unwrap_or_else(|| "/".to_string());
        out.push((format!("{}.localhost", r.label), port_of(&r.repo, &key)));
    }
    out
}

/// One request for `host` through the proxy on `port`: the status and the body.
fn through_proxy(port: u16, host: &str) -> (u16, String) {
    let got = crate::limits::raw(
        port,
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let code = got
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = got
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Whether an answer of the proxy is one it may give: anything but a 5xx, or a 502, 503 or
/// 504 that says why.
fn fair_answer(code: u16, body: &str) -> bool {
    code != 0
        && (code < 500 || (matches!(code, 502..=504) && body.starts_with("git ports proxy: ")))
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

fn a_storm_of_parallel_changes_and_sigkills_over_two_repositories() {
    let env = Env::new();
    // GIT_PORTS_STORM_SEED replays a storm whose seed a failure printed.
    let seed = std::env::var("GIT_PORTS_STORM_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    eprintln!("storm seed: {seed} (replay with GIT_PORTS_STORM_SEED={seed})");
    let mut rng = Rng(seed);
    let repos = [env.repo("a"), env.repo("b")];
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (i, r) in repos.iter().enumerate() {
        // Overlapping ranges: the two repositories compete for the same ports.
        r.range("web", 27300, 27311);
        r.range("api", 27306, 27317);
        // Env files in every worktree, kept in step by every change.
        r.git(["config", "ports.envFile", ".env.local"]);
        for w in 0..3 {
            dirs.push(r.worktree(&format!("r{i}w{w}"), &format!("r{i}b{w}")));
        }
        // The user's own hook, which install and uninstall share with git-ports' block.
        crate::support::write_hook(&r.dir.join(".git/hooks/post-checkout"), USER_HOOK);
        r.run(["hook", "install", "--services", "web"]).ok();
        // A branch that worktrees are made on, removed from and made on again.
        r.git(["branch", &format!("r{i}reuse")]);
    }
    // Every way of choosing a port takes part: sticky (the default) in both, aligned slots in
    // one, a hashed first choice and a reserved main port in the other.
    repos[0].git(["config", "ports.align", "true"]);
    repos[1].git(["config", "ports.stableFirst", "true"]);
    repos[1].git(["config", "ports.reserveMain", "true"]);
    let commons: Vec<PathBuf> = repos.iter().map(common).collect();
    let ops: &[&[&str]] = &[
        &["allocate", "web"],
        &["allocate", "api"],
        &["allocate", "web", "api"],
        &["release", "-w", "."],
        &["prune"],
        &["env", "--write", ".env.local"],
        &["hook", "install"],
        &["hook", "uninstall"],
        // Runs with ports of their own, leased to them while they live.
        &["exec", "--lease", "web", "--", "sh", "-c", LEASED],
        &["exec", "--lease", "web", "api", "--", "sh", "-c", LEASED],
    ];
    // The proxy serves the names all through the storm, asked for them without a pause.
    let _proxy = crate::proxy::proxy(&env, 27590);
    let calm = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let calm = calm.clone();
        let home = env.path("ports-home");
        std::thread::spawn(move || {
            let (mut asked, mut unfair) = (0u64, Vec::new());
            let mut i = 0usize;
            while !calm.load(std::sync::atomic::Ordering::Relaxed) {
                let text = fs::read_to_string(home.join("ledger.json")).unwrap_or_default();
                let hosts: Vec<String> = Ledger::parse(&text)
                    .map(|l| l.names.hosts.keys().cloned().collect())
                    .unwrap_or_default();
                let host = hosts
                    .get(i % hosts.len().max(1))
                    .cloned()
                    .unwrap_or_else(|| "a.localhost".into());
                i += 1;
                let (code, body) = through_proxy(27590, &host);
                asked += 1;
                if !fair_answer(code, &body) {
                    unfair.push(format!("{host}: {code} {body}"));
                }
            }
            (asked, unfair)
        })
    };
    let start = Instant::now();
    for round in 0..20 {
        let mut children = Vec::new();
        for _ in 0..8 {
            let which = rng.below(repos.len() as u64) as usize;
            let r = &repos[which];
            let reuse = env.path(&format!("r{which}reuse"));
            // A worktree on the reused branch, added (its hook allocates) or removed.
            let child = match rng.below(ops.len() as u64 + 2) as usize {
                n if n < ops.len() => {
                    let dir = &dirs[rng.below(dirs.len() as u64) as usize];
                    spawn(&env, dir, ops[n])
                }
                n if n == ops.len() => {
                    let mut cmd = std::process::Command::new("git");
                    cmd.args(["worktree", "add", "-q"])
                        .arg(&reuse)
                        .arg(format!("r{which}reuse"))
                        .current_dir(&r.dir)
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped());
                    env.isolate(&mut cmd);
                    cmd.spawn().expect("git worktree add")
                }
                _ => {
                    let mut cmd = std::process::Command::new("git");
                    cmd.args(["worktree", "remove", "--force"])
                        .arg(&reuse)
                        .current_dir(&r.dir)
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped());
                    env.isolate(&mut cmd);
                    cmd.spawn().expect("git worktree remove")
                }
            };
            children.push(child);
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
        // No temp file of ours, at any moment, in any worktree.
        let left = leftovers(env.root());
        assert!(
            left.is_empty(),
            "round {round} (seed {seed}): left {left:?}"
        );
        // The next change of each repository brings every env file in step, whatever a kill
        // left half-done.
        for (i, r) in repos.iter().enumerate() {
            r.run(["prune"]).ok();
            // Every run of the round has ended: one change later, none of their leases is
            // left.
            if i == 0 {
                let leases = live_lease_claims(&env);
                assert!(
                    leases.is_empty(),
                    "round {round} (seed {seed}): leases outlived their process: {leases:?}"
                );
            }
        }
        // With the storm calm, every name leads to exactly the port its registry gives it.
        for (host, port) in names_and_ports(&env) {
            let (code, body) = through_proxy(27590, &host);
            let right = match port {
                Some(p) => code == 502 && body.contains(&format!("port {p}")),
                None => code == 502 && body.contains("holds no port for web"),
            };
            assert!(
                right,
                "round {round} (seed {seed}): {host} should lead to {port:?}: {code} {body}"
            );
        }
        if let Err(e) = env_files_agree(&commons) {
            let registries: Vec<String> = commons
                .iter()
                .map(|c| fs::read_to_string(c.join("worktree-ports.json")).unwrap_or_default())
                .collect();
            let lists: Vec<String> = repos
                .iter()
                .map(|r| r.git(["worktree", "list", "--porcelain"]))
                .collect();
            panic!("round {round} (seed {seed}): {e}\n{registries:#?}\n{lists:#?}");
        }
    }
    calm.store(true, std::sync::atomic::Ordering::Relaxed);
    let (asked, unfair) = traffic.join().expect("traffic");
    eprintln!(
        "storm took {:?}, {asked} requests through the proxy",
        start.elapsed()
    );
    assert!(asked > 100, "only {asked} requests went through the proxy");
    assert!(
        unfair.is_empty(),
        "answers that say nothing (seed {seed}): {unfair:#?}"
    );
    // The leased runs that got to start saw ports of the web range; each was held by its
    // run alone (the rounds above checked the ledger).
    let leased = fs::read_to_string(env.path("leased.log")).unwrap_or_default();
    assert!(!leased.is_empty(), "no leased run started (seed {seed})");
    for p in leased.lines() {
        let p: u16 = p.parse().unwrap_or(0);
        assert!((27300..=27311).contains(&p), "leased {p} (seed {seed})");
    }
    // After the storm every repository still works.
    for d in &dirs {
        let run = run_with(&env, d, &["status"], &[]);
        run.ok();
    }
}

/// Holds the lock of `data` (a registry or the ledger) as another git-ports would.
fn hold_lock(data: &Path) -> fs::File {
    let mut lock = data.as_os_str().to_owned();
    lock.push(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(lock))
        .expect("open lock");
    file.lock().expect("lock");
    file
}

fn a_held_lock_is_waited_for_within_a_bound_and_named() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27400, 27409);
    repo.run(["allocate", "web"]).ok();
    let pid = std::process::id().to_string();
    for data in [ledger_path(&env), common(&repo).join("worktree-ports.json")] {
        let held = hold_lock(&data);
        // The bound comes through git's own channel for `-c`.
        let run = run_with(
            &env,
            &repo.dir,
            &["release", "27400"],
            &[("GIT_CONFIG_PARAMETERS", "'ports.locktimeout'='2'")],
        );
        run.code(5);
        assert!(
            run.stderr.contains("git-ports: waiting for the lock")
                && run.stderr.contains(&format!("held by pid {pid}")),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("gave up after 2s waiting for the lock held by pid"),
            "{}",
            run.stderr
        );
        drop(held);
        // Readers never wait.
        repo.run(["get", "web"]).ok();
    }
    repo.run(["release", "27400"]).ok();
}

fn doctor_names_a_lock_held_now_and_who_holds_it() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27470, 27479);
    repo.run(["allocate", "web"]).ok();
    repo.run(["doctor"]).ok();
    let held = hold_lock(&common(&repo).join("worktree-ports.json"));
    let run = repo.run(["doctor", "--json"]);
    run.code(4);
    let json = run.json();
    let lock = json["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["check"] == "lock")
        .cloned()
        .unwrap_or_default();
    assert_eq!(lock["status"], "problem", "{json}");
    assert!(
        lock["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("held now by pid {}", std::process::id()))),
        "{json}"
    );
    drop(held);
    repo.run(["doctor"]).ok();
}

fn the_hook_never_holds_a_checkout_past_the_lock_bound() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27410, 27419);
    repo.run(["hook", "install", "--services", "web"]).ok();
    repo.git(["config", "ports.lockTimeout", "1"]);
    let held = hold_lock(&ledger_path(&env));
    let mut cmd = std::process::Command::new("git");
    cmd.args(["worktree", "add", "-q"])
        .arg(env.path("wt"))
        .current_dir(&repo.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env.isolate(&mut cmd);
    let out = finish(vec![cmd.spawn().expect("spawn")]).remove(0);
    drop(held);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no ports were allocated (the checkout itself succeeded)")
            && stderr.contains("gave up after 1s"),
        "{stderr}"
    );
    assert!(env.path("wt/.git").exists());
}

fn clocks_before_1970_and_after_9999_never_break_the_registry() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27420, 27429);
    repo.range("api", 27430, 27439);
    let early = run_with(
        &env,
        &repo.dir,
        &["allocate", "web", "--json"],
        &[("GIT_PORTS_NOW", "-86400")],
    );
    early.ok();
    assert_eq!(
        early.json()["allocations"][0]["allocated_at"],
        "1970-01-01T00:00:00Z"
    );
    let late = run_with(
        &env,
        &repo.dir,
        &["allocate", "api", "--json"],
        &[("GIT_PORTS_NOW", "400000000000")],
    );
    late.ok();
    assert_eq!(
        late.json()["allocations"][0]["allocated_at"],
        "9999-12-31T23:59:59Z"
    );
    run_with(&env, &repo.dir, &["get", "web"], &[("GIT_PORTS_NOW", "-1")]).ok();
    repo.run(["status", "--worktree", "app"]).ok();
    repo.run(["release", "27420", "27430"]).ok();
}

#[cfg(unix)]
fn files_follow_the_umask_the_ledger_is_private_and_locks_refuse_links() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27440, 27449);
    let home = env.path("private-home");
    let home_s = home.to_str().expect("utf-8");
    let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o7777;
    let sh = |script: &str| {
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", script]).current_dir(&repo.dir);
        env.isolate(&mut cmd);
        cmd.env("GIT_PORTS_HOME", home_s);
        Run::from(cmd.output().expect("sh"))
    };
    sh("umask 000 && git ports allocate web").ok();
    assert_eq!(mode(&home), 0o700, "the ledger's directory is one user's");
    assert_eq!(mode(&home.join("ledger.json")), 0o666);
    assert_eq!(mode(&common(&repo).join("worktree-ports.json")), 0o666);
    sh("umask 077 && git ports release 27440").ok();
    // An existing file keeps its mode; a new one follows the umask.
    assert_eq!(mode(&common(&repo).join("worktree-ports.json")), 0o666);
    fs::remove_file(common(&repo).join("worktree-ports.json")).expect("rm");
    sh("umask 077 && git ports allocate web").ok();
    assert_eq!(mode(&common(&repo).join("worktree-ports.json")), 0o600);

    // A lock file that is a symlink is refused, and its target never created.
    let lock = common(&repo).join("worktree-ports.json.lock");
    fs::remove_file(&lock).expect("rm lock");
    let target = env.path("elsewhere-created");
    std::os::unix::fs::symlink(&target, &lock).expect("symlink");
    let before = fs::read(common(&repo).join("worktree-ports.json")).expect("reg");
    let run = repo.run(["release", "27440"]);
    run.code(5);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    assert!(!target.exists());
    assert_eq!(
        fs::read(common(&repo).join("worktree-ports.json")).expect("reg"),
        before
    );

    // A relative GIT_PORTS_HOME would make one ledger per directory: refused.
    let run = run_with(
        &env,
        &repo.dir,
        &["allocate", "api"],
        &[("GIT_PORTS_HOME", "rel/dir")],
    );
    run.code(1);
    same_line(
        &run.stderr,
        "git-ports: GIT_PORTS_HOME: must be an absolute path (got 'rel/dir')",
    );
    assert!(!repo.dir.join("rel").exists());
}

#[track_caller]
fn same_line(stderr: &str, want: &str) {
    assert_eq!(stderr.lines().next(), Some(want), "{stderr}");
}

fn variable_names_that_break_the_shell_are_refused_by_key() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27450, 27459);
    repo.run(["allocate", "web"]).ok();
    for bad in ["PATH", "LD_PRELOAD", "IFS", "HOME", "GIT_DIR"] {
        repo.git(["config", "ports.web.env", bad]);
        for args in [&["env"][..], &["exec", "--", "true"]] {
            let run = repo.run(args);
            run.code(1);
            same_line(
                &run.stderr,
                &format!(
                    "git-ports: config ports.web.env: that variable belongs to the shell or the system; choose another name (got '{bad}', set in {}/.git/config)",
                    repo.dir.display()
                ),
            );
        }
        // Commands that do not export variables go on working, and status says what is wrong.
        let status = repo.run(["status"]);
        status.ok();
        assert!(status.stderr.contains("ports.web.env"), "{}", status.stderr);
        repo.run(["get", "web"]).ok();
    }
    // Two services under one name would lose one of them.
    repo.git(["config", "ports.web.env", "PORT"]);
    repo.git(["config", "ports.api.env", "PORT"]);
    let run = repo.run(["env", "--format", "json"]);
    run.code(1);
    assert!(
        run.stderr.contains("is exported as PORT too"),
        "{}",
        run.stderr
    );
}

fn names_from_disk_are_escaped_on_a_terminal_and_exact_in_json() {
    let env = Env::new();
    let evil = "evil\u{1b}]0;PWNED\u{7}\u{1b}[2J";
    let repo = env.repo(evil);
    repo.range("web", 27460, 27469);
    let wt = repo.worktree("wt`id`", "feature-x");
    env.run(&wt, ["allocate", "web"]).ok();
    let alloc = repo.run(["allocate", "web"]);
    alloc.ok();
    let status = repo.run(["status"]);
    status.ok();
    for text in [&alloc.stdout, &status.stdout, &alloc.stderr, &status.stderr] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }
    assert!(
        status.stdout.contains("evil\\e]0;PWNED\\a\\e[2J"),
        "{}",
        status.stdout
    );
    let json = repo.run(["status", "--json"]).ok().json();
    assert_eq!(json["worktrees"][0]["name"], evil);
    // A hint that shows a command quotes the worktree's name for the shell.
    let run = env.run(&wt, ["release", "-w", "wt`id`", "--service", "api"]);
    run.code(2);
    assert!(
        run.stderr
            .contains("git ports allocate api --worktree 'wt`id`'"),
        "{}",
        run.stderr
    );
}

fn a_copied_repository_is_a_conflict_shown_everywhere_and_fixed_by_doctor() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 27500, 27509);
    repo.run(["allocate", "web"]).ok();
    env.sh(env.root(), "cp -a app copy").ok();
    let copy = Repo {
        env: &env,
        dir: env.path("copy"),
    };
    // check: the port is allocated here, and held by the original too.
    let check = copy.run(["check", "27500"]);
    check.code(4);
    assert!(
        check
            .stdout
            .contains("CONFLICT: also held by another repository: ")
            && check.stdout.contains("git ports doctor --fix"),
        "{}",
        check.stdout
    );
    let json = copy.run(["check", "27500", "--json"]).json();
    assert_eq!(json["conflict"]["worktree"], "app");
    // status, per port, and the machine-wide view.
    let status = copy.run(["status"]);
    status.ok();
    assert!(
        status.stdout.contains("27500  [CONFLICT: also held by ")
            && status.stdout.contains("run `git ports doctor --fix`"),
        "{}",
        status.stdout
    );
    let json = copy.run(["status", "--json"]).ok().json();
    assert!(
        json["worktrees"][0]["ports"]["web"]["also_held_by"].is_string(),
        "{json}"
    );
    let machine = copy.run(["status", "--machine"]);
    assert!(
        machine.stdout.matches("[CONFLICT: also held by").count() >= 1,
        "{}",
        machine.stdout
    );
    // The original is the one the ledger records: it keeps its port.
    let original = repo.run(["doctor"]);
    original.ok();
    // doctor names the conflict and exits 4; --fix moves the copy's holding.
    let doctor = copy.run(["doctor"]);
    doctor.code(4);
    assert!(
        doctor.stdout.contains("PROBLEM conflict"),
        "{}",
        doctor.stdout
    );
    let fixed = copy.run(["doctor", "--fix"]);
    fixed.ok();
    assert!(
        fixed
            .stdout
            .contains("port 27500 (web) of worktree 'copy' was also held by ")
            && fixed.stdout.contains(": moved to 27501"),
        "{}",
        fixed.stdout
    );
    let after = copy.run(["doctor", "--json"]).ok().json();
    assert_eq!(after["healthy"], true, "{after}");
    assert_eq!(after["problems"], 0, "{after}");
    assert_eq!(repo.run(["get", "web"]).ok().stdout, "27500\n");
    assert_eq!(copy.run(["get", "web"]).ok().stdout, "27501\n");
    promise_holds(&env, &[common(&repo), common(&copy)]).expect("promise");
}

fn claims_of_repositories_that_are_merely_invisible_are_kept() {
    let env = Env::new();
    let here = env.repo("here");
    here.range("web", 27520, 27529);
    // Another repository on a "drive": env/drive/away.
    fs::create_dir_all(env.path("drive")).expect("mkdir");
    let away = env.repo("drive/away");
    away.range("web", 27520, 27529);
    away.run(["allocate", "web"]).ok();
    // The drive is unmounted: its mount point is an empty directory.
    fs::rename(env.path("drive"), env.path("drive-unmounted")).expect("mv");
    fs::create_dir(env.path("drive")).expect("mount point");
    here.run(["allocate", "web"]).ok();
    assert_eq!(here.run(["get", "web"]).stdout, "27521\n");
    let doctor = here.run(["doctor"]);
    assert!(
        doctor.stdout.contains("cannot be read now"),
        "{}",
        doctor.stdout
    );
    // Back again: both hold their own ports.
    fs::remove_dir(env.path("drive")).expect("rmdir");
    fs::rename(env.path("drive-unmounted"), env.path("drive")).expect("mv");
    promise_holds(&env, &[common(&here), common(&away)]).expect("promise");

    // A registry that cannot be read keeps its claims, and a huge one is never read whole.
    let reg = common(&away).join("worktree-ports.json");
    let saved = fs::read(&reg).expect("reg");
    fs::File::create(&reg)
        .and_then(|f| f.set_len(6 << 30))
        .expect("sparse registry");
    here.run(["allocate", "api"]).ok();
    here.run(["release", "27521"]).ok();
    here.run(["allocate", "web"]).ok();
    assert_eq!(here.run(["get", "web"]).stdout, "27521\n");
    fs::write(&reg, &saved).expect("restore");
    promise_holds(&env, &[common(&here), common(&away)]).expect("promise");

    // Certainly gone (its directory is not there, and its parent is readable and not
    // empty): its claims are dropped and its port handed out again.
    fs::remove_dir_all(&away.dir).expect("rm");
    fs::write(env.path("drive/other-file"), "x").expect("write");
    // (--forget, or this worktree would be given its own remembered port back first.)
    here.run(["release", "--forget", "27521"]).ok();
    here.run(["allocate", "web"]).ok();
    assert_eq!(here.run(["get", "web"]).stdout, "27520\n");
}

include!(concat!(env!("OUT_DIR"), "/it_promise.rs"));

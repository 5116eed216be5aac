//! Leases: a port for one process, machine-wide, gone when the process is.
//!
//! Ports: this module takes 29400-29499.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use git_ports::ledger::Ledger;

use crate::promise::ledger_path;
use crate::support::{Env, same};

/// A process that lives until killed: something to lease for.
fn sleeper() -> Child {
    Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep")
}

fn end(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn ledger(env: &Env) -> Ledger {
    Ledger::parse(&fs::read_to_string(ledger_path(env)).unwrap_or_default()).unwrap_or_default()
}

fn leased_ports(env: &Env) -> Vec<u16> {
    ledger(env)
        .ports
        .iter()
        .filter(|(_, c)| c.lease.is_some())
        .map(|(p, _)| *p)
        .collect()
}

fn a_lease_is_nobody_elses_while_its_process_lives_and_freed_by_the_next_change() {
    let env = Env::new();
    let app = env.repo("app");
    let other = env.repo("other");
    // Two repositories over one range: a lease is machine-wide.
    for r in [&app, &other] {
        r.range("web", 29400, 29403);
    }
    let wt = app.worktree("wt", "wt");
    let holder = sleeper();
    let pid = holder.id().to_string();
    let run = env.run(&wt, ["lease", "web", "--pid", &pid]);
    run.ok();
    // From the top of the range down, so worktrees keep the bottom.
    same(&run.stdout, "29403\n");
    let second = sleeper();
    let run = env.run(
        &wt,
        ["lease", "web", "--pid", &second.id().to_string(), "--json"],
    );
    run.ok();
    let json = run.json();
    assert_eq!(json["leases"][0]["port"], 29402, "{json}");
    assert_eq!(json["leases"][0]["service"], "web");
    assert_eq!(json["pid"], second.id());
    assert_eq!(json["worktree"], "wt");
    assert_eq!(json["command"], "sleep 60");
    // Worktrees of either repository never get a leased port.
    app.run(["allocate", "web"]).ok();
    other.run(["allocate", "web"]).ok();
    let w2 = other.worktree("o2", "o2");
    let full = env.run(&w2, ["allocate", "web"]);
    full.code(3);
    assert!(full.stderr.contains("4 of 4 are held"), "{}", full.stderr);
    // Asked for by number, it is refused and its holder named.
    let asked = env.run(&w2, ["allocate", "web", "--port", "29403"]);
    asked.code(4);
    assert!(
        asked.stderr.contains(&format!(
            "held by another repository: a lease of pid {pid} from "
        )),
        "{}",
        asked.stderr
    );
    let check = env.run(&w2, ["check", "29403"]);
    check.code(4);
    // status shows the live leases of this repository, with who holds them.
    let status = app.run(["status"]);
    status.ok();
    assert!(
        status.stdout.contains(&format!(
            "Leases (one process each, freed when it exits):\n  web  29402  pid {} (sleep 60), from wt\n  web  29403  pid {pid} (sleep 60), from wt\n",
            second.id()
        )),
        "{}",
        status.stdout
    );
    let json = app.run(["status", "--json"]).json();
    assert_eq!(json["leases"].as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(json["leases"][1]["pid"], holder.id());
    // The other repository's status has none of them, its machine view has both.
    let json = other.run(["status", "--json"]).json();
    assert!(json.get("leases").is_none(), "{json}");
    let json = other.run(["status", "--machine", "--json"]).json();
    assert_eq!(json["leases"].as_array().map(Vec::len), Some(2), "{json}");
    // The holder exits: the next change, of any repository, frees its port.
    end(holder);
    other.run(["status"]).ok();
    assert_eq!(
        leased_ports(&env),
        [29402, 29403],
        "a reading command writes nothing"
    );
    other.run(["prune"]).ok();
    assert_eq!(leased_ports(&env), [29402]);
    env.run(&w2, ["allocate", "web"]).ok();
    same(&env.run(&w2, ["get", "web"]).stdout, "29403\n");
    end(second);
}

fn two_leased_runs_at_once_get_two_ports_apart_from_the_worktrees() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29410, 29419);
    repo.range("api", 29420, 29429);
    repo.git([
        "config",
        "--add",
        "ports.derived",
        "APP_URL=http://localhost:{web}",
    ]);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web", "api"]).ok();
    let marks = env.path("marks");
    fs::create_dir_all(&marks).expect("mkdir");
    // Each run notes what it sees, and lives until told to end.
    let script = "echo \"$WEB_PORT $API_PORT $APP_URL\" > \"$1/$$\"; while [ ! -e \"$1/end\" ]; do sleep 0.05; done";
    let start = |n: usize| {
        let mut cmd = env.cmd(&wt);
        cmd.args(["exec", "--lease", "web", "--", "sh", "-c", script, "sh"])
            .arg(&marks)
            .stdout(Stdio::null());
        let child = cmd.spawn().expect("exec");
        let deadline = Instant::now() + Duration::from_secs(20);
        while fs::read_dir(&marks).map_or(0, |d| d.count()) < n {
            assert!(Instant::now() < deadline, "run {n} never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    };
    let first = start(1);
    let second = start(2);
    let mut seen: Vec<String> = fs::read_dir(&marks)
        .expect("marks")
        .filter_map(|e| fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    seen.sort();
    // The leased service is the run's own; the others, and what derives from them, follow.
    assert_eq!(
        seen,
        [
            "29418 29420 http://localhost:29418\n",
            "29419 29420 http://localhost:29419\n"
        ]
    );
    // The lease is the process exec became: the same pid holds it.
    let holders: Vec<u32> = ledger(&env)
        .ports
        .values()
        .filter_map(|c| Some(c.lease.as_ref()?.pid))
        .collect();
    let mut pids = vec![first.id(), second.id()];
    pids.sort();
    let mut holders_sorted = holders.clone();
    holders_sorted.sort();
    assert_eq!(holders_sorted, pids);
    // The worktree's own port is untouched.
    same(&env.run(&wt, ["get", "web"]).stdout, "29410\n");
    fs::write(marks.join("end"), "").expect("end");
    for c in [first, second] {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success());
    }
    env.run(&wt, ["allocate", "web"]).ok();
    assert!(leased_ports(&env).is_empty(), "{:?}", leased_ports(&env));
}

fn leases_refuse_what_they_cannot_honour_and_change_nothing() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29430, 29431);
    repo.run(["allocate", "web"]).ok();
    let before = fs::read(ledger_path(&env)).expect("ledger");
    let unchanged = || assert_eq!(fs::read(ledger_path(&env)).expect("ledger"), before);
    // No such process.
    let run = repo.run(["lease", "web", "--pid", "4194304"]);
    run.code(1);
    same(
        &run.stderr,
        "git-ports: cannot lease a port to pid 4194304: no such process is running\nhint: name a running process of yours with --pid, or run the command under `git ports exec --lease SERVICE -- COMMAND`\n",
    );
    // The first process never exits.
    let run = repo.run(["lease", "web", "--pid", "1"]);
    run.code(1);
    assert!(
        run.stderr.contains("first process, which never exits"),
        "{}",
        run.stderr
    );
    // A process that has exited, and a zombie not yet reaped.
    let mut gone = Command::new("true").spawn().expect("true");
    let pid = gone.id().to_string();
    std::thread::sleep(Duration::from_millis(200));
    repo.run(["lease", "web", "--pid", &pid]).code(1);
    let _ = gone.wait();
    // A service nobody defined; a typo is suggested.
    let run = repo.run(["lease", "wbe"]);
    run.code(1);
    assert!(run.stderr.contains("did you mean 'web'?"), "{}", run.stderr);
    unchanged();
    // A range used up by the worktree and a lease.
    let holder = sleeper();
    let pid = holder.id().to_string();
    repo.run(["lease", "web", "--pid", &pid]).ok();
    let full = repo.run(["lease", "web", "--pid", &pid]);
    full.code(3);
    assert!(
        full.stderr
            .contains("no free port for service 'web' in 29430-29431: 2 of 2 are held"),
        "{}",
        full.stderr
    );
    // A lease range of its own, checked like any range.
    repo.git(["config", "ports.web.leaseRange", "29432-29431"]);
    let bad = repo.run(["lease", "web", "--pid", &pid]);
    bad.code(1);
    assert!(
        bad.stderr
            .to_lowercase()
            .contains("config ports.web.leaserange"),
        "{}",
        bad.stderr
    );
    repo.git(["config", "ports.web.leaseRange", "29432-29433"]);
    same(&repo.run(["lease", "web", "--pid", &pid]).stdout, "29433\n");
    // Outside the ledger there is nowhere to record a lease.
    repo.git(["config", "ports.machineWide", "false"]);
    let run = repo.run(["lease", "web", "--pid", &pid]);
    run.code(1);
    assert!(run.stderr.contains("machine-wide ledger"), "{}", run.stderr);
    end(holder);
}

#[cfg(unix)]
fn a_process_of_another_user_cannot_hold_a_lease() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29440, 29441);
    // Root can start a process as nobody; anyone else finds one of root's.
    let theirs = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sleep",
            "30",
        ])
        .spawn()
        .ok()
        .filter(|_| {
            fs::metadata("/proc/self").is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.uid() == 0
            })
        });
    let pid = match &theirs {
        Some(c) => c.id(),
        None => 1,
    };
    std::thread::sleep(Duration::from_millis(100));
    let run = repo.run(["lease", "web", "--pid", &pid.to_string()]);
    run.code(1);
    if theirs.is_some() {
        assert!(
            run.stderr.contains("it runs as another user"),
            "{}",
            run.stderr
        );
    }
    if let Some(c) = theirs {
        end(c);
    }
    assert!(leased_ports(&env).is_empty());
}

fn thousands_of_dead_leases_are_dropped_in_one_change() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29450, 29459);
    repo.run(["allocate", "web"]).ok();
    let live = sleeper();
    let stat = fs::read_to_string(format!("/proc/{}/stat", live.id())).expect("stat");
    let start: u64 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split(' ').nth(20)?.parse().ok())
        .expect("start time");
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
    let mut ledger = ledger(&env);
    let claim = ledger.ports.values().next().cloned().expect("a claim");
    // 3000 dead leases: pids that do not run, an earlier boot, and a live pid whose process
    // started at another time (the pid was reused); and one that is alive.
    for i in 0..3000u32 {
        let holder = git_ports::machine::Identity {
            pid: match i % 3 {
                0 => 4_000_000 + i,
                _ => live.id(),
            },
            start: if i % 3 == 2 { start + 1 } else { start },
            boot: if i % 3 == 1 {
                "an earlier boot".into()
            } else {
                boot.trim().into()
            },
            pidns: None,
        };
        let mut c = claim.clone();
        c.lease = Some(holder);
        ledger.ports.insert(40000 + i as u16, c);
    }
    let mut c = claim.clone();
    c.lease = Some(git_ports::machine::Identity {
        pid: live.id(),
        start,
        boot: boot.trim().into(),
        pidns: None,
    });
    ledger.ports.insert(29455, c);
    fs::write(ledger_path(&env), ledger.to_json().expect("json")).expect("write");
    let status = repo.run(["status"]);
    assert_eq!(
        status.stdout.matches(" pid ").count(),
        1,
        "{}",
        status.stdout
    );
    repo.run(["allocate", "web"]).ok();
    assert_eq!(leased_ports(&env), [29455]);
    end(live);
}

/// A lease can be ended before its process exits: `release PORT`, from its repository.
/// Another repository's lease is not this one's to end.
fn a_lease_is_released_early_by_its_port() {
    let env = Env::new();
    let app = env.repo("app");
    app.range("web", 29480, 29489);
    let holder = sleeper();
    let pid = holder.id().to_string();
    let port = app
        .run(["lease", "web", "--pid", &pid])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(port, "29489");
    let other = env.repo("other");
    other.range("web", 29480, 29489);
    let refused = other.run(["release", &port]);
    refused.code(4);
    assert!(
        refused
            .stderr
            .contains("is held by another repository: a lease of pid "),
        "{}",
        refused.stderr
    );
    let run = app.run(["release", &port]);
    same(
        &run.ok().stdout,
        &format!(
            "✓ Ended the lease of port 29489 (web, leased from worktree 'app' for pid {pid}): it is free again\n"
        ),
    );
    assert!(leased_ports(&env).is_empty());
    let json = app.run(["release", &port, "--json"]);
    json.code(1);
    end(holder);
}

include!(concat!(env!("OUT_DIR"), "/it_leases.rs"));

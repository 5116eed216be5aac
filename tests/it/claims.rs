//! Other repositories and the ledger: a claim is never dropped on a guess, one repository
//! has one identity, repairs are decided under the lock, and the work on a file is bounded
//! by its size. Then the owner of a port, messages and codes. Each numbered case of the issue
//! that found them is here.
//!
//! Ports: this module takes 29100-29199.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::promise::{ledger_path, promise_holds, run_with};
use crate::support::{Env, Repo, Run, same, scrub};

fn common(repo: &Repo) -> PathBuf {
    repo.dir.join(".git")
}

fn an_empty_directory_where_a_repository_was_keeps_its_claims() {
    let env = Env::new();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).expect("mkdir");
    let x = Repo {
        env: &env,
        dir: mnt.join("x"),
    };
    fs::create_dir_all(&x.dir).expect("mkdir");
    env.git(&x.dir, ["init", "-q", "-b", "main"]);
    env.git(&x.dir, ["commit", "-q", "--allow-empty", "-m", "init"]);
    x.range("web", 29100, 29100);
    x.run(["allocate", "web"]).ok();
    // 12. Its drive is away: the mount point is an empty directory.
    let away = env.path("away");
    fs::rename(&x.dir, &away).expect("unmount");
    fs::create_dir_all(&x.dir).expect("mount point");
    let y = env.repo("y");
    y.range("web", 29100, 29100);
    let run = y.run(["allocate", "web"]);
    run.code(3);
    // 16. status --machine lists it, with the port its claim keeps.
    let machine = y.run(["status", "--machine"]);
    machine.ok();
    assert!(
        scrub(&machine.stdout, &env).contains(
            "[TMP]/mnt/x:\n  cannot be read now ([TMP]/mnt/x/.git: No such file or directory (os error 2)); its claims keep port 29100 reserved\n"
        ),
        "{}",
        machine.stdout
    );
    let json = y.run(["status", "--machine", "--json"]).ok().json();
    assert_eq!(json["unreadable"][0]["ports"][0], 29100, "{json}");
    // The drive is back: one holder still.
    fs::remove_dir(&x.dir).expect("rmdir");
    fs::rename(&away, &x.dir).expect("mount");
    promise_holds(&env, &[common(&x), common(&y)]).expect("promise");
}

fn a_crash_that_half_moved_a_holding_never_lets_another_repository_take_the_port() {
    let env = Env::new();
    let a = env.repo("a");
    let b = env.repo("b");
    for r in [&a, &b] {
        r.range("web", 29110, 29110);
    }
    a.run(["hook", "install", "--services", "web"]).ok();
    a.add_worktree("w1", "b1").ok();
    a.git([
        "worktree",
        "remove",
        "--force",
        env.path("w1").to_str().unwrap_or(""),
    ]);
    // 13. A new worktree on the remembered branch; its hook dies between the ledger write
    // and the registry write.
    let mut cmd = std::process::Command::new("git");
    cmd.args(["worktree", "add", "-q"])
        .arg(env.path("w2"))
        .arg("b1")
        .current_dir(&a.dir);
    env.isolate(&mut cmd);
    cmd.env("GIT_PORTS_FAULT", "registry.create");
    let add = Run::from(cmd.output().expect("git worktree add"));
    add.ok();
    // Another repository's ordinary allocation must not take the port.
    b.run(["allocate", "web"]).code(3);
    promise_holds(&env, &[common(&a), common(&b)]).expect("promise");
    // Re-creating the removed worktree leaves one holder.
    a.add_worktree_branch("w1", "b1");
    promise_holds(&env, &[common(&a), common(&b)]).expect("promise");
}

/// Runs git-ports in a private mount namespace where `alias` is a bind mount of `real`, from
/// the same place under `alias`.
fn through_bind_mount(env: &Env, real: &Path, alias: &Path, args: &str) -> Run {
    fs::create_dir_all(alias).expect("mkdir");
    let script = format!(
        "mount --bind '{}' '{}' && cd '{}' && git-ports {args}",
        real.display(),
        alias.display(),
        alias.display()
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script]);
    env.isolate(&mut cmd);
    Run::from(cmd.output().expect("unshare"))
}

fn can_bind_mount() -> bool {
    let ok = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", "mount --bind / /mnt"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        crate::support::skip_part(
            "bind-mount tests (two paths, a read-only .git)",
            "bind mounts need root (unshare -m)",
        );
    }
    ok
}

fn one_repository_reached_by_two_paths_is_one_repository() {
    if !can_bind_mount() {
        return;
    }
    let env = Env::new();
    let a = env.repo("a");
    a.range("web", 29120, 29124);
    a.run(["allocate", "web"]).ok();
    let alias = env.path("alias");
    // 14. Through a bind mount: the same port, no conflict, nothing moved by doctor --fix.
    let run = through_bind_mount(&env, &a.dir, &alias, "allocate web --json");
    run.ok();
    assert!(run.stdout.contains("\"port\": 29120"), "{}", run.stdout);
    through_bind_mount(&env, &a.dir, &alias, "doctor").ok();
    through_bind_mount(&env, &a.dir, &alias, "doctor --fix").ok();
    // And from the first path, with the alias gone, still the same one repository.
    a.run(["doctor"]).ok();
    assert_eq!(
        a.run(["get", "web"]).ok().stdout,
        "29120\n",
        "the port never moved"
    );
    promise_holds(&env, &[common(&a)]).expect("promise");
}

/// Holds the ledger's lock as another git-ports would, until dropped.
fn hold(data: &Path) -> fs::File {
    let mut lock = data.as_os_str().to_owned();
    lock.push(".lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(lock))
        .expect("lock file");
    f.lock().expect("lock");
    f
}

fn doctor_fix_decides_from_what_it_reads_under_the_lock() {
    let env = Env::new();
    let a = env.repo("a");
    a.range("web", 29130, 29134);
    a.run(["allocate", "web"]).ok();
    let copy = env.path("copy");
    crate::support::copy_all(&a.dir, &copy);
    // 15. doctor --fix starts while the ledger is locked; meanwhile the conflict ends (the
    // original releases the port, written here as its release would write it).
    let guard = hold(&ledger_path(&env));
    let mut doctor = env
        .cmd(&copy)
        .args(["doctor", "--fix"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    let reg = common(&a).join("worktree-ports.json");
    let mut r =
        git_ports::registry::Registry::parse(&fs::read_to_string(&reg).expect("r")).expect("parse");
    r.remove_port(29130);
    fs::write(&reg, r.to_json().expect("json")).expect("write");
    let mut l =
        git_ports::ledger::Ledger::parse(&fs::read_to_string(ledger_path(&env)).expect("l"))
            .expect("parse");
    l.ports.remove(&29130);
    fs::write(ledger_path(&env), l.to_json().expect("json")).expect("write");
    drop(guard);
    let start = Instant::now();
    while doctor.try_wait().expect("wait").is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "doctor hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = doctor.wait_with_output().expect("out");
    assert!(out.status.success(), "{out:?}");
    // Nothing was moved: the copy keeps the port its server runs on.
    assert_eq!(env.run(&copy, ["get", "web"]).ok().stdout, "29130\n");
    promise_holds(&env, &[common(&a), copy.join(".git")]).expect("promise");
}

fn a_huge_memory_is_trimmed_in_one_pass() {
    let env = Env::new();
    let a = env.repo("a");
    a.range("web", 29140, 29149);
    a.run(["allocate", "web"]).ok();
    // 17. 150,000 remembered names (a file well under the size bound).
    let reg = a.registry_path();
    let mut r =
        git_ports::registry::Registry::parse(&fs::read_to_string(&reg).expect("r")).expect("parse");
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    for i in 0..150_000u32 {
        r.remembered
            .entry(format!("name:w{i}"))
            .or_default()
            .insert(
                "web".into(),
                git_ports::registry::Remembered {
                    port: 29141,
                    at: at + chrono::Duration::seconds(i64::from(i)),
                },
            );
    }
    fs::write(&reg, r.to_json().expect("json")).expect("write");
    let wt = a.worktree("wt", "wt");
    let start = Instant::now();
    let run = env.run(&wt, ["allocate", "web"]);
    run.ok();
    // A bound, not a speed goal: the quadratic eviction took minutes.
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    let after: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&reg).expect("r")).expect("json");
    assert_eq!(
        after["remembered"].as_object().map(|m| m.len()),
        Some(git_ports::policy::memory::REMEMBER)
    );
}

fn every_lock_of_a_command_shares_one_deadline() {
    let env = Env::new();
    let a = env.repo("a");
    a.range("web", 29150, 29154);
    a.run(["allocate", "web"]).ok();
    a.git(["config", "ports.lockTimeout", "2"]);
    // 18. Both locks held by another process for 3 s: the first wait ends the deadline, the
    // second lock gets none of its own.
    let ledger = hold(&ledger_path(&env));
    let registry = hold(&a.registry_path());
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(3000));
        drop(ledger);
        drop(registry);
    });
    let start = Instant::now();
    let run = a.run(["allocate", "api"]);
    let took = start.elapsed();
    run.code(5);
    let _ = releaser.join();
    // Each lock on its own bound would wait 2 + 2 s; one deadline waits about 2.
    assert!(took < Duration::from_millis(3500), "{took:?}");
}

fn unidentified_and_outside_listeners_are_never_the_worktrees_own() {
    let env = Env::new();
    let a = env.repo("a");
    a.range("web", 29160, 29164);
    a.run(["allocate", "web"]).ok();
    // 19. A listener git-ports cannot see the process of: here, git-ports runs in a PID
    // namespace of its own, where the listener's process is not shown.
    let _server = crate::support::listen_in(&a.dir, 29160);
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-p", "-f", "--mount-proc"])
        .arg(crate::support::BIN)
        .args(["status", "--health-check"])
        .current_dir(&a.dir);
    env.isolate(&mut cmd);
    let out = cmd.output().expect("unshare");
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(1) && String::from_utf8_lossy(&out.stderr).contains("unshare") {
        crate::support::skip_part(
            "a listener in another pid namespace",
            "unshare -p needs root",
        );
    } else {
        assert!(
            text.contains("[FOREIGN]  ✗  served by a process git-ports cannot identify"),
            "{text}"
        );
        assert!(!text.contains("[RUNNING]"), "{text}");
    }
    // 20. wait applies exec's rule: a port served from outside the worktree is refused.
    let wt = a.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web"]).ok();
    let port: u16 = env
        .run(&wt, ["get", "web"])
        .ok()
        .stdout
        .trim()
        .parse()
        .unwrap_or(0);
    let _other = crate::support::listen_in(&a.dir, port);
    let run = env.run(&wt, ["wait", "web", "--timeout", "5"]);
    run.code(4);
    assert!(
        run.stderr
            .contains(&format!("git-ports: port {port} is already served by pid "))
            && run.stderr.contains("in worktree 'a'"),
        "{}",
        run.stderr
    );
}

#[cfg(unix)]
fn a_listeners_odd_bytes_are_escaped_in_text_and_exact_in_json() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let a = env.repo("a");
    a.range("web", 29170, 29174);
    a.run(["allocate", "web"]).ok();
    // 21. A listener whose command and directory are not UTF-8.
    let odd = env.root().join(std::ffi::OsStr::from_bytes(b"dir\xff"));
    fs::create_dir_all(&odd).expect("mkdir");
    // The interpreter itself, not a shim that dispatches on its own name.
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    let python = String::from_utf8_lossy(&python.stdout).trim().to_string();
    let link = odd.join(std::ffi::OsStr::from_bytes(b"py\xfe"));
    std::os::unix::fs::symlink(&python, &link).expect("link");
    let mut server = std::process::Command::new(&link)
        .args([
            "-c",
            "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',29170))\ns.listen()\ntime.sleep(60)",
        ])
        .current_dir(&odd)
        .spawn()
        .expect("python");
    crate::support::wait_listening(29170, true);
    let json = a.run(["status", "--health-check", "--json"]).json();
    let text = a.run(["status", "--health-check"]).stdout;
    let l = &json["worktrees"][0]["ports"]["web"]["listener"];
    let _ = server.kill();
    assert!(
        text.contains(&format!("pid {} (py\\376)", server.id())),
        "{text}"
    );
    let _ = server.wait();
    assert_eq!(l["command"]["hex"], "7079fe", "{l}");
    let cwd_hex: String = odd
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(l["cwd"]["hex"], cwd_hex.as_str(), "{l}");
}

fn messages_say_what_is_true() {
    let env = Env::new();
    let a = env.repo("a");
    // 23. A range whose only free port is kept for the main worktree says so.
    a.range("web", 29180, 29181);
    a.git(["config", "ports.reserveMain", "true"]);
    let w1 = a.worktree("w1", "w1");
    let w2 = a.worktree("w2", "w2");
    env.run(&w1, ["allocate", "web"]).ok();
    let run = env.run(&w2, ["allocate", "web"]);
    same(
        &run.stderr,
        "git-ports: no free port for service 'web' in 29180-29181: 1 of 2 are held, 1 is kept for the main worktree (ports.reserveMain)\n",
    );
    run.code(3);
    // Timeouts: the bounds the message gives are the bounds there are.
    let run = a.run(["wait", "web", "--timeout", "0"]);
    run.code(1);
    assert!(
        run.stderr
            .starts_with("git-ports: invalid value '0' for '--timeout <SECONDS>': '0' is not a number of seconds from 0.001 to 3600"),
        "{}",
        run.stderr
    );
    let run = a.run(["wait", "web", "--timeout", "1e-300"]);
    run.code(1);
    assert!(run.stderr.lines().all(|l| l.len() < 200), "{}", run.stderr);
}

fn every_invalid_entry_of_a_multi_valued_key_is_reported() {
    let env = Env::new();
    let a = env.repo("a");
    a.range("web", 29185, 29189);
    // 24. An invalid entry followed by a valid one is still reported.
    for (key, bad, good) in [
        ("ports.envFile", "../x", ".env.local"),
        ("ports.autoAllocate", "we;b", "web"),
        (
            "ports.derived",
            "API_URL={web",
            "WEB_URL=http://localhost:{web}",
        ),
    ] {
        a.git(["config", "--add", key, bad]);
        a.git(["config", "--add", key, good]);
    }
    let doctor = a.run(["doctor"]);
    doctor.code(4);
    for bad in ["'../x'", "'we;b'", "'API_URL={web'"] {
        assert!(
            doctor.stdout.contains(&format!(
                "(got {bad}, set in {}/.git/config)",
                a.dir.display()
            )),
            "{bad}: {}",
            doctor.stdout
        );
    }
    let run = a.run(["allocate", "web"]);
    run.ok();
    assert!(
        run.stderr.contains(&format!("config ports.envFile: give a path inside the worktree, relative to its root (got '../x', set in {}/.git/config); that entry is skipped", a.dir.display())),
        "{}",
        run.stderr
    );
}

fn env_output_to_a_pipe_is_exactly_what_exec_passes() {
    let env = Env::new();
    let a = env.repo("a");
    a.range("web", 29190, 29194);
    a.git([
        "config",
        "--add",
        "ports.derived",
        "GREETING=tab\there {web}",
    ]);
    a.run(["allocate", "web"]).ok();
    // 25. eval of env's shell lines gives the value exec passes, byte for byte.
    let via_eval = env
        .sh(
            &a.dir,
            "eval \"$(git ports env)\" && printf '%s' \"$GREETING\"",
        )
        .ok()
        .stdout
        .clone();
    let via_exec = a
        .run(["exec", "--", "sh", "-c", "printf '%s' \"$GREETING\""])
        .ok()
        .stdout
        .clone();
    same(&via_eval, "tab\there 29190");
    same(&via_exec, &via_eval);
}

fn a_change_that_writes_nothing_works_on_a_read_only_git_dir() {
    if !can_bind_mount() {
        return;
    }
    let env = Env::new();
    let a = env.repo("a");
    a.range("web", 29195, 29199);
    a.run(["allocate", "web"]).ok();
    // 26. .git mounted read-only: an allocate that finds the port held answers 0; one that
    // would write says it cannot, with 5.
    let git = common(&a);
    let script = |args: &str| {
        format!(
            "mount --bind -o ro '{g}' '{g}' && cd '{d}' && git-ports {args}",
            g = git.display(),
            d = a.dir.display()
        )
    };
    let run_ro = |args: &str| {
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["-m", "sh", "-c", &script(args)]);
        env.isolate(&mut cmd);
        Run::from(cmd.output().expect("unshare"))
    };
    let run = run_ro("allocate web");
    run.ok();
    assert!(
        run.stdout.contains("is already allocated to worktree 'a'"),
        "{run:?}"
    );
    run_ro("allocate api").code(5);
    let _ = run_with(&env, &a.dir, &["status"], &[]).ok();
}

include!(concat!(env!("OUT_DIR"), "/it_claims.rs"));

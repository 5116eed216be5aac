//! The servers under attack: what reaches the proxy, `stop`, `proxy stop` and leases from a
//! hostile local user, a copied repository, a sandbox in its own pid namespace, never routes,
//! signals or hands out what is not theirs. Real sockets, real clients (curl, raw TCP), a
//! second OS user (`nobody`, where the tests run as root) and pid namespaces (`unshare`).
//!
//! Ports: this module takes 29800-29849.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::promise::ledger_path;
use crate::proxy::{Proc, curl, node, proxy, upstream_on};
use crate::support::{Env, listen_in, seen, skip, wait_listening};

/// Whether the tests run as root, who can start a process as another user.
pub fn root() -> bool {
    #[cfg(unix)]
    {
        std::fs::metadata("/proc/self").is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        })
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// A server of user `nobody` (uid 65534) on 127.0.0.1:`port`, working in `dir`, that writes
/// to its stdout what every connection sends it (a health check, which only connects,
/// sends nothing).
fn nobodys_server(dir: &Path, port: u16) -> Child {
    let code = format!(
        "import socket,sys\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',{port}))\ns.listen()\nwhile True:\n  c,_=s.accept()\n  c.settimeout(0.5)\n  try:\n    d=c.recv(64)\n  except Exception:\n    d=b''\n  if d:\n    print('got',d,flush=True)\n  c.close()\n"
    );
    let child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            &code,
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv");
    wait_listening(port, true);
    child
}

/// What a child wrote to its stdout, once killed.
fn killed_output(mut c: Child) -> String {
    let _ = c.kill();
    let _ = c.wait();
    let mut out = String::new();
    if let Some(mut s) = c.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    out
}

/// A lease holder's record of process `pid`, as git-ports writes it: pid, start time, boot,
/// pid namespace.
fn holder_of(pid: u32) -> serde_json::Value {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let start: u64 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split(' ').nth(20)?.parse().ok())
        .expect("start time");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
    let ns: Option<u64> = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .and_then(|ns| {
            ns.to_string_lossy()
                .trim_start_matches("pid:[")
                .trim_end_matches(']')
                .parse()
                .ok()
        });
    let mut h = serde_json::json!({"pid": pid, "start": start, "boot": boot.trim()});
    if let Some(ns) = ns {
        h["pidns"] = ns.into();
    }
    h
}

/// A worktree's server on `[::1]:P` only, and another process on `127.0.0.1:P`: the port is
/// FOREIGN in status, exec and wait refuse it, and the proxy forwards nothing there, whether
/// the other process is another worktree's or another user's.
fn a_port_half_served_by_someone_else_is_foreign_everywhere_and_never_proxied() {
    if !node() || TcpStream::connect(("::1", 1)).is_err_and(|e| e.raw_os_error() == Some(99)) {
        skip("needs node and IPv6 loopback");
    }
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29800, 29804);
    repo.run(["allocate", "web"]).ok();
    let fx = repo.worktree("fx", "fx");
    env.run(&fx, ["allocate", "web"]).ok();
    let _proxy = proxy(&env, 29849);
    let url = "http://fx.shop.localhost:29849/";
    // fx's own server, on IPv6 loopback only (what `localhost` gives Node on many systems):
    // the proxy reaches it there.
    let _own = upstream_on(&fx, 29801, "::1");
    let (code, body) = curl(&[url]);
    assert_eq!(
        (code, body.starts_with("hello from 29801")),
        (200, true),
        "{body}"
    );

    // Another worktree's process on 127.0.0.1 of the same port.
    let other = listen_in(&repo.dir, 29801);
    let status = env.run(&fx, ["status", "--health-check", "--service", "web"]);
    let line = status
        .stdout
        .lines()
        .find(|l| l.contains("29801"))
        .unwrap_or_default()
        .replace(&other.id().to_string(), "PID");
    assert!(
        line.contains("[FOREIGN]  ✗  served by pid PID (")
            && line
                .ends_with(") in worktree 'shop', on 127.0.0.1, beside this worktree's own server"),
        "{line}\n{}",
        status.stdout
    );
    let exec = env.run(&fx, ["exec", "--", "true"]);
    exec.code(4);
    assert!(
        exec.stderr.contains("port 29801 is already served by pid "),
        "{}",
        exec.stderr
    );
    env.run(&fx, ["wait", "--timeout", "2"]).code(4);
    let (code, body) = curl(&[url]);
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("is listened on by pid ")
            && body.contains("and the proxy forwards only to the worktree's own server"),
        "{body}"
    );
    drop(other);
    wait_listening(29801, false);
    let (code, _) = curl(&[url]);
    assert_eq!(code, 200);

    if !root() {
        crate::support::skip_part(
            "another user's listener",
            "only root can start a process as another user here",
        );
        return;
    }
    // Another user's process on 127.0.0.1: FOREIGN, and it is sent nothing.
    let theirs = nobodys_server(&fx, 29801);
    let json = env.run(&fx, ["status", "--health-check", "--json"]).json();
    let l = &json["worktrees"][1]["ports"]["web"]["listener"];
    assert_eq!(l["owner"], "user", "{json:#}");
    assert_eq!(l["uid"], 65534);
    assert_eq!(l["beside_own"], true);
    assert_eq!(l["address"], "127.0.0.1");
    let exec = env.run(&fx, ["exec", "--", "true"]);
    exec.code(4);
    assert!(
        exec.stderr.contains("of another user (uid 65534)"),
        "{}",
        exec.stderr
    );
    for _ in 0..5 {
        let (code, body) = curl(&[url]);
        assert_eq!(code, 502, "{body}");
        assert!(body.contains("of another user (uid 65534)"), "{body}");
    }
    let (code, _) = curl(&["-H", "Host: shop.localhost", "http://127.0.0.1:29849/"]);
    assert_eq!(code, 502);
    assert_eq!(
        killed_output(theirs),
        "",
        "another user's server was sent a request"
    );
}

/// After `cp -a` of a repository and one change in the copy, the copy's names are never
/// routed to the original's server on the port the ledger gives the original.
fn a_copied_repository_is_never_routed_to_the_originals_server() {
    if !node() {
        skip("needs node");
    }
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29805, 29809);
    repo.run(["allocate", "web"]).ok();
    let copy = env.path("copy");
    crate::support::copy_all(&repo.dir, &copy);
    env.run(&copy, ["allocate", "web"]).ok();
    let _server = crate::proxy::upstream(&repo.dir, 29805);
    let _proxy = proxy(&env, 29848);
    let (code, body) = curl(&["http://shop.localhost:29848/"]);
    assert_eq!(
        (code, body.starts_with("hello from 29805")),
        (200, true),
        "{body}"
    );
    for host in ["copy.localhost", "copy.copy.localhost"] {
        let (code, body) = curl(&["-H", &format!("Host: {host}"), "http://127.0.0.1:29848/"]);
        assert_eq!(code, 502, "{host}: {body}");
        assert!(
            body.contains("is held by ")
                && body.contains("(a conflict: a copied repository")
                && body.contains("Run `git -C ")
                && body
                    .contains("/copy ports doctor --fix` to give the worktree a port of its own"),
            "{host}: {body}"
        );
    }
    // The fix the page names gives the copy a port of its own.
    env.run(&copy, ["doctor", "--fix"]).ok();
    let (code, body) = curl(&["http://copy.localhost:29848/"]);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("nothing listens on it"), "{body}");
}

/// The proxy's port is never handed to a worktree or a lease, `proxy start` refuses a port
/// the ledger gives to someone, and the proxy keeps no worktree as its directory.
fn the_proxy_port_is_fenced_off_and_the_proxy_keeps_no_directory() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29810, 29814);
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", "29810"],
    );
    let alloc = repo.run(["allocate", "web"]);
    alloc.ok();
    assert!(
        alloc.stdout.contains(
            "Port 29810: Kept for git ports proxy (ports.proxyPort)\nPort 29811: Available\n"
        ),
        "{}",
        alloc.stdout
    );
    let wt = repo.worktree("wt", "wt");
    let ledger = std::fs::read(ledger_path(&env)).expect("ledger");
    let asked = env.run(&wt, ["allocate", "web", "--port", "29810"]);
    crate::support::same(
        &seen(&asked, &env),
        "--- stderr\ngit-ports: port 29810 is kept for git ports proxy (ports.proxyPort)\nhint: ask for another port, or move the proxy with `git config --global ports.proxyPort PORT`\n--- exit 4\n",
    );
    assert_eq!(std::fs::read(ledger_path(&env)).expect("ledger"), ledger);
    repo.git(["config", "ports.web.leaseRange", "29810-29810"]);
    env.run(
        &wt,
        ["lease", "web", "--pid", &std::process::id().to_string()],
    )
    .code(3);
    repo.git(["config", "--unset", "ports.web.leaseRange"]);
    // A port the ledger gives to a worktree: the proxy would take it from under its server.
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", "29811"],
    );
    let start = env.run(env.root(), ["proxy", "start"]);
    start.code(1);
    assert!(
        start
            .stderr
            .starts_with("git-ports: port 29811 is held by ")
            && start
                .stderr
                .contains("(app) in the ledger: give the proxy another port"),
        "{}",
        start.stderr
    );
    // Started from inside a worktree, it still works in `/`.
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", "29812"],
    );
    env.run(&wt, ["proxy", "start"]).ok();
    let json = env.run(&wt, ["proxy", "status", "--json"]).json();
    let pid = json["pid"].as_u64().expect("pid");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd"),
        PathBuf::from("/")
    );
    env.run(&wt, ["proxy", "stop"]).ok();
    wait_listening(29812, false);
}

/// `{service}.{origin}` is the origin's: a worktree named after a service gets another name,
/// and another repository's template cannot put names under this repository's origin.
fn names_under_an_origin_are_that_origins_own() {
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29815, 29817);
    repo.range("api", 29818, 29819);
    repo.run(["allocate", "web", "api"]).ok();
    let api = repo.worktree("api", "api");
    env.run(&api, ["allocate", "web"]).ok();
    let vars = env.run(&api, ["env"]).ok().stdout.clone();
    assert!(
        vars.contains("WEB_PUBLIC_HOST=api-2.shop.localhost\n"),
        "{vars}"
    );
    // api.shop.localhost is the origin's api: the main worktree's.
    let json = env.run(env.root(), ["proxy", "status", "--json"]).json();
    let api = json["names"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["host"] == "api.shop.localhost")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            api["origin"].clone(),
            api["worktree"].clone(),
            api["port"].clone()
        ),
        (true.into(), "shop".into(), 29818.into()),
        "{json:#}"
    );
    // Another repository whose template names everything under shop.localhost.
    let other = env.repo("other");
    other.range("web", 29820, 29821);
    other.git(["config", "ports.hostTemplate", "{worktree}.shop.localhost"]);
    let zz = other.worktree("zz", "zz");
    env.run(&zz, ["allocate", "web"]).ok();
    let vars = env.run(&zz, ["env"]).ok().stdout.clone();
    assert!(!vars.contains("WEB_PUBLIC_HOST="), "{vars}");
    let doctor = env.run(&zz, ["doctor"]);
    doctor.code(4);
    assert!(
        doctor.stdout.contains("worktree 'zz' has no host name: every name ports.hostTemplate gives it is taken, or lies under another repository's origin"),
        "{}",
        doctor.stdout
    );
    let ledger = std::fs::read_to_string(ledger_path(&env)).expect("ledger");
    assert!(!ledger.contains("zz.shop.localhost"), "{ledger}");
}

/// Releasing a worktree's last port points its repository's origin at the main worktree
/// again, and says so: the next worktree git gives that name never inherits the origin.
fn releasing_the_pointed_worktree_points_the_origin_home() {
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 29822, 29824);
    repo.run(["allocate", "web"]).ok();
    let fx = repo.worktree("fx", "fx");
    env.run(&fx, ["allocate", "web"]).ok();
    repo.run(["point", "fx"]).ok();
    let released = repo.run(["release", "-w", "fx"]);
    released.ok();
    assert!(
        released.stderr.contains("shop.localhost pointed at worktree 'fx', which holds no port now: it serves the main worktree again"),
        "{}",
        released.stderr
    );
    assert_eq!(
        repo.run(["status", "--json"]).json()["origin"]["worktree"],
        "shop"
    );
    // Pointed again, then removed and pruned; the next `fx`, on another branch, is not it.
    env.run(&fx, ["allocate", "web"]).ok();
    repo.run(["point", "fx"]).ok();
    repo.git(["worktree", "remove", "--force", fx.to_str().unwrap_or("")]);
    repo.run(["prune"]).ok();
    repo.git(["branch", "unrelated"]);
    let again = repo.add_worktree_branch("fx", "unrelated");
    again.ok();
    env.run(&fx, ["allocate", "web"]).ok();
    assert_eq!(
        repo.run(["status", "--json"]).json()["origin"]["worktree"],
        "shop"
    );
}

/// `proxy stop` signals only a process proven to be this user's git-ports proxy listening
/// on its port; a state file naming anything else is left alone, and never blocks a start.
fn proxy_stop_signals_only_this_users_proxy() {
    let env = Env::new();
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", "29825"],
    );
    let state = env.path("ports-home/proxy.json");
    let write_state = |holder: serde_json::Value| {
        let text = serde_json::json!({"holder": holder, "port": 29825}).to_string();
        std::fs::write(&state, text).expect("state");
    };
    let mut sleeper = Command::new("sleep").arg("60").spawn().expect("sleep");
    let pid = sleeper.id();
    write_state(holder_of(pid));
    let stop = env.run(env.root(), ["proxy", "stop"]);
    stop.ok();
    crate::support::same(
        &stop.stdout,
        &format!(
            "git ports proxy is not running: its state file names pid {pid}, a process that is not `git-ports proxy`; nothing was signalled\n"
        ),
    );
    assert!(
        sleeper.try_wait().expect("wait").is_none(),
        "the sleep was signalled"
    );
    write_state(holder_of(pid));
    env.run(env.root(), ["proxy", "status"]).code(1);
    // The state file does not block a start.
    env.run(env.root(), ["proxy", "start"]).ok();
    wait_listening(29825, true);
    let stop = env.run(env.root(), ["proxy", "stop"]);
    assert!(stop.stdout.ends_with(") stopped\n"), "{}", stop.stdout);
    wait_listening(29825, false);
    assert!(sleeper.try_wait().expect("wait").is_none());
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    // Pid 1: never.
    write_state(holder_of(1));
    let stop = env.run(env.root(), ["proxy", "stop"]);
    assert!(
        stop.stdout.contains(
            "names pid 1, the first process of its system or pid namespace; nothing was signalled"
        ),
        "{}",
        stop.stdout
    );
    if !root() {
        crate::support::skip_part(
            "another user's process",
            "only root can start a process as another user here",
        );
        return;
    }
    let mut theirs = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sleep",
            "60",
        ])
        .spawn()
        .expect("setpriv");
    std::thread::sleep(Duration::from_millis(200));
    write_state(holder_of(theirs.id()));
    let stop = env.run(env.root(), ["proxy", "stop"]);
    assert!(
        stop.stdout
            .contains("a process of another user; nothing was signalled"),
        "{}",
        stop.stdout
    );
    assert!(
        theirs.try_wait().expect("wait").is_none(),
        "another user's process was signalled"
    );
    let _ = theirs.kill();
    let _ = theirs.wait();
}

/// A ledger directory others can write, or another user's, is refused by every command with
/// one line saying why and how to fix it; nothing is written.
#[cfg(unix)]
fn a_ledger_directory_others_can_write_or_own_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29826, 29827);
    let home = env.path("ports-home");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let run = repo.run(["allocate", "web"]);
    crate::support::same(
        &seen(&run, &env),
        "--- stderr\ngit-ports: [TMP]/ports-home can be written by other users: git-ports uses only a directory of this user's that nobody else can write\nhint: `chmod go-w [TMP]/ports-home`\n--- exit 5\n",
    );
    assert!(!repo.registry_path().exists(), "nothing is written");
    repo.run(["status"]).code(2);
    repo.run(["doctor"]).code(5);
    env.run(env.root(), ["proxy", "stop"]).code(5);
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    repo.run(["allocate", "web"]).ok();
    // The proxy's state file, writable by others.
    let state = home.join("proxy.json");
    std::fs::write(&state, "{}").expect("state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let stop = env.run(env.root(), ["proxy", "stop"]);
    stop.code(5);
    assert!(
        stop.stderr
            .contains("proxy.json can be written by other users"),
        "{}",
        stop.stderr
    );
    std::fs::remove_file(&state).expect("rm");
    if !root() {
        crate::support::skip_part(
            "another user's directory",
            "only root can give a directory to another user here",
        );
        return;
    }
    let ledger = std::fs::read(ledger_path(&env)).expect("ledger");
    Command::new("chown")
        .arg("65534")
        .arg(&home)
        .status()
        .expect("chown");
    let run = repo.run(["allocate", "web"]);
    crate::support::same(
        &seen(&run, &env),
        "--- stderr\ngit-ports: [TMP]/ports-home belongs to uid 65534, not to this user (uid 0): git-ports uses only a directory of this user's that nobody else can write\nhint: set GIT_PORTS_HOME to a directory of your own, or, if this one is yours, `chown -R 0 [TMP]/ports-home`\n--- exit 5\n",
    );
    assert_eq!(std::fs::read(ledger_path(&env)).expect("ledger"), ledger);
}

/// `prune --stop` tells a deleted directory by the file system: a process working in an
/// existing directory named `wt (deleted)` is not the removed worktree's, and runs on.
fn prune_stop_leaves_a_directory_merely_named_deleted_alone() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29828, 29829);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web"]).ok();
    let named = env.path("wt (deleted)");
    std::fs::create_dir_all(&named).expect("mkdir");
    let mut bystander = listen_in(&named, 29828);
    std::fs::remove_dir_all(&wt).expect("rm -rf wt");
    let run = repo.run(["prune", "--stop"]);
    run.ok();
    crate::support::same(
        &run.stdout,
        "✓ Released port 29828 (web) of worktree 'wt': directory missing\n",
    );
    assert!(
        bystander.0.try_wait().expect("wait").is_none(),
        "the bystander was stopped"
    );
}

/// A worktree directory replaced by a symlink to an ancestor owns no process: `stop` leaves
/// alone what runs below that ancestor.
#[cfg(unix)]
fn a_worktree_replaced_by_a_symlink_owns_no_process() {
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29830, 29831);
    let wt = repo.worktree("wt", "wt");
    env.run(&wt, ["allocate", "web"]).ok();
    let below = env.path("elsewhere");
    std::fs::create_dir_all(&below).expect("mkdir");
    let mut bystander = listen_in(&below, 29830);
    std::fs::remove_dir_all(&wt).expect("rm -rf wt");
    std::os::unix::fs::symlink(env.root(), &wt).expect("symlink");
    let run = repo.run(["stop", "--worktree", "wt", "--grace", "0.5"]);
    run.ok();
    let said = run.stdout.replace(&bystander.id().to_string(), "PID");
    assert!(
        said.starts_with("web (29830): left alone: served by pid PID ("),
        "{said}"
    );
    assert!(
        bystander.0.try_wait().expect("wait").is_none(),
        "the bystander was stopped"
    );
}

/// Whether this machine lets the tests make a pid namespace with a `/proc` of its own.
fn namespaces() -> bool {
    Command::new("unshare")
        .args(["-p", "-f", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A lease taken inside another pid namespace (a sandbox with its own `/proc`) is kept while
/// its holder runs, though its pid names another process outside; freed once it ends. A
/// lease of this namespace, seen from inside a sandbox that cannot see it, is kept, and
/// status says why.
fn leases_across_pid_namespaces_are_never_guessed_dead() {
    if !namespaces() {
        skip(
            "cannot make a pid namespace here (`unshare -p -f --mount-proc` needs root or user namespaces)",
        );
    }
    let env = Env::new();
    let repo = env.repo("app");
    repo.range("web", 29835, 29836);
    repo.run(["allocate", "web"]).ok();
    let wt = repo.worktree("wt", "wt");
    let out = env.path("leased");
    // The sandbox's first process is a shell (pid 1 holds no lease); it and all it started
    // end when `unshare` does.
    let run = format!(
        "{} exec --lease web -- sh -c 'echo $WEB_PORT > {}; exec sleep 60'",
        crate::support::BIN,
        out.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-p", "-f", "--kill-child", "--mount-proc", "sh", "-c", &run])
        .current_dir(&repo.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    env.isolate(&mut cmd);
    let mut sandbox = Proc(cmd.spawn().expect("unshare"));
    let start = Instant::now();
    while std::fs::read_to_string(&out)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the sandboxed run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&out).expect("port").trim(), "29836");
    let ledger = std::fs::read_to_string(ledger_path(&env)).expect("ledger");
    let ledger: serde_json::Value = serde_json::from_str(&ledger).expect("json");
    let holder = &ledger["ports"]["29836"]["lease"];
    assert!(holder["pidns"].is_u64(), "{holder}");
    // Outside, its pid names some other process (or none): the lease stands all the same.
    let full = env.run(&wt, ["allocate", "web"]);
    full.code(3);
    let status = repo.run(["status"]);
    assert!(
        status.stdout.contains("  web  29836  pid "),
        "{}",
        status.stdout
    );
    // Once the sandbox ends, the next change frees the port: from the system's first pid
    // namespace, which sees every process, its end is certain. From a namespace of its own
    // (a container), a namespace that is gone looks like one it cannot see into: kept.
    let _ = sandbox.0.kill();
    let _ = sandbox.0.wait();
    let everything = std::fs::read_link("/proc/self/ns/pid")
        .is_ok_and(|l| l.to_string_lossy() == "pid:[4026531836]");
    let start = Instant::now();
    loop {
        let run = env.run(&wt, ["allocate", "web"]);
        if !everything {
            run.code(3);
            eprintln!(
                "leases_across_pid_namespaces_are_never_guessed_dead: not in the first pid namespace, so the ended sandbox's lease is kept"
            );
            break;
        }
        if run.code == 0 {
            assert!(
                run.stdout.contains("Allocated port 29836"),
                "{}",
                run.stdout
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the lease outlived its sandbox: {run:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    if !everything {
        return;
    }
    // A lease of this namespace, seen from a sandbox that cannot see its holder: kept.
    env.run(&wt, ["release", "-w", "wt"]).ok();
    let mut holder = Command::new("sleep").arg("60").spawn().expect("sleep");
    env.run(&wt, ["lease", "web", "--pid", &holder.id().to_string()])
        .ok();
    let inside = |args: &[&str]| {
        let mut cmd = Command::new("unshare");
        cmd.args(["-p", "-f", "--mount-proc", crate::support::BIN])
            .args(args)
            .current_dir(&wt);
        env.isolate(&mut cmd);
        crate::support::Run::from(cmd.output().expect("unshare"))
    };
    let status = inside(&["status"]);
    status.ok();
    assert!(
        status
            .stdout
            .contains("kept: its process runs in a pid namespace this one cannot see into (pid:["),
        "{}",
        status.stdout
    );
    inside(&["allocate", "web"]).code(3);
    let _ = holder.kill();
    let _ = holder.wait();
}

include!(concat!(env!("OUT_DIR"), "/it_hostile.rs"));

//! The Windows build, under wine: `git-ports.exe` in repositories made by the Linux `git`
//! (as a user's would be, and as git-ports finds them: through libgit2, with no git of its
//! own inside wine), against real Windows listeners: the Windows build of this test binary,
//! started inside wine. Allocate, status naming a listener's pid and executable, check,
//! exec refusing another's listener, a lease that ends with its process, stop of a
//! worktree's own server only, and the proxy routing a name.
//!
//! `.ci/run` builds both executables and names them in `GIT_PORTS_TEST_WINDOWS_EXE` and
//! `GIT_PORTS_TEST_WINDOWS_LISTENER`, with wine set up by `.ci/xplat`.
//!
//! Ports: this module takes 20300-20399.

// Its tests drive wine from Linux; elsewhere only the helpers compile.
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Env, LISTEN, LISTEN_HTTP, Run, Server, listen_in, skip, wait_listening};

/// The Windows build: git-ports.exe and the listener.
struct Win {
    exe: PathBuf,
    listener: PathBuf,
}

fn win() -> Win {
    let file = |v: &str| {
        std::env::var_os(v)
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    };
    let (Some(exe), Some(listener)) = (
        file("GIT_PORTS_TEST_WINDOWS_EXE"),
        file("GIT_PORTS_TEST_WINDOWS_LISTENER"),
    ) else {
        skip(
            "the Windows build is not named: set GIT_PORTS_TEST_WINDOWS_EXE to git-ports.exe and GIT_PORTS_TEST_WINDOWS_LISTENER to the Windows build of this test binary (.ci/run builds both)",
        );
    };
    if crate::support::git3() {
        skip(
            "under git 3.0's defaults the Windows build opens repositories through git.exe, which wine does not have (.ci/run runs this subset once, in the first run)",
        );
    }
    let wine = Command::new("wine")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !wine.is_ok_and(|s| s.success()) {
        skip("wine is not installed (.ci/xplat installs it)");
    }
    Win { exe, listener }
}

/// The test environment for the Windows build. Wine gives a file the Windows owner of this
/// user only when its Unix owner is the wineserver's user; where a machine maps owners
/// otherwise, libgit2 would take every test repository for someone else's. Trusting them in
/// the tests' own global config keeps that out of what the tests are about (ownership has its
/// own test, with no such entry).
fn win_env() -> Env {
    let env = Env::new();
    let config = env.path("gitconfig");
    let mut text = std::fs::read_to_string(&config).expect("gitconfig");
    text.push_str("[safe]\n\tdirectory = *\n");
    std::fs::write(&config, text).expect("gitconfig");
    env
}

/// `path` as Windows programs under wine name it: on drive Z:, which is `/`.
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// A command under wine, with the test environment; its paths as Windows names them.
fn wine(env: &Env, dir: &Path, program: &Path) -> Command {
    let mut cmd = Command::new("wine");
    cmd.arg(program).current_dir(dir);
    env.isolate(&mut cmd);
    for (var, rel) in [
        ("GIT_PORTS_HOME", "ports-home"),
        ("GIT_CONFIG_GLOBAL", "gitconfig"),
        ("HOME", "home"),
        ("USERPROFILE", "home"),
    ] {
        cmd.env(var, windows_path(&env.path(rel)));
    }
    // Wine turns Unix file names into Windows ones by the locale's character set: UTF-8, as
    // the names git wrote are, not the C locale's ASCII.
    cmd.env("WINEDEBUG", "-all").env("LC_ALL", "C.UTF-8");
    cmd
}

/// Runs git-ports.exe in `dir`, bounded: wine that hangs fails the test. Its output goes to
/// files, not pipes: a daemon it starts (the proxy) keeps wine's own stderr open.
fn run(env: &Env, w: &Win, dir: &Path, args: &[&str]) -> Run {
    let out = tempfile::tempfile().expect("stdout file");
    let err = tempfile::tempfile().expect("stderr file");
    let mut cmd = wine(env, dir, &w.exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"));
    let mut child = cmd.spawn().expect("wine");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("git-ports.exe {args:?} did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).expect("seek");
        f.read_to_end(&mut v).expect("read");
        v
    };
    Run::from(std::process::Output {
        status,
        stdout: read(out),
        stderr: read(err),
    })
}

/// A Windows process listening on 127.0.0.1:`port`, working in `dir`: the Windows build of
/// this test binary, as the listener. Its Windows pid, as it says it.
fn windows_listener(env: &Env, w: &Win, dir: &Path, port: u16, http: bool) -> (Server, u32) {
    let mut cmd = wine(env, dir, &w.listener);
    cmd.env(LISTEN, port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if http {
        cmd.env(LISTEN_HTTP, "1");
    }
    let mut child = cmd.spawn().expect("wine listener");
    let out = child.stdout.take().expect("stdout");
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the Windows listener said its pid");
    let pid = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the Windows listener on {port} did not start: {line:?}"));
    wait_listening(port, true);
    (server, pid)
}

/// The `name.exe` the Windows listener runs as.
fn listener_name(w: &Win) -> String {
    w.listener
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(target_os = "linux")]
fn status_check_and_exec_name_a_windows_listener_and_refuse_another() {
    let w = win();
    let env = win_env();
    let repo = env.repo("app");
    repo.range("web", 20300, 20309);
    repo.range("api", 20310, 20319);
    let wt = repo.worktree("wt", "wt");
    run(&env, &w, &repo.dir, &["allocate", "web"]).ok();
    run(&env, &w, &wt, &["allocate", "web"]).ok();
    run(&env, &w, &wt, &["allocate", "api"]).ok();
    let api = run(&env, &w, &wt, &["get", "api"]);
    api.ok();
    assert_eq!(api.stdout.trim(), "20310", "{api:?}");
    // The registry is the one git's common dir holds, with the paths wine gives.
    let reg = repo.registry();
    assert_eq!(
        reg["worktrees"]["wt"]["ports"]["web"]["port"], 20301,
        "{reg}"
    );

    // wt's own server: a Windows process in wt.
    let (_own, pid) = windows_listener(&env, &w, &wt, 20301, false);
    let exe = listener_name(&w);
    let status = run(&env, &w, &repo.dir, &["status", "--health-check"]);
    status.ok();
    let line = status
        .stdout
        .lines()
        .find(|l| l.contains("20301"))
        .unwrap_or_default();
    assert!(
        line.contains("[RUNNING]") && line.contains(&format!("pid {pid} ({exe})")),
        "{}",
        status.stdout
    );
    let json = run(&env, &w, &repo.dir, &["status", "--health-check", "--json"]);
    let j = json.json();
    let wt_row = j["worktrees"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "wt"))
        .expect("wt in the JSON")
        .clone();
    let listener = &wt_row["ports"]["web"]["listener"];
    assert_eq!(listener["pid"], pid, "{j}");
    assert_eq!(listener["owner"], "self", "{j}");
    assert_eq!(listener["command"], exe.as_str(), "{j}");
    let check = run(&env, &w, &repo.dir, &["check", "20301"]);
    check.code(4);
    assert!(
        check
            .stdout
            .contains(&format!("pid {pid} ({exe}), the server of worktree 'wt'")),
        "{}",
        check.stdout
    );

    // Another worktree's server on wt's api port: exec in wt refuses to start over it.
    let (_theirs, other) = windows_listener(&env, &w, &repo.dir, 20310, false);
    let exec = run(
        &env,
        &w,
        &wt,
        &["exec", "--", "cmd", "/c", "echo", "started"],
    );
    exec.code(4);
    assert!(!exec.stdout.contains("started"), "{exec:?}");
    assert!(
        exec.stderr.contains(&format!("pid {other} ({exe})")) && exec.stderr.contains("'app'"),
        "{}",
        exec.stderr
    );
    // Over its own server only, it starts.
    let own = run(
        &env,
        &w,
        &repo.dir,
        &["exec", "--", "cmd", "/c", "echo", "started"],
    );
    own.ok();
    assert!(own.stdout.contains("started"), "{own:?}");

    // A Linux process holds main's port: wine shows no Windows process for it, so it is
    // named for what it is, a process git-ports cannot identify, never this worktree's.
    let _linux = listen_in(&repo.dir, 20300);
    let json = run(&env, &w, &repo.dir, &["status", "--health-check", "--json"]);
    let j = json.json();
    let main_row = j["worktrees"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "app"))
        .expect("app in the JSON")
        .clone();
    assert_eq!(main_row["ports"]["web"]["health"], "running", "{j}");
    assert_eq!(
        main_row["ports"]["web"]["listener"]["owner"], "unknown",
        "{j}"
    );
}

#[cfg(target_os = "linux")]
fn stop_in_another_worktree_leaves_a_windows_server_alone_and_its_own_stops_it() {
    let w = win();
    let env = win_env();
    let repo = env.repo("app");
    repo.range("web", 20320, 20329);
    let wt = repo.worktree("wt", "wt");
    run(&env, &w, &repo.dir, &["allocate", "web"]).ok();
    run(&env, &w, &wt, &["allocate", "web"]).ok();
    let (_server, pid) = windows_listener(&env, &w, &wt, 20321, false);
    let stop = run(&env, &w, &repo.dir, &["stop"]);
    stop.ok();
    assert!(!stop.stdout.contains(&pid.to_string()), "{}", stop.stdout);
    wait_listening(20321, true);
    let stop = run(&env, &w, &wt, &["stop", "--grace", "1"]);
    stop.ok();
    assert!(
        stop.stdout.contains(&format!("web (20321): pid {pid} (")),
        "{}",
        stop.stdout
    );
    wait_listening(20321, false);
    let status = run(&env, &w, &wt, &["status", "--health-check"]);
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.contains("20321") && l.contains("[STOPPED]")),
        "{}",
        status.stdout
    );
}

#[cfg(target_os = "linux")]
fn a_lease_for_a_windows_process_ends_with_it() {
    let w = win();
    let env = win_env();
    let repo = env.repo("app");
    repo.range("web", 20330, 20339);
    repo.range("api", 20340, 20349);
    let (server, pid) = windows_listener(&env, &w, &repo.dir, 20349, false);
    let lease = run(
        &env,
        &w,
        &repo.dir,
        &["lease", "web", "--pid", &pid.to_string()],
    );
    lease.ok();
    // Leases take the top of the range, away from the worktrees.
    assert_eq!(lease.stdout.trim(), "20339", "{lease:?}");
    let status = run(&env, &w, &repo.dir, &["status", "--json"]);
    let leases = status.json()["leases"].clone();
    assert_eq!(leases[0]["port"], 20339, "{leases}");
    assert_eq!(leases[0]["pid"], pid, "{leases}");
    // A worktree never gets a leased port.
    run(&env, &w, &repo.dir, &["allocate", "web"]).ok();
    let got = run(&env, &w, &repo.dir, &["get", "web"]);
    assert_eq!(got.stdout.trim(), "20330", "{got:?}");
    drop(server);
    wait_listening(20349, false);
    // The next change of any repository drops the lease of a process that is gone.
    run(&env, &w, &repo.dir, &["allocate", "api"]).ok();
    let status = run(&env, &w, &repo.dir, &["status", "--json"]);
    let j = status.json();
    assert_eq!(j["leases"].as_array().map_or(0, Vec::len), 0, "{j}");
    let ledger = std::fs::read_to_string(env.path("ports-home/ledger.json")).expect("ledger");
    assert!(!ledger.contains("20339"), "{ledger}");
    // A process that is gone cannot hold one.
    let refused = run(
        &env,
        &w,
        &repo.dir,
        &["lease", "web", "--pid", &pid.to_string()],
    );
    refused.code(1);
    assert!(
        refused.stderr.contains("no such process is running"),
        "{}",
        refused.stderr
    );
}

#[cfg(target_os = "linux")]
fn the_proxy_routes_a_name_to_a_windows_server() {
    let w = win();
    let env = win_env();
    let repo = env.repo("app");
    repo.range("web", 20350, 20359);
    env.git(
        env.root(),
        ["config", "--global", "ports.proxyPort", "20390"],
    );
    let wt = repo.worktree("wt", "wt");
    run(&env, &w, &wt, &["allocate", "web"]).ok();
    let (_server, pid) = windows_listener(&env, &w, &wt, 20350, true);
    let start = run(&env, &w, &repo.dir, &["proxy", "start"]);
    start.ok();
    assert!(start.stdout.contains("runs (pid"), "{start:?}");
    wait_listening(20390, true);
    let curl = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-H",
            "Host: wt.app.localhost",
            "http://127.0.0.1:20390/",
        ])
        .output();
    let Ok(curl) = curl else {
        skip("curl is not installed");
    };
    let body = String::from_utf8_lossy(&curl.stdout);
    assert_eq!(body, format!("served by {pid}"), "{curl:?}");
    let status = run(&env, &w, &repo.dir, &["proxy", "status"]);
    status.ok();
    assert!(status.stdout.contains("wt.app.localhost"), "{status:?}");
    let stop = run(&env, &w, &repo.dir, &["proxy", "stop"]);
    stop.ok();
    assert!(
        stop.stdout.starts_with("✓ git ports proxy (pid"),
        "{stop:?}"
    );
    wait_listening(20390, false);
}

/// Windows file names ignore case, and wine's do too: a worktree named in another case, or
/// reached by its path in another case, is the same one, never a second registry entry;
/// and a name that is not UTF-8-safe ASCII is kept exactly.
#[cfg(target_os = "linux")]
fn another_case_never_splits_a_worktree_and_non_ascii_names_are_kept() {
    let w = win();
    let env = win_env();
    let repo = env.repo("app");
    repo.range("web", 20370, 20379);
    let feature = repo.worktree("Feature", "topic");
    run(&env, &w, &feature, &["allocate", "web"]).ok();
    let before = std::fs::read(repo.registry_path()).expect("registry");
    // Its name in another case names no worktree: nothing is added.
    let named = run(
        &env,
        &w,
        &repo.dir,
        &["allocate", "web", "--worktree", "FEATURE"],
    );
    named.code(2);
    assert!(
        named.stderr.contains("known worktrees: app, Feature"),
        "{}",
        named.stderr
    );
    assert_eq!(
        std::fs::read(repo.registry_path()).expect("registry"),
        before
    );
    // Its path in another case is its path.
    let upper = windows_path(&feature).replace("Feature", "FEATURE");
    let by_path = run(&env, &w, &repo.dir, &["get", "web", "--worktree", &upper]);
    by_path.ok();
    assert_eq!(by_path.stdout.trim(), "20370", "{by_path:?}");
    let reg = repo.registry();
    let keys: Vec<&str> = reg["worktrees"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["Feature"], "{reg}");
    // A worktree whose path is not ASCII: its listener is its own, its name exact.
    let cafe = repo.worktree("café", "café");
    run(&env, &w, &cafe, &["allocate", "web"]).ok();
    let (_server, pid) = windows_listener(&env, &w, &cafe, 20371, false);
    let json = run(&env, &w, &repo.dir, &["status", "--health-check", "--json"]);
    let j = json.json();
    let row = j["worktrees"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "café"))
        .expect("café in the JSON")
        .clone();
    assert_eq!(row["path"], windows_path(&cafe).as_str(), "{j}");
    assert_eq!(row["ports"]["web"]["listener"]["pid"], pid, "{j}");
    assert_eq!(row["ports"]["web"]["listener"]["owner"], "self", "{j}");
}

#[cfg(target_os = "linux")]
fn the_hook_block_allocates_through_the_windows_build() {
    use std::os::unix::fs::PermissionsExt;
    let w = win();
    let env = win_env();
    let repo = env.repo("app");
    repo.range("web", 20360, 20369);
    run(&env, &w, &repo.dir, &["hook", "install"]).ok();
    let hook = repo.dir.join(".git/hooks/post-checkout");
    let text = std::fs::read_to_string(&hook).expect("hook");
    assert!(text.starts_with("#!/bin/sh\n"), "{text}");
    assert!(!text.contains('\r'), "{text:?}");
    // Git for Windows runs a hook with its own sh whatever the file's mode; the Linux git
    // standing in for it here wants the executable bit, which a file wine writes lacks.
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The `git-ports` that sh finds on PATH: the Windows build, as on Windows.
    let bin = env.path("winbin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let wrapper = bin.join("git-ports");
    let vars: Vec<String> = [
        ("GIT_PORTS_HOME", "ports-home"),
        ("GIT_CONFIG_GLOBAL", "gitconfig"),
    ]
    .iter()
    .map(|(v, rel)| format!("{v}='{}'", windows_path(&env.path(rel))))
    .collect();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{} WINEDEBUG=-all exec wine '{}' \"$@\"\n",
            vars.join(" "),
            w.exe.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut git = Command::new("git");
    git.args(["worktree", "add", "-q", "-b", "hooked"])
        .arg(env.path("hooked"))
        .current_dir(&repo.dir);
    env.isolate(&mut git);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(&path));
    git.env("PATH", std::env::join_paths(dirs).expect("PATH"));
    let added = Run::from(git.output().expect("git worktree add"));
    added.ok();
    assert!(!added.stderr.contains("warning"), "{}", added.stderr);
    let reg = repo.registry();
    assert_eq!(
        reg["worktrees"]["hooked"]["ports"]["web"]["port"], 20360,
        "{reg}"
    );
    assert_eq!(
        reg["worktrees"]["hooked"]["path"],
        windows_path(&env.path("hooked")).as_str(),
        "{reg}"
    );
}

include!(concat!(env!("OUT_DIR"), "/it_windows.rs"));

#[cfg(target_os = "linux")]
fn a_repository_of_another_user_is_refused_with_the_reason_and_the_fix() {
    let w = win();
    // Only root can give a file to another user.
    if !crate::hostile::root() {
        skip("giving the repository to another user needs root");
    }
    let env = Env::new();
    let repo = env.repo("theirs");
    let out = env.sh(&repo.dir, "chown -R 4242:4242 .");
    out.ok();
    let refused = run(&env, &w, &repo.dir, &["status"]);
    refused.code(2);
    assert!(
        refused.stderr.contains("not owned by current user")
            && refused
                .stderr
                .contains("git config --global --add safe.directory"),
        "{refused:?}"
    );
    assert!(!repo.dir.join(".git/worktree-ports.json").exists());
}

/// A Windows process holding `file` open as an editor or a virus scanner does (sharing reading
/// only) for `ms` milliseconds; returns once it holds it.
fn hold(env: &Env, w: &Win, file: &Path, ms: u64) -> Server {
    let mut cmd = wine(env, file.parent().expect("dir"), &w.listener);
    cmd.env(crate::support::HOLD, windows_path(file))
        .env("GIT_PORTS_TEST_HOLD_MS", ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("wine holder");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let _ = std::io::BufReader::new(out).read_line(&mut line);
    assert_eq!(line.trim(), "held", "the Windows holder of {file:?}");
    Server(child)
}

#[cfg(target_os = "linux")]
fn a_registry_another_program_holds_open_is_replaced_once_it_lets_go_and_never_broken() {
    let w = win();
    let env = win_env();
    let repo = env.repo("app");
    repo.range("web", 20370, 20374);
    repo.range("api", 20375, 20379);
    run(&env, &w, &repo.dir, &["allocate", "web"]).ok();
    let registry = repo.dir.join(".git/worktree-ports.json");
    let before = std::fs::read(&registry).expect("registry");

    // Held past the wait: the allocation is refused, saying why, and the registry keeps what
    // it held (the ledger's claim for it, made first, is the next change's to settle).
    let _long = hold(&env, &w, &registry, 60_000);
    let refused = run(&env, &w, &repo.dir, &["allocate", "api"]);
    refused.code(5);
    assert!(
        refused
            .stderr
            .contains("another program holds it open, and did not let go within 5s"),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(&registry).expect("registry"), before);
    drop(_long);

    // Held for a moment: the write waits for it, and lands whole.
    let _short = hold(&env, &w, &registry, 1000);
    run(&env, &w, &repo.dir, &["allocate", "api"]).ok();
    let reg = repo.registry();
    assert_eq!(
        reg["worktrees"]["/"]["ports"]["api"]["port"], 20375,
        "{reg}"
    );
    assert_eq!(
        reg["worktrees"]["/"]["ports"]["web"]["port"], 20370,
        "{reg}"
    );
}

#[cfg(target_os = "linux")]
fn there_is_no_man_on_windows_so_the_page_is_not_installed_and_help_is_there() {
    let w = win();
    let env = win_env();
    let repo = env.repo("app");
    // Installing the page is refused, and --help is there instead.
    let man = run(&env, &w, &repo.dir, &["man", "--install"]);
    man.code(1);
    assert!(
        man.stderr.contains("Windows has no `man`") && man.stderr.contains("git-ports --help"),
        "{man:?}"
    );
    let share = w
        .exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("share"));
    assert!(!share.is_some_and(|p| p.exists()), "the page was written");
    let help = run(&env, &w, &repo.dir, &["--help"]);
    help.ok();
    assert!(help.stdout.contains("completions"), "{help:?}");
}

#[cfg(target_os = "linux")]
fn the_mcp_server_of_the_windows_build_allocates_and_names_a_windows_listener() {
    let w = win();
    let env = win_env();
    let repo = env.repo("app");
    repo.range("web", 20380, 20389);
    let mut cmd = wine(&env, &repo.dir, &w.exe);
    cmd.arg("mcp");
    let mut s = crate::mcp::Session::spawn(cmd);
    let v = s.call(1, "allocate", serde_json::json!({"services": ["web"]}));
    assert_eq!(v["result"]["isError"], false, "{v}");
    let reg = repo.registry();
    let port = reg["worktrees"]["/"]["ports"]["web"]["port"]
        .as_u64()
        .expect("web allocated") as u16;
    assert_eq!(port, 20380, "{reg}");
    let (_server, pid) = windows_listener(&env, &w, &repo.dir, port, false);
    let v = s.call(2, "status", serde_json::json!({"health_check": true}));
    let text = v.to_string();
    assert!(
        text.contains(&format!("\"pid\":{pid}")) && text.contains("\"owner\":\"self\""),
        "{v}"
    );
}

